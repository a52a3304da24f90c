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

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use ndarray::{Array4, ArrayViewMut3, Axis};
use num_complex::Complex;
use rand::Rng;
use rayon::prelude::*;
use tch::Device;

use crate::config::{Config, Precision, Stage, SystemKind};
use crate::error::{Context, Error, Result};
use crate::parallel::signals::StopFlag;
use crate::parallel::World;
use crate::rng::{member_stream, Purpose};
use crate::solver::batched::{BatchedDynamics, BatchedKolmogorov};
use crate::solver::batched_qg::BatchedQg;
use crate::solver::initial::filtered_vorticity;
use crate::solver::kolmogorov::Kolmogorov;
use crate::solver::qg::{Qg, QgState};
use crate::solver::real::Real;
use crate::solver::resize::{DownsampleWork, Downsampler};
use crate::solver::{Dynamics, KolmogorovSolver, QgSolver};
use crate::store::h5::{Access, File, Hyperslab};
use crate::store::member_states;
use crate::store::resume::{self, Decision, Outcome, StageFiles};
use crate::store::trajectories::{variable, TrajectoryLayout, TrajectoryWriter, TEST, TRAIN, VALID};

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

/// An initial-condition file must hold `vorticity[member, y, x]` (Kolmogorov) or
/// `q[member, layer, y, x]` (QG) on the solver grid; errors are input errors.
fn check_ic_file(path: &Path, c: &Config) -> Result<()> {
    let (members, n, var) = (c.generate.members, c.system.grid, variable(c));
    let key = format!("generate.initial_condition = {}", path.display());
    if !path.is_file() {
        return Err(Error::Input(format!("{key}: no such file")));
    }
    let f = File::open(path, Access::Serial, false).input_context(|| &key)?;
    let shape = f.dataset(var.name).and_then(|d| d.shape()).input_context(|| &key)?;
    let (want, names) = if var.layers > 1 {
        (vec![members, var.layers, n, n], "[generate.members, layer, system.grid, system.grid]")
    } else {
        (vec![members, n, n], "[generate.members, system.grid, system.grid]")
    };
    if shape != want {
        return Err(Error::Input(format!("{key}: {} has shape {shape:?}, expected {names} = {want:?}", var.name)));
    }
    Ok(())
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

/// Advances the live members of a segment together: a batched solver on a device.
trait Segment<S> {
    /// Steps every member not yet diverged from solver step `from` to `to`, marking those whose
    /// CFL number exceeds `max_cfl` (or turns non-finite) at the step it happens.
    fn advance(&self, members: &mut [Member<S>], from: u64, to: u64, max_cfl: f64);
}

impl<S, B: BatchedDynamics<S>> Segment<S> for B {
    fn advance(&self, members: &mut [Member<S>], from: u64, to: u64, max_cfl: f64) {
        let live: Vec<usize> = (0..members.len()).filter(|&i| members[i].diverged_at.is_none()).collect();
        if live.is_empty() {
            return;
        }
        let states: Vec<&S> = live.iter().map(|&i| &members[i].state).collect();
        let mut w = self.load(&states);
        let mut diverged: Vec<Option<u64>> = vec![None; live.len()];
        for s in from..to {
            let cfl = Vec::<f64>::try_from(self.step(&mut w).to_kind(tch::Kind::Double).to_device(Device::Cpu))
                .expect("CFL numbers");
            for (j, &c) in cfl.iter().enumerate() {
                if diverged[j].is_none() && !(c <= max_cfl) {
                    log::warn!("member {} diverged at solver step {s} (CFL number {c:.3})", members[live[j]].index);
                    diverged[j] = Some(s);
                }
            }
        }
        for (j, &i) in live.iter().enumerate() {
            match diverged[j] {
                Some(s) => members[i].diverged_at = Some(s),
                None => members[i].state = self.unload(&w, j as i64),
            }
        }
    }
}

/// One member on this rank.
struct Member<S> {
    index: usize,
    state: S,
    diverged_at: Option<u64>,
}

/// The solver of a run: native (`solver`, stepped on the rank's threads), or batched on a device
/// (`batch`, when given: `solver` then still holds the states and their sizes).
type Solvers<'a, D, S> = (&'a D, Option<&'a dyn Segment<S>>);

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

/// The clocks of the sample loop.
struct Clock {
    start: Instant,
    checkpointed: Instant,
    logged: Instant,
    /// Solver step at `start` (0, or where a resumed run continues).
    first_step: u64,
}

impl Clock {
    fn start(first_step: u64) -> Clock {
        let now = Instant::now();
        Clock { start: now, checkpointed: now, logged: now, first_step }
    }
}

/// What the ranks agreed after a segment.
struct Agreed {
    stop: bool,
    checkpoint: bool,
    /// Members diverged so far, over all ranks.
    diverged: u64,
}

/// One rank's share of the stage: its members, their solver and the open output file.
struct Generation<'a, T: Real, D: Dynamics<T>> {
    c: &'a Config,
    world: &'a World,
    solver: &'a D,
    batch: Option<&'a dyn Segment<D::State>>,
    down: &'a Downsampler<T>,
    paths: StageFiles,
    plan: Plan,
    /// This rank's members (global indices), in order.
    local: Range<usize>,
    members: Vec<Member<D::State>>,
    /// Solver steps taken from the initial condition.
    step: u64,
    writer: TrajectoryWriter,
    /// The threads of this rank, and per thread the solver's and the downsampler's scratch.
    pool: rayon::ThreadPool,
    works: Vec<Mutex<(D::Work, DownsampleWork<T>)>>,
    /// One stored time of the local members, `[member, layer, y, x]` on the output grid.
    frame: Array4<f32>,
    /// Resolved config YAML (stored in checkpoints).
    yaml: String,
    /// Seconds spent storing samples (downsampling and HDF5 writes).
    io_time: f64,
}

