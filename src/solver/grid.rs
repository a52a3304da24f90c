//! Doubly periodic square grid, its wavenumbers and the 2D real FFT used by the solvers.
//!
//! Conventions (shared by every solver and diagnostic in this crate):
//! - Physical arrays are `N × N`, row-major and indexed `[y][x]`: `a[j * N + i]` is the value at
//!   `x_i = i·L/N`, `y_j = j·L/N`.
//! - Spectral arrays hold the half spectrum of a real field **transposed**, indexed `[kx][ky]`:
//!   `s[p * N + q]` with `p = 0..=N/2` (wavenumber `kx = p·2π/L`) and `q = 0..N`
//!   (`ky = q·2π/L` for `q < N/2`, `(q − N)·2π/L` otherwise; `q = N/2` is the Nyquist row).
//!   Keeping `ky` contiguous lets the `y`-direction FFTs run on contiguous rows.
//! - Scaling as numpy's `rfft2`/`irfft2`: the forward transform is unnormalised,
//!   `ŝ(k) = Σ_x a(x) e^{−i k·x}`; [`Grid::inverse_in_place`] is also unnormalised
//!   (`Σ_k ŝ e^{+i k·x}` over the full spectrum), so `irfft2 = inverse / N²`. Solvers fold the `1/N²` into their
//!   spectral multipliers. Parseval: `Σ_x a² = (1/N²) Σ_k |ŝ|²` over the full spectrum, i.e. the
//!   half spectrum with weight 2 for `0 < p < N/2`.
//! - Transforms can be restricted to the first `rows` values of `p` (the others are treated as
//!   zero). The solvers keep their state inside the 2/3-rule band `|kx|, |ky| ≤ kmax`, so they
//!   transform only `rows = kmax + 1` columns in `y`: exact, and a third fewer column FFTs.
//! - The `x` transforms take two real rows at once, as one complex row `z = a[2m] + i a[2m+1]`
//!   (the classic two-for-one real FFT): full-length complex FFTs of the `N/2` row pairs, split
//!   into the two half spectra while transposing (and packed the same way on the inverse).
//! - Inside the solvers' time steps, where fields are only multiplied point by point, the
//!   physical fields never exist whole: [`Grid::through_physical`] takes the spectra after their
//!   `y` transforms and, a few row pairs at a time, transforms them in `x`, hands the block (in
//!   the **paired layout**, `a[(m·N + i)·2 + r]` = the value at `x_i`, `y_{2m+r}`) to the
//!   solver's point-by-point products, and transforms the results back in `x`, all in L1/L2. The
//!   `[y][x]` transforms ([`Grid::forward`], [`Grid::inverse_in_place`]) are for everything else.

use std::sync::Arc;

use num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use super::real::Real;

/// Number of isotropic wavenumber shells of an `n × n` grid: shell `m` holds the integer
/// wavevectors with `round(|k|) = m`, for `m = 0 ..= ceil(n/√2)` (the corners included). The
/// length of the `k` dimension of the rollout's spectra.
pub fn isotropic_shells(n: usize) -> usize {
    ((n as f64 / 2.0) * std::f64::consts::SQRT_2).ceil() as usize + 1
}

/// A square periodic grid of `n × n` points on `[0, length)²` with its FFT plans.
pub struct Grid<T: Real> {
    /// Points per side (even).
    pub n: usize,
    /// Number of `kx` values in the half spectrum, `n/2 + 1`.
    pub nkx: usize,
    /// Largest retained integer wavenumber index of the 2/3 rule: `(n − 1) / 3`, so that
    /// `3·kmax < n` and quadratic products alias nothing into the retained band.
    pub kmax: usize,
    /// Domain side length `L`.
    pub length: f64,
    /// Physical wavenumber of each `p` (length `nkx`).
    pub kx: Vec<T>,
    /// Physical wavenumber of each `q` (length `n`).
    pub ky: Vec<T>,
    fwd: Arc<dyn Fft<T>>,
    inv: Arc<dyn Fft<T>>,
}

