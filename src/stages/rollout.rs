//! The `rollout` stage: ensemble rollouts of the trained emulator, alone and thermalized, from
//! stored states of the test split (or the validation split, `rollout.start_split`), with their statistics streamed into `<run.dir>/rollout.h5`.
//!
//! Members are split over ranks in contiguous blocks and stepped in batches of
//! `rollout.batch` on the rank's device. Every random draw (σ noise, forward noise, reverse-step
//! noise) comes from the stream of (seed, mode, member, step). Checkpoints (states, alive
//! flags, thermalization counts and wall seconds, step; `rollout.checkpoint.h5`) and the
//! recorded series (rewritten whole in `rollout.h5.partial`) are written every
//! `run.checkpoint_interval` seconds and on SIGTERM/SIGINT/SIGUSR1; the same command resumes.
//! The output is renamed to `rollout.h5` when complete.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

use ndarray::{Array2, Axis};
use tch::nn::Module;
use tch::{Device, Kind, Tensor};

use super::calibrate;
use super::models::{self, Models};
use crate::config::rollout::{Mode, Precision, RolloutConfig};
use crate::config::{Config, Stage, SystemKind};
use crate::error::{Error, Result};
use crate::nn::diffusion::Schedule;
use crate::parallel::signals::StopFlag;
use crate::parallel::World;
use crate::rng::{member_stream, Purpose};
use crate::rollout::defect::SpectralGain;
use crate::rollout::ensemble::Ensemble;
use crate::rollout::guard::Guard;
use crate::rollout::stats::{self, values, Energy};
use crate::rollout::thermalize::{thermalize, Denoiser, Thresholds};
use crate::rollout::window;
use crate::solver::grid::isotropic_shells;
use crate::store::resume::{self, Decision, Outcome, StageFiles};
use crate::store::rollout::{self as schema, Counts, Key, MeanKeys, ModeSummary, Records};
use crate::store::trajectories::variable;
use crate::store::trajectories::{Trajectories, Window};
use crate::train::task::normals;

/// The runaway guard's bounds from every stored state of the training split, normalised by
/// `scale` (each rank reads them all: a few tens of MB at the sizes rolled out here, and no
/// reduction is needed for a quantile), and the share of clean validation states it would
/// correct, logged as its false-alarm rate.
fn build_guard(data: &Trajectories, r: &RolloutConfig, scale: &Tensor, world: &World) -> Result<Guard> {
    let read_split = |split: i8| -> Result<Vec<Tensor>> {
        data.members(split)
            .into_iter()
            .map(|member| data.read_normalised(Window { member, start: 0 }, data.samples, scale))
            .collect()
    };
    let train = read_split(0)?;
    if train.is_empty() {
        return Err(Error::Input(format!(
            "{}: the training split has no usable members, which the runaway guard (rollout.modes: guarded...) needs",
            data.path().display()
        )));
    }
    let guard = Guard::from_states(&train, r.guard.quantile, r.guard.margin);
    let scores: Vec<f64> = read_split(1)?.iter().flat_map(|x| guard.scores(x)).collect();
    if world.is_root() {
        let touched = scores.iter().filter(|&&s| s > 1.0).count();
        log::info!(
            "runaway guard: shell bounds from {} training states (quantile {}, margin {}); it would correct {touched} of {} clean validation states ({:.2} %)",
            train.iter().map(|x| x.size()[0]).sum::<i64>(),
            r.guard.quantile,
            r.guard.margin,
            scores.len(),
            100.0 * touched as f64 / scores.len().max(1) as f64
        );
    }
    Ok(guard)
}

/// The initial condition of global member j: (member of the start split, stored state).
fn initial_window(starts: &[usize], r: &RolloutConfig, j: usize) -> Window {
    Window { member: starts[j % starts.len()], start: r.start + (j / starts.len()) * r.start_stride }
}

fn energy_of(c: &Config) -> Energy {
    match c.system.kind {
        SystemKind::Kolmogorov => Energy::Vorticity,
        SystemKind::Qg => {
            let q = c.qg();
            Energy::TwoLayer { length: q.length, rd: q.rd, delta: q.delta }
        }
    }
}