impl<'a, T: Real, D: Dynamics<T>> Generation<'a, T, D> {
    /// This rank's members and the output file: new ones for a fresh run, from the checkpoint
    /// and the partial file for a resumed one.
    fn set_up(
        c: &'a Config,
        world: &'a World,
        (solver, batch): Solvers<'a, D, D::State>,
        down: &'a Downsampler<T>,
        paths: StageFiles,
        decision: Decision,
    ) -> Result<Self> {
        let plan = Plan::of(c);
        let local = world.members(plan.members);
        let threads = c.threads_per_rank(world.size());
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| Error::failure(e.to_string()))?;
        let (members, step, writer) = if decision == Decision::Resume {
            let (members, step) = resumed_states(solver, &paths.checkpoint, local.clone())?;
            (members, step, TrajectoryWriter::reopen(&paths.partial, world, c)?)
        } else {
            let members = initial_states(c, solver, local.clone())?;
            (members, 0, TrajectoryWriter::create(&paths.partial, world, &layout(c, &plan), c)?)
        };
        let works = (0..threads).map(|_| Mutex::new((solver.work(), down.work()))).collect();
        let m_out = c.output_grid();
        let frame = Array4::zeros((local.len(), solver.layers(), m_out, m_out));
        let yaml = c.to_yaml();
        Ok(Generation {
            c,
            world,
            solver,
            batch,
            down,
            paths,
            plan,
            local,
            members,
            step,
            writer,
            pool,
            works,
            frame,
            yaml,
            io_time: 0.0,
        })
    }

    /// The outcome of a collective write, agreed by the ranks: a failure seen by some of them (a
    /// full disk) is reported once and ends every rank alike, without aborting (see
    /// `Error::Collective`).
    fn collective(&self, r: Result<()>) -> Result<()> {
        self.world.agree(r).inspect_err(|_| crate::store::h5::abandon_parallel_files())
    }

    fn log_start(&self) {
        log::info!(
            "generate: {} members ({} per rank on {} rank(s), {} thread(s) each), {}² → {}², {} solver steps, {} stored states",
            self.plan.members,
            self.local.len(),
            self.world.size(),
            self.pool.current_num_threads(),
            self.c.system.grid,
            self.c.output_grid(),
            self.plan.total_steps,
            self.plan.samples
        );
    }

    /// Steps every live member to the end of the segment: the next stored time, or during the
    /// spin-up `steps_per_sample` steps at most (the spin-up need not be a multiple of them).
    fn advance_segment(&mut self) {
        let (step, k, spinup) = (self.step, self.c.generate.steps_per_sample as u64, self.plan.spinup_steps);
        let next = if step < spinup { (step + k).min(spinup) } else { step + k };
        let max_cfl = self.c.generate.max_cfl;
        match self.batch {
            Some(b) => b.advance(&mut self.members, step, next, max_cfl),
            None => self.step_on_threads(next, max_cfl),
        }
        self.step = next;
    }

    /// The native solver's segment: members spread over the rank's threads, each stepped to
    /// `next` unless its CFL number exceeds `max_cfl` (or turns non-finite) first.
    fn step_on_threads(&mut self, next: u64, max_cfl: f64) {
        let (from, solver, works) = (self.step, self.solver, &self.works);
        self.pool.install(|| {
            self.members.par_iter_mut().for_each(|m| {
                if m.diverged_at.is_some() {
                    return;
                }
                let mut work = works[rayon::current_thread_index().unwrap_or(0)].lock().unwrap();
                for s in from..next {
                    let cfl = solver.step(&mut m.state, &mut work.0);
                    if !(cfl <= max_cfl) {
                        log::warn!("member {} diverged at solver step {s} (CFL number {cfl:.3})", m.index);
                        m.diverged_at = Some(s);
                        break;
                    }
                }
            })
        });
    }

    /// The stored time reached, if the step is past the spin-up.
    fn stored_index(&self) -> Option<usize> {
        let k = self.c.generate.steps_per_sample as u64;
        (self.step >= self.plan.spinup_steps).then(|| ((self.step - self.plan.spinup_steps) / k) as usize)
    }

    /// Downsamples every local member to the output grid and writes them as stored time `t`
    /// (collective); a diverged member's state is NaN.
    fn store(&mut self, t: usize) -> Result<()> {
        let t0 = Instant::now();
        let (solver, down, works) = (self.solver, self.down, &self.works);
        let (spec_len, m_out) = (solver.grid().spec_len(), self.c.output_grid());
        let mut rows: Vec<ArrayViewMut3<f32>> = self.frame.outer_iter_mut().collect();
        self.pool.install(|| {
            rows.par_iter_mut().zip(self.members.par_iter()).for_each(|(out, m)| {
                if m.diverged_at.is_some() {
                    out.fill(f32::NAN);
                    return;
                }
                let mut work = works[rayon::current_thread_index().unwrap_or(0)].lock().unwrap();
                let mut real = vec![T::zero(); m_out * m_out];
                let spectra = solver.fields(&m.state).chunks_exact(spec_len);
                for (mut layer, spectrum) in out.outer_iter_mut().zip(spectra) {
                    down.apply(spectrum, &mut real, &mut work.1);
                    layer.iter_mut().zip(&real).for_each(|(o, r)| *o = r.to64() as f32);
                }
            })
        });
        self.collective(self.writer.write_sample(t, self.frame.view()))?;
        self.io_time += t0.elapsed().as_secs_f64();
        Ok(())
    }

    /// The ranks' agreement after a segment: stop (requested on any rank), checkpoint (due on any
    /// rank, unless this was the last segment), and the members diverged so far.
    fn agree(&self, stop: &StopFlag, clock: &Clock) -> Agreed {
        let diverged = self.members.iter().filter(|m| m.diverged_at.is_some()).count() as u64;
        let due = clock.checkpointed.elapsed().as_secs_f64() >= self.c.run.checkpoint_interval
            && self.step < self.plan.total_steps;
        let agreed = self.world.sum(&[stop.requested() as u64, due as u64, diverged]);
        Agreed { stop: agreed[0] > 0, checkpoint: agreed[1] > 0, diverged: agreed[2] }
    }

    /// Rank 0's progress line, every `run.log_interval` seconds and at the last step.
    fn log_progress(&self, clock: &mut Clock, diverged: u64) {
        let (step, plan, c) = (self.step, &self.plan, self.c);
        if !self.world.is_root()
            || (clock.logged.elapsed().as_secs_f64() < c.run.log_interval && step != plan.total_steps)
        {
            return;
        }
        let elapsed = clock.start.elapsed().as_secs_f64();
        let rate = (step - clock.first_step) as f64 * plan.members as f64 / elapsed.max(1e-9);
        let eta = (plan.total_steps - step) as f64 * plan.members as f64 / rate.max(1e-9);
        let stored = self.stored_index().map_or(0, |t| t as u64 + 1);
        log::info!(
            "step {step}/{} t={:.4} stored {stored}/{} members {} ({} diverged) {:.1} member-steps/s ETA {:.0}s",
            plan.total_steps,
            step as f64 * c.system.dt,
            plan.samples,
            plan.members,
            diverged,
            rate,
            eta
        );
        clock.logged = Instant::now();
    }

    /// `diverged_at` of each local member: the solver step of its blow-up, −1 if none.
    fn diverged_at(&self) -> Vec<i64> {
        self.members.iter().map(|m| m.diverged_at.map_or(-1, |s| s as i64)).collect()
    }

    /// Flushes the samples written so far and writes every member's state (collective).
    fn checkpoint(&self) -> Result<()> {
        self.collective(self.writer.flush())?;
        let data = member_states::CheckpointData {
            step: self.step,
            states: self.members.iter().map(|m| self.solver.save(&m.state)).collect(),
            diverged_at: self.diverged_at(),
        };
        let (path, total) = (&self.paths.checkpoint, self.plan.members);
        self.collective(member_states::write(path, self.world, &self.yaml, total, self.local.clone(), &data))?;
        log::debug!("checkpoint at solver step {}: {}", self.step, path.display());
        Ok(())
    }

    /// Writes `diverged_at` and closes the file, publishes it, and reports the write rate.
    fn finish(self, clock: &Clock) -> Result<Outcome<PathBuf>> {
        let diverged = self.diverged_at();
        self.writer.finish(&diverged)?;
        self.paths.publish(self.world)?;
        let io_max = self.world.max_f64(&[self.io_time])[0];
        if self.world.is_root() {
            let mb = self.plan.output_bytes as f64 / 1e6;
            log::info!(
                "wrote {} ({:.1} MB) in {:.1}s; HDF5 writes {:.2}s ({:.1} MB/s)",
                self.paths.output.display(),
                mb,
                clock.start.elapsed().as_secs_f64(),
                io_max,
                mb / io_max.max(1e-9)
            );
        }
        Ok(Outcome::Complete { result: self.paths.output, already: false })
    }
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

