//! Pseudo-spectral solvers. [`grid`] fixes the array and FFT conventions shared by all of them.

pub mod grid;
pub mod initial;
pub mod kolmogorov;
pub mod qg;
pub mod real;
pub mod resize;
pub mod stepper;

use num_complex::Complex;

use kolmogorov::{Kolmogorov, KolmogorovParams, KolmogorovWork};
use real::Real;
use stepper::{CrankNicolsonRk4, ImexRhs, StepBuffers};

/// The Kolmogorov flow with its CN–RK4 stepper: what the ensemble driver steps.
pub struct KolmogorovSolver<T: Real> {
    pub eq: Kolmogorov<T>,
    pub stepper: CrankNicolsonRk4<T>,
}

/// Per-thread work space of [`KolmogorovSolver::step`].
pub struct SolverWork<T: Real> {
    rhs: KolmogorovWork<T>,
    buffers: StepBuffers<T>,
}

impl<T: Real> KolmogorovSolver<T> {
    /// The solver on an `n × n` grid with time step `dt`.
    pub fn new(n: usize, params: KolmogorovParams, dt: f64) -> Self {
        let eq = Kolmogorov::new(n, params);
        let stepper = CrankNicolsonRk4::new(eq.linear(), eq.active_len(), dt);
        KolmogorovSolver { eq, stepper }
    }

    /// Fresh work space (one per thread).
    pub fn work(&self) -> SolverWork<T> {
        SolverWork { rhs: self.eq.work(), buffers: self.stepper.buffers(self.eq.grid().spec_len()) }
    }

    /// Advances `w` by one step; returns the CFL number `max|u|·dt/dx` at the start of the step
    /// (NaN if the state is not finite).
    pub fn step(&self, w: &mut [Complex<T>], work: &mut SolverWork<T>) -> f64 {
        let speed = self.stepper.step(&self.eq, w, &mut work.buffers, &mut work.rhs).to64();
        speed * self.stepper.dt() * self.eq.grid().n as f64 / self.eq.grid().length
    }
}
