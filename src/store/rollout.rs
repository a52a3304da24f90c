//! `rollout.h5`: the rollout stage's statistics (schema in docs/rollout.md), and the rows of
//! its checkpoint `rollout.checkpoint.h5`.
//!
//! ```text
//! /mode            string  [mode]     dimension scale, the names of rollout.modes
//! /member          int64   [member]   dimension scale, 0..M−1
//! /step            int64   [step]     dimension scale, emulator step of the scalar records
//! /spectrum_step   int64   [spectrum_step]   … of the spectra and histograms
//! /snapshot_step   int64   [snapshot_step]   … of the snapshots (only with snapshots)
//! /time, /spectrum_time, /snapshot_time   float64   auxiliary coordinates of the step
//!                  dimensions: step × system.dt · generate.steps_per_sample
//! /layer, /y, /x   dimension scales of the snapshots (layer 0: upper; i·L/N)
//! /k               int64   [k]        dimension scale, isotropic wavenumber shell
//! /bin             float64 [bin]      dimension scale, histogram bin centre (normalised)
//! /initial_member, /initial_state   int64 [member]   where each member starts in trajectories.h5
//! /diverged_at     int64   [mode, member]   emulator step the member was stopped, −1 never (CF flag)
//! per-mode series  float64 [mode, member, (record,) inner...]   see [`ModeKeys`]
//! truth series     float64 [member, (record,) inner...]         see [`TruthKeys`]
//! root attributes: title, config, s_init, s_stop, noise_limit, s_init_source, identity,
//!                  version, git revision, CF's (see [`super::cf`]); once complete, per mode
//!                  `<mode>_surviving_fraction`, `_thermalized_fraction`, `_passes_per_step`,
//!                  `_wall_seconds`
//! ```
//!
//! The file is netCDF-4/CF (docs/file-format.md): every float series declares NaN as its
//! `_FillValue`, each step dimension has its physical-time coordinate, and the −1 "never" of
//! `diverged_at` and `spectral_horizon` is a CF flag. All datasets are created with the file;
//! afterwards the run rewrites its members' rows whole at every checkpoint.

use std::ops::{Index, IndexMut, Range};
use std::path::Path;

use ndarray::ArrayView2;

use super::h5::{Access, File, H5Scalar, Hyperslab};
use super::member_states::{self, CheckpointData};
use super::trajectories::Window;
use super::trajectories::{variable, Variable, GIT_REVISION, VERSION};
use crate::config::rollout::RolloutConfig;
use crate::config::{Config, Stage};
use crate::error::Result;
use crate::parallel::World;
use crate::solver::grid::isotropic_shells;
use crate::store::series::{Dims, Series};

/// How many records of each kind a member has.
#[derive(Clone, Copy, Debug)]
pub struct RecordCounts {
    /// Scalar records (every `rollout.record_every` steps, step 0 included).
    pub scalars: usize,
    /// Spectra and histograms (every `rollout.spectrum_every` steps).
    pub spectra: usize,
    /// Snapshots (every `rollout.snapshot_every` steps; none when it is 0).
    pub snapshots: usize,
}

impl RecordCounts {
    pub fn of(r: &RolloutConfig) -> RecordCounts {
        RecordCounts {
            scalars: r.steps / r.record_every + 1,
            spectra: r.steps / r.spectrum_every + 1,
            snapshots: r.steps.checked_div(r.snapshot_every).map_or(0, |k| k + 1),
        }
    }
}

/// A declared series of [`Records`].
#[derive(Clone, Copy, Debug)]
pub struct Key(usize);

/// The series of one mode (index `i` along `mode`).
#[derive(Clone, Copy, Debug)]
pub struct ModeKeys {
    /// Mean squared error against the stored truth (normalised units) `[step]`.
    pub mse: Key,
    /// Mean square of the normalised state `[step]`.
    pub mean_square: Key,
    /// The thermalizer classifier's noise level `[step]`.
    pub noise_level: Key,
    /// DDPM reverse passes since the previous record `[step]`.
    pub denoising_passes: Key,
    /// The runaway guard's score and corrections (when a mode is guarded).
    pub guard: Option<GuardKeys>,
    /// Isotropic kinetic-energy spectrum, physical units `[spectrum_step, k]`.
    pub spectrum: Key,
    /// Density of the normalised field `[spectrum_step, bin]`.
    pub histogram: Key,
    /// The state in physical units `[snapshot_step, layer, y, x]` (with snapshots).
    pub snapshot: Option<Key>,
    pub means: MeanKeys,
    /// First recorded step at which the spectrum leaves the truth's spread, −1 never `[]`.
    pub spectral_horizon: Key,
}