/// The initial condition of every member, checked against the stored states of `data`.
fn initial_conditions(data: &Trajectories, r: &RolloutConfig) -> Result<Vec<Window>> {
    let split = r.start_split;
    let starts = data.members(split.index());
    if starts.is_empty() {
        return Err(Error::Input(format!(
            "{}: the {} split has no usable members (rollout.start_split = {})",
            data.path().display(),
            split.name(),
            split.name()
        )));
    }
    let ics: Vec<Window> = (0..r.members).map(|j| initial_window(&starts, r, j)).collect();
    if let Some(w) = ics.iter().find(|w| w.start >= data.samples) {
        return Err(Error::Input(format!(
            "rollout.start/start_stride: initial state {} of {} member {} is beyond the {} stored states of {}",
            w.start,
            split.name(),
            w.member,
            data.samples,
            data.path().display()
        )));
    }
    Ok(ics)
}

/// The models of `r`, loaded onto `device`.
fn load_models(c: &Config, r: &RolloutConfig, world: &World, device: Device) -> Result<Models> {
    let models = models::load(c, r, device)?;
    if world.is_root() && device == Device::Cpu && r.inference_precision == Precision::F16 {
        // It runs, on libtorch's slow generic float16 kernels (docs/rollout.md has the numbers).
        log::warn!("rollout.inference_precision = f16 on the CPU: tens of times slower than f32 (bf16 is faster)");
    }
    Ok(models)
}

/// The s_init of the run and where it came from. A resumed run keeps the s_init it started
/// with (a calibration may have been made since).
fn s_init(
    c: &Config,
    r: &RolloutConfig,
    (world, device): (&World, Device),
    models: &Models,
    (decision, files): (Decision, &StageFiles),
) -> Result<(usize, String)> {
    let s_init = match (&models.thermalizer, decision) {
        (None, _) => (0, "no thermalizer".to_string()),
        (Some(_), Decision::Resume) => schema::stored_threshold(&files.partial)?,
        (Some(_), _) => calibrate::resolve_s_init(c, r, world, device)?,
    };
    if world.is_root() && models.thermalizer.is_some() {
        log::info!("s_init = {} ({})", s_init.0, s_init.1);
    }
    Ok(s_init)
}

/// What follows the emulator in a step, fixed for the run: model noise σ, the positive
/// control's defect, the filter of the `filtered` mode, the runaway guard, thermalization.
struct Stepper {
    sigma: f64,
    defect: Option<SpectralGain>,
    filter: Option<SpectralGain>,
    guard: Option<Guard>,
    schedule: Schedule,
    thresholds: Thresholds,
}

impl Stepper {
    fn new(
        c: &Config,
        r: &RolloutConfig,
        s_init: usize,
        (data, scale): (&Trajectories, &Tensor),
        world: &World,
    ) -> Result<Stepper> {
        let (n, device) = (c.output_grid() as i64, scale.device());
        Ok(Stepper {
            sigma: r.sigma.unwrap_or(c.emulator().sigma),
            defect: r.small_scale_growth.as_ref().map(|g| SpectralGain::growth(g, n, device)),
            filter: r.modes.contains(&Mode::Filtered).then(|| SpectralGain::filter(&r.filter, n, device)),
            guard: r.modes.iter().any(|m| m.guarded()).then(|| build_guard(data, r, scale, world)).transpose()?,
            schedule: Schedule::cosine(c.thermalizer().levels),
            thresholds: Thresholds {
                s_init,
                s_stop: r.s_stop,
                noise_limit: r.noise_limit,
                forward_noise: r.forward_noise,
            },
        })
    }

