//! Random initial conditions: a filtered random velocity field, as jax-cfd's
//! `filtered_velocity_field(key, grid, maximum_velocity, peak_wavenumber)`.
//!
//! White noise for `u` and `v` is filtered in Fourier space by the amplitude spectrum
//! `S(k) = lognormal(k; mode = k_peak, variance 0.25) / k` (the `1/k^(d−1)` accounts for the
//! ring of wavenumbers of magnitude `k` in `d = 2`), `S(0) = 0`. Its curl is the vorticity; the
//! divergent part of the noise drops out exactly, which is what jax-cfd's pressure projection
//! approximates on its staggered grid. The field is projected onto the solver's 2/3-rule band
//! and scaled so that `max |u| = max_velocity`. jax-cfd repeats project-and-normalise 3 times;
//! with an exact spectral projection one pass is the same.

use num_complex::Complex;
use rand::Rng;
use rand_distr::StandardNormal;

use super::kolmogorov::Kolmogorov;
use super::real::Real;

/// jax-cfd's unscaled log-normal density with mode `mode` and log-variance `variance`.
fn log_normal(x: f64, mode: f64, variance: f64) -> f64 {
    let mean = mode.ln() + variance;
    let lx = x.ln();
    (-(mean - lx).powi(2) / 2.0 / variance - lx).exp()
}

/// A random vorticity spectrum (solver layout, inside the band) with `max |u| = max_velocity`.
pub fn filtered_vorticity<T: Real>(
    eq: &Kolmogorov<T>,
    rng: &mut impl Rng,
    max_velocity: f64,
    peak_wavenumber: f64,
) -> Vec<Complex<T>> {
    let g = eq.grid();
    let n = g.n;
    let mut ws = g.scratch();
    let mut noise = vec![T::zero(); n * n];
    let mut uh = vec![Complex::default(); g.spec_len()];
    let mut vh = vec![Complex::default(); g.spec_len()];
    for spec in [&mut uh, &mut vh] {
        noise.iter_mut().for_each(|x| *x = T::of(rng.sample::<f64, _>(StandardNormal)));
        g.forward(&noise, spec, g.nkx, &mut ws);
    }
    let mut w = vec![Complex::default(); g.spec_len()];
    for p in 0..g.nkx {
        for q in 0..n {
            let i = p * n + q;
            let (kx, ky) = (g.kx[p].to64(), g.ky[q].to64());
            let k = (kx * kx + ky * ky).sqrt();
            if k == 0.0 || !g.in_band(p, q) {
                continue;
            }
            let s = T::of(log_normal(k, peak_wavenumber, 0.25) / k);
            // ω̂ = i kx v̂ − i ky û
            let c = vh[i] * T::of(kx) - uh[i] * T::of(ky);
            w[i] = Complex::new(-c.im, c.re) * s;
        }
    }
    let speed = max_speed(eq, &w);
    let scale = T::of(max_velocity / speed);
    w.iter_mut().for_each(|c| *c = *c * scale);
    w
}

/// The largest speed `max |u|` on the grid of the flow with vorticity spectrum `w`.
pub fn max_speed<T: Real>(eq: &Kolmogorov<T>, w: &[Complex<T>]) -> f64 {
    let g = eq.grid();
    let mut ws = g.scratch();
    let mut spec = vec![Complex::default(); g.spec_len()];
    let mut u = vec![T::zero(); g.n * g.n];
    let mut v = vec![T::zero(); g.n * g.n];
    eq.velocity_hat(w, 0, &mut spec);
    g.to_real(&spec, &mut u, &mut ws);
    eq.velocity_hat(w, 1, &mut spec);
    g.to_real(&spec, &mut v, &mut ws);
    u.iter().zip(&v).map(|(a, b)| (a.to64().powi(2) + b.to64().powi(2)).sqrt()).fold(0.0, f64::max)
}
