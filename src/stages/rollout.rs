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

use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::nn::Module;
use tch::{Device, Kind, Tensor};

use super::{calibrate, models};
use crate::config::rollout::{Mode, Precision, RolloutConfig};
use crate::config::{Config, Stage, SystemKind};
use crate::error::{Error, Result};
use crate::nn::diffusion::Schedule;
use crate::parallel::signals::StopFlag;
use crate::parallel::World;
use crate::rng::{member_stream, Purpose};
use crate::rollout::defect::SpectralGain;
use crate::rollout::guard::Guard;
use crate::rollout::records::Series;
use crate::rollout::stats::{self, Energy};
use crate::rollout::thermalize::{thermalize, Denoiser, Thresholds};
use crate::rollout::window;
use crate::store::cf;
use crate::store::h5::{Access, File, H5Scalar};
use crate::store::member_states::{self as ck_store, CheckpointData};
use crate::store::resume::{self, Decision, Outcome, StageFiles};
use crate::store::trajectories::{variable, Variable};
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

/// Per-mode and truth series of the local members.
struct Records {
    series: Vec<Series>,
}

impl Records {
    fn find(&mut self, name: &str, mode: Option<usize>) -> &mut Series {
        self.series.iter_mut().find(|s| s.name == name && s.mode == mode).expect("declared series")
    }
}

/// Record counts: scalars, spectra, snapshots.
fn record_counts(r: &RolloutConfig) -> (usize, usize, usize) {
    let snaps = r.steps.checked_div(r.snapshot_every).map_or(0, |k| k + 1);
    (r.steps / r.record_every + 1, r.steps / r.spectrum_every + 1, snaps)
}

/// The series of `r` for `local` members with `c` channels on an `n`² grid; `var` gives the
/// physical units of the spectra (energy) and snapshots (the stored field).
fn declare(r: &RolloutConfig, local: usize, (c, n, kbins): (usize, usize, usize), var: &Variable) -> Records {
    let (nr, ns, np) = record_counts(r);
    let (energy, field) = (var.energy_units, var.units);
    let hb = r.histogram_bins;
    let mut series = Vec::new();
    let step = ["step"];
    let spec = ["spectrum_step", "k"];
    let hist = ["spectrum_step", "bin"];
    let snap = ["snapshot_step", "layer", "y", "x"];
    for (i, _) in r.modes.iter().enumerate() {
        let m = Some(i);
        series.push(Series::new(
            "mse",
            m,
            local,
            nr,
            &[],
            &step,
            "1",
            "mean squared error against the stored truth (normalised units); NaN beyond the truth's horizon",
        ));
        series.push(Series::new(
            "mean_square",
            m,
            local,
            nr,
            &[],
            &step,
            "1",
            "mean square of the normalised state (enstrophy-like)",
        ));
        series.push(Series::new(
            "noise_level",
            m,
            local,
            nr,
            &[],
            &step,
            "1",
            "noise level predicted by the thermalizer's classifier",
        ));
        series.push(Series::new(
            "denoising_passes",
            m,
            local,
            nr,
            &[],
            &step,
            "1",
            "DDPM reverse passes applied since the previous record",
        ));
        if r.modes.iter().any(|m| m.guarded()) {
            series.push(Series::new(
                "guard_score",
                m,
                local,
                nr,
                &[],
                &step,
                "1",
                "runaway guard's score: max over channels and shells of the power over the training states' bound (above 1: outside the measure's range)",
            ));
            series.push(Series::new(
                "guard_corrections",
                m,
                local,
                nr,
                &[],
                &step,
                "1",
                "steps since the previous record at which the runaway guard rescaled shells (guarded modes)",
            ));
        }
        series.push(Series::new(
            "spectrum",
            m,
            local,
            ns,
            &[kbins],
            &spec,
            energy,
            "isotropic kinetic-energy spectrum (physical units; bins sum to the mean KE)",
        ));
        series.push(Series::new(
            "histogram",
            m,
            local,
            ns,
            &[hb],
            &hist,
            "1",
            "probability density of the normalised field",
        ));
        if np > 0 {
            series.push(Series::new("snapshot", m, local, np, &[c, n, n], &snap, field, "state in physical units"));
        }
        window_series(&mut series, m, local, (kbins, hb), energy, "");
        series.push(Series::new(
            "spectral_horizon",
            m,
            local,
            1,
            &[],
            &[],
            "1",
            "first recorded emulator step at which the spectrum leaves the truth's spread (see spectral_threshold), -1 if never",
        ));
    }
    series.push(Series::new(
        "truth_mean_square",
        None,
        local,
        nr,
        &[],
        &step,
        "1",
        "mean square of the normalised stored truth",
    ));
    series.push(Series::new(
        "truth_spectrum",
        None,
        local,
        ns,
        &[kbins],
        &spec,
        energy,
        "isotropic kinetic-energy spectrum of the stored truth",
    ));
    series.push(Series::new(
        "truth_histogram",
        None,
        local,
        ns,
        &[hb],
        &hist,
        "1",
        "probability density of the normalised stored truth",
    ));
    window_series(&mut series, None, local, (kbins, hb), energy, "truth_");
    if np > 0 {
        series.push(Series::new(
            "truth_snapshot",
            None,
            local,
            np,
            &[c, n, n],
            &snap,
            field,
            "stored truth in physical units",
        ));
    }
    Records { series }
}