    /// The emulator's step of the batch `x` in `mode`, then the defect, the noise σ (member
    /// `p`'s from `rngs[p]`), the filter and the guard; with the guard's corrections per member.
    // `x = x + noise`, not `x += noise`: tch's `+=` adds in place, into a tensor the step may share.
    #[allow(clippy::assign_op_pattern)]
    fn emulate(
        &self,
        models: &Models,
        x: &Tensor,
        mode: Mode,
        rngs: &mut [rand_chacha::ChaCha8Rng],
    ) -> (Tensor, Option<Vec<bool>>) {
        let device = x.device();
        let mut x = x + models.emulator.forward(x);
        if let Some(d) = &self.defect {
            x = d.apply(&x);
        }
        if self.sigma > 0.0 {
            let shape = x.size();
            let per = (shape[1] * shape[2] * shape[3]) as usize;
            let z: Vec<f32> = rngs.iter_mut().flat_map(|g| normals(g, per)).collect();
            x = x + Tensor::from_slice(&z).view(shape.as_slice()).to_device(device) * self.sigma;
        }
        if let (Mode::Filtered, Some(f)) = (mode, &self.filter) {
            x = f.apply(&x);
        }
        match (mode.guarded(), &self.guard) {
            (true, Some(g)) => {
                let (y, found) = g.apply(&x);
                (y, Some(found.corrected))
            }
            _ => (x, None),
        }
    }
}

/// Per mode, the thermalizer's noise level of each local member (None: no thermalizer).
type Levels = Vec<Option<Vec<usize>>>;

/// The record indices a step is due for, if any (None: not a step of that kind of record).
#[derive(Clone, Copy)]
struct Due {
    scalar: Option<usize>,
    spectrum: Option<usize>,
    snapshot: Option<usize>,
}

impl Due {
    fn at(r: &RolloutConfig, step: usize) -> Due {
        let at = |every: usize| (every > 0 && step % every == 0).then_some(step / every.max(1));
        Due { scalar: at(r.record_every), spectrum: at(r.spectrum_every), snapshot: at(r.snapshot_every) }
    }

    fn any(self) -> bool {
        self.scalar.is_some() || self.spectrum.is_some() || self.snapshot.is_some()
    }
}

/// When the loop last checkpointed and logged, and where it started.
struct Clock {
    start_step: usize,
    started: Instant,
    checkpointed: Instant,
    logged: Instant,
}

/// A rollout on this rank: the run's inputs, and the members' state and records.
struct Rollout<'a> {
    c: &'a Config,
    r: RolloutConfig,
    world: &'a World,
    device: Device,
    files: &'a StageFiles,
    models: Models,
    data: Trajectories,
    /// Each (global) member's initial condition.
    ics: Vec<Window>,
    /// This rank's members.
    local: Range<usize>,
    /// Channels and grid points per side of a state.
    shape: (usize, usize),
    /// The normalisation `[1, C, 1, 1]` (f32): physical = normalised × scale.
    scale: Tensor,
    energy: Energy,
    stepper: Stepper,
    recs: Records,
    ens: Ensemble,
    /// `[mode, member]`: denoising passes and guard corrections since the previous record.
    passes: Array2<usize>,
    corrections: Array2<usize>,
    /// The emulator step reached.
    step: usize,
}

