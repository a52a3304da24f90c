//! The `report` stage: figures (PNG) and `summary.md` from `<run.dir>/rollout.h5`, under
//! `<run.dir>/report/`. Rank 0 does the work (the file is small); the others wait.
//!
//! **Stable horizon** of a member in a mode: the step at which it was stopped (`diverged_at`:
//! non-finite, beyond `rollout.blowup`, or, thermalized, over `rollout.noise_limit`), or the
//! rollout length when it never was (then a lower bound, marked "≥"). The summary gives the
//! median and range over members, and the surviving fraction at the end. The **spectral
//! horizon** (`spectral_horizon` in the file, see [`crate::rollout::window`]) is the step at
//! which the member's spectrum leaves the truth's spread; the summary gives its median too.
//! **Time-averaged spectra and PDFs** are the file's per-member means over the stationary
//! window (`spectrum_mean`, `histogram_mean`: members that survived it), drawn for every
//! member (the ensemble spread) with the ensemble mean, against the truth's. With both modes,
//! the summary also compares the horizons member by member ([`paired`]).
//!
//! **Interim report** (`report --partial`) of a rollout still running or interrupted: the same
//! figures and summary from `rollout.h5.partial` up to the step of `rollout.checkpoint.h5`
//! (a member not stopped by then is counted as surviving to that step), into
//! `<run.dir>/report-interim/`. The time means, wall times and thermalization totals are written
//! when a rollout completes, so they read NaN there.

pub mod figures;
pub mod paired;
pub mod summary;
pub mod training;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::style::RGBColor;

use crate::error::{Context, Error, Result};
use crate::rollout::calibration::Calibration;
use crate::rollout::stats::median;
use crate::rollout::window;
use crate::store::h5::{Access, File};
use crate::store::member_states as ck_store;
use crate::store::resume::StageFiles;
use figures::{field_panels, heat_map, line_plot, Axes, Line};
use paired::Pairs;
use summary::{ModeRow, PairRow, SkillRow, Summary};

const TRUTH: RGBColor = RGBColor(0, 0, 0);
/// Line colours of the modes, in their order in the file (e.g. emulator, thermalized, filtered,
/// guarded, guarded_thermalized: red, blue, green, orange, purple).
const COLORS: [RGBColor; 5] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];

/// An array read from the rollout file: values (f64, row-major) and shape.
struct Array {
    v: Vec<f64>,
    shape: Vec<usize>,
}

impl Array {
    fn at(&self, idx: &[usize]) -> f64 {
        let mut k = 0;
        for (i, &d) in idx.iter().zip(&self.shape) {
            k = k * d + i;
        }
        self.v[k]
    }
    fn slice(&self, prefix: &[usize]) -> &[f64] {
        let inner: usize = self.shape[prefix.len()..].iter().product();
        let mut k = 0;
        for (i, &d) in prefix.iter().zip(&self.shape) {
            k = k * d + i;
        }
        &self.v[k * inner..(k + 1) * inner]
    }
}