/// Per-thread buffers for [`Grid`] transforms.
pub struct FftScratch<T: Real> {
    /// A field in the paired layout, for the `[y][x]` transforms.
    pairs: Vec<Complex<T>>,
    /// A copy of a spectrum, for [`Grid::to_real`].
    cols: Vec<Complex<T>>,
    /// One block of row pairs per field of [`Grid::through_physical`].
    blocks: Vec<Complex<T>>,
    scratch: Vec<Complex<T>>,
}

/// Row pairs split or packed together by the transposes, column after column: two whole cache
/// lines of `Complex<f64>` of the spectrum per column, and few lines of the pairs (`n` apart, a
/// power of two, so they share L1 sets) in use at a time. Each block is transformed in `x` as
/// one batch right before its split (after its pack), while it is in L1.
const PAIR_BLOCK: usize = 4;

/// Row pairs per block of [`Grid::through_physical`], which holds one block per field (three
/// for the QG model: 3 × 2 × 256 complex values, 24 KiB, at 256², inside a 32 KiB L1).
const PHYSICAL_BLOCK: usize = 2;

impl<T: Real> Grid<T> {
    /// Plans the transforms for an `n × n` grid on `[0, length)²`. `n` must be even and ≥ 4.
    pub fn new(n: usize, length: f64) -> Self {
        assert!(n >= 4 && n % 2 == 0, "grid size must be even and >= 4, got {n}");
        let mut cp = FftPlanner::<T>::new();
        let dk = 2.0 * std::f64::consts::PI / length;
        let nkx = n / 2 + 1;
        Grid {
            n,
            nkx,
            kmax: (n - 1) / 3,
            length,
            kx: (0..nkx).map(|p| T::of(p as f64 * dk)).collect(),
            ky: (0..n).map(|q| T::of(Self::signed_index(n, q) as f64 * dk)).collect(),
            fwd: cp.plan_fft_forward(n),
            inv: cp.plan_fft_inverse(n),
        }
    }

    /// Signed integer wavenumber of row `q` of an `n`-point transform (Nyquist is `−n/2`).
    pub fn signed_index(n: usize, q: usize) -> i64 {
        if q < n / 2 {
            q as i64
        } else {
            q as i64 - n as i64
        }
    }

    /// Length of a half-spectrum array, `nkx · n`.
    pub fn spec_len(&self) -> usize {
        self.nkx * self.n
    }

    /// Number of `p` rows inside the 2/3-rule band.
    pub fn band_rows(&self) -> usize {
        self.kmax + 1
    }

    /// Whether mode `(p, q)` lies inside the 2/3-rule band `|kx|, |ky| ≤ kmax`.
    pub fn in_band(&self, p: usize, q: usize) -> bool {
        p <= self.kmax && Self::signed_index(self.n, q).unsigned_abs() as usize <= self.kmax
    }

    /// Weight of column `p` in half-spectrum sums over the full spectrum (Parseval).
    pub fn weight(&self, p: usize) -> T {
        if p == 0 || 2 * p == self.n {
            T::one()
        } else {
            T::of(2.0)
        }
    }

    /// Fresh buffers for this grid's transforms (one per thread).
    pub fn scratch(&self) -> FftScratch<T> {
        let len = [&self.fwd, &self.inv]
            .iter()
            .map(|plan| plan.get_inplace_scratch_len().max(plan.get_immutable_scratch_len()))
            .max()
            .unwrap_or(0);
        FftScratch {
            pairs: vec![Complex::default(); self.n * self.n / 2],
            cols: Vec::new(),
            blocks: Vec::new(),
            scratch: vec![Complex::default(); len],
        }
    }

    /// Forward transform of `real` (`[y][x]`) into `spec` (`[kx][ky]`), keeping the first
    /// `rows` values of `p` and zeroing the rest of `spec` (which may be shorter than the full
    /// half spectrum, down to `rows · n`). Unnormalised.
    pub fn forward(&self, real: &[T], spec: &mut [Complex<T>], rows: usize, ws: &mut FftScratch<T>) {
        let n = self.n;
        assert_eq!(real.len(), n * n, "forward: field size");
        for (m, z) in ws.pairs.chunks_exact_mut(n).enumerate() {
            let (even, odd) = real[2 * m * n..(2 * m + 2) * n].split_at(n);
            for ((z, &a), &b) in z.iter_mut().zip(even).zip(odd) {
                *z = Complex::new(a, b);
            }
        }
        assert!(spec.len() >= rows * n && rows <= self.nkx, "forward: buffer sizes");
        for (block, pairs) in ws.pairs.chunks_mut(PAIR_BLOCK * n).enumerate() {
            self.split_x::<PAIR_BLOCK>(pairs, spec, block * PAIR_BLOCK, rows, &mut ws.scratch);
        }
        self.forward_y(spec, rows, ws);
    }