impl<'a> Rollout<'a> {
    /// Opens the trajectories, declares the records, and resumes from the checkpoint or
    /// creates the partial output and starts from the initial conditions.
    fn open(
        c: &'a Config,
        r: RolloutConfig,
        (world, device): (&'a World, Device),
        (files, decision): (&'a StageFiles, Decision),
        models: Models,
        s_init: (usize, String),
    ) -> Result<Rollout<'a>> {
        let data = Trajectories::open(&StageFiles::generate(&c.run.dir).output, c.layers(), c.output_grid())?;
        let ics = initial_conditions(&data, &r)?;
        let local = world.members(r.members);
        let (ch, n) = (c.layers(), c.output_grid());
        let kbins = isotropic_shells(n);
        let recs = Records::declare(&r, local.len(), (ch, n, kbins), &variable(c));
        let scale = Tensor::from_slice(&models.scale.iter().map(|&s| s as f32).collect::<Vec<_>>())
            .view([1, ch as i64, 1, 1])
            .to_device(device);
        let modes = r.modes.len();
        let mut ro = Rollout {
            c,
            world,
            device,
            files,
            models,
            ens: Ensemble::new(&Tensor::zeros([0, ch as i64, n as i64, n as i64], (Kind::Float, device)), modes),
            passes: Array2::zeros((modes, local.len())),
            corrections: Array2::zeros((modes, local.len())),
            energy: energy_of(c),
            stepper: Stepper::new(c, &r, s_init.0, (&data, &scale), world)?,
            data,
            ics,
            local,
            shape: (ch, n),
            scale,
            recs,
            r,
            step: 0,
        };
        if decision == Decision::Resume {
            ro.resume()?;
        } else {
            ro.ens = Ensemble::new(&ro.initial_states()?, modes);
            schema::create(&files.partial, world, c, &ro.r, &ro.recs, &ro.ics, (s_init.0, &s_init.1))?;
        }
        Ok(ro)
    }

    /// The stored state of window `w`, normalised, `[1, C, N, N]`.
    fn read_normalised(&self, w: Window) -> Result<Tensor> {
        self.data.read_normalised(w, 1, &self.scale)
    }

    /// The local members' initial states `[member, C, N, N]`.
    fn initial_states(&self) -> Result<Tensor> {
        let x0: Vec<Tensor> = self.local.clone().map(|j| self.read_normalised(self.ics[j])).collect::<Result<_>>()?;
        let (ch, n) = self.shape;
        Ok(if x0.is_empty() {
            Tensor::zeros([0, ch as i64, n as i64, n as i64], (Kind::Float, self.device))
        } else {
            Tensor::cat(&x0, 0)
        })
    }

    /// Restores the members and the records from the checkpoint and the partial output.
    fn resume(&mut self) -> Result<()> {
        let (ch, n) = self.shape;
        let ckpath = &self.files.checkpoint;
        let modes = self.r.modes.len();
        let saved = schema::load_checkpoint(ckpath, self.local.clone(), modes, ch * n * n)?;
        if self.world.is_root() && !saved.tallies {
            log::warn!("{}: an earlier version's checkpoint; thermalization totals count from here", ckpath.display());
        }
        self.step = saved.step;
        self.ens = Ensemble::from_rows(&saved.rows, modes, [ch as i64, n as i64, n as i64], self.device);
        self.recs.read(&self.files.partial, &self.local)?;
        if self.world.is_root() {
            log::info!("resuming from {} at emulator step {}", ckpath.display(), self.step);
        }
        Ok(())
    }

    /// Each mode's noise levels of the current states (recorded at step 0).
    fn levels(&self) -> Levels {
        self.ens.states.iter().map(|x| self.models.thermalizer.as_ref().map(|t| t.levels(x))).collect()
    }

    /// Steps every running member of every mode; returns the noise levels seen.
    fn advance(&mut self, step: usize) -> Levels {
        (0..self.r.modes.len())
            .map(|i| {
                let started = Instant::now();
                let mut levels = vec![usize::MAX; self.local.len()];
                for chunk in self.ens.alive(i).chunks(self.r.batch) {
                    self.step_batch(i, chunk, step, &mut levels);
                }
                self.ens.seconds[i] += started.elapsed().as_secs_f64();
                self.models.thermalizer.is_some().then_some(levels)
            })
            .collect()
    }

    /// One step of the local members `chunk` of mode `i`: emulate, thermalize (or only
    /// classify, on a record step), stop the diverged, count. Every random draw comes from the
    /// stream of (seed, mode, member, step).
    fn step_batch(&mut self, i: usize, chunk: &[usize], step: usize, levels: &mut [usize]) {
        let _g = tch::no_grad_guard();
        let mode = self.r.modes[i];
        let idx = Tensor::from_slice(&chunk.iter().map(|&m| m as i64).collect::<Vec<_>>()).to_device(self.device);
        let mut rngs: Vec<_> = chunk
            .iter()
            .map(|&m| {
                let stream = ((i as u64) << 56) | (((self.local.start + m) as u64) << 28) | step as u64;
                member_stream(self.c.run.seed, Purpose::Rollout, stream)
            })
            .collect();
        let x = self.ens.states[i].index_select(0, &idx);
        let (mut x, corrected) = self.stepper.emulate(&self.models, &x, mode, &mut rngs);
        for (p, &m) in chunk.iter().enumerate() {
            self.corrections[[i, m]] += corrected.as_ref().map_or(0, |c| c[p] as usize);
        }
        let mut over = vec![false; chunk.len()];
        match (mode, &self.models.thermalizer) {
            (mode, Some(t)) if mode.thermalizes() => {
                let s = &self.stepper;
                let applied = thermalize(&mut x, t, &s.schedule, &s.thresholds, &mut rngs);
                for (p, &m) in chunk.iter().enumerate() {
                    levels[m] = applied.levels[p];
                    self.passes[[i, m]] += applied.passes[p];
                    let counts = &mut self.ens.counts[[i, m]];
                    counts.thermalized += (applied.passes[p] > 0) as u64;
                    counts.passes += applied.passes[p] as u64;
                    over[p] = applied.over_limit[p];
                }
            }
            (_, Some(t)) if step % self.r.record_every == 0 => {
                for (p, l) in t.levels(&x).into_iter().enumerate() {
                    levels[chunk[p]] = l;
                }
            }
            _ => {}
        }
        let worst = values(
            &x.abs().nan_to_num(f64::INFINITY, f64::INFINITY, f64::INFINITY).amax([1i64, 2, 3].as_slice(), false),
        );
        for (p, &m) in chunk.iter().enumerate() {
            if !(worst[p] <= self.r.blowup) || over[p] {
                self.ens.diverged[[i, m]] = step as i64;
            }
            self.ens.counts[[i, m]].steps += 1;
        }
        self.ens.states[i] = self.ens.states[i].index_copy(0, &idx, &x.nan_to_num(0.0, 0.0, 0.0));
    }

    /// Records the truth and every running member at `step`, if it is a record step; `levels`:
    /// the noise levels seen in the step.
    fn record(&mut self, step: usize, levels: &Levels) -> Result<()> {
        let _g = tch::no_grad_guard();
        let due = Due::at(&self.r, step);
        if !due.any() {
            return Ok(());
        }
        for m in 0..self.local.len() {
            let w = self.ics[self.local.start + m];
            let t = w.start + step;
            let truth = if t < self.data.samples {
                Some(self.read_normalised(Window { member: w.member, start: t })?)
            } else {
                None
            };
            if let Some(t) = &truth {
                self.record_truth(m, t, due);
            }
            for (i, levels) in levels.iter().enumerate() {
                if self.ens.diverged[[i, m]] < 0 {
                    let x = self.ens.states[i].get(m as i64).unsqueeze(0);
                    let level = levels.as_ref().map_or(f64::NAN, |l| l[m] as f64);
                    self.record_member(i, m, (&x, truth.as_ref()), level, due);
                }
            }
        }
        Ok(())
    }

    /// Records the stored truth `t` of local member `m`.
    fn record_truth(&mut self, m: usize, t: &Tensor, due: Due) {
        let k = self.recs.truth;
        if let Some(ri) = due.scalar {
            self.recs[k.mean_square].set(m, ri, &values(&stats::mean_square(t)));
        }
        self.record_fields(m, t, due, (k.spectrum, k.histogram, k.snapshot));
    }

    /// Records local member `m` of mode `i`, state `x` (`truth`: the stored state at the same
    /// time, if any), noise level `level`.
    fn record_member(&mut self, i: usize, m: usize, (x, truth): (&Tensor, Option<&Tensor>), level: f64, due: Due) {
        let k = self.recs.modes[i];
        if let Some(ri) = due.scalar {
            let mse = truth.map_or(f64::NAN, |t| values(&stats::mse(x, t))[0]);
            self.recs[k.mse].set(m, ri, &[mse]);
            self.recs[k.mean_square].set(m, ri, &values(&stats::mean_square(x)));
            self.recs[k.noise_level].set(m, ri, &[level]);
            self.recs[k.denoising_passes].set(m, ri, &[self.passes[[i, m]] as f64]);
            self.passes[[i, m]] = 0;
            if let (Some(g), Some(keys)) = (&self.stepper.guard, k.guard) {
                self.recs[keys.score].set(m, ri, &g.scores(x));
                self.recs[keys.corrections].set(m, ri, &[self.corrections[[i, m]] as f64]);
                self.corrections[[i, m]] = 0;
            }
        }
        self.record_fields(m, x, due, (k.spectrum, k.histogram, k.snapshot));
    }

    /// Records the spectrum, histogram and snapshot (`keys`, in this order) of the normalised
    /// state `x` of local member `m`, those that are due.
    fn record_fields(&mut self, m: usize, x: &Tensor, due: Due, keys: (Key, Key, Option<Key>)) {
        if let Some(si) = due.spectrum {
            let spectrum = values(&stats::spectrum(&(x * &self.scale), self.energy));
            let histogram = values(&stats::histogram(x, self.r.histogram_bins as i64, self.r.histogram_range).0);
            self.recs[keys.0].set(m, si, &spectrum);
            self.recs[keys.1].set(m, si, &histogram);
        }
        if let (Some(pi), Some(key)) = (due.snapshot, keys.2) {
            self.recs[key].set(m, pi, &values(&(x * &self.scale)));
        }
    }

    /// The step's one reduction over ranks: whether a stop was requested and whether a
    /// checkpoint is due (rank 0's clock), then the stopped members per mode, for the progress
    /// line. Returns (stop, checkpoint).
    fn sync(&self, step: usize, stop: &StopFlag, clock: &mut Clock) -> (bool, bool) {
        let root = self.world.is_root();
        let due = root && clock.checkpointed.elapsed().as_secs_f64() >= self.c.run.checkpoint_interval;
        let mut local_flags = vec![stop.requested() as u64, due as u64];
        local_flags.extend(self.ens.stopped());
        let flags = self.world.sum(&local_flags);
        if root && clock.logged.elapsed().as_secs_f64() >= self.c.run.log_interval {
            let rate = (step - clock.start_step) as f64 / clock.started.elapsed().as_secs_f64();
            let r = &self.r;
            let stopped: Vec<String> =
                r.modes.iter().zip(&flags[2..]).map(|(m, n)| format!("{} {n}/{}", m.name(), r.members)).collect();
            log::info!("rollout step {step}/{} ({rate:.1} steps/s); stopped: {}", r.steps, stopped.join(", "));
            clock.logged = Instant::now();
        }
        (flags[0] > 0, flags[1] > 0)
    }

    /// Writes the records and the checkpoint at `step` (collective).
    fn checkpoint(&self, step: usize) -> Result<()> {
        self.recs.write(&self.files.partial, self.world, &self.local, self.ens.diverged.view())?;
        let (c, r) = (self.c, &self.r);
        let total = (r.members, self.local.clone());
        schema::save_checkpoint(
            &self.files.checkpoint,
            self.world,
            &c.identity(Stage::Rollout),
            total,
            step,
            &self.ens.rows(),
        )
    }

    /// The time means of `src` into `dst` (spectrum and histogram) over records `first..`;
    /// for `mode`, NaN for a member stopped before the end (it left the measure).
    fn fill_means(&mut self, src: [Key; 2], dst: MeanKeys, first: usize, mode: Option<usize>) {
        let diverged = mode.map(|i| self.ens.diverged.row(i));
        for (src, dst) in src.into_iter().zip([dst.spectrum, dst.histogram]) {
            let (members, records, inner) = self.recs[src].data.dim();
            let mean = window::time_mean(self.recs[src].flat(), members, records, inner, first);
            let mut mean = Array2::from_shape_vec((members, inner), mean).expect("[member, value]");
            for (mut row, &d) in mean.rows_mut().into_iter().zip(diverged.iter().flatten()) {
                if d >= 0 {
                    row.fill(f64::NAN);
                }
            }
            self.recs[dst].data = mean.insert_axis(Axis(1));
        }
    }

    /// Fills the window series of every mode and the truth, and the spectral horizons (see
    /// [`crate::rollout::window`]); returns the truth's spread (the horizon's threshold). A member
    /// stopped before the end has no time means (NaN): it left the measure. The truth's time
    /// means are over every record it has (the stored trajectories are stationary after the
    /// spin-up, and a long rollout outlasts them).
    fn window_statistics(&mut self) -> f64 {
        let (r, n) = (&self.r, self.shape.1);
        let (spectrum_every, kbins) = (r.spectrum_every, isotropic_shells(n));
        let first = r.window_start().div_ceil(spectrum_every);
        let t = self.recs.truth;
        self.fill_means([t.spectrum, t.histogram], t.means, 0, None);
        let truth = self.recs[t.spectrum].flat();
        let mut sums = window::log_sums(truth, kbins);
        self.world.sum_f64(&mut sums);
        let reference = window::log_mean(&sums, n / 2 - 1);
        let threshold = self.world.max_f64(&[window::spread(truth, kbins, &reference)])[0];
        for i in 0..self.r.modes.len() {
            let k = self.recs.modes[i];
            self.fill_means([k.spectrum, k.histogram], k.means, first, Some(i));
            let spectra = &self.recs[k.spectrum];
            let departures = window::departures(spectra.flat(), spectra.data.dim().0, kbins, &reference, threshold);
            for (m, d) in departures.into_iter().enumerate() {
                self.recs[k.spectral_horizon].set(m, 0, &[d.map_or(-1.0, |rec| (rec * spectrum_every) as f64)]);
            }
        }
        threshold
    }

    /// Per-mode totals over ranks (member-steps, thermalized steps, passes, survivors; the
    /// slowest rank's seconds), written with the spectral `threshold` into the output.
    fn summarise(&self, threshold: f64) -> Result<()> {
        let mut sums: Vec<f64> = Vec::new();
        for (counts, diverged) in self.ens.counts.rows().into_iter().zip(self.ens.diverged.rows()) {
            let total = |of: fn(&Counts) -> u64| counts.iter().map(of).sum::<u64>() as f64;
            let survivors = diverged.iter().filter(|&&d| d < 0).count() as f64;
            sums.extend([total(|c| c.steps), total(|c| c.thermalized), total(|c| c.passes), survivors]);
        }
        self.world.sum_f64(&mut sums);
        let seconds = self.world.max_f64(&self.ens.seconds);
        let summaries: Vec<ModeSummary> = sums
            .chunks_exact(4)
            .zip(seconds)
            .map(|(s, wall_seconds)| ModeSummary {
                surviving_fraction: s[3] / self.r.members as f64,
                thermalized_fraction: s[1] / s[0].max(1.0),
                passes_per_step: s[2] / s[0].max(1.0),
                wall_seconds,
            })
            .collect();
        schema::write_summary(&self.files.partial, self.world, &self.r, &summaries, threshold)
    }

    /// The end of a complete rollout: window statistics, the records, the summary, then the
    /// partial output published under its final name.
    fn finish(mut self) -> Result<()> {
        let threshold = self.window_statistics();
        self.recs.write(&self.files.partial, self.world, &self.local, self.ens.diverged.view())?;
        self.summarise(threshold)?;
        self.files.publish(self.world)
    }
}

/// Runs the rollout of `c.rollout`: decide, load the models and s_init, open or resume, then
/// the loop (step, record, stop or checkpoint), then finish.
pub fn run(c: &Config, world: &World, stop: &StopFlag, device: Device) -> Result<Outcome<PathBuf>> {
    let r = c.rollout.clone().ok_or_else(|| Error::Input("the config has no rollout section".into()))?;
    let files = StageFiles::rollout(&c.run.dir);
    let ident = c.identity(Stage::Rollout);
    // Held (on rank 0) until the stage returns, whichever way.
    let (decision, _lock) =
        resume::decide_locked(world, &c.run.dir, "rollout", || files.decide(Stage::Rollout, &ident))?;
    if decision == Decision::Done {
        return Ok(Outcome::Complete { result: files.output, already: true });
    }
    tch::set_num_threads(c.threads_per_rank(world.size()) as i32);
    let models = load_models(c, &r, world, device)?;
    let s_init = s_init(c, &r, (world, device), &models, (decision, &files))?;
    let mut ro = Rollout::open(c, r, (world, device), (&files, decision), models, s_init)?;
    if ro.step == 0 {
        let levels = ro.levels();
        ro.record(0, &levels)?;
    }
    let now = Instant::now();
    let mut clock = Clock { start_step: ro.step, started: now, checkpointed: now, logged: now };
    for step in ro.step + 1..=ro.r.steps {
        let levels = ro.advance(step);
        ro.record(step, &levels)?;
        let (stopping, due) = ro.sync(step, stop, &mut clock);
        if (stopping || due) && step < ro.r.steps {
            ro.checkpoint(step)?;
            clock.checkpointed = Instant::now();
            if stopping {
                return Ok(Outcome::Interrupted { step: step as u64 });
            }
        }
    }
    ro.finish()?;
    Ok(Outcome::Complete { result: files.output, already: false })
}