/// The time means over the stationary window of spectra and PDFs (`prefix` "" or "truth_");
/// `energy`: the spectra's units.
fn window_series(
    series: &mut Vec<Series>,
    mode: Option<usize>,
    local: usize,
    (kbins, hb): (usize, usize),
    energy: &'static str,
    prefix: &str,
) {
    let what = if prefix.is_empty() { "" } else { " of the stored truth" };
    series.push(Series::new(
        &format!("{prefix}spectrum_mean"),
        mode,
        local,
        1,
        &[kbins],
        &["k"],
        energy,
        &format!("kinetic-energy spectrum{what} averaged over the records from rollout.average_from on (the truth: all its records)"),
    ));
    series.push(Series::new(
        &format!("{prefix}histogram_mean"),
        mode,
        local,
        1,
        &[hb],
        &["bin"],
        "1",
        &format!("probability density{what} averaged over the records from rollout.average_from on (the truth: all its records)"),
    ));
}

/// Fills the window series of every mode and the truth, and the spectral horizons (see
/// [`crate::rollout::window`]); returns the truth's spread (the horizon's threshold). A member
/// stopped before the end has no time means (NaN): it left the measure. The truth's time means
/// are over every record it has (the stored trajectories are stationary after the spin-up, and
/// a long rollout outlasts them).
fn window_statistics(
    recs: &mut Records,
    r: &RolloutConfig,
    world: &World,
    (n, kbins): (usize, usize),
    diverged: &[Vec<i64>],
) -> f64 {
    let first = r.window_start().div_ceil(r.spectrum_every);
    let fill = |recs: &mut Records, prefix: &str, mode: Option<usize>| {
        for (from, inner) in [("spectrum", kbins), ("histogram", r.histogram_bins)] {
            let src = recs.find(&format!("{prefix}{from}"), mode);
            let (members, records) = (src.data.len() / (src.records * inner).max(1), src.records);
            // The truth is stationary (sampled after the spin-up): all its records count.
            let from_record = if mode.is_some() { first } else { 0 };
            let mut mean = window::time_mean(&src.data, members, records, inner, from_record);
            if let Some(i) = mode {
                for (m, row) in mean.chunks_exact_mut(inner).enumerate() {
                    if diverged[i][m] >= 0 {
                        row.fill(f64::NAN);
                    }
                }
            }
            recs.find(&format!("{prefix}{from}_mean"), mode).data = mean;
        }
    };
    fill(recs, "truth_", None);
    let truth = recs.find("truth_spectrum", None).data.clone();
    let mut sums = window::log_sums(&truth, kbins);
    world.sum_f64(&mut sums);
    let reference = window::log_mean(&sums, n / 2 - 1);
    let threshold = world.max_f64(&[window::spread(&truth, kbins, &reference)])[0];
    for i in 0..r.modes.len() {
        fill(recs, "", Some(i));
        let spectra = &recs.find("spectrum", Some(i)).data;
        let members = spectra.len() / (kbins * (r.steps / r.spectrum_every + 1));
        let horizon: Vec<f64> = window::departures(spectra, members, kbins, &reference, threshold)
            .into_iter()
            .map(|d| d.map_or(-1.0, |rec| (rec * r.spectrum_every) as f64))
            .collect();
        recs.find("spectral_horizon", Some(i)).data = horizon;
    }
    threshold
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

fn to_vec(t: &Tensor) -> Vec<f64> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Double).contiguous();
    Vec::<f64>::try_from(t.reshape([-1])).expect("f64 tensor")
}