    /// Inverse transform of the first `rows` values of `p` of `spec` into `real`; `spec` is used
    /// as work space and destroyed. Unnormalised: multiply by `1/N²` for `irfft2`.
    pub fn inverse_in_place(&self, spec: &mut [Complex<T>], real: &mut [T], rows: usize, ws: &mut FftScratch<T>) {
        let n = self.n;
        assert!(real.len() == n * n && spec.len() >= rows * n && rows <= self.nkx, "inverse: buffer sizes");
        self.inverse_y(spec, rows, ws);
        for (block, pairs) in ws.pairs.chunks_mut(PAIR_BLOCK * n).enumerate() {
            self.pack_x::<PAIR_BLOCK>(spec, pairs, block * PAIR_BLOCK, rows, &mut ws.scratch);
        }
        for (z, out) in ws.pairs.chunks_exact(n).zip(real.chunks_exact_mut(2 * n)) {
            let (even, odd) = out.split_at_mut(n);
            for ((z, a), b) in z.iter().zip(even).zip(odd) {
                (*a, *b) = (z.re, z.im);
            }
        }
    }

    /// The `y` half of an inverse transform, in place on the first `rows` columns of `spec`.
    pub fn inverse_y(&self, spec: &mut [Complex<T>], rows: usize, ws: &mut FftScratch<T>) {
        self.inv.process_with_scratch(&mut spec[..rows * self.n], &mut ws.scratch);
    }

    /// [`Grid::inverse_y`] of `spec`, which is kept, into `cols` (at least `rows · n` long).
    pub fn inverse_y_from(&self, spec: &[Complex<T>], cols: &mut [Complex<T>], rows: usize, ws: &mut FftScratch<T>) {
        let len = rows * self.n;
        self.inv.process_immutable_with_scratch(&spec[..len], &mut cols[..len], &mut ws.scratch);
    }

    /// The `y` half of a forward transform: zeroes `spec` beyond its first `rows` columns and
    /// transforms those in place.
    fn forward_y(&self, spec: &mut [Complex<T>], rows: usize, ws: &mut FftScratch<T>) {
        let len = rows * self.n;
        spec[len..].fill(Complex::default());
        self.fwd.process_with_scratch(&mut spec[..len], &mut ws.scratch);
    }

    /// The physical-space half of a pseudo-spectral product, a block of grid rows at a time.
    ///
    /// `cols` holds `K` spectra transformed in `y` ([`Grid::inverse_y`]; first `rows` columns).
    /// Block after block of [`PHYSICAL_BLOCK`] row pairs, each spectrum's rows are packed and
    /// transformed in `x` into that block of its field, `f` is called on the `K` blocks, and the
    /// blocks of the last `outputs` fields are transformed forward in `x` and split back into the
    /// same rows of their spectra; at the end those spectra are transformed forward in `y`
    /// (`Grid::forward_y`), so they hold the products' spectra. The blocks are in the
    /// paired layout (values `(m·N + i)·2 + r` for grid row `y = 2(m0 + m) + r`, `x_i`),
    /// unnormalised like [`Grid::inverse_in_place`]; `f` sees every grid point exactly once, so it
    /// must only work point by point. The fields never exist whole: they stay in L1/L2, where
    /// the separate inverse, product and forward passes moved each through L3.
    pub fn through_physical<const K: usize>(
        &self,
        mut cols: [&mut [Complex<T>]; K],
        outputs: usize,
        rows: usize,
        ws: &mut FftScratch<T>,
        mut f: impl FnMut(&mut [&mut [T]; K]),
    ) {
        let n = self.n;
        assert!(outputs <= K && cols.iter().all(|c| c.len() >= rows * n) && rows <= self.nkx, "physical: buffer sizes");
        let block = PHYSICAL_BLOCK * n;
        ws.blocks.resize(K * block, Complex::default());
        for m0 in (0..n / 2).step_by(PHYSICAL_BLOCK) {
            let len = PHYSICAL_BLOCK.min(n / 2 - m0) * n;
            let mut it = ws.blocks.chunks_exact_mut(block);
            let mut z: [&mut [Complex<T>]; K] = std::array::from_fn(|_| &mut it.next().expect("K blocks")[..len]);
            for (spec, z) in cols.iter().zip(z.iter_mut()) {
                self.pack_x::<PHYSICAL_BLOCK>(spec, z, m0, rows, &mut ws.scratch);
            }
            let mut fields = z.each_mut().map(|z| as_reals(z));
            f(&mut fields);
            for (spec, z) in cols.iter_mut().zip(z.iter_mut()).skip(K - outputs) {
                self.split_x::<PHYSICAL_BLOCK>(z, spec, m0, rows, &mut ws.scratch);
            }
        }
        for spec in cols.iter_mut().skip(K - outputs) {
            self.forward_y(spec, rows, ws);
        }
    }

