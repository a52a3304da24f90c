//! Pseudo-spectral solvers. [`grid`] fixes the array and FFT conventions shared by all of them.

pub mod batched;
pub mod batched_qg;
pub mod grid;
pub mod initial;
pub mod kolmogorov;
pub mod qg;
pub mod real;
pub mod resize;
pub mod speed;
pub mod stepper;

use num_complex::Complex;

use grid::Grid;
use kolmogorov::{Kolmogorov, KolmogorovParams, KolmogorovWork};
use qg::{Qg, QgParams, QgState, QgWork};
use real::Real;
use stepper::{CrankNicolsonRk4, ImexRhs, StepBuffers};

/// What the ensemble driver needs of a system: step a member, expose the fields to store, and
/// save/restore a member's exact state (multistep history included) for checkpoints.
pub trait Dynamics<T: Real>: Sync {
    /// One member's state.
    type State: Clone + Send + Sync;
    /// Per-thread work space.
    type Work: Send;
    /// The solver grid.
    fn grid(&self) -> &Grid<T>;
    /// Fields per state (1: vorticity; 2: upper and lower PV).
    fn layers(&self) -> usize;
    /// Fresh work space.
    fn work(&self) -> Self::Work;
    /// A state from the spectra of its fields (`layers` half spectra), with no step history.
    fn state(&self, fields: Vec<Complex<T>>) -> Self::State;
    /// The spectra of the stored fields.
    fn fields<'a>(&self, state: &'a Self::State) -> &'a [Complex<T>];
    /// Advances one step; returns the CFL number at its start (NaN if not finite).
    fn step(&self, state: &mut Self::State, work: &mut Self::Work) -> f64;
    /// The exact state as numbers (checkpoints), and back.
    fn save(&self, state: &Self::State) -> Vec<f64>;
    fn load(&self, words: &[f64]) -> Self::State;
}

fn to_words<T: Real>(spectra: &[&[Complex<T>]], extra: &[f64]) -> Vec<f64> {
    spectra
        .iter()
        .flat_map(|s| s.iter().flat_map(|c| [c.re.to64(), c.im.to64()]))
        .chain(extra.iter().copied())
        .collect()
}

fn from_words<T: Real>(words: &[f64]) -> Vec<Complex<T>> {
    words.chunks_exact(2).map(|c| Complex::new(T::of(c[0]), T::of(c[1]))).collect()
}

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

impl<T: Real> Dynamics<T> for KolmogorovSolver<T> {
    type State = Vec<Complex<T>>;
    type Work = SolverWork<T>;
    fn grid(&self) -> &Grid<T> {
        self.eq.grid()
    }
    fn layers(&self) -> usize {
        1
    }
    fn work(&self) -> SolverWork<T> {
        KolmogorovSolver::work(self)
    }
    /// The field is projected onto the solver's 2/3-rule band (its state space).
    fn state(&self, mut fields: Vec<Complex<T>>) -> Self::State {
        self.eq.project(&mut fields);
        fields
    }
    fn fields<'a>(&self, state: &'a Self::State) -> &'a [Complex<T>] {
        state
    }
    fn step(&self, state: &mut Self::State, work: &mut SolverWork<T>) -> f64 {
        KolmogorovSolver::step(self, state, work)
    }
    fn save(&self, state: &Self::State) -> Vec<f64> {
        to_words(&[state], &[])
    }
    fn load(&self, words: &[f64]) -> Self::State {
        from_words(words)
    }
}

/// The two-layer QG model with its time step: what the ensemble driver steps.
pub struct QgSolver<T: Real> {
    pub model: Qg<T>,
    pub dt: f64,
}

impl<T: Real> QgSolver<T> {
    pub fn new(n: usize, params: QgParams, dt: f64) -> Self {
        QgSolver { model: Qg::new(n, params), dt }
    }
}

impl<T: Real> Dynamics<T> for QgSolver<T> {
    type State = QgState<T>;
    type Work = QgWork<T>;
    fn grid(&self) -> &Grid<T> {
        self.model.grid()
    }
    fn layers(&self) -> usize {
        2
    }
    fn work(&self) -> QgWork<T> {
        self.model.work()
    }
    fn state(&self, fields: Vec<Complex<T>>) -> QgState<T> {
        self.model.state(fields)
    }
    fn fields<'a>(&self, state: &'a QgState<T>) -> &'a [Complex<T>] {
        &state.q
    }
    fn step(&self, state: &mut QgState<T>, work: &mut QgWork<T>) -> f64 {
        self.model.step(state, self.dt, work)
    }
    /// `q̂`, the two previous tendencies, then the Adams–Bashforth level.
    fn save(&self, s: &QgState<T>) -> Vec<f64> {
        to_words(&[&s.q, &s.dq_prev, &s.dq_prev2], &[s.level as f64])
    }
    fn load(&self, words: &[f64]) -> QgState<T> {
        let n = (words.len() - 1) / 3;
        QgState {
            q: from_words(&words[..n]),
            dq_prev: from_words(&words[n..2 * n]),
            dq_prev2: from_words(&words[2 * n..3 * n]),
            level: words[3 * n] as u8,
        }
    }
}