/// Scalar attribute `name` of dataset `dataset` (NaN when absent).
fn dataset_attr(f: &File, dataset: &str, name: &str) -> f64 {
    f.dataset(dataset)
        .and_then(|d| d.attrs().get::<f64>(name))
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

/// A cut of one member's row into the (x, y) points of a line.
type Cut<'a> = dyn Fn(&[f64]) -> Vec<(f64, f64)> + 'a;

fn read(f: &File, name: &str) -> Result<Array> {
    let d = f.dataset(name)?;
    Ok(Array { shape: d.shape()?, v: d.read::<f64>(None)? })
}

/// What the report found, for the caller's headline.
pub struct Headline {
    pub dir: PathBuf,
    pub members: usize,
    /// Every mode's row of the modes table (as in `summary.json`).
    pub modes: Vec<ModeRow>,
}

impl Headline {
    /// "median stable horizon over N members: emulator 86 steps, thermalized ≥ 200 steps (×2.3)".
    pub fn one_line(&self) -> String {
        let parts: Vec<String> = self
            .modes
            .iter()
            .map(|m| {
                let bound = if m.median_is_lower_bound { "≥ " } else { "" };
                let passes = if m.denoising_passes_per_step > 0.0 {
                    format!(", {:.1} denoising passes per step", m.denoising_passes_per_step)
                } else {
                    String::new()
                };
                format!(
                    "{} {bound}{:.0} steps ({:.0} % surviving{passes})",
                    m.mode,
                    m.median_stable_horizon,
                    m.surviving_fraction * 100.0
                )
            })
            .collect();
        let mut line = format!("median stable horizon over {} members: {}", self.members, parts.join("; "));
        let find = |n: &str| self.modes.iter().find(|m| m.mode == n);
        if let (Some(e), Some(t)) = (find("emulator"), find("thermalized")) {
            if e.median_stable_horizon > 0.0 {
                line += &format!("; thermalized/emulator ×{:.2}", t.median_stable_horizon / e.median_stable_horizon);
            }
            if !(e.median_spectral_horizon.is_nan() || t.median_spectral_horizon.is_nan()) {
                line += &format!(
                    "; median spectral horizon: emulator {:.0}, thermalized {:.0} steps",
                    e.median_spectral_horizon, t.median_spectral_horizon
                );
            }
        }
        line
    }
}

/// One sentence on whether thermalization extended the stable horizon, from the numbers alone
/// (a change of less than 10 % of the median is called no change).
fn verdict(modes: &[ModeRow]) -> String {
    let find = |n: &str| modes.iter().find(|m| m.mode == n);
    let (Some(e), Some(t)) = (find("emulator"), find("thermalized")) else {
        return "Only one mode was run: no comparison of emulator and thermalized.".into();
    };
    let (eh, th) = (e.median_stable_horizon, t.median_stable_horizon);
    if e.median_is_lower_bound && t.median_is_lower_bound {
        let neither = format!(
            "Neither mode diverged in most members within the {eh:.0} steps of the rollout: the median stable horizon \
             is at least {eh:.0} steps in both"
        );
        if e.time_mean_spectrum_error.is_nan() || t.time_mean_spectrum_error.is_nan() {
            return format!("{neither} (time-mean spectra not available to compare).");
        }
        let closer = if t.time_mean_spectrum_error < 0.9 * e.time_mean_spectrum_error {
            "**Thermalization kept the time-mean spectrum closer to the truth's**"
        } else if t.time_mean_spectrum_error <= 1.1 * e.time_mean_spectrum_error {
            "**Thermalization did not measurably change the time-mean spectrum's distance from the truth's**"
        } else {
            "**Thermalization moved the time-mean spectrum further from the truth's**"
        };
        return format!(
            "{neither} (roll out longer to compare them). {closer} (RMS log-spectral error {:.3} thermalized, {:.3} \
             alone).",
            t.time_mean_spectrum_error, e.time_mean_spectrum_error
        );
    }
    let bound = if t.median_is_lower_bound { "at least " } else { "" };
    let ratio = th / eh.max(1.0);
    if ratio > 1.1 {
        format!(
            "**Thermalization extended the median stable horizon from {eh:.0} to {bound}{th:.0} emulator steps \
             (×{bound}{ratio:.2}).**"
        )
    } else if ratio >= 0.9 {
        format!(
            "**Thermalization did not measurably change the median stable horizon at this budget** ({eh:.0} steps \
             alone, {th:.0} thermalized)."
        )
    } else {
        format!("**Thermalization shortened the median stable horizon** from {eh:.0} to {th:.0} emulator steps.")
    }
}

/// One sentence on the median spectral horizons of the emulator alone and thermalized, and
/// their ratio (none when either mode is missing or an interim report has none).
fn spectral_verdict(modes: &[ModeRow], rollout_steps: f64) -> Option<String> {
    let find = |n: &str| modes.iter().find(|m| m.mode == n);
    let (es, ts) = (find("emulator")?.median_spectral_horizon, find("thermalized")?.median_spectral_horizon);
    if es.is_nan() || ts.is_nan() {
        return None;
    }
    let bound = |h: f64| if h >= rollout_steps { "≥ " } else { "" };
    let change = match ts / es.max(1.0) {
        r if r > 1.1 => format!("thermalization kept the spectrum within the truth's spread ×{r:.2} longer"),
        r if r >= 0.9 => {
            "thermalization did not measurably change how long the spectrum stays within the truth's spread".into()
        }
        r => format!("the thermalized spectrum left the truth's spread sooner (×{r:.2})"),
    };
    Some(format!(
        "Median spectral horizon (the step at which a member's spectrum leaves the truth's spread): {}{ts:.0} \
         thermalized, {}{es:.0} alone: {change}.",
        bound(ts),
        bound(es)
    ))
}

/// How the classifier rates the true initial states (step 0 of every member), against s_init
/// and where s_init came from (`source`: the config, or the calibration on validation states):
/// a classifier that puts states of the invariant measure above s_init thermalizes them anyway.
fn calibration(levels: &Array, members: usize, s_init: f64, source: Option<&str>) -> String {
    let at0: Vec<f64> = (0..members).map(|m| levels.at(&[0, m, 0])).filter(|v| v.is_finite()).collect();
    if at0.is_empty() {
        return "The thermalizer's classifier was not run (emulator alone).".into();
    }
    let (lo, hi) = (at0.iter().cloned().fold(f64::INFINITY, f64::min), at0.iter().cloned().fold(0.0, f64::max));
    let med = median(at0);
    let from = match source {
        Some(s) if s.starts_with("auto") => format!(" ({s})"),
        Some(s) => format!(" (from {s}; `rollout.s_init: auto` calibrates it on clean validation states)"),
        None => String::new(),
    };
    let mut line = format!(
        "Classifier calibration: on the true initial states it predicts noise level {med:.0} (median; range \
         {lo:.0}–{hi:.0}) against s_init = {s_init:.0}{from}."
    );
    if med > s_init {
        line += " **It rates clean states above s_init, so it thermalizes states that are on the invariant \
                 measure: the thermalizer is undertrained or s_init too low for it; the thermalized run says \
                 little about the method.**";
    }
    line
}

/// Median MSE against the truth over members at a few early steps (those recorded and within the
/// truth's horizon), per mode: thermalization must not spoil short-term skill. The table, and
/// its numbers.
fn short_horizon_skill(modes: &[String], mse: &Array, steps: &[f64]) -> (String, Vec<SkillRow>) {
    let members = mse.shape[1];
    let picks: Vec<(usize, f64)> = [1.0, 10.0, 50.0, 100.0, 200.0]
        .iter()
        .filter_map(|&t| steps.iter().position(|&s| s == t).map(|r| (r, t)))
        .filter(|&(r, _)| (0..members).any(|m| mse.at(&[0, m, r]).is_finite()))
        .collect();
    if picks.is_empty() {
        return ("No short-horizon MSE: no recorded step within the truth's horizon.".into(), Vec::new());
    }
    let mut md = String::from("Short-horizon skill: median over members of the MSE against the truth (normalised units; the field's variance is about 1)\n\n| mode |");
    for (_, t) in &picks {
        let _ = write!(md, " step {t:.0} |");
    }
    md += "\n|---|";
    md += &"---:|".repeat(picks.len());
    let mut rows = Vec::new();
    for (i, name) in modes.iter().enumerate() {
        let _ = write!(md, "\n| {name} |");
        for &(r, step) in &picks {
            let v: Vec<f64> = (0..members).map(|m| mse.at(&[i, m, r])).filter(|v| v.is_finite()).collect();
            let median_mse = median(v);
            let _ = write!(md, " {median_mse:.2e} |");
            rows.push(SkillRow { mode: name.clone(), step, median_mse });
        }
    }
    (md, rows)
}

/// Ensemble mean of the rows `a[(mode,) member, ..]` that are finite throughout, and how many.
fn ensemble_mean(a: &Array, mode: Option<usize>, members: usize) -> (Vec<f64>, usize) {
    let width: usize = a.shape[a.shape.len() - 1];
    let mut sum = vec![0.0; width];
    let mut count = 0usize;
    for m in 0..members {
        let prefix: Vec<usize> = mode.into_iter().chain([m]).collect();
        let row = a.slice(&prefix);
        if row.iter().all(|v| v.is_finite()) {
            sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            count += 1;
        }
    }
    (sum.iter().map(|s| if count > 0 { s / count as f64 } else { f64::NAN }).collect(), count)
}

/// Writes the report of `run_dir/rollout.h5`.
/// The file a report reads, the step its records end at (`None`: the whole rollout) and the
/// directory it writes: `rollout.h5` into `report/`, or with `partial` the rollout in progress
/// up to its last checkpoint into `report-interim/`.
fn source(run_dir: &Path, partial: bool) -> Result<(PathBuf, Option<f64>, PathBuf)> {
    let StageFiles { output: done, partial: running, checkpoint: ck } = StageFiles::rollout(run_dir);
    if !partial {
        if done.exists() {
            return Ok((done, None, run_dir.join("report")));
        }
        let hint = if running.exists() {
            "; a rollout is in progress: `report --partial` reports it so far"
        } else {
            " (run `thermalizer rollout` first)"
        };
        return Err(Error::Input(format!("{} does not exist{hint}", done.display())));
    }
    if !(running.exists() && ck.exists()) {
        return Err(Error::Input(format!(
            "report --partial: no rollout in progress in {} ({} and {} are needed)",
            run_dir.display(),
            running.display(),
            ck.display()
        )));
    }
    let step = ck_store::stored_step(&ck).input_context(|| ck.display())?;
    Ok((running, Some(step as f64), run_dir.join("report-interim")))
}

pub fn write(run_dir: &Path, partial: bool) -> Result<Headline> {
    let (path, interim, dir) = source(run_dir, partial)?;
    let f = File::open(&path, Access::Serial, false)
        .map_err(|e| Error::Input(format!("{}: not readable ({e})", path.display())))?;
    // Failures name the file: `at` is the context of every read and figure.
    let at = || path.display();
    // `mode` holds the names; files written before it was a string coordinate held indices
    // with the names in `flag_meanings`.
    let mode = f.dataset("mode").context(at)?;
    let modes: Vec<String> = mode
        .read_strings()
        .or_else(|_| mode.attrs().get_str("flag_meanings").map(|s| s.split_whitespace().map(String::from).collect()))
        .context(at)?;
    drop(mode);
    // An interim report ends at the checkpoint's step: later records are not there yet.
    let upto = |mut v: Vec<f64>| {
        v.retain(|&s| interim.is_none_or(|last| s <= last));
        v
    };
    let steps = upto(read(&f, "step").context(at)?.v);
    let spec_steps = upto(read(&f, "spectrum_step").context(at)?.v);
    let ks = read(&f, "k").context(at)?.v;
    let mse = read(&f, "mse").context(at)?;
    let msq = read(&f, "mean_square").context(at)?;
    let passes = read(&f, "denoising_passes").context(at)?;
    let spectrum = read(&f, "spectrum").context(at)?;
    let truth_msq = read(&f, "truth_mean_square").context(at)?;
    let truth_spec = read(&f, "truth_spectrum").context(at)?;
    let last = interim.unwrap_or(*steps.last().unwrap_or(&0.0));
    // A stop after an interim report's last step has not happened yet as far as it is concerned.
    let diverged: Vec<i64> = f
        .dataset("diverged_at")
        .and_then(|d| d.read::<i64>(None))
        .context(at)?
        .into_iter()
        .map(|d| if d as f64 > last { -1 } else { d })
        .collect();
    let attr = |name: &str| f.attrs().get::<f64>(name).ok().and_then(|v| v.first().copied()).unwrap_or(f64::NAN);
    let members = mse.shape[1];
    std::fs::create_dir_all(&dir).context(|| dir.display())?;
    let fig = |name: &str| dir.join(name);
    let series = |a: &Array, prefix: &[usize], xs: &[f64]| -> Vec<(f64, f64)> {
        xs.iter().copied().zip(a.slice(prefix).iter().copied()).collect()
    };

    // Mean square (enstrophy-like) of every member, truth and modes.
    let mut lines = Vec::new();
    for m in 0..members {
        let label = |s: &str| if m == 0 { s.to_string() } else { String::new() };
        lines.push(Line { label: label("truth"), color: TRUTH, points: series(&truth_msq, &[m], &steps), thin: true });
        for (i, name) in modes.iter().enumerate() {
            lines.push(Line {
                label: label(name),
                color: COLORS[i % COLORS.len()],
                points: series(&msq, &[i, m], &steps),
                thin: true,
            });
        }
    }
    let axes = |title, y, log_y| Axes { title, x_label: "emulator step", y_label: y, log_x: false, log_y };
    line_plot(
        &fig("mean_square.png"),
        &axes("Mean square of the normalised state, every member", "mean square (normalised)", true),
        &lines,
    )
    .context(at)?;

    // Ensemble-median MSE against the truth, and survival.
    let mut mse_lines = Vec::new();
    let mut survival = Vec::new();
    for (i, name) in modes.iter().enumerate() {
        let med: Vec<(f64, f64)> = steps
            .iter()
            .enumerate()
            .map(|(r, &s)| {
                let v: Vec<f64> = (0..members).map(|m| mse.at(&[i, m, r])).filter(|v| v.is_finite()).collect();
                (s, median(v))
            })
            .collect();
        mse_lines.push(Line {
            label: format!("{name} (median)"),
            color: COLORS[i % COLORS.len()],
            points: med,
            thin: false,
        });
        for m in 0..members {
            mse_lines.push(Line {
                label: String::new(),
                color: COLORS[i % COLORS.len()],
                points: series(&mse, &[i, m], &steps),
                thin: true,
            });
        }
        let alive: Vec<(f64, f64)> = steps
            .iter()
            .map(|&s| {
                let n = (0..members)
                    .filter(|&m| diverged[i * members + m] < 0 || diverged[i * members + m] as f64 > s)
                    .count();
                (s, n as f64 / members as f64)
            })
            .collect();
        survival.push(Line { label: name.clone(), color: COLORS[i % COLORS.len()], points: alive, thin: false });
    }
    line_plot(&fig("mse.png"), &axes("MSE against the solver's truth", "MSE (normalised units)", true), &mse_lines)
        .context(at)?;
    line_plot(&fig("survival.png"), &axes("Members not yet diverged", "surviving fraction", false), &survival)
        .context(at)?;

    // Member mean of spectra `a[(mode,) member, step, k]` over the recorded steps `over`, on the
    // complete shells 1 ≤ k ≤ N/2 (the corners beyond hold the truncated tail).
    let kmax = ((ks.len() - 1) as f64 / std::f64::consts::SQRT_2).floor() as usize;
    let shells = |row: &[f64]| -> Vec<(f64, f64)> {
        ks.iter().copied().zip(row.iter().copied()).take(kmax + 1).skip(1).collect()
    };
    let average = |a: &Array, mode: Option<usize>, over: &[usize]| -> Vec<(f64, f64)> {
        let mut sum = vec![0.0; ks.len()];
        let mut count = vec![0usize; ks.len()];
        for m in 0..members {
            for &s in over {
                let prefix: Vec<usize> = mode.into_iter().chain([m, s]).collect();
                for (k, &v) in a.slice(&prefix).iter().enumerate() {
                    if v.is_finite() {
                        sum[k] += v;
                        count[k] += 1;
                    }
                }
            }
        }
        let mean: Vec<f64> =
            sum.iter().zip(&count).map(|(&s, &c)| if c > 0 { s / c as f64 } else { f64::NAN }).collect();
        shells(&mean)
    };

    // Time-averaged spectra and PDFs over the stationary window: every member's (thin: the
    // ensemble spread) and their ensemble mean (thick), truth and modes.
    let window_from = dataset_attr(&f, "spectrum_mean", "window_start");
    let spectrum_mean = read(&f, "spectrum_mean").context(at)?;
    let truth_spectrum_mean = read(&f, "truth_spectrum_mean").context(at)?;
    let spread_lines = |truth: &Array, a: &Array, cut: &Cut<'_>| -> Vec<Line> {
        let mut lines = Vec::new();
        let mut add = |a: &Array, mode: Option<usize>, label: &str, color: RGBColor| {
            for m in 0..members {
                let prefix: Vec<usize> = mode.into_iter().chain([m]).collect();
                let row = a.slice(&prefix);
                if row.iter().all(|v| v.is_finite()) {
                    lines.push(Line { label: String::new(), color, points: cut(row), thin: true });
                }
            }
            let (mean, count) = ensemble_mean(a, mode, members);
            lines.push(Line { label: format!("{label} ({count} members)"), color, points: cut(&mean), thin: false });
        };
        add(truth, None, "truth", TRUTH);
        for (i, mode) in modes.iter().enumerate() {
            add(a, Some(i), mode, COLORS[i % COLORS.len()]);
        }
        lines
    };
    let title = format!(
        "Time-mean KE spectrum (steps ≥ {window_from:.0}; truth: all its records): members thin, ensemble mean"
    );
    let spec_axes = Axes { title: &title, x_label: "wavenumber k (2π/L)", y_label: "E(k)", log_x: true, log_y: true };
    line_plot(&fig("spectra.png"), &spec_axes, &spread_lines(&truth_spectrum_mean, &spectrum_mean, &shells))
        .context(at)?;
    let bins = read(&f, "bin").context(at)?.v;
    let on_bins = |row: &[f64]| -> Vec<(f64, f64)> { bins.iter().copied().zip(row.iter().copied()).collect() };
    let pdf_title =
        format!("Time-mean PDF (steps ≥ {window_from:.0}; truth: all its records): members thin, ensemble mean");
    let pdf_axes = Axes {
        title: &pdf_title,
        x_label: "value (normalised units)",
        y_label: "probability density",
        log_x: false,
        log_y: true,
    };
    line_plot(
        &fig("pdf.png"),
        &pdf_axes,
        &spread_lines(
            &read(&f, "truth_histogram_mean").context(at)?,
            &read(&f, "histogram_mean").context(at)?,
            &on_bins,
        ),
    )
    .context(at)?;

    // Member-mean spectra at up to four recorded times (first, last and two between).
    let picks: Vec<usize> = {
        let n = spec_steps.len();
        let mut p: Vec<usize> = (0..4).map(|j| j * (n - 1) / 3).collect();
        p.dedup();
        p
    };
    let mut timed = Vec::new();
    for (j, &s) in picks.iter().enumerate() {
        let shade = |c: RGBColor| {
            let f = 0.35 + 0.65 * (j + 1) as f64 / picks.len() as f64;
            RGBColor(
                (255.0 - f * (255.0 - c.0 as f64)) as u8,
                (255.0 - f * (255.0 - c.1 as f64)) as u8,
                (255.0 - f * (255.0 - c.2 as f64)) as u8,
            )
        };
        let t = spec_steps[s];
        timed.push(Line {
            label: format!("truth, step {t}"),
            color: shade(RGBColor(60, 60, 60)),
            points: average(&truth_spec, None, &[s]),
            thin: false,
        });
        for (i, name) in modes.iter().enumerate() {
            timed.push(Line {
                label: format!("{name}, step {t}"),
                color: shade(COLORS[i % COLORS.len()]),
                points: average(&spectrum, Some(i), &[s]),
                thin: false,
            });
        }
    }
    let timed_axes =
        Axes { title: "Kinetic-energy spectrum at several times (member mean; darker = later)", ..spec_axes };
    line_plot(&fig("spectra_times.png"), &timed_axes, &timed).context(at)?;

    // Ticker tape of the thermalized mode.
    if let Some(i) = modes.iter().position(|m| m == "thermalized") {
        let rows: Vec<Vec<f64>> = (0..members).map(|m| passes.slice(&[i, m])[..steps.len()].to_vec()).collect();
        heat_map(
            &fig("ticker_tape.png"),
            "Denoising passes per record, thermalized",
            "emulator step",
            "member",
            &rows,
            last.max(1.0),
        )
        .context(at)?;
    }

    // Ticker tape of the runaway guard's corrections, per guarded mode.
    if f.has("guard_corrections") {
        let corrections = read(&f, "guard_corrections").context(at)?;
        for (i, name) in modes.iter().enumerate().filter(|(_, m)| m.starts_with("guarded")) {
            let rows: Vec<Vec<f64>> =
                (0..members).map(|m| corrections.slice(&[i, m])[..steps.len()].to_vec()).collect();
            heat_map(
                &fig(&format!("guard_tape_{name}.png")),
                &format!("Steps the runaway guard corrected per record, {name}"),
                "emulator step",
                "member",
                &rows,
                last.max(1.0),
            )
            .context(at)?;
        }
    }

    // Snapshot panels of member 0, first layer.
    if f.has("snapshot") {
        let snap = read(&f, "snapshot").context(at)?;
        let truth = read(&f, "truth_snapshot").context(at)?;
        let snap_steps = upto(read(&f, "snapshot_step").context(at)?.v);
        let n = snap.shape[5];
        let cols = snap_steps.len();
        let field = |v: &[f64]| -> Option<Vec<f64>> {
            let v = v[..n * n].to_vec();
            v.iter().any(|x| x.is_finite()).then_some(v)
        };
        let mut panels = Vec::new();
        for (p, &s) in snap_steps.iter().enumerate() {
            panels.push((format!("truth, step {s}"), field(truth.slice(&[0, p]))));
        }
        for (i, name) in modes.iter().enumerate() {
            for (p, &s) in snap_steps.iter().enumerate() {
                panels.push((format!("{name}, step {s}"), field(snap.slice(&[i, 0, p]))));
            }
        }
        field_panels(
            &fig("snapshots.png"),
            "Member 0 (first layer); blue < 0 < red, one scale; grey: not available",
            &panels,
            cols,
            n,
        )
        .context(at)?;
    }

    // Summary.
    let mut md = String::new();
    let _ =
        writeln!(md, "# Rollout report\n\nFrom `{}`: {members} members, {} emulator steps.\n", path.display(), last);
    if interim.is_some() {
        let _ = writeln!(
            md,
            "**Interim**: the rollout is in progress or was interrupted; this reports it up to its last checkpoint \
             (step {last}). Members not stopped by then count as surviving to it; time means, wall times and \
             thermalization totals come when it completes.\n"
        );
    }
    let mut table = String::from("| mode | median stable horizon (steps) | min | max | median spectral horizon (steps) | time-mean spectrum error | surviving at the end | thermalized fraction | denoising passes per step | wall s | cost ÷ emulator |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut costs = Vec::new();
    let spectral = f.dataset("spectral_horizon").and_then(|d| d.read::<f64>(None)).context(at)?;
    let threshold = dataset_attr(&f, "spectral_horizon", "spectral_threshold");
    // ln of the truth's ensemble-mean time-mean spectrum on the spectral horizon's shells
    // (1 ≤ k < N/2, kmax = N/2 being the complete shells, where the truth holds flow).
    let (truth_mean, _) = ensemble_mean(&truth_spectrum_mean, None, members);
    let reference = window::compared(truth_mean.iter().map(|e| e.ln()).collect(), kmax - 1);
    // Member-steps each mode ran (a stopped member runs no more): the cost is per member-step,
    // so that a mode whose members all died early is not counted as cheap.
    let member_steps = |i: usize| -> f64 {
        (0..members).map(|m| diverged[i * members + m]).map(|d| if d >= 0 { d as f64 } else { last }).sum()
    };
    let emulator_index = modes.iter().position(|m| m == "emulator");
    let emulator_rate = emulator_index.map_or(f64::NAN, |e| attr("emulator_wall_seconds") / member_steps(e));
    let mut rows = Vec::new();
    let mut horizons = Vec::new();
    for (i, name) in modes.iter().enumerate() {
        let h: Vec<f64> = (0..members)
            .map(|m| match diverged[i * members + m] {
                d if d >= 0 => d as f64,
                _ => last,
            })
            .collect();
        let surv = (0..members).filter(|&m| diverged[i * members + m] < 0).count() as f64 / members as f64;
        let med = median(h.clone());
        let ge = if surv >= 0.5 { "≥ " } else { "" };
        let (lo, hi) = (h.iter().cloned().fold(f64::INFINITY, f64::min), h.iter().cloned().fold(0.0, f64::max));
        horizons.push(h);
        let sp: Vec<f64> =
            (0..members).map(|m| spectral[i * members + m]).map(|d| if d >= 0.0 { d } else { last }).collect();
        let sp_never = (0..members).filter(|&m| spectral[i * members + m] < 0.0).count() * 2 >= members;
        // The spectral horizons are found when the rollout completes: none in an interim report.
        let spectral_median = if interim.is_some() { f64::NAN } else { median(sp) };
        let spectral_cell = if spectral_median.is_nan() {
            "n/a".to_string()
        } else {
            format!("{}{spectral_median:.0}", if sp_never { "≥ " } else { "" })
        };
        let spectrum_error = match ensemble_mean(&spectrum_mean, Some(i), members) {
            (_, 0) => f64::NAN,
            (mean, _) => window::log_distance(&mean, &reference),
        };
        let wall = attr(&format!("{name}_wall_seconds"));
        // No emulator-alone run in this file: no reference for the cost.
        let cost_ratio = wall / member_steps(i) / emulator_rate;
        costs.push(cost_ratio);
        let cost = if cost_ratio.is_finite() { format!("{cost_ratio:.2}") } else { "n/a".into() };
        let row = ModeRow {
            mode: name.clone(),
            median_stable_horizon: med,
            median_is_lower_bound: surv >= 0.5,
            min_stable_horizon: lo,
            max_stable_horizon: hi,
            median_spectral_horizon: spectral_median,
            time_mean_spectrum_error: spectrum_error,
            surviving_fraction: surv,
            thermalized_fraction: attr(&format!("{name}_thermalized_fraction")),
            denoising_passes_per_step: attr(&format!("{name}_passes_per_step")),
            wall_seconds: wall,
            cost_vs_emulator: cost_ratio,
        };
        let _ = writeln!(
            table,
            "| {name} | {ge}{med:.0} | {lo:.0} | {hi:.0} | {spectral_cell} | {spectrum_error:.3} | {:.0} % | {:.3} | {:.2} | {wall:.1} | {cost} |",
            surv * 100.0,
            row.thermalized_fraction,
            row.denoising_passes_per_step,
        );
        rows.push(row);
    }
    let index = |n: &str| modes.iter().position(|m| m == n);
    let mut pair_rows = Vec::new();
    let mut paired = |a: &str, b: &str, a_says: &str, b_says: &str| -> Option<String> {
        let (ia, ib) = (index(a)?, index(b)?);
        let p = Pairs::count(&horizons[ia], &horizons[ib]);
        pair_rows.push(PairRow {
            a: a.into(),
            b: b.into(),
            a_longer: p.a_longer,
            b_longer: p.b_longer,
            ties: p.ties,
            p: p.sign_test(),
        });
        Some(format!(
            "Paired by member (each starts from the same state in every mode): {a_says} outlived {b_says} in {} of \
             {members} members, the reverse in {}, ties {} (the same step, or both ran to the end); two-sided sign \
             test p = {}.",
            p.a_longer,
            p.b_longer,
            p.ties,
            p.p_text()
        ))
    };

    // The answer first: horizons and their ratio, the pairing, the calibration, the cost, survival.
    let _ = writeln!(md, "## The answer\n\n{}", verdict(&rows));
    for line in spectral_verdict(&rows, last)
        .into_iter()
        .chain(paired("thermalized", "emulator", "thermalized", "the emulator alone"))
        .chain(paired("guarded_thermalized", "thermalized", "guarded and thermalized", "thermalized"))
    {
        let _ = writeln!(md, "\n{line}");
    }
    if f.has("noise_level") {
        let levels = read(&f, "noise_level").context(at)?;
        let source = f.attrs().get_str("s_init_source").ok();
        let _ = writeln!(md, "\n{}", calibration(&levels, members, attr("s_init"), source.as_deref()));
    }
    if let Some(t) = index("thermalized").filter(|&t| costs[t].is_finite()) {
        let _ = writeln!(
            md,
            "\nCost: thermalized members took {:.2}× the emulator's wall time per member-step ({:.2} denoising \
             passes per step; {:.1} % of member-steps thermalized).",
            costs[t],
            attr("thermalized_passes_per_step"),
            100.0 * attr("thermalized_thermalized_fraction")
        );
    }
    let _ = writeln!(md, "\n![Members not yet diverged](survival.png)\n\n## Every mode\n\n{table}");
    for (a, b, a_says, b_says) in [
        ("filtered", "emulator", "filtered", "the emulator alone"),
        ("thermalized", "filtered", "thermalized", "filtered"),
        ("guarded", "emulator", "guarded", "the emulator alone"),
        ("guarded_thermalized", "emulator", "guarded and thermalized", "the emulator alone"),
        ("guarded_thermalized", "guarded", "guarded and thermalized", "guarded"),
        ("guarded_thermalized", "filtered", "guarded and thermalized", "filtered"),
    ] {
        if let Some(line) = paired(a, b, a_says, b_says) {
            let _ = writeln!(md, "{line}\n");
        }
    }
    let (skill, skill_rows) = short_horizon_skill(&modes, &mse, &steps);
    let _ = writeln!(md, "{skill}");
    let calibrated = run_dir.join("thermalizer").join("calibration.json");
    if let Some(noised) = Calibration::read(&calibrated).ok().map(|k| k.describe_noised()).filter(|d| !d.is_empty()) {
        let _ = writeln!(md, "\nHow well the classifier tells levels apart (`{}`): {noised}.", calibrated.display());
    }
    let _ = writeln!(
        md,
        "\nStable horizon: the step at which a member was stopped (non-finite, beyond `rollout.blowup`, or over \
         `rollout.noise_limit` when thermalized), or the rollout length if it never was (\"≥\": a lower bound). \
         Spectral horizon: the first recorded step at which the member's kinetic-energy spectrum is further from the \
         truth's mean log-spectrum (RMS of ln E − ⟨ln E_truth⟩ over the shells 1 ≤ k < N/2 where the truth holds at \
         least {:.0e} of its peak shell's energy) than any stored-truth record ({threshold:.3}); time means over \
         steps ≥ {window_from:.0}. Time-mean spectrum error: RMS over the same shells of ln E − ln E_truth, E the \
         ensemble mean of the members' time-mean spectra (members stopped before the window are left out). Cost ÷ \
         emulator: wall time per member-step (a stopped member runs no more steps) over the emulator-alone run's.\n\n\
         Figures: `mean_square.png`, `mse.png`, `spectra.png`, `pdf.png`, `spectra_times.png`, `survival.png`, \
         `ticker_tape.png`, `snapshots.png` (and `guard_tape_<mode>.png` with the runaway guard), \
         `training_<model>.png` (loss curves of the models trained in the run directory). Every number of the \
         tables is also in `summary.json`.",
        window::RESOLVED_FRACTION
    );
    training::draw(run_dir, &dir)?;
    let summary = Summary {
        source: path.display().to_string(),
        interim: interim.is_some(),
        members,
        steps: last,
        s_init: attr("s_init"),
        s_init_source: f.attrs().get_str("s_init_source").ok(),
        modes: rows.clone(),
        paired: pair_rows,
        short_horizon_mse: skill_rows,
    };
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Error::Failure(e.to_string()))?;
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).context(|| path.display())
    };
    write("summary.json", json + "\n")?;
    write("summary.md", md)?;
    Ok(Headline { dir, members, modes: rows })
}