/// A 1-D coordinate `name(dim)` of rank 0's `values`: the dimension scale `dim` itself when
/// `name == dim`, else an auxiliary coordinate along it (collective).
fn coordinate<T: H5Scalar>(
    f: &File,
    root: bool,
    (name, dim): (&str, &str),
    values: &[T],
    units: &str,
    long_name: &str,
) -> Result<()> {
    let d = f.create_dataset::<T>(name, &[values.len()])?;
    d.write_from_root(values, root)?;
    d.attrs().set_str("units", units)?;
    d.attrs().set_str("long_name", long_name)?;
    if name == dim {
        d.make_scale(dim)
    } else {
        d.attach_scale(&f.dataset(dim)?, 0)
    }
}

/// The physical-time companion of a step dimension (CF auxiliary coordinate).
fn time_of(dim: &str) -> Option<&'static str> {
    match dim {
        "step" => Some("time"),
        "spectrum_step" => Some("spectrum_time"),
        "snapshot_step" => Some("snapshot_time"),
        _ => None,
    }
}

/// Creates the partial output with every dataset, scale and attribute (collective), then has
/// rank 0 write the mode names (HDF5 writes no variable-length strings through MPI-IO);
/// `s_init` is the level used and `s_init_source` where it came from (the config or the
/// calibration). The file is netCDF-4/CF (docs/file-format.md): `mode` is a string coordinate,
/// each step dimension has a physical-time coordinate (step × the stored states' spacing
/// `system.dt · generate.steps_per_sample`, which is one emulator step), every float series
/// declares NaN as its `_FillValue`, and the −1 "never" of `diverged_at` and
/// `spectral_horizon` is a CF flag.
fn create_output(
    path: &Path,
    world: &World,
    c: &Config,
    r: &RolloutConfig,
    recs: &Records,
    ics: &[Window],
    (s_init, s_init_source): (usize, &str),
) -> Result<()> {
    let kbins = stats::bins(c.output_grid() as i64) as usize;
    let f = File::create(path, Access::Parallel(world.comm()))?;
    let m = r.members;
    let (nr, ns, np) = record_counts(r);
    let root = world.is_root();
    let var = variable(c);
    let dt = c.system.dt * c.generate.steps_per_sample as f64;
    let ints = |count: usize, every: usize| (0..count).map(|i| (i * every) as i64).collect::<Vec<_>>();
    coordinate(&f, root, ("member", "member"), &ints(m, 1), "1", "ensemble member index")?;
    let mode = f.create_strings("mode", r.modes.len())?;
    mode.make_scale("mode")?;
    mode.attrs().set_str("long_name", "rollout mode (rollout.modes)")?;
    drop(mode);
    let mut steps = vec![
        ("step", ints(nr, r.record_every), "scalar records"),
        ("spectrum_step", ints(ns, r.spectrum_every), "spectra and histograms"),
    ];
    if np > 0 {
        steps.push(("snapshot_step", ints(np, r.snapshot_every), "snapshots"));
    }
    for (dim, values, what) in &steps {
        coordinate(&f, root, (dim, dim), values, "1", &format!("emulator step of the {what}"))?;
        let t: Vec<f64> = values.iter().map(|&s| s as f64 * dt).collect();
        let long_name = format!("time since the initial state of the {what} (emulator step x {dt})");
        coordinate(&f, root, (time_of(dim).expect("a step dimension"), dim), &t, var.time_units, &long_name)?;
    }
    if np > 0 {
        let n = c.output_grid();
        let grid: Vec<f64> = (0..n).map(|i| i as f64 * c.domain_length() / n as f64).collect();
        coordinate(&f, root, ("layer", "layer"), &ints(c.layers(), 1), "1", "layer index (0: upper)")?;
        for (axis, name) in [("Y", "y"), ("X", "x")] {
            coordinate(&f, root, (name, name), &grid, var.length_units, &format!("{name} coordinate"))?;
            f.dataset(name)?.attrs().set_str("axis", axis)?;
        }
    }
    coordinate(&f, root, ("k", "k"), &ints(kbins, 1), "1", "isotropic wavenumber shell n (wavenumber 2 pi n / L)")?;
    let w = 2.0 * r.histogram_range / r.histogram_bins as f64;
    let centres: Vec<f64> = (0..r.histogram_bins).map(|i| -r.histogram_range + (i as f64 + 0.5) * w).collect();
    coordinate(&f, root, ("bin", "bin"), &centres, "1", "histogram bin centre (normalised field value)")?;
    for (name, values, long_name) in [
        (
            "initial_member",
            ics.iter().map(|w| w.member as i64).collect::<Vec<_>>(),
            "member of trajectories.h5 the rollout starts from",
        ),
        (
            "initial_state",
            ics.iter().map(|w| w.start as i64).collect(),
            "stored state (time index) of trajectories.h5 the rollout starts from",
        ),
    ] {
        coordinate(&f, root, (name, "member"), &values, "1", long_name)?;
    }
    let dv = f.create_dataset::<i64>("diverged_at", &[r.modes.len(), m])?;
    dv.attrs().set_str("long_name", "emulator step at which the member was stopped (non-finite, beyond rollout.blowup, or over rollout.noise_limit), -1 if never")?;
    dv.attrs().set_str("units", "1")?;
    dv.attrs().set::<i64>("flag_values", &[-1])?;
    dv.attrs().set_str("flag_meanings", "never_stopped")?;
    dv.attach_scale(&f.dataset("mode")?, 0)?;
    dv.attach_scale(&f.dataset("member")?, 1)?;
    drop(dv);
    for s in &recs.series {
        if f.has(&s.name) {
            continue;
        }
        let d = f.create_filled::<f64>(&s.name, &s.shape(r.modes.len(), m), f64::NAN)?;
        d.attrs().set_str("units", s.units)?;
        d.attrs().set_str("long_name", &s.long_name)?;
        let mut dims = if s.mode.is_some() { vec!["mode"] } else { vec![] };
        dims.push("member");
        dims.extend(&s.dims);
        for (i, dim) in dims.iter().enumerate() {
            d.attach_scale(&f.dataset(dim)?, i)?;
        }
        if let Some(t) = dims.iter().find_map(|d| time_of(d)) {
            d.attrs().set_str("coordinates", t)?;
        }
    }
    let sh = f.dataset("spectral_horizon")?;
    sh.attrs().set::<f64>("flag_values", &[-1.0])?;
    sh.attrs().set_str("flag_meanings", "never_left")?;
    drop(sh);
    let a = f.attrs();
    a.set_str(
        "title",
        "thermalizer rollouts of the trained emulator, alone and thermalized, against the stored truth",
    )?;
    a.set_str("config", &c.to_yaml())?;
    for (key, value) in [("s_init", s_init), ("s_stop", r.s_stop), ("noise_limit", r.noise_limit)] {
        a.set::<f64>(key, &[value as f64])?;
    }
    a.set_str("s_init_source", s_init_source)?;
    a.set_str("identity", &c.identity(Stage::Rollout))?;
    a.set_str("version", crate::store::trajectories::VERSION)?;
    a.set_str("git_revision", crate::store::trajectories::GIT_REVISION)?;
    cf::write_global(&a, c.system.kind, cf::creation_time(world))?;
    f.flush()?;
    f.close()?;
    let names: Vec<&str> = r.modes.iter().map(|m| m.name()).collect();
    world.root_decides(|| {
        let f = File::open(path, Access::Serial, true)?;
        f.dataset("mode").and_then(|d| d.write_strings(&names))?;
        f.close()
    })?;
    Ok(())
}

