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

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

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
use crate::solver::resize::Downsampler;
use crate::solver::{Dynamics, KolmogorovSolver, QgSolver};
use crate::store::h5::{Access, File, Hyperslab};
use crate::store::member_states;
use crate::store::resume::{self, Decision, Outcome, StageFiles};
use crate::store::trajectories::{variable, TrajectoryLayout, TrajectoryWriter};

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

fn run_typed<T: Real, D: Dynamics<T>>(
    c: &Config,
    world: &World,
    stop: &StopFlag,
    (solver, batch): (&D, Option<&dyn Segment<D::State>>),
    down: &Downsampler<T>,
) -> Result<Outcome<PathBuf>> {
    let paths = StageFiles::generate(&c.run.dir);
    // Held (on rank 0) until the stage returns, whichever way.
    let (decision, _lock) = resume::decide_locked(world, &c.run.dir, "generate", || preflight(c, &paths))?;
    if decision == Decision::Done {
        return Ok(Outcome::Complete { result: paths.output, already: true });
    }
    let plan = Plan::of(c);
    let (n, m_out, layers) = (c.system.grid, c.output_grid(), solver.layers());
    let local = world.members(plan.members);
    let threads = c.threads_per_rank(world.size());
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| Error::failure(e.to_string()))?;
    // The writes of the shared files are collective: the ranks agree on each one's outcome, so
    // that a failure seen by some of them (a full disk) is reported once and ends every rank
    // alike, without aborting (see `Error::Collective`).
    let collective = |r: Result<()>| world.agree(r).inspect_err(|_| crate::store::h5::abandon_parallel_files());
    let yaml = c.to_yaml();

    let (mut members, mut step, writer) = if decision == Decision::Resume {
        let words = solver.save(&solver.state(vec![Complex::default(); layers * solver.grid().spec_len()])).len();
        let ck = member_states::read(&paths.checkpoint, local.clone(), words)?;
        let members = local
            .clone()
            .zip(ck.states)
            .zip(ck.diverged_at)
            .map(|((index, w), d)| Member { index, state: solver.load(&w), diverged_at: u64::try_from(d).ok() })
            .collect();
        log::info!("resuming from {} at solver step {}", paths.checkpoint.display(), ck.step);
        (members, ck.step, TrajectoryWriter::reopen(&paths.partial, world, c)?)
    } else {
        let members = initial_states(c, solver, local.clone())?;
        let layout = TrajectoryLayout {
            members: plan.members,
            samples: plan.samples,
            grid: m_out,
            times: (0..plan.samples)
                .map(|i| (plan.spinup_steps + (i * c.generate.steps_per_sample) as u64) as f64 * c.system.dt)
                .collect(),
            split: split_of_members(plan.members, c.generate.split.train, c.generate.split.valid),
        };
        let writer = TrajectoryWriter::create(&paths.partial, world, &layout, c)?;
        (members, 0, writer)
    };

    let k = c.generate.steps_per_sample as u64;
    let works: Vec<Mutex<_>> = (0..threads).map(|_| Mutex::new((solver.work(), down.work()))).collect();
    let (frame_len, spec_len) = (layers * m_out * m_out, solver.grid().spec_len());
    let mut frame = vec![0f32; local.len() * frame_len];
    let write_sample = |members: &[Member<D::State>], frame: &mut [f32], t: usize| {
        pool.install(|| {
            frame.par_chunks_mut(frame_len).zip(members.par_iter()).for_each(|(out, m)| {
                if m.diverged_at.is_some() {
                    out.fill(f32::NAN);
                    return;
                }
                let mut work = works[rayon::current_thread_index().unwrap_or(0)].lock().unwrap();
                let mut real = vec![T::zero(); m_out * m_out];
                let fields = solver.fields(&m.state);
                for (layer, out) in out.chunks_exact_mut(m_out * m_out).enumerate() {
                    down.apply(&fields[layer * spec_len..(layer + 1) * spec_len], &mut real, &mut work.1);
                    out.iter_mut().zip(&real).for_each(|(o, r)| *o = r.to64() as f32);
                }
            })
        });
        writer.write_sample(t, frame)
    };
    let mut io_time = 0.0;
    if step == 0 && plan.spinup_steps == 0 {
        let t0 = Instant::now();
        collective(write_sample(&members, &mut frame, 0))?;
        io_time += t0.elapsed().as_secs_f64();
    }

    let start = Instant::now();
    let (mut last_ckpt, mut last_log) = (Instant::now(), Instant::now());
    let first_step = step;
    let max_cfl = c.generate.max_cfl;
    log::info!(
        "generate: {} members ({} per rank on {} rank(s), {} thread(s) each), {}² → {}², {} solver steps, {} stored states",
        plan.members,
        local.len(),
        world.size(),
        threads,
        n,
        m_out,
        plan.total_steps,
        plan.samples
    );
    while step < plan.total_steps {
        let next = if step < plan.spinup_steps { (step + k).min(plan.spinup_steps) } else { step + k };
        if let Some(b) = batch {
            b.advance(&mut members, step, next, max_cfl);
        } else {
            pool.install(|| {
                members.par_iter_mut().for_each(|m| {
                    if m.diverged_at.is_some() {
                        return;
                    }
                    let mut work = works[rayon::current_thread_index().unwrap_or(0)].lock().unwrap();
                    for s in step..next {
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
        step = next;
        if step >= plan.spinup_steps {
            let t0 = Instant::now();
            collective(write_sample(&members, &mut frame, ((step - plan.spinup_steps) / k) as usize))?;
            io_time += t0.elapsed().as_secs_f64();
        }
        let diverged = members.iter().filter(|m| m.diverged_at.is_some()).count() as u64;
        let due = last_ckpt.elapsed().as_secs_f64() >= c.run.checkpoint_interval && step < plan.total_steps;
        let agreed = world.sum(&[stop.requested() as u64, due as u64, diverged]);
        let (stop_now, ckpt_now) = (agreed[0] > 0, agreed[1] > 0);
        if world.is_root() && (last_log.elapsed().as_secs_f64() >= c.run.log_interval || step == plan.total_steps) {
            let elapsed = start.elapsed().as_secs_f64();
            let rate = (step - first_step) as f64 * plan.members as f64 / elapsed.max(1e-9);
            let eta = (plan.total_steps - step) as f64 * plan.members as f64 / rate.max(1e-9);
            let stored = if step >= plan.spinup_steps { (step - plan.spinup_steps) / k + 1 } else { 0 };
            log::info!(
                "step {step}/{} t={:.4} stored {stored}/{} members {} ({} diverged) {:.1} member-steps/s ETA {:.0}s",
                plan.total_steps,
                step as f64 * c.system.dt,
                plan.samples,
                plan.members,
                agreed[2],
                rate,
                eta
            );
            last_log = Instant::now();
        }
        if stop_now || ckpt_now {
            collective(writer.flush())?;
            let data = member_states::CheckpointData {
                step,
                states: members.iter().map(|m| solver.save(&m.state)).collect(),
                diverged_at: members.iter().map(|m| m.diverged_at.map_or(-1, |s| s as i64)).collect(),
            };
            collective(member_states::write(&paths.checkpoint, world, &yaml, plan.members, local.clone(), &data))?;
            last_ckpt = Instant::now();
            log::debug!("checkpoint at solver step {step}: {}", paths.checkpoint.display());
            if stop_now {
                return Ok(Outcome::Interrupted { step });
            }
        }
    }
    let diverged: Vec<i64> = members.iter().map(|m| m.diverged_at.map_or(-1, |s| s as i64)).collect();
    writer.finish(&diverged)?;
    paths.publish(world)?;
    let io_max = world.max_f64(&[io_time])[0];
    if world.is_root() {
        let mb = plan.output_bytes as f64 / 1e6;
        log::info!(
            "wrote {} ({:.1} MB) in {:.1}s; HDF5 writes {:.2}s ({:.1} MB/s)",
            paths.output.display(),
            mb,
            start.elapsed().as_secs_f64(),
            io_max,
            mb / io_max.max(1e-9)
        );
    }
    Ok(Outcome::Complete { result: paths.output, already: false })
}

/// Initial states of this rank's members: random (own stream per member) or from the file
/// (errors are input errors).
fn initial_states<T: Real, D: Dynamics<T>>(
    c: &Config,
    solver: &D,
    local: std::ops::Range<usize>,
) -> Result<Vec<Member<D::State>>> {
    let g = solver.grid();
    let (n, layers, len) = (g.n, solver.layers(), g.spec_len());
    let from_file = match c.ic_file() {
        None => None,
        Some(path) => {
            let key = format!("generate.initial_condition = {}", path.display());
            let f = File::open(&path, Access::Serial, false).input_context(|| &key)?;
            let (start, count) = if layers > 1 {
                (vec![local.start, 0, 0, 0], vec![local.len(), layers, n, n])
            } else {
                (vec![local.start, 0, 0], vec![local.len(), n, n])
            };
            let data: Vec<f64> = f
                .dataset(variable(c).name)
                .and_then(|d| d.read(Some(&Hyperslab { start: &start, count: &count })))
                .input_context(|| &key)?;
            Some(data)
        }
    };
    // The equation the random vorticity is built for (plans and spectra made once per rank).
    let random_kolmogorov = (from_file.is_none() && c.system.kind == SystemKind::Kolmogorov)
        .then(|| Kolmogorov::<T>::new(n, c.kolmogorov()));
    let mut ws = g.scratch();
    local
        .clone()
        .map(|index| {
            let mut rng = member_stream(c.run.seed, Purpose::InitialCondition, index as u64);
            let mut spectra = vec![Complex::default(); layers * len];
            let real: Vec<T> = match (&from_file, c.system.kind) {
                (Some(data), _) => {
                    let i = index - local.start;
                    let field: Vec<T> =
                        data[i * layers * n * n..(i + 1) * layers * n * n].iter().map(|&v| T::of(v)).collect();
                    if field.iter().any(|v| !v.is_finite()) {
                        return Err(Error::Input(format!(
                            "generate.initial_condition: member {index} has non-finite values"
                        )));
                    }
                    field
                }
                (None, SystemKind::Qg) => pyqg_random_pv(&mut rng, n),
                (None, SystemKind::Kolmogorov) => {
                    let eq = random_kolmogorov.as_ref().expect("built for random Kolmogorov initial conditions");
                    let w = filtered_vorticity(eq, &mut rng, c.generate.ic_max_velocity, c.generate.ic_peak_wavenumber);
                    return Ok(Member { index, state: solver.state(w), diverged_at: None });
                }
            };
            for (layer, field) in real.chunks_exact(n * n).enumerate() {
                g.forward(field, &mut spectra[layer * len..(layer + 1) * len], g.nkx, &mut ws);
            }
            Ok(Member { index, state: solver.state(spectra), diverged_at: None })
        })
        .collect()
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
                0
            } else if i < n_train + n_valid {
                1
            } else {
                2
            }
        })
        .collect()
}
