//! Forced 2D Navier–Stokes ("Kolmogorov flow") in vorticity form, as jax-cfd's
//! `ForcedNavierStokes2D` with its Kolmogorov forcing.
//!
//! On `[0, 2π)²`, doubly periodic, with nondimensional units:
//!
//! ```text
//! ∂t ω + u·∇ω = ν ∇²ω − α ω + F(y),      F(y) = −A k_f cos(k_f y)
//! u = (u, v) = (∂y ψ, −∂x ψ),            ∇²ψ = −ω   (so ω = ∂x v − ∂y u)
//! ```
//!
//! `F` is the curl of the body force `f = (A sin(k_f y), 0)`; `A = 1` in the paper. `ν = 1/Re`.
//!
//! Discretisation: pseudo-spectral. The advection is evaluated in Basdevant's (1983) form
//! `u·∇ω = (∂x² − ∂y²)(uv) + ∂x∂y(v² − u²)` from the products of `u` and `v` on the grid
//! (2 inverse + 2 forward real FFTs per evaluation, against 5 for `u·∇ω` directly) and projected
//! onto the 2/3-rule band `|kx|, |ky| ≤ kmax = (N−1)/3`; the forcing is added in spectral space (it is
//! constant, so it costs no FFT). Viscosity and drag, `L = −ν|k|² − α`, are treated implicitly.
//! The state is kept inside the band (initial conditions are projected onto it), which makes the
//! truncation a Galerkin projection: the nonlinear term conserves energy and enstrophy exactly.

use num_complex::Complex;

use super::grid::{FftScratch, Grid};
use super::real::Real;
use super::speed::PeakSpeed;
use super::stepper::ImexRhs;

/// Physical parameters of the Kolmogorov flow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KolmogorovParams {
    /// Kinematic viscosity `ν = 1/Re`.
    pub viscosity: f64,
    /// Linear drag `α`.
    pub drag: f64,
    /// Forcing wavenumber `k_f` (integer, in units of the fundamental `2π/L = 1`).
    pub forcing_wavenumber: usize,
    /// Forcing amplitude `A` of the body force `A sin(k_f y)`.
    pub forcing_amplitude: f64,
}

/// The right-hand side of the Kolmogorov flow on one grid.
pub struct Kolmogorov<T: Real> {
    grid: Grid<T>,
    params: KolmogorovParams,
    linear: Vec<T>,
    /// `1/|k|²` with 0 at `k = 0`, pre-multiplied by `1/N²` (the inverse FFT normalisation).
    inv_k2_scaled: Vec<T>,
    /// The constant forcing `F̂` as (index, value) pairs.
    forcing: Vec<(usize, Complex<T>)>,
}

/// Per-thread work space of [`Kolmogorov::explicit`].
pub struct KolmogorovWork<T: Real> {
    fft: FftScratch<T>,
    /// Spectra of `u, v`, then of the products `uv, v² − u²` (band rows only); the fields on
    /// the grid exist only a block of rows at a time ([`Grid::through_physical`]).
    spectra: [Vec<Complex<T>>; 2],
}

impl<T: Real> Kolmogorov<T> {
    /// The equation on an `n × n` grid of `[0, 2π)²`.
    pub fn new(n: usize, params: KolmogorovParams) -> Self {
        let grid = Grid::<T>::new(n, 2.0 * std::f64::consts::PI);
        let scale = 1.0 / (n * n) as f64;
        let mut linear = vec![T::zero(); grid.spec_len()];
        let mut inv_k2_scaled = vec![T::zero(); grid.spec_len()];
        for p in 0..grid.nkx {
            for q in 0..n {
                let k2 = grid.kx[p].to64().powi(2) + grid.ky[q].to64().powi(2);
                linear[p * n + q] = T::of(-params.viscosity * k2 - params.drag);
                if k2 > 0.0 {
                    inv_k2_scaled[p * n + q] = T::of(scale / k2);
                }
            }
        }
        // F = −A k_f cos(k_f y) ⇒ F̂(kx=0, ky=±k_f) = −A k_f N²/2.
        let kf = params.forcing_wavenumber;
        let amp = T::of(-params.forcing_amplitude * kf as f64 * (n * n) as f64 / 2.0);
        let forcing = if kf == 0 || !grid.in_band(0, kf) {
            Vec::new()
        } else {
            vec![(kf, Complex::new(amp, T::zero())), (n - kf, Complex::new(amp, T::zero()))]
        };
        Kolmogorov { grid, params, linear, inv_k2_scaled, forcing }
    }

    /// The grid the equation is discretised on.
    pub fn grid(&self) -> &Grid<T> {
        &self.grid
    }

