//! Implicit–explicit time steppers for `∂t ŵ = N(ŵ) + L ŵ` with a diagonal linear operator `L`.
//!
//! [`CrankNicolsonRk4`] is the low-storage Carpenter–Kennedy RK4 for the explicit part with
//! Crank–Nicolson for the implicit part (Canuto et al. 2007, App. D.3), the scheme of jax-cfd's
//! `crank_nicolson_rk4`. Per stage `k = 0..5`:
//!
//! ```text
//! h ← N(w) + β_k h
//! µ = ½ dt (α_{k+1} − α_k)
//! w ← (w + γ_k dt h + µ L w) / (1 − µ L)
//! ```
//!
//! It is fourth-order for the explicit terms and second-order for the implicit ones. The two
//! per-mode factors of the update are precomputed once per `dt`, so a stage's update is one fused
//! pass over the spectrum.

use num_complex::Complex;

use super::real::Real;

/// The right-hand side of an IMEX problem in spectral space.
pub trait ImexRhs<T: Real>: Sync {
    /// Per-thread work space of [`ImexRhs::explicit`].
    type Work: Send;
    /// Fresh work space.
    fn work(&self) -> Self::Work;
    /// Writes the explicit terms `N(w)` into `out`; returns the largest speed seen in physical
    /// space (used for CFL and blow-up checks).
    fn explicit(&self, w: &[Complex<T>], out: &mut [Complex<T>], work: &mut Self::Work) -> T;
    /// The diagonal implicit operator `L`, one real value per half-spectrum mode.
    fn linear(&self) -> &[T];
    /// Length of the prefix of the spectrum that can be non-zero (modes beyond stay zero).
    fn active_len(&self) -> usize;
}

/// Carpenter–Kennedy low-storage RK4 + Crank–Nicolson coefficients.
const ALPHAS: [f64; 6] = [0.0, 0.1496590219993, 0.3704009573644, 0.6222557631345, 0.9582821306748, 1.0];
/// Weight `β_k` of the low-storage register in stage `k` (`h ← N(w) + β_k h`).
pub const BETAS: [f64; 5] = [0.0, -0.4178904745, -1.192151694643, -1.697784692471, -1.514183444257];
const GAMMAS: [f64; 5] = [0.1496590219993, 0.3792103129999, 0.8229550293869, 0.6994504559488, 0.1530572479681];

/// Stage `k`'s update factors for a mode with implicit coefficient `l`:
/// `((1 + µL)/(1 − µL), γ_k dt/(1 − µL))`, so that `w ← w·a + h·b`.
pub fn stage_factors(k: usize, l: f64, dt: f64) -> (f64, f64) {
    let mu = 0.5 * dt * (ALPHAS[k + 1] - ALPHAS[k]);
    ((1.0 + mu * l) / (1.0 - mu * l), GAMMAS[k] * dt / (1.0 - mu * l))
}

/// The CN–RK4 stepper for a fixed `dt` and linear operator.
pub struct CrankNicolsonRk4<T: Real> {
    /// Per stage: `((1 + µL)/(1 − µL), γ dt/(1 − µL))` for every active mode.
    stages: Vec<(Vec<T>, Vec<T>)>,
    dt: f64,
}

/// Buffers of one member's step: the explicit terms and the low-storage register.
pub struct StepBuffers<T: Real> {
    f: Vec<Complex<T>>,
    h: Vec<Complex<T>>,
}

impl<T: Real> CrankNicolsonRk4<T> {
    /// Precomputes the stage factors for `linear` (first `active` modes) and `dt`.
    pub fn new(linear: &[T], active: usize, dt: f64) -> Self {
        let stages = (0..BETAS.len())
            .map(|k| {
                let factors = || linear[..active].iter().map(|&l| stage_factors(k, l.to64(), dt));
                (factors().map(|f| T::of(f.0)).collect(), factors().map(|f| T::of(f.1)).collect())
            })
            .collect();
        CrankNicolsonRk4 { stages, dt }
    }

    /// The time step.
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// Buffers for one member of a problem whose spectrum has `len` modes.
    pub fn buffers(&self, len: usize) -> StepBuffers<T> {
        StepBuffers { f: vec![Complex::default(); len], h: vec![Complex::default(); len] }
    }

    /// Advances `w` by one step of `dt`; returns the largest speed at the start of the step.
    pub fn step<E: ImexRhs<T>>(&self, eq: &E, w: &mut [Complex<T>], buf: &mut StepBuffers<T>, work: &mut E::Work) -> T {
        let active = eq.active_len();
        let mut speed = T::zero();
        for (k, (a, b)) in self.stages.iter().enumerate() {
            let s = eq.explicit(w, &mut buf.f, work);
            if k == 0 {
                speed = s;
            }
            let beta = T::of(BETAS[k]);
            let (w, f, h) = (&mut w[..active], &buf.f[..active], &mut buf.h[..active]);
            for i in 0..active {
                // β_0 = 0: assign rather than accumulate, so nothing stale enters the first stage.
                h[i] = if k == 0 { f[i] } else { f[i] + h[i] * beta };
                w[i] = w[i] * a[i] + h[i] * b[i];
            }
        }
        speed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dw/dt = i ω w + λ w` (explicit oscillation, implicit decay): exact `w0 e^{(iω+λ)t}`.
    struct Oscillator {
        lin: Vec<f64>,
        omega: f64,
    }
    impl ImexRhs<f64> for Oscillator {
        type Work = ();
        fn work(&self) {}
        fn explicit(&self, w: &[Complex<f64>], out: &mut [Complex<f64>], _: &mut ()) -> f64 {
            out[0] = w[0] * Complex::new(0.0, self.omega);
            0.0
        }
        fn linear(&self) -> &[f64] {
            &self.lin
        }
        fn active_len(&self) -> usize {
            1
        }
    }

    fn error(dt: f64, lambda: f64) -> f64 {
        let eq = Oscillator { lin: vec![lambda], omega: 2.0 };
        let st = CrankNicolsonRk4::new(&eq.lin, 1, dt);
        let mut buf = st.buffers(1);
        let mut w = vec![Complex::new(1.0, 0.0)];
        let steps = (1.0 / dt).round() as usize;
        for _ in 0..steps {
            st.step(&eq, &mut w, &mut buf, &mut ());
        }
        (w[0] - Complex::new(lambda, 2.0).exp()).norm()
    }

    #[test]
    fn explicit_part_is_fourth_order() {
        let (e1, e2) = (error(0.05, 0.0), error(0.025, 0.0));
        let order = (e1 / e2).log2();
        assert!(order > 3.8 && order < 4.3, "observed order {order} ({e1:e}, {e2:e})");
    }

    #[test]
    fn implicit_part_is_second_order_and_stable_for_stiff_decay() {
        let (e1, e2) = (error(0.02, -1.0), error(0.01, -1.0));
        let order = (e1 / e2).log2();
        assert!(order > 1.8 && order < 2.3, "observed order {order}");
        // Stiff decay with dt·|λ| = 1e4: CN keeps it bounded.
        assert!(error(0.01, -1e6).is_finite());
    }
}
