//! The `generate` stage: an ensemble of trajectories of the configured system (Kolmogorov flow
//! or two-layer QG, `system.kind`) into `trajectories.h5`.
//!
//! The main loop, in the manner of Dedalus' (`while solver.proceed: solver.step(dt)`):
//!
//! ```text
//! preflight (rank 0 checks files, all ranks agree)  → fresh | resume | already complete
//! states ← random ICs | IC file | checkpoint;  file ← create | reopen  (collective)
//! loop over segments (spin-up chunks of steps_per_sample, then one stored state each):
//!     step every local member (threads within the rank); mark blow-ups, keep the others going
//!     if a stored time is reached: downsample and write it (collective)
//!     agree over ranks on: stop requested? checkpoint due?   → checkpoint (collective)
//! write diverged_at, close, rename .partial → trajectories.h5, remove the checkpoint
//! ```
//!
//! A member's initial condition comes from its own random stream (run.seed, member index), and
//! its evolution never depends on which rank or thread steps it, so the file is bitwise the same
//! for any number of ranks and threads, and for a killed-and-resumed run.

mod ensemble;
mod initial;

use std::path::PathBuf;
use std::time::Instant;

use num_complex::Complex;
use tch::Device;

use self::ensemble::{Clock, Generation, Segment, Solvers};
use self::initial::check_ic_file;
use crate::config::{Config, Precision, Stage, SystemKind};
use crate::error::{Context, Result};
use crate::parallel::signals::StopFlag;
use crate::parallel::World;
use crate::solver::batched::BatchedKolmogorov;
use crate::solver::batched_qg::BatchedQg;
use crate::solver::qg::{Qg, QgState};
use crate::solver::real::Real;
use crate::solver::resize::Downsampler;
use crate::solver::{Dynamics, KolmogorovSolver, QgSolver};
use crate::store::resume::{self, Decision, Outcome, StageFiles};
use crate::store::trajectories::{TrajectoryLayout, TEST, TRAIN, VALID};

/// The work a config asks for (printed by `validate`).
pub struct Plan {
    pub members: usize,
    pub samples: usize,
    pub spinup_steps: u64,
    pub total_steps: u64,
    pub output_bytes: u64,
}

impl Plan {
    pub fn of(c: &Config) -> Plan {
        let (m, t, k) = (c.generate.members, c.generate.samples, c.generate.steps_per_sample as u64);
        let spinup = c.spinup_steps() as u64;
        let out = c.output_grid() as u64;
        Plan {
            members: m,
            samples: t,
            spinup_steps: spinup,
            total_steps: spinup + (t as u64 - 1) * k,
            output_bytes: m as u64 * t as u64 * c.layers() as u64 * out * out * 4,
        }
    }

    /// Estimated peak memory of one of `ranks` ranks, in bytes: every local member's state,
    /// plus per thread the solver's real fields, spectra and FFT buffers.
    pub fn memory_per_rank(c: &Config, ranks: usize) -> u64 {
        let n = c.system.grid as u64;
        let word = if c.system.precision == Precision::F32 { 4 } else { 8 };
        let spec = (n / 2 + 1) * n * 2 * word;
        let local = c.generate.members.div_ceil(ranks) as u64;
        let threads = c.threads_per_rank(ranks) as u64;
        // QG keeps two layers and two past tendencies per member (Adams–Bashforth 3).
        let per_member = if c.system.kind == SystemKind::Qg { 6 * spec } else { spec };
        local * per_member + threads * (6 * n * n * word + 8 * spec)
    }
}