    /// Packs rows `2·m0..` of the first `rows` columns of `spec` (transformed in `y`) into the
    /// row pairs `pairs` (at most `B` of them, starting at pair `m0`) and transforms them in `x`
    /// while they are in L1.
    fn pack_x<const B: usize>(
        &self,
        spec: &[Complex<T>],
        pairs: &mut [Complex<T>],
        m0: usize,
        rows: usize,
        scratch: &mut [Complex<T>],
    ) {
        let n = self.n;
        if rows < self.nkx {
            // Columns rows..=n − rows are outside the transformed band.
            for zr in pairs.chunks_exact_mut(n) {
                zr[rows..=n - rows].fill(Complex::default());
            }
        }
        if pairs.len() == B * n {
            pack_block::<T, B>(n, spec, pairs, m0, rows);
        } else {
            for (r, pair) in pairs.chunks_exact_mut(n).enumerate() {
                pack_block::<T, 1>(n, spec, pair, m0 + r, rows);
            }
        }
        self.inv.process_with_scratch(pairs, scratch);
    }

    /// Transforms the row pairs `pairs` (at most `B`, starting at pair `m0`; destroyed) in `x`
    /// and splits them into rows `2·m0..` of the first `rows` columns of `spec`.
    fn split_x<const B: usize>(
        &self,
        pairs: &mut [Complex<T>],
        spec: &mut [Complex<T>],
        m0: usize,
        rows: usize,
        scratch: &mut [Complex<T>],
    ) {
        let n = self.n;
        self.fwd.process_with_scratch(pairs, scratch);
        if pairs.len() == B * n {
            split_block::<T, B>(n, pairs, spec, m0, rows);
        } else {
            for (r, pair) in pairs.chunks_exact(n).enumerate() {
                split_block::<T, 1>(n, pair, spec, m0 + r, rows);
            }
        }
    }

    /// Inverse transform of `spec` (all `p`) into `real`, normalised as numpy's `irfft2`.
    pub fn to_real(&self, spec: &[Complex<T>], real: &mut [T], ws: &mut FftScratch<T>) {
        let mut cols = std::mem::take(&mut ws.cols);
        cols.clear();
        cols.extend_from_slice(spec);
        self.inverse_in_place(&mut cols, real, self.nkx, ws);
        ws.cols = cols;
        let s = T::one() / T::of((self.n * self.n) as f64);
        real.iter_mut().for_each(|v| *v = *v * s);
    }
}

/// Complex numbers seen as their consecutive real and imaginary parts: a block of row pairs
/// `z = a[2m] + i a[2m+1]` as the two rows' values in the paired layout.
fn as_reals<T: Real>(pairs: &mut [Complex<T>]) -> &mut [T] {
    // SAFETY: `Complex<T>` is `#[repr(C)]` with fields `re: T, im: T`, so it has the size of two
    // `T` and the alignment of `T`: `len` of them are `2 · len` consecutive `T`. The result
    // borrows `pairs` mutably for its whole lifetime.
    unsafe { std::slice::from_raw_parts_mut(pairs.as_mut_ptr().cast::<T>(), 2 * pairs.len()) }
}