/// The s_init of a partial output and where it came from.
fn stored_threshold(partial: &Path) -> Result<(usize, String)> {
    let f = File::open(partial, Access::Serial, false)?;
    let a = f.attrs();
    Ok((a.get::<f64>("s_init")?[0] as usize, a.get_str("s_init_source")?))
}

/// Runs the rollout of `c.rollout`.
// `x = x + noise`, not `x += noise`: tch's `+=` adds in place, into a tensor the step may share.
#[allow(clippy::assign_op_pattern)]
pub fn run(c: &Config, world: &World, stop: &StopFlag, device: Device) -> Result<Outcome<PathBuf>> {
    let r = c.rollout.clone().ok_or_else(|| Error::Input("the config has no rollout section".into()))?;
    let dir = &c.run.dir;
    let files = StageFiles::rollout(dir);
    let ident = c.identity(Stage::Rollout);
    let (partial, ckpath) = (&files.partial, &files.checkpoint);
    // Held (on rank 0) until the stage returns, whichever way.
    let (decision, _lock) = resume::decide_locked(world, dir, "rollout", || files.decide(Stage::Rollout, &ident))?;
    if decision == Decision::Done {
        return Ok(Outcome::Complete { result: files.output, already: true });
    }
    tch::set_num_threads(c.threads_per_rank(world.size()) as i32);
    let models = models::load(c, &r, device)?;
    if world.is_root() && device == Device::Cpu && r.inference_precision == Precision::F16 {
        // It runs, on libtorch's slow generic float16 kernels (docs/rollout.md has the numbers).
        log::warn!("rollout.inference_precision = f16 on the CPU: tens of times slower than f32 (bf16 is faster)");
    }
    // A resumed run keeps the s_init it started with (a calibration may have been made since).
    let (s_init, s_init_source) = match (&models.thermalizer, decision) {
        (None, _) => (0, "no thermalizer".to_string()),
        (Some(_), Decision::Resume) => stored_threshold(partial)?,
        (Some(_), _) => calibrate::resolve_s_init(c, &r, world, device)?,
    };
    if world.is_root() && models.thermalizer.is_some() {
        log::info!("s_init = {s_init} ({s_init_source})");
    }
    let data = Trajectories::open(&dir.join("trajectories.h5"), c.layers(), c.output_grid())?;
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
    let ics: Vec<Window> = (0..r.members).map(|j| initial_window(&starts, &r, j)).collect();
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
    let local = world.members(r.members);
    let (ch, n) = (c.layers(), c.output_grid());
    let kbins = stats::bins(n as i64) as usize;
    let mut recs = declare(&r, local.len(), (ch, n, kbins), &variable(c));
    let scale_t = Tensor::from_slice(&models.scale.iter().map(|&s| s as f32).collect::<Vec<_>>())
        .view([1, ch as i64, 1, 1])
        .to_device(device);
    let read_norm = |w: Window| data.read_normalised(w, 1, &scale_t);
    let modes = r.modes.len();
    let mut states: Vec<Tensor>;
    let mut diverged: Vec<Vec<i64>> = vec![vec![-1; local.len()]; modes];
    // Per mode and local member: member-steps run, steps thermalized, denoising passes; per mode
    // this rank's wall seconds. Both are saved with the checkpoint, so the summary's totals cover
    // the whole run however often it resumed (seconds: the slowest saved rank's).
    let mut counts = vec![vec![[0u64; 3]; local.len()]; modes];
    let mut seconds = vec![0.0f64; modes];
    let mut start_step = 0usize;
    let words = ch * n * n;
    // A checkpoint row: each mode's state, then each mode's diverged_at, then each mode's counts
    // and seconds.
    let row_words = modes * words + modes + 4 * modes;
    if decision == Decision::Resume {
        // A checkpoint of an earlier version has no counts: they then restart at the resume.
        let (d, has_counts) = match ck_store::read(ckpath, local.clone(), row_words) {
            Ok(d) => (d, true),
            Err(_) => (ck_store::read(ckpath, local.clone(), modes * words + modes)?, false),
        };
        if world.is_root() && !has_counts {
            log::warn!("{}: an earlier version's checkpoint; thermalization totals count from here", ckpath.display());
        }
        start_step = d.step as usize;
        states = (0..modes)
            .map(|i| {
                let rows: Vec<f32> =
                    d.states.iter().flat_map(|s| s[i * words..(i + 1) * words].iter().map(|&v| v as f32)).collect();
                Tensor::from_slice(&rows).view([local.len() as i64, ch as i64, n as i64, n as i64]).to_device(device)
            })
            .collect();
        for (i, dv) in diverged.iter_mut().enumerate() {
            for (m, s) in d.states.iter().enumerate() {
                dv[m] = s[modes * words + i] as i64;
                if has_counts {
                    let t = &s[modes * words + modes + 4 * i..][..4];
                    counts[i][m] = [t[0] as u64, t[1] as u64, t[2] as u64];
                    seconds[i] = seconds[i].max(t[3]);
                }
            }
        }
        let f = File::open(partial, Access::Serial, false)?;
        for s in &mut recs.series {
            s.read(&f, &local)?;
        }
        if world.is_root() {
            log::info!("resuming from {} at emulator step {start_step}", ckpath.display());
        }
    } else {
        let x0: Vec<Tensor> = local.clone().map(|j| read_norm(ics[j])).collect::<Result<_>>()?;
        let x0 = if x0.is_empty() {
            Tensor::zeros([0, ch as i64, n as i64, n as i64], (Kind::Float, device))
        } else {
            Tensor::cat(&x0, 0)
        };
        states = (0..modes).map(|_| x0.copy()).collect();
        let thresholds = (s_init, s_init_source.as_str());
        create_output(partial, world, c, &r, &recs, &ics, thresholds)?;
    }
    let schedule = Schedule::cosine(c.thermalizer().levels);
    let th = Thresholds { s_init, s_stop: r.s_stop, noise_limit: r.noise_limit, forward_noise: r.forward_noise };
    let sigma = r.sigma.unwrap_or(c.emulator().sigma);
    let defect = r.small_scale_growth.as_ref().map(|g| SpectralGain::growth(g, n as i64, device));
    let filter = r.modes.contains(&Mode::Filtered).then(|| SpectralGain::filter(&r.filter, n as i64, device));
    let guard = r.modes.iter().any(|m| m.guarded()).then(|| build_guard(&data, &r, &scale_t, world)).transpose()?;
    let energy = energy_of(c);
    let mut passes_since = vec![vec![0usize; local.len()]; modes];
    let mut corrections_since = vec![vec![0usize; local.len()]; modes];
    let record = |recs: &mut Records,
                  step: usize,
                  states: &[Tensor],
                  diverged: &[Vec<i64>],
                  passes: &mut [Vec<usize>],
                  corrections: &mut [Vec<usize>],
                  levels: &[Option<Vec<usize>>]|
     -> Result<()> {
        let _g = tch::no_grad_guard();
        let due = |every: usize| every > 0 && step % every == 0;
        if !(due(r.record_every) || due(r.spectrum_every) || due(r.snapshot_every)) {
            return Ok(());
        }
        let truth: Vec<Option<Tensor>> = local
            .clone()
            .map(|j| {
                let w = ics[j];
                let t = w.start + step;
                if t < data.samples {
                    read_norm(Window { member: w.member, start: t }).map(Some)
                } else {
                    Ok(None)
                }
            })
            .collect::<Result<_>>()?;
        let at = |every: usize| (step % every == 0).then_some(step / every);
        for m in 0..local.len() {
            let tm = &truth[m];
            if let Some(ri) = at(r.record_every) {
                if let Some(t) = tm {
                    recs.find("truth_mean_square", None).set(m, ri, &to_vec(&stats::mean_square(t)));
                }
            }
            if let Some(si) = at(r.spectrum_every) {
                if let Some(t) = tm {
                    recs.find("truth_spectrum", None).set(m, si, &to_vec(&stats::spectrum(&(t * &scale_t), energy)));
                    recs.find("truth_histogram", None).set(
                        m,
                        si,
                        &to_vec(&stats::histogram(t, r.histogram_bins as i64, r.histogram_range).0),
                    );
                }
            }
            if r.snapshot_every > 0 {
                if let (Some(pi), Some(t)) = (at(r.snapshot_every), tm) {
                    recs.find("truth_snapshot", None).set(m, pi, &to_vec(&(t * &scale_t)));
                }
            }
            for i in 0..modes {
                if diverged[i][m] >= 0 {
                    continue;
                }
                let x = states[i].get(m as i64).unsqueeze(0);
                let mi = Some(i);
                if let Some(ri) = at(r.record_every) {
                    let mse = tm.as_ref().map_or(f64::NAN, |t| to_vec(&stats::mse(&x, t))[0]);
                    recs.find("mse", mi).set(m, ri, &[mse]);
                    recs.find("mean_square", mi).set(m, ri, &to_vec(&stats::mean_square(&x)));
                    let level = levels[i].as_ref().map_or(f64::NAN, |l| l[m] as f64);
                    recs.find("noise_level", mi).set(m, ri, &[level]);
                    recs.find("denoising_passes", mi).set(m, ri, &[passes[i][m] as f64]);
                    passes[i][m] = 0;
                    if let Some(g) = &guard {
                        recs.find("guard_score", mi).set(m, ri, &g.scores(&x));
                        recs.find("guard_corrections", mi).set(m, ri, &[corrections[i][m] as f64]);
                        corrections[i][m] = 0;
                    }
                }
                if let Some(si) = at(r.spectrum_every) {
                    recs.find("spectrum", mi).set(m, si, &to_vec(&stats::spectrum(&(&x * &scale_t), energy)));
                    recs.find("histogram", mi).set(
                        m,
                        si,
                        &to_vec(&stats::histogram(&x, r.histogram_bins as i64, r.histogram_range).0),
                    );
                }
                if r.snapshot_every > 0 {
                    if let Some(pi) = at(r.snapshot_every) {
                        recs.find("snapshot", mi).set(m, pi, &to_vec(&(&x * &scale_t)));
                    }
                }
            }
        }
        Ok(())
    };
    if start_step == 0 {
        let levels: Vec<Option<Vec<usize>>> =
            (0..modes).map(|i| models.thermalizer.as_ref().map(|t| t.levels(&states[i]))).collect();
        record(&mut recs, 0, &states, &diverged, &mut passes_since, &mut corrections_since, &levels)?;
    }
    let write_all = |recs: &Records, diverged: &[Vec<i64>]| -> Result<()> {
        let f = File::open(partial, Access::Parallel(world.comm()), true)?;
        for s in &recs.series {
            s.write(&f, &local)?;
        }
        let d = f.dataset("diverged_at")?;
        for (i, dv) in diverged.iter().enumerate() {
            d.write(
                Some(&crate::store::h5::Hyperslab { start: &[i, local.start], count: &[1, local.len()] }),
                dv,
                true,
            )?;
        }
        drop(d);
        f.close()
    };
    let save_checkpoint = |states: &[Tensor],
                           diverged: &[Vec<i64>],
                           counts: &[Vec<[u64; 3]>],
                           seconds: &[f64],
                           step: usize|
     -> Result<()> {
        let per_mode: Vec<Vec<f64>> = states.iter().map(to_vec).collect();
        let rows: Vec<Vec<f64>> = (0..local.len())
            .map(|m| {
                let mut row = Vec::with_capacity(row_words);
                for v in &per_mode {
                    row.extend_from_slice(&v[m * words..(m + 1) * words]);
                }
                row.extend(diverged.iter().map(|d| d[m] as f64));
                for (c, s) in counts.iter().zip(seconds) {
                    row.extend(c[m].iter().map(|&v| v as f64));
                    row.push(*s);
                }
                row
            })
            .collect();
        let data = CheckpointData { step: step as u64, states: rows, diverged_at: diverged[0].clone() };
        ck_store::write(ckpath, world, &ident, r.members, local.clone(), &data)
    };
    let (mut last_ck, mut last_log, t0) = (Instant::now(), Instant::now(), Instant::now());
    for step in start_step + 1..=r.steps {
        let mut levels: Vec<Option<Vec<usize>>> = vec![None; modes];
        let recording = step % r.record_every == 0;
        for (i, mode) in r.modes.iter().enumerate() {
            let tm = Instant::now();
            let alive: Vec<usize> = (0..local.len()).filter(|&m| diverged[i][m] < 0).collect();
            let mut lv = vec![usize::MAX; local.len()];
            for chunk in alive.chunks(r.batch) {
                let _g = tch::no_grad_guard();
                let idx = Tensor::from_slice(&chunk.iter().map(|&m| m as i64).collect::<Vec<_>>()).to_device(device);
                let x = states[i].index_select(0, &idx);
                let mut rngs: Vec<_> = chunk
                    .iter()
                    .map(|&m| {
                        member_stream(
                            c.run.seed,
                            Purpose::Rollout,
                            ((i as u64) << 56) | (((local.start + m) as u64) << 28) | step as u64,
                        )
                    })
                    .collect();
                let mut x = &x + models.emulator.forward(&x);
                if let Some(d) = &defect {
                    x = d.apply(&x);
                }
                if sigma > 0.0 {
                    let per = ch * n * n;
                    let z: Vec<f32> = rngs.iter_mut().flat_map(|g| normals(g, per)).collect();
                    let shape = x.size();
                    x = x + Tensor::from_slice(&z).view(shape.as_slice()).to_device(device) * sigma;
                }
                if let (Mode::Filtered, Some(f)) = (mode, &filter) {
                    x = f.apply(&x);
                }
                if let (true, Some(g)) = (mode.guarded(), &guard) {
                    let (y, found) = g.apply(&x);
                    x = y;
                    for (p, &m) in chunk.iter().enumerate() {
                        corrections_since[i][m] += found.corrected[p] as usize;
                    }
                }
                let mut over = vec![false; chunk.len()];
                match (mode, &models.thermalizer) {
                    (mode, Some(t)) if mode.thermalizes() => {
                        let applied = thermalize(&mut x, t, &schedule, &th, &mut rngs);
                        for (p, &m) in chunk.iter().enumerate() {
                            lv[m] = applied.levels[p];
                            passes_since[i][m] += applied.passes[p];
                            counts[i][m][1] += (applied.passes[p] > 0) as u64;
                            counts[i][m][2] += applied.passes[p] as u64;
                            over[p] = applied.over_limit[p];
                        }
                    }
                    (_, Some(t)) if recording => {
                        for (p, l) in t.levels(&x).into_iter().enumerate() {
                            lv[chunk[p]] = l;
                        }
                    }
                    _ => {}
                }
                let worst = to_vec(
                    &x.abs()
                        .nan_to_num(f64::INFINITY, f64::INFINITY, f64::INFINITY)
                        .amax([1i64, 2, 3].as_slice(), false),
                );
                for (p, &m) in chunk.iter().enumerate() {
                    if !(worst[p] <= r.blowup) || over[p] {
                        diverged[i][m] = step as i64;
                    }
                }
                states[i] = states[i].index_copy(0, &idx, &x.nan_to_num(0.0, 0.0, 0.0));
                for &m in chunk {
                    counts[i][m][0] += 1;
                }
            }
            seconds[i] += tm.elapsed().as_secs_f64();
            if models.thermalizer.is_some() {
                levels[i] = Some(lv);
            }
        }
        record(&mut recs, step, &states, &diverged, &mut passes_since, &mut corrections_since, &levels)?;
        let due = world.is_root() && last_ck.elapsed().as_secs_f64() >= c.run.checkpoint_interval;
        // One reduction per step: the stop and checkpoint flags, then the stopped members per mode.
        let mut local_flags = vec![stop.requested() as u64, due as u64];
        local_flags.extend(diverged.iter().map(|d| d.iter().filter(|&&s| s >= 0).count() as u64));
        let flags = world.sum(&local_flags);
        if world.is_root() && last_log.elapsed().as_secs_f64() >= c.run.log_interval {
            let rate = (step - start_step) as f64 / t0.elapsed().as_secs_f64();
            let stopped: Vec<String> =
                r.modes.iter().zip(&flags[2..]).map(|(m, n)| format!("{} {n}/{}", m.name(), r.members)).collect();
            log::info!("rollout step {step}/{} ({rate:.1} steps/s); stopped: {}", r.steps, stopped.join(", "));
            last_log = Instant::now();
        }
        if (flags[0] > 0 || flags[1] > 0) && step < r.steps {
            write_all(&recs, &diverged)?;
            save_checkpoint(&states, &diverged, &counts, &seconds, step)?;
            last_ck = Instant::now();
            if flags[0] > 0 {
                return Ok(Outcome::Interrupted { step: step as u64 });
            }
        }
    }
    let threshold = window_statistics(&mut recs, &r, world, (n, kbins), &diverged);
    write_all(&recs, &diverged)?;
    summarise(partial, world, &r, &diverged, (&counts, &seconds), threshold)?;
    files.publish(world)?;
    Ok(Outcome::Complete { result: files.output, already: false })
}