    /// The physical parameters.
    pub fn params(&self) -> &KolmogorovParams {
        &self.params
    }

    /// The constant vorticity forcing `F̂` as a full half-spectrum array (for budgets).
    pub fn forcing_spectrum(&self) -> Vec<Complex<T>> {
        let mut f = vec![Complex::default(); self.grid.spec_len()];
        for &(i, v) in &self.forcing {
            f[i] = v;
        }
        f
    }

    /// Zeroes every mode outside the 2/3-rule band (the solver's state space).
    pub fn project(&self, w: &mut [Complex<T>]) {
        let n = self.grid.n;
        for (i, c) in w.iter_mut().enumerate() {
            if !self.grid.in_band(i / n, i % n) {
                *c = Complex::default();
            }
        }
    }

    /// Writes the spectrum of velocity component `u` (`which = 0`) or `v` (`which = 1`) of the
    /// vorticity spectrum `w`, unnormalised like `w`.
    pub fn velocity_hat(&self, w: &[Complex<T>], which: usize, out: &mut [Complex<T>]) {
        let n = self.grid.n;
        let s = T::of((n * n) as f64);
        for (i, (o, c)) in out.iter_mut().zip(w).enumerate() {
            let psi = *c * (self.inv_k2_scaled[i] * s);
            // u = ∂y ψ ⇒ û = i ky ψ̂;  v = −∂x ψ ⇒ v̂ = −i kx ψ̂.
            *o = if which == 0 {
                Complex::new(-psi.im, psi.re) * self.grid.ky[i % n]
            } else {
                Complex::new(psi.im, -psi.re) * self.grid.kx[i / n]
            };
        }
    }
}

impl<T: Real> ImexRhs<T> for Kolmogorov<T> {
    type Work = KolmogorovWork<T>;

    fn work(&self) -> KolmogorovWork<T> {
        let active = self.active_len();
        KolmogorovWork { fft: self.grid.scratch(), spectra: std::array::from_fn(|_| vec![Complex::default(); active]) }
    }

    fn explicit(&self, w: &[Complex<T>], out: &mut [Complex<T>], work: &mut KolmogorovWork<T>) -> T {
        let g = &self.grid;
        let (n, rows) = (g.n, g.band_rows());
        let active = rows * n;
        // û = i ky ω̂/k², v̂ = −i kx ω̂/k² (×1/N², folded into inv_k2_scaled).
        let [su, sv] = &mut work.spectra;
        for p in 0..rows {
            let (kx, row) = (g.kx[p], p * n..(p + 1) * n);
            let (w_row, ik2, su, sv) =
                (&w[row.clone()], &self.inv_k2_scaled[row.clone()], &mut su[row.clone()], &mut sv[row]);
            for q in 0..n {
                let c = w_row[q];
                let rot = Complex::new(-c.im, c.re) * ik2[q]; // i ω̂/k²
                su[q] = rot * g.ky[q];
                sv[q] = rot * -kx;
            }
        }
        g.inverse_y(su, rows, &mut work.fft);
        g.inverse_y(sv, rows, &mut work.fft);
        // Basdevant's form of the advection: u·∇ω = (∂x² − ∂y²)(uv) + ∂x∂y(v² − u²), two products
        // instead of four fields (4 FFTs per evaluation, not 5). u ← uv, v ← v² − u².
        let mut peak = PeakSpeed::new();
        g.through_physical([&mut su[..], sv], 2, rows, &mut work.fft, |[u, v]| {
            peak.add(u, v, T::zero());
            for (a, b) in u.iter_mut().zip(v.iter_mut()) {
                let (uu, vv) = (*a * *a, *b * *b);
                *a = *a * *b;
                *b = vv - uu;
            }
        });
        // −u·∇ω: (kx² − ky²) (uv)^ + kx ky (v² − u²)^, on the band only.
        for p in 0..rows {
            let (kx, row) = (g.kx[p], p * n..(p + 1) * n);
            let (o, a, b) = (&mut out[row.clone()], &su[row.clone()], &sv[row]);
            for q in 0..n {
                let ky = g.ky[q];
                o[q] = a[q] * (kx * kx - ky * ky) + b[q] * (kx * ky);
            }
            o[g.kmax + 1..n - g.kmax].fill(Complex::default());
        }
        out[active..].fill(Complex::default());
        for &(i, f) in &self.forcing {
            out[i] = out[i] + f;
        }
        peak.speed()
    }

    fn linear(&self) -> &[T] {
        &self.linear
    }

    fn active_len(&self) -> usize {
        self.grid.band_rows() * self.grid.n
    }
}