/// The runaway guard's series `[step]`.
#[derive(Clone, Copy, Debug)]
pub struct GuardKeys {
    pub score: Key,
    pub corrections: Key,
}

/// Time means over the stationary window: spectrum `[k]` and histogram `[bin]`.
#[derive(Clone, Copy, Debug)]
pub struct MeanKeys {
    pub spectrum: Key,
    pub histogram: Key,
}

/// The stored truth's series, with no mode dimension.
#[derive(Clone, Copy, Debug)]
pub struct TruthKeys {
    pub mean_square: Key,
    pub spectrum: Key,
    pub histogram: Key,
    pub means: MeanKeys,
    pub snapshot: Option<Key>,
}

/// Every series of a rollout for this rank's members, in the order they are created and
/// written; indexed by the [`Key`]s of [`ModeKeys`] (one per mode) and [`TruthKeys`].
pub struct Records {
    series: Vec<Series>,
    pub modes: Vec<ModeKeys>,
    pub truth: TruthKeys,
}

impl Index<Key> for Records {
    type Output = Series;
    fn index(&self, k: Key) -> &Series {
        &self.series[k.0]
    }
}

impl IndexMut<Key> for Records {
    fn index_mut(&mut self, k: Key) -> &mut Series {
        &mut self.series[k.0]
    }
}

/// Declares series one after the other, all of `local` members.
struct Declare {
    local: usize,
    counts: RecordCounts,
    /// Spectral bins, histogram bins, and the snapshot's `[layer, y, x]`.
    kbins: usize,
    hbins: usize,
    snapshot: [usize; 3],
    /// Units of the spectra (energy) and of the snapshots (the stored field).
    energy: &'static str,
    field: &'static str,
    series: Vec<Series>,
}

impl Declare {
    fn push(
        &mut self,
        name: &'static str,
        mode: Option<usize>,
        dims: Dims,
        units: &'static str,
        long_name: &str,
    ) -> Key {
        self.series.push(Series::new(name, mode, self.local, dims, units, long_name));
        Key(self.series.len() - 1)
    }

    /// A scalar per scalar record, `[step]`, dimensionless.
    fn scalar(&mut self, name: &'static str, mode: Option<usize>, long_name: &str) -> Key {
        let dims = Dims { records: self.counts.scalars, inner: vec![], names: vec!["step"] };
        self.push(name, mode, dims, "1", long_name)
    }

    fn spectrum(&mut self, name: &'static str, mode: Option<usize>, long_name: &str) -> Key {
        let dims = Dims { records: self.counts.spectra, inner: vec![self.kbins], names: vec!["spectrum_step", "k"] };
        self.push(name, mode, dims, self.energy, long_name)
    }

    fn histogram(&mut self, name: &'static str, mode: Option<usize>, long_name: &str) -> Key {
        let dims = Dims { records: self.counts.spectra, inner: vec![self.hbins], names: vec!["spectrum_step", "bin"] };
        self.push(name, mode, dims, "1", long_name)
    }

    fn snapshot(&mut self, name: &'static str, mode: Option<usize>, long_name: &str) -> Option<Key> {
        let names = vec!["snapshot_step", "layer", "y", "x"];
        let dims = Dims { records: self.counts.snapshots, inner: self.snapshot.to_vec(), names };
        (self.counts.snapshots > 0).then(|| self.push(name, mode, dims, self.field, long_name))
    }