/// Checks inputs and the run directory (rank 0), and decides fresh / resume / done; errors are
/// input errors.
fn preflight(c: &Config, files: &StageFiles) -> Result<Decision> {
    if let Some(ic) = c.ic_file() {
        check_ic_file(&ic, c)?;
    }
    let dir = &c.run.dir;
    std::fs::create_dir_all(dir).input_context(|| format!("run.dir = {}: cannot create it", dir.display()))?;
    let probe = dir.join(".thermalizer-write-test");
    std::fs::write(&probe, b"").input_context(|| format!("run.dir = {}: not writable", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    files.decide(Stage::Generate, &c.identity(Stage::Generate))
}

/// Runs the stage on all ranks: with the native CPU solver, or with `device` the batched
/// libtorch solver of the system on that device.
pub fn run(c: &Config, world: &World, stop: &StopFlag, device: Option<Device>) -> Result<Outcome<PathBuf>> {
    if let (Some(d), true) = (device, world.is_root()) {
        log::info!("solver: libtorch, each rank's members as one batch on {d:?}");
    }
    match c.system.precision {
        Precision::F64 => run_precision::<f64>(c, world, stop, device),
        Precision::F32 => run_precision::<f32>(c, world, stop, device),
    }
}

fn run_precision<T: Real>(
    c: &Config,
    world: &World,
    stop: &StopFlag,
    device: Option<Device>,
) -> Result<Outcome<PathBuf>> {
    let (n, m, length) = (c.system.grid, c.output_grid(), c.domain_length());
    match c.system.kind {
        SystemKind::Kolmogorov => {
            let solver = KolmogorovSolver::<T>::new(n, c.kolmogorov(), c.system.dt);
            let batched = device.map(|d| BatchedKolmogorov::new::<T>(n, c.kolmogorov(), c.system.dt, d));
            let batch = batched.as_ref().map(|b| b as &dyn Segment<Vec<Complex<T>>>);
            run_typed(c, world, stop, (&solver, batch), &Downsampler::new(n, m, length))
        }
        SystemKind::Qg => {
            let solver = QgSolver::<T>::new(n, c.qg(), c.system.dt);
            let coarse = Qg::<T>::new(m, c.qg());
            let down = Downsampler::with_filter(n, m, length, coarse.filter().to_vec());
            let batched = device.map(|d| BatchedQg::new::<T>(n, c.qg(), c.system.dt, d));
            let batch = batched.as_ref().map(|b| b as &dyn Segment<QgState<T>>);
            run_typed(c, world, stop, (&solver, batch), &down)
        }
    }
}

/// The stage on all ranks: decide → set up members (fresh or from the checkpoint) → segments
/// {step members, store a sample, agree, checkpoint, stop?} → finish → publish.
fn run_typed<T: Real, D: Dynamics<T>>(
    c: &Config,
    world: &World,
    stop: &StopFlag,
    solvers: Solvers<D, D::State>,
    down: &Downsampler<T>,
) -> Result<Outcome<PathBuf>> {
    let paths = StageFiles::generate(&c.run.dir);
    // Held (on rank 0) until the stage returns, whichever way.
    let (decision, _lock) = resume::decide_locked(world, &c.run.dir, "generate", || preflight(c, &paths))?;
    if decision == Decision::Done {
        return Ok(Outcome::Complete { result: paths.output, already: true });
    }
    let mut g = Generation::set_up(c, world, solvers, down, paths, decision)?;
    if g.step == 0 && g.plan.spinup_steps == 0 {
        g.store(0)?;
    }
    let mut clock = Clock::start(g.step);
    g.log_start();
    while g.step < g.plan.total_steps {
        g.advance_segment();
        if let Some(t) = g.stored_index() {
            g.store(t)?;
        }
        let agreed = g.agree(stop, &clock);
        g.log_progress(&mut clock, agreed.diverged);
        if agreed.stop || agreed.checkpoint {
            g.checkpoint()?;
            clock.checkpointed = Instant::now();
            if agreed.stop {
                return Ok(Outcome::Interrupted { step: g.step });
            }
        }
    }
    g.finish(&clock)
}

/// The fixed structure of a fresh file: stored times after the spin-up, every
/// `steps_per_sample` solver steps, and the members' splits.
fn layout(c: &Config, plan: &Plan) -> TrajectoryLayout {
    TrajectoryLayout {
        members: plan.members,
        samples: plan.samples,
        grid: c.output_grid(),
        times: (0..plan.samples)
            .map(|i| (plan.spinup_steps + (i * c.generate.steps_per_sample) as u64) as f64 * c.system.dt)
            .collect(),
        split: split_of_members(plan.members, c.generate.split.train, c.generate.split.valid),
    }
}

/// Split of each member: the first `round(train·M)` are train, the next `round(valid·M)` valid,
/// the rest test (members are independent draws, so order is as good as shuffling).
pub fn split_of_members(members: usize, train: f64, valid: f64) -> Vec<i8> {
    let n_train = (train * members as f64).round() as usize;
    let n_valid = ((valid * members as f64).round() as usize).min(members - n_train.min(members));
    (0..members)
        .map(|i| {
            if i < n_train {
                TRAIN
            } else if i < n_train + n_valid {
                VALID
            } else {
                TEST
            }
        })
        .collect()
}
