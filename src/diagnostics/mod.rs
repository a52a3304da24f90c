//! Domain-averaged quadratic diagnostics of a vorticity spectrum (solver layout, see
//! [`crate::solver::grid`]), via Parseval: `⟨f²⟩ = (1/N⁴) Σ_k |f̂|²` over the full spectrum.
//!
//! - energy `E = ½⟨|u|²⟩ = ½⟨ψω⟩`, enstrophy `Z = ½⟨ω²⟩`, palinstrophy `P = ½⟨|∇ω|²⟩`;
//! - for `∂t ω = … + ν∇²ω − αω + F`: `dE/dt = −2νZ − 2αE + ⟨ψF⟩` and
//!   `dZ/dt = −2νP − 2αZ + ⟨ωF⟩` (the advection conserves both).

use num_complex::Complex;

use crate::solver::grid::Grid;
use crate::solver::real::Real;

/// `⟨a b*⟩`-type weighted sum `(1/N⁴) Σ_k m(k) Re(â conj b̂)` over the full spectrum.
fn weighted<T: Real>(g: &Grid<T>, a: &[Complex<T>], b: &[Complex<T>], m: impl Fn(f64) -> f64) -> f64 {
    let n = g.n;
    let mut total = 0.0;
    for p in 0..g.nkx {
        let w = g.weight(p).to64();
        let kx2 = g.kx[p].to64().powi(2);
        let mut row = 0.0;
        for q in 0..n {
            let k2 = kx2 + g.ky[q].to64().powi(2);
            let (x, y) = (a[p * n + q], b[p * n + q]);
            row += m(k2) * (x.re.to64() * y.re.to64() + x.im.to64() * y.im.to64());
        }
        total += w * row;
    }
    total / (n as f64).powi(4)
}

/// Kinetic energy `½⟨|u|²⟩`.
pub fn energy<T: Real>(g: &Grid<T>, w: &[Complex<T>]) -> f64 {
    0.5 * weighted(g, w, w, |k2| if k2 > 0.0 { 1.0 / k2 } else { 0.0 })
}

/// Enstrophy `½⟨ω²⟩`.
pub fn enstrophy<T: Real>(g: &Grid<T>, w: &[Complex<T>]) -> f64 {
    0.5 * weighted(g, w, w, |_| 1.0)
}

/// Palinstrophy `½⟨|∇ω|²⟩`.
pub fn palinstrophy<T: Real>(g: &Grid<T>, w: &[Complex<T>]) -> f64 {
    0.5 * weighted(g, w, w, |k2| k2)
}

/// Energy input `⟨ψ F⟩` of a vorticity forcing `F`.
pub fn energy_input<T: Real>(g: &Grid<T>, w: &[Complex<T>], forcing: &[Complex<T>]) -> f64 {
    weighted(g, w, forcing, |k2| if k2 > 0.0 { 1.0 / k2 } else { 0.0 })
}

/// Enstrophy input `⟨ω F⟩` of a vorticity forcing `F`.
pub fn enstrophy_input<T: Real>(g: &Grid<T>, w: &[Complex<T>], forcing: &[Complex<T>]) -> f64 {
    weighted(g, w, forcing, |_| 1.0)
}