/// Splits the `B` transformed row pairs `z` (pairs `m0..m0 + B`, `n` values each) into their two
/// half spectra, in the first `rows` columns of `spec`, rows `2·m0..2·(m0 + B)`.
///
/// `Z = A + iB` with `A`, `B` the spectra of the two real rows, so `A(p) = (Z(p) + Z*(−p))/2` and
/// `B(p) = −i (Z(p) − Z*(−p))/2`. Column after column, so the `B` rows stay in L1; the rows are
/// fixed-size slices taken once per block and the mirror index needs no `% n`, so the inner loop
/// has no division (one per value would be the largest cost of this loop).
fn split_block<T: Real, const B: usize>(n: usize, z: &[Complex<T>], spec: &mut [Complex<T>], m0: usize, rows: usize) {
    let mut it = z.chunks_exact(n);
    let z: [&[Complex<T>]; B] = std::array::from_fn(|_| it.next().expect("B rows of n values"));
    let half = T::of(0.5);
    for p in 0..rows {
        let mirror = if p == 0 { 0 } else { n - p };
        let out = &mut spec[p * n + 2 * m0..][..2 * B];
        for (zr, ab) in z.iter().zip(out.chunks_exact_mut(2)) {
            let (zp, zm) = (zr[p], zr[mirror].conj());
            let (sum, diff) = (zp + zm, zp - zm);
            ab[0] = sum * half;
            ab[1] = Complex::new(diff.im * half, -diff.re * half);
        }
    }
}

