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
//!   `ŝ(k) = Σ_x a(x) e^{−i k·x}`; [`Grid::inverse`] is also unnormalised (`Σ_k ŝ e^{+i k·x}`
//!   over the full spectrum), so `irfft2 = inverse / N²`. Solvers fold the `1/N²` into their
//!   spectral multipliers. Parseval: `Σ_x a² = (1/N²) Σ_k |ŝ|²` over the full spectrum, i.e. the
//!   half spectrum with weight 2 for `0 < p < N/2`.
//! - Transforms can be restricted to the first `rows` values of `p` (the others are treated as
//!   zero). The solvers keep their state inside the 2/3-rule band `|kx|, |ky| ≤ kmax`, so they
//!   transform only `rows = kmax + 1` columns in `y`: exact, and a third fewer column FFTs.

use std::sync::Arc;

use num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

use super::real::Real;

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
    r2c: Arc<dyn RealToComplex<T>>,
    c2r: Arc<dyn ComplexToReal<T>>,
    fwd: Arc<dyn Fft<T>>,
    inv: Arc<dyn Fft<T>>,
}

/// Per-thread buffers for [`Grid`] transforms.
pub struct FftScratch<T: Real> {
    rows: Vec<Complex<T>>,
    cols: Vec<Complex<T>>,
    scratch: Vec<Complex<T>>,
    line: Vec<T>,
}

impl<T: Real> Grid<T> {
    /// Plans the transforms for an `n × n` grid on `[0, length)²`. `n` must be even and ≥ 4.
    pub fn new(n: usize, length: f64) -> Self {
        assert!(n >= 4 && n % 2 == 0, "grid size must be even and >= 4, got {n}");
        let mut rp = RealFftPlanner::<T>::new();
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
            r2c: rp.plan_fft_forward(n),
            c2r: rp.plan_fft_inverse(n),
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
        let len = [
            self.r2c.get_scratch_len(),
            self.c2r.get_scratch_len(),
            self.fwd.get_inplace_scratch_len(),
            self.inv.get_inplace_scratch_len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        FftScratch {
            rows: vec![Complex::default(); self.spec_len()],
            cols: vec![Complex::default(); self.spec_len()],
            scratch: vec![Complex::default(); len],
            line: vec![T::zero(); self.n],
        }
    }

    /// Forward transform of `real` (`[y][x]`) into `spec` (`[kx][ky]`), keeping the first
    /// `rows` values of `p` and zeroing the rest of `spec` (which may be shorter than the full
    /// half spectrum, down to `rows · n`). Unnormalised.
    pub fn forward(&self, real: &[T], spec: &mut [Complex<T>], rows: usize, ws: &mut FftScratch<T>) {
        let (n, nkx) = (self.n, self.nkx);
        debug_assert!(real.len() == n * n && spec.len() >= rows * n && rows <= nkx);
        for (y, out) in ws.rows.chunks_exact_mut(nkx).enumerate() {
            ws.line.copy_from_slice(&real[y * n..(y + 1) * n]);
            self.r2c.process_with_scratch(&mut ws.line, out, &mut ws.scratch).expect("rfft buffer sizes");
        }
        transpose(&ws.rows, nkx, spec, n, n, rows);
        spec[rows * n..].fill(Complex::default());
        self.fwd.process_with_scratch(&mut spec[..rows * n], &mut ws.scratch);
    }

    /// Inverse transform of the first `rows` values of `p` of `spec` into `real`; `spec` is used
    /// as work space and destroyed. Unnormalised: multiply by `1/N²` for `irfft2`.
    pub fn inverse_in_place(&self, spec: &mut [Complex<T>], real: &mut [T], rows: usize, ws: &mut FftScratch<T>) {
        let (n, nkx) = (self.n, self.nkx);
        debug_assert!(real.len() == n * n && spec.len() >= rows * n && rows <= nkx);
        self.inv.process_with_scratch(&mut spec[..rows * n], &mut ws.scratch);
        for row in ws.rows.chunks_exact_mut(nkx) {
            row[rows..].fill(Complex::default());
        }
        transpose(&spec[..rows * n], n, &mut ws.rows, nkx, rows, n);
        for (y, row) in ws.rows.chunks_exact_mut(nkx).enumerate() {
            // DC and Nyquist columns of a real field are real; drop round-off imaginary parts.
            row[0].im = T::zero();
            row[nkx - 1].im = T::zero();
            self.c2r
                .process_with_scratch(row, &mut real[y * n..(y + 1) * n], &mut ws.scratch)
                .expect("irfft buffer sizes");
        }
    }

    /// Inverse transform of `spec` (all `p`) into `real`, normalised as numpy's `irfft2`.
    pub fn to_real(&self, spec: &[Complex<T>], real: &mut [T], ws: &mut FftScratch<T>) {
        let mut cols = std::mem::take(&mut ws.cols);
        cols.copy_from_slice(spec);
        self.inverse_in_place(&mut cols, real, self.nkx, ws);
        ws.cols = cols;
        let s = T::one() / T::of((self.n * self.n) as f64);
        real.iter_mut().for_each(|v| *v = *v * s);
    }
}

/// Writes the transpose of the `a_rows × b_cols` block of `src` (row stride `src_stride`) into
/// `dst` (row stride `dst_stride`), i.e. `dst[b][a] = src[a][b]`, in cache-sized tiles.
///
/// Inside a tile the inner loop runs along the rows of whichever array has the longer stride:
/// rows `n` complex numbers apart (a power of two) share a handful of L1 sets, so that side is
/// touched one whole cache line after another, while the other side's lines stay in L1.
fn transpose<C: Copy>(src: &[C], src_stride: usize, dst: &mut [C], dst_stride: usize, a_rows: usize, b_cols: usize) {
    const TILE: usize = 16;
    if a_rows == 0 || b_cols == 0 {
        return;
    }
    assert!((a_rows - 1) * src_stride + b_cols <= src.len(), "transpose: source too short");
    assert!((b_cols - 1) * dst_stride + a_rows <= dst.len(), "transpose: destination too short");
    let along_src = src_stride >= dst_stride;
    for a0 in (0..a_rows).step_by(TILE) {
        for b0 in (0..b_cols).step_by(TILE) {
            let (a_end, b_end) = ((a0 + TILE).min(a_rows), (b0 + TILE).min(b_cols));
            // SAFETY (both loops): a < a_rows and b < b_cols, so both indices are within the
            // bounds asserted above.
            if along_src {
                for a in a0..a_end {
                    for b in b0..b_end {
                        unsafe { *dst.get_unchecked_mut(b * dst_stride + a) = *src.get_unchecked(a * src_stride + b) };
                    }
                }
            } else {
                for b in b0..b_end {
                    for a in a0..a_end {
                        unsafe { *dst.get_unchecked_mut(b * dst_stride + a) = *src.get_unchecked(a * src_stride + b) };
                    }
                }
            }
        }
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
        for n in [8usize, 30, 64] {
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