/// This rank's `local` members as the checkpoint at `path` holds them, and the solver step
/// they reached.
fn resumed_states<T: Real, D: Dynamics<T>>(
    solver: &D,
    path: &Path,
    local: Range<usize>,
) -> Result<(Vec<Member<D::State>>, u64)> {
    let spectra = solver.layers() * solver.grid().spec_len();
    let words = solver.save(&solver.state(vec![Complex::default(); spectra])).len();
    let ck = member_states::read(path, local.clone(), words)?;
    let members = local
        .zip(ck.states)
        .zip(ck.diverged_at)
        .map(|((index, w), d)| Member { index, state: solver.load(&w), diverged_at: u64::try_from(d).ok() })
        .collect();
    log::info!("resuming from {} at solver step {}", path.display(), ck.step);
    Ok((members, ck.step))
}

/// Initial states of this rank's members: random (own stream per member) or from the file
/// (errors are input errors).
fn initial_states<T: Real, D: Dynamics<T>>(
    c: &Config,
    solver: &D,
    local: Range<usize>,
) -> Result<Vec<Member<D::State>>> {
    let g = solver.grid();
    let (n, len) = (g.n, g.spec_len());
    let from_file = c.ic_file().map(|path| read_ic_file(&path, c, solver.layers(), local.clone())).transpose()?;
    // The equation the random vorticity is built for (plans and spectra made once per rank).
    let random_kolmogorov = (from_file.is_none() && c.system.kind == SystemKind::Kolmogorov)
        .then(|| Kolmogorov::<T>::new(n, c.kolmogorov()));
    let mut ws = g.scratch();
    local
        .clone()
        .map(|index| {
            let mut rng = member_stream(c.run.seed, Purpose::InitialCondition, index as u64);
            let real: Vec<T> = match (&from_file, c.system.kind) {
                (Some(fields), _) => {
                    let field = fields.index_axis(Axis(0), index - local.start);
                    if field.iter().any(|v| !v.is_finite()) {
                        return Err(Error::Input(format!(
                            "generate.initial_condition: member {index} has non-finite values"
                        )));
                    }
                    field.iter().map(|&v| T::of(v)).collect()
                }
                (None, SystemKind::Qg) => pyqg_random_pv(&mut rng, n),
                (None, SystemKind::Kolmogorov) => {
                    let eq = random_kolmogorov.as_ref().expect("built for random Kolmogorov initial conditions");
                    let w = filtered_vorticity(eq, &mut rng, c.generate.ic_max_velocity, c.generate.ic_peak_wavenumber);
                    return Ok(Member { index, state: solver.state(w), diverged_at: None });
                }
            };
            let mut spectra = vec![Complex::default(); solver.layers() * len];
            for (field, spectrum) in real.chunks_exact(n * n).zip(spectra.chunks_exact_mut(len)) {
                g.forward(field, spectrum, g.nkx, &mut ws);
            }
            Ok(Member { index, state: solver.state(spectra), diverged_at: None })
        })
        .collect()
}