    /// The time means over the stationary window of spectra and PDFs (`names`: spectrum's,
    /// histogram's); `what` says whose they are ("" for a mode's).
    fn means(&mut self, names: [&'static str; 2], mode: Option<usize>, what: &str) -> MeanKeys {
        let over = "averaged over the records from rollout.average_from on (the truth: all its records)";
        let dims = Dims { records: 1, inner: vec![self.kbins], names: vec!["k"] };
        let spectrum = self.push(names[0], mode, dims, self.energy, &format!("kinetic-energy spectrum{what} {over}"));
        let dims = Dims { records: 1, inner: vec![self.hbins], names: vec!["bin"] };
        let histogram = self.push(names[1], mode, dims, "1", &format!("probability density{what} {over}"));
        MeanKeys { spectrum, histogram }
    }

    fn mode(&mut self, i: usize, guarded: bool) -> ModeKeys {
        let m = Some(i);
        let mse = self.scalar(
            "mse",
            m,
            "mean squared error against the stored truth (normalised units); NaN beyond the truth's horizon",
        );
        let mean_square = self.scalar("mean_square", m, "mean square of the normalised state (enstrophy-like)");
        let noise_level = self.scalar("noise_level", m, "noise level predicted by the thermalizer's classifier");
        let denoising_passes =
            self.scalar("denoising_passes", m, "DDPM reverse passes applied since the previous record");
        let guard = guarded.then(|| GuardKeys {
            score: self.scalar(
                "guard_score",
                m,
                "runaway guard's score: max over channels and shells of the power over the training states' bound (above 1: outside the measure's range)",
            ),
            corrections: self.scalar(
                "guard_corrections",
                m,
                "steps since the previous record at which the runaway guard rescaled shells (guarded modes)",
            ),
        });
        let spectrum =
            self.spectrum("spectrum", m, "isotropic kinetic-energy spectrum (physical units; bins sum to the mean KE)");
        let histogram = self.histogram("histogram", m, "probability density of the normalised field");
        let snapshot = self.snapshot("snapshot", m, "state in physical units");
        let means = self.means(["spectrum_mean", "histogram_mean"], m, "");
        let spectral_horizon = self.push(
            "spectral_horizon",
            m,
            Dims { records: 1, inner: vec![], names: vec![] },
            "1",
            "first recorded emulator step at which the spectrum leaves the truth's spread (see spectral_threshold), -1 if never",
        );
        ModeKeys {
            mse,
            mean_square,
            noise_level,
            denoising_passes,
            guard,
            spectrum,
            histogram,
            snapshot,
            means,
            spectral_horizon,
        }
    }

    fn truth(&mut self) -> TruthKeys {
        let mean_square = self.scalar("truth_mean_square", None, "mean square of the normalised stored truth");
        let spectrum = self.spectrum("truth_spectrum", None, "isotropic kinetic-energy spectrum of the stored truth");
        let histogram = self.histogram("truth_histogram", None, "probability density of the normalised stored truth");
        let means = self.means(["truth_spectrum_mean", "truth_histogram_mean"], None, " of the stored truth");
        let snapshot = self.snapshot("truth_snapshot", None, "stored truth in physical units");
        TruthKeys { mean_square, spectrum, histogram, means, snapshot }
    }
}

impl Records {
    /// The series of `r` for `local` members with `c` channels on an `n`² grid and `kbins`
    /// spectral bins; `var` gives the physical units of the spectra (energy) and snapshots.
    pub fn declare(r: &RolloutConfig, local: usize, (c, n, kbins): (usize, usize, usize), var: &Variable) -> Records {
        let mut d = Declare {
            local,
            counts: RecordCounts::of(r),
            kbins,
            hbins: r.histogram_bins,
            snapshot: [c, n, n],
            energy: var.energy_units,
            field: var.units,
            series: Vec::new(),
        };
        let guarded = r.modes.iter().any(|m| m.guarded());
        let modes = (0..r.modes.len()).map(|i| d.mode(i, guarded)).collect();
        let truth = d.truth();
        Records { series: d.series, modes, truth }
    }

    /// Every series, in the order of declaration.
    pub fn iter(&self) -> impl Iterator<Item = &Series> {
        self.series.iter()
    }

    /// Writes this rank's rows of every series and its `diverged_at` `[mode, local member]`
    /// into the partial output at `path` (collective).
    pub fn write(&self, path: &Path, world: &World, local: &Range<usize>, diverged: ArrayView2<i64>) -> Result<()> {
        let f = File::open(path, Access::Parallel(world.comm()), true)?;
        for s in &self.series {
            s.write(&f, local)?;
        }
        let slab = Hyperslab { start: &[0, local.start], count: &[diverged.nrows(), local.len()] };
        let d = f.dataset("diverged_at")?;
        d.write(Some(&slab), diverged.as_standard_layout().as_slice().expect("standard layout"), true)?;
        drop(d);
        f.close()
    }