/// Per-mode summary attributes of the output from each local member's counts (member-steps,
/// thermalized steps, passes) and this rank's seconds, reduced over ranks.
fn summarise(
    path: &Path,
    world: &World,
    r: &RolloutConfig,
    diverged: &[Vec<i64>],
    (counts, seconds): (&[Vec<[u64; 3]>], &[f64]),
    spectral_threshold: f64,
) -> Result<()> {
    let mut sums: Vec<f64> = Vec::new();
    for (i, per_member) in counts.iter().enumerate() {
        let survivors = diverged[i].iter().filter(|&&d| d < 0).count() as f64;
        let total = |k: usize| per_member.iter().map(|c| c[k]).sum::<u64>() as f64;
        sums.extend([total(0), total(1), total(2), survivors]);
    }
    world.sum_f64(&mut sums);
    let seconds: Vec<f64> = world.max_f64(seconds);
    let f = File::open(path, Access::Parallel(world.comm()), true)?;
    for (i, mode) in r.modes.iter().enumerate() {
        let s = &sums[4 * i..4 * i + 4];
        let a = f.attrs();
        let p = mode.name();
        a.set::<f64>(&format!("{p}_surviving_fraction"), &[s[3] / r.members as f64])?;
        a.set::<f64>(&format!("{p}_thermalized_fraction"), &[s[1] / s[0].max(1.0)])?;
        a.set::<f64>(&format!("{p}_passes_per_step"), &[s[2] / s[0].max(1.0)])?;
        a.set::<f64>(&format!("{p}_wall_seconds"), &[seconds[i]])?;
    }
    for name in ["spectrum_mean", "histogram_mean", "truth_spectrum_mean", "truth_histogram_mean"] {
        f.dataset(name)?.attrs().set::<f64>("window_start", &[r.window_start() as f64])?;
    }
    {
        let h = f.dataset("spectral_horizon")?; // closed before the file (parallel HDF5)
        h.attrs().set::<f64>("spectral_threshold", &[spectral_threshold])?;
        h.attrs().set_str(
            "definition",
            "RMS over 1 <= k < N/2 of ln E(k) - <ln E_truth(k)> exceeds spectral_threshold, the largest such \
                 distance of any stored-truth record",
        )?;
    }
    f.close()
}