/// The `local` members' fields of the initial-condition file at `path` (checked by
/// [`check_ic_file`]), `[member, layer, y, x]` on the solver grid (one layer for Kolmogorov
/// flow's vorticity); errors are input errors.
fn read_ic_file(path: &Path, c: &Config, layers: usize, local: Range<usize>) -> Result<Array4<f64>> {
    let n = c.system.grid;
    let key = format!("generate.initial_condition = {}", path.display());
    let f = File::open(path, Access::Serial, false).input_context(|| &key)?;
    let (start, count) = if layers > 1 {
        (vec![local.start, 0, 0, 0], vec![local.len(), layers, n, n])
    } else {
        (vec![local.start, 0, 0], vec![local.len(), n, n])
    };
    let data: Vec<f64> = f
        .dataset(variable(c).name)
        .and_then(|d| d.read(Some(&Hyperslab { start: &start, count: &count })))
        .input_context(|| &key)?;
    Array4::from_shape_vec((local.len(), layers, n, n), data).input_context(|| &key)
}

/// pyqg's random initial PV (QGModel's own): upper layer `1e-7·U[0,1)` at every point plus
/// `1e-6·U[0,1)` stripes varying in `x` only; lower layer at rest. `[layer][y][x]`, s⁻¹.
fn pyqg_random_pv<T: Real>(rng: &mut impl Rng, n: usize) -> Vec<T> {
    let mut q = vec![T::zero(); 2 * n * n];
    let noise: Vec<f64> = (0..n * n).map(|_| 1e-7 * rng.random::<f64>()).collect();
    let stripes: Vec<f64> = (0..n).map(|_| 1e-6 * rng.random::<f64>()).collect();
    for (k, v) in q[..n * n].iter_mut().enumerate() {
        *v = T::of(noise[k] + stripes[k % n]);
    }
    q
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