/// Packs the first `rows` columns of `spec` (transformed in `y`), rows `2·m0..2·(m0 + B)`, into
/// the `B` row pairs `z` (pairs `m0..m0 + B`): `Z(p) = A(p) + iB(p)`, `Z(−p) = A*(p) + iB*(p)`.
/// The DC and Nyquist columns of a real row are real, and their round-off imaginary parts are
/// dropped. Same loop order and access rule as [`split_block`].
fn pack_block<T: Real, const B: usize>(n: usize, spec: &[Complex<T>], z: &mut [Complex<T>], m0: usize, rows: usize) {
    let mut it = z.chunks_exact_mut(n);
    let mut z: [&mut [Complex<T>]; B] = std::array::from_fn(|_| it.next().expect("B rows of n values"));
    let real = |p: usize, z: &mut [&mut [Complex<T>]; B]| {
        let src = &spec[p * n + 2 * m0..][..2 * B];
        for (zr, ab) in z.iter_mut().zip(src.chunks_exact(2)) {
            zr[p] = Complex::new(ab[0].re, ab[1].re);
        }
    };
    real(0, &mut z);
    for p in 1..rows.min(n / 2) {
        let src = &spec[p * n + 2 * m0..][..2 * B];
        for (zr, ab) in z.iter_mut().zip(src.chunks_exact(2)) {
            (zr[p], zr[n - p]) = T::pack_pair(ab[0], ab[1]);
        }
    }
    if rows > n / 2 {
        real(n / 2, &mut z);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_field(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n * n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
            })
            .collect()
    }

    #[test]
    fn roundtrip_and_parseval() {
        for n in [4usize, 8, 30, 64] {
            let g = Grid::<f64>::new(n, 2.0 * std::f64::consts::PI);
            let mut ws = g.scratch();
            let a = random_field(n, n as u64);
            let mut s = vec![Complex::default(); g.spec_len()];
            g.forward(&a, &mut s, g.nkx, &mut ws);
            let mut b = vec![0.0; n * n];
            g.to_real(&s, &mut b, &mut ws);
            let err = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(err < 1e-13, "n={n}: roundtrip error {err}");
            let phys: f64 = a.iter().map(|x| x * x).sum();
            let spec: f64 =
                (0..g.nkx).map(|p| g.weight(p) * (0..n).map(|q| s[p * n + q].norm_sqr()).sum::<f64>()).sum::<f64>()
                    / (n * n) as f64;
            assert!((phys - spec).abs() < 1e-12 * phys, "n={n}: Parseval {phys} vs {spec}");
        }
    }

    #[test]
    fn single_mode_lands_where_documented() {
        // a = cos(3x + 2y) on N=16 ⇒ ŝ(p=3, ky=2) = N²/2, all else ~0.
        let n = 16;
        let g = Grid::<f64>::new(n, 2.0 * std::f64::consts::PI);
        let h = 2.0 * std::f64::consts::PI / n as f64;
        let a: Vec<f64> = (0..n * n).map(|k| (3.0 * (k % n) as f64 * h + 2.0 * (k / n) as f64 * h).cos()).collect();
        let mut s = vec![Complex::default(); g.spec_len()];
        g.forward(&a, &mut s, g.nkx, &mut g.scratch());
        assert!((s[3 * n + 2].re - (n * n) as f64 / 2.0).abs() < 1e-10);
        let rest: f64 = s.iter().map(|c| c.norm()).sum::<f64>() - s[3 * n + 2].norm();
        assert!(rest < 1e-9, "leakage {rest}");
        assert_eq!(g.kx[3], 3.0);
        assert_eq!(g.ky[n - 2], -2.0);
    }

    #[test]
    fn through_physical_visits_the_paired_layout_in_order_and_forms_products() {
        // n = 6 has 3 row pairs: a full block and a short one.
        for n in [6usize, 16, 32] {
            let g = Grid::<f64>::new(n, 2.0 * std::f64::consts::PI);
            let mut ws = g.scratch();
            let (a, b) = (random_field(n, 3 + n as u64), random_field(n, 5 + n as u64));
            let mut spectrum = |f: &[f64]| {
                let mut s = vec![Complex::default(); g.spec_len()];
                g.forward(f, &mut s, g.nkx, &mut ws);
                s
            };
            let (sa, mut sb, expected) = (spectrum(&a), spectrum(&b), spectrum(&product(&a, &b)));
            let kept = sa.clone();
            let mut cols = vec![Complex::default(); g.spec_len()];
            g.inverse_y_from(&sa, &mut cols, g.nkx, &mut ws);
            assert_eq!(sa, kept, "n={n}: inverse_y_from changed its input");
            g.inverse_y(&mut sb, g.nkx, &mut ws);
            // Field a is only read; field b becomes a·b (both unnormalised: ×N² each).
            let (nn, mut seen) = ((n * n) as f64, Vec::new());
            g.through_physical([&mut cols[..], &mut sb], 1, g.nkx, &mut ws, |[fa, fb]| {
                seen.extend_from_slice(fa);
                for (x, y) in fa.iter().zip(fb.iter_mut()) {
                    *y = *x * *y / (nn * nn);
                }
            });
            assert_eq!(seen.len(), n * n, "n={n}: every point once");
            for y in 0..n {
                for x in 0..n {
                    let got = seen[((y / 2) * n + x) * 2 + y % 2] / nn;
                    assert!((got - a[y * n + x]).abs() < 1e-13, "n={n}: value at x={x}, y={y}");
                }
            }
            let err = sb.iter().zip(&expected).map(|(x, y)| (x - y).norm()).fold(0.0, f64::max);
            assert!(err < 1e-12 * nn, "n={n}: product spectrum differs by {err}");
        }
    }

    fn product(a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| x * y).collect()
    }

    #[test]
    fn restricted_rows_match_full_transform_for_band_limited_fields() {
        let n = 24;
        let g = Grid::<f64>::new(n, 2.0 * std::f64::consts::PI);
        let mut ws = g.scratch();
        let mut s = vec![Complex::default(); g.spec_len()];
        g.forward(&random_field(n, 7), &mut s, g.nkx, &mut ws);
        for p in 0..g.nkx {
            for q in 0..n {
                if !g.in_band(p, q) {
                    s[p * n + q] = Complex::default();
                }
            }
        }
        let (mut full, mut part) = (vec![0.0; n * n], vec![0.0; n * n]);
        let mut c = s.clone();
        g.inverse_in_place(&mut c, &mut full, g.nkx, &mut ws);
        let mut c = s.clone();
        g.inverse_in_place(&mut c, &mut part, g.band_rows(), &mut ws);
        let err = full.iter().zip(&part).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(err < 1e-12, "pruned inverse differs by {err}");
    }
}