    /// Reads this rank's rows of every series back from the partial output at `path` (resume).
    pub fn read(&mut self, path: &Path, local: &Range<usize>) -> Result<()> {
        let f = File::open(path, Access::Serial, false)?;
        for s in &mut self.series {
            s.read(&f, local)?;
        }
        Ok(())
    }
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

/// `0, every, 2·every, …`: `count` steps or indices.
fn ints(count: usize, every: usize) -> Vec<i64> {
    (0..count).map(|i| (i * every) as i64).collect()
}

/// The coordinates: `member`, `mode` (names written later), the step dimensions and their
/// times, the snapshots' `layer`, `y`, `x`, then `k`, `bin` and the initial conditions `ics`.
fn create_coordinates(f: &File, root: bool, c: &Config, r: &RolloutConfig, ics: &[Window]) -> Result<()> {
    let counts = RecordCounts::of(r);
    let var = variable(c);
    let dt = c.system.dt * c.generate.steps_per_sample as f64;
    coordinate(f, root, ("member", "member"), &ints(r.members, 1), "1", "ensemble member index")?;
    let mode = f.create_strings("mode", r.modes.len())?;
    mode.make_scale("mode")?;
    mode.attrs().set_str("long_name", "rollout mode (rollout.modes)")?;
    drop(mode);
    let mut steps = vec![
        ("step", ints(counts.scalars, r.record_every), "scalar records"),
        ("spectrum_step", ints(counts.spectra, r.spectrum_every), "spectra and histograms"),
    ];
    if counts.snapshots > 0 {
        steps.push(("snapshot_step", ints(counts.snapshots, r.snapshot_every), "snapshots"));
    }
    for (dim, values, what) in &steps {
        coordinate(f, root, (dim, dim), values, "1", &format!("emulator step of the {what}"))?;
        let t: Vec<f64> = values.iter().map(|&s| s as f64 * dt).collect();
        let long_name = format!("time since the initial state of the {what} (emulator step x {dt})");
        coordinate(f, root, (time_of(dim).expect("a step dimension"), dim), &t, var.time_units, &long_name)?;
    }
    if counts.snapshots > 0 {
        let n = c.output_grid();
        let grid: Vec<f64> = (0..n).map(|i| i as f64 * c.domain_length() / n as f64).collect();
        let layers: Vec<i64> = (1..=c.layers() as i64).collect();
        coordinate(f, root, ("layer", "layer"), &layers, "1", "layer (1: upper, 2: lower)")?;
        for (axis, name) in [("Y", "y"), ("X", "x")] {
            coordinate(f, root, (name, name), &grid, var.length_units, &format!("{name} coordinate"))?;
            f.dataset(name)?.attrs().set_str("axis", axis)?;
        }
    }
    let kbins = isotropic_shells(c.output_grid());
    coordinate(f, root, ("k", "k"), &ints(kbins, 1), "1", "isotropic wavenumber shell n (wavenumber 2 pi n / L)")?;
    let w = 2.0 * r.histogram_range / r.histogram_bins as f64;
    let centres: Vec<f64> = (0..r.histogram_bins).map(|i| -r.histogram_range + (i as f64 + 0.5) * w).collect();
    coordinate(f, root, ("bin", "bin"), &centres, "1", "histogram bin centre (normalised field value)")?;
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
        coordinate(f, root, (name, "member"), &values, "1", long_name)?;
    }
    Ok(())
}

/// `diverged_at [mode, member]`, with its CF flag.
fn create_diverged(f: &File, modes: usize, members: usize) -> Result<()> {
    let dv = f.create_dataset::<i64>("diverged_at", &[modes, members])?;
    dv.attrs().set_str("long_name", "emulator step at which the member was stopped (non-finite, beyond rollout.blowup, or over rollout.noise_limit), -1 if never")?;
    dv.attrs().set_str("units", "1")?;
    dv.attrs().set::<i64>("flag_values", &[-1])?;
    dv.attrs().set_str("flag_meanings", "never_stopped")?;
    dv.attach_scale(&f.dataset("mode")?, 0)?;
    dv.attach_scale(&f.dataset("member")?, 1)
}

/// The dataset of series `s` (the first mode's declaration stands for every mode's), NaN-filled,
/// with its units, dimension scales and time coordinate.
fn create_series(f: &File, s: &Series, modes: usize, members: usize) -> Result<()> {
    let d = f.create_filled::<f64>(s.name, &s.shape(modes, members), f64::NAN)?;
    d.attrs().set_str("units", s.units)?;
    d.attrs().set_str("long_name", &s.long_name)?;
    let mut dims = if s.mode.is_some() { vec!["mode"] } else { vec![] };
    dims.push("member");
    dims.extend(&s.dims.names);
    for (i, dim) in dims.iter().enumerate() {
        d.attach_scale(&f.dataset(dim)?, i)?;
    }
    if let Some(t) = dims.iter().find_map(|d| time_of(d)) {
        d.attrs().set_str("coordinates", t)?;
    }
    Ok(())
}

/// Creates the partial output at `path` with every dataset, scale and attribute (collective),
/// then has rank 0 write the mode names (HDF5 writes no variable-length strings through
/// MPI-IO). `ics`: each member's initial condition; `s_init` is the level used and
/// `s_init_source` where it came from (the config or the calibration).
pub fn create(
    path: &Path,
    world: &World,
    c: &Config,
    r: &RolloutConfig,
    recs: &Records,
    ics: &[Window],
    (s_init, s_init_source): (usize, &str),
) -> Result<()> {
    let f = File::create(path, Access::Parallel(world.comm()))?;
    create_coordinates(&f, world.is_root(), c, r, ics)?;
    create_diverged(&f, r.modes.len(), r.members)?;
    for s in recs.iter() {
        if !f.has(s.name) {
            create_series(&f, s, r.modes.len(), r.members)?;
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
    a.set_str("version", VERSION)?;
    a.set_str("git_revision", GIT_REVISION)?;
    super::cf::write_global(&a, c.system.kind, super::cf::creation_time(world))?;
    f.flush()?;
    f.close()?;
    let names: Vec<&str> = r.modes.iter().map(|m| m.name()).collect();
    world.root_decides(|| {
        let f = File::open(path, Access::Serial, true)?;
        f.dataset("mode").and_then(|d| d.write_strings(&names))?;
        f.close()
    })
}

/// The s_init of a partial output and where it came from.
pub fn stored_threshold(partial: &Path) -> Result<(usize, String)> {
    let f = File::open(partial, Access::Serial, false)?;
    let a = f.attrs();
    Ok((a.get::<f64>("s_init")?[0] as usize, a.get_str("s_init_source")?))
}

/// A mode's totals over the whole run, written as root attributes `<mode>_<field>`.
pub struct ModeSummary {
    /// Members never stopped, over all members.
    pub surviving_fraction: f64,
    /// Member-steps thermalized, over member-steps run.
    pub thermalized_fraction: f64,
    /// Denoising passes per member-step.
    pub passes_per_step: f64,
    /// The slowest rank's wall seconds stepping the mode.
    pub wall_seconds: f64,
}

/// Writes the summary of the complete output at `path` (collective): each mode's totals
/// (`summaries`, in the order of `r.modes`), the window means' `window_start`, and the spectral
/// horizon's `spectral_threshold` and its definition.
pub fn write_summary(
    path: &Path,
    world: &World,
    r: &RolloutConfig,
    summaries: &[ModeSummary],
    spectral_threshold: f64,
) -> Result<()> {
    let f = File::open(path, Access::Parallel(world.comm()), true)?;
    for (mode, s) in r.modes.iter().zip(summaries) {
        let a = f.attrs();
        let p = mode.name();
        a.set::<f64>(&format!("{p}_surviving_fraction"), &[s.surviving_fraction])?;
        a.set::<f64>(&format!("{p}_thermalized_fraction"), &[s.thermalized_fraction])?;
        a.set::<f64>(&format!("{p}_passes_per_step"), &[s.passes_per_step])?;
        a.set::<f64>(&format!("{p}_wall_seconds"), &[s.wall_seconds])?;
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

/// Per mode and member, what the summary totals.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// Member-steps run.
    pub steps: u64,
    /// Steps at which the member was thermalized (one denoising pass or more).
    pub thermalized: u64,
    /// Denoising passes.
    pub passes: u64,
}

/// A member's counts in one mode and its rank's wall seconds in that mode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tally {
    pub counts: Counts,
    pub seconds: f64,
}

/// One member's row of the checkpoint's `state` (f64 words): each mode's normalised state
/// (`[C, N, N]`, row-major), then each mode's `diverged_at`, then each mode's [`Tally`] (steps,
/// thermalized, passes, seconds). A row written by an earlier version ends after `diverged_at`.
#[derive(Debug, PartialEq)]
pub struct MemberRow {
    /// Per mode, the state's words.
    pub states: Vec<Vec<f64>>,
    /// Per mode, the emulator step the member was stopped at (−1: running).
    pub diverged_at: Vec<i64>,
    /// Per mode (None: an earlier version's row).
    pub tallies: Option<Vec<Tally>>,
}

impl MemberRow {
    /// Words of a row of `modes` modes with `state_words` each, with or without tallies.
    pub fn words(modes: usize, state_words: usize, tallies: bool) -> usize {
        modes * state_words + modes + if tallies { 4 * modes } else { 0 }
    }

    pub fn to_row(&self) -> Vec<f64> {
        let mut row: Vec<f64> = self.states.concat();
        row.extend(self.diverged_at.iter().map(|&d| d as f64));
        for t in self.tallies.iter().flatten() {
            let c = t.counts;
            row.extend([c.steps as f64, c.thermalized as f64, c.passes as f64, t.seconds]);
        }
        row
    }

    /// The row `row` of `modes` modes with `state_words` each; it has tallies when it is long
    /// enough to hold them.
    pub fn from_row(row: &[f64], modes: usize, state_words: usize) -> MemberRow {
        let (states, rest) = row.split_at(modes * state_words);
        let (diverged, tallies) = rest.split_at(modes);
        let tallies = (tallies.len() == 4 * modes).then(|| {
            tallies
                .chunks_exact(4)
                .map(|t| Tally {
                    counts: Counts { steps: t[0] as u64, thermalized: t[1] as u64, passes: t[2] as u64 },
                    seconds: t[3],
                })
                .collect()
        });
        MemberRow {
            states: states.chunks_exact(state_words.max(1)).map(<[f64]>::to_vec).collect(),
            diverged_at: diverged.iter().map(|&d| d as i64).collect(),
            tallies,
        }
    }
}

/// Writes the checkpoint at `path` of this rank's `local` members (`rows`, of `total`) at
/// emulator `step` (collective); `identity` is the config's, which a resume compares. Its
/// `diverged_at` dataset holds the first mode's.
pub fn save_checkpoint(
    path: &Path,
    world: &World,
    identity: &str,
    (total, local): (usize, Range<usize>),
    step: usize,
    rows: &[MemberRow],
) -> Result<()> {
    let data = CheckpointData {
        step: step as u64,
        states: rows.iter().map(MemberRow::to_row).collect(),
        diverged_at: rows.iter().map(|r| r.diverged_at[0]).collect(),
    };
    member_states::write(path, world, identity, total, local, &data)
}

/// This rank's share of a checkpoint.
pub struct Saved {
    /// The emulator step it was written at.
    pub step: usize,
    pub rows: Vec<MemberRow>,
    /// Whether its rows have tallies (false: an earlier version's).
    pub tallies: bool,
}

/// This rank's `local` rows of the checkpoint at `path`, of `modes` modes with `state_words`
/// each.
pub fn load_checkpoint(path: &Path, local: Range<usize>, modes: usize, state_words: usize) -> Result<Saved> {
    let (d, tallies) = match member_states::read(path, local.clone(), MemberRow::words(modes, state_words, true)) {
        Ok(d) => (d, true),
        Err(_) => (member_states::read(path, local, MemberRow::words(modes, state_words, false))?, false),
    };
    let rows = d.states.iter().map(|row| MemberRow::from_row(row, modes, state_words)).collect();
    Ok(Saved { step: d.step as usize, rows, tallies })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_row_round_trips_in_the_layout_of_the_checkpoint() {
        let tally = |steps, seconds| Tally { counts: Counts { steps, thermalized: 1, passes: 2 }, seconds };
        let row = MemberRow {
            states: vec![vec![0.5, 1.5], vec![2.5, 3.5]],
            diverged_at: vec![-1, 7],
            tallies: Some(vec![tally(9, 0.25), tally(7, 0.5)]),
        };
        let words = row.to_row();
        assert_eq!(words.len(), MemberRow::words(2, 2, true));
        assert_eq!(words, [0.5, 1.5, 2.5, 3.5, -1.0, 7.0, 9.0, 1.0, 2.0, 0.25, 7.0, 1.0, 2.0, 0.5]);
        assert_eq!(MemberRow::from_row(&words, 2, 2), row);
        let earlier = MemberRow::from_row(&words[..MemberRow::words(2, 2, false)], 2, 2);
        assert_eq!((earlier.diverged_at, earlier.tallies), (vec![-1, 7], None));
    }
}
