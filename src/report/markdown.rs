//! `summary.md`: the answer first (the horizons and their ratio, the pairing, the classifier's
//! calibration, the cost), then every mode's table, the remaining pairings and the short-horizon
//! skill, then what the numbers mean.

use std::fmt::Write as _;
use std::path::Path;

use ndarray::{s, Array3};

use super::file::{finite, RolloutFile};
use super::paired::Pairing;
use super::summary::{ModeRow, SkillRow};
use crate::rollout::calibration::Calibration;
use crate::rollout::stats::median;
use crate::rollout::window;

/// The text of `summary.md`: `rows` and `table` are the modes table's ([`super::modes::table`]),
/// `skill` the short-horizon table ([`short_horizon_skill`]); `pairing` gathers the pairings
/// made.
pub fn summary(
    r: &RolloutFile,
    run_dir: &Path,
    rows: &[ModeRow],
    table: &str,
    skill: &str,
    pairing: &mut Pairing,
) -> String {
    let mut md = heading(r);
    answer(&mut md, r, rows, pairing);
    every_mode(&mut md, table, skill, pairing, run_dir);
    definitions(&mut md, r);
    md
}

/// The title, the file and its size, and what an interim report is.
fn heading(r: &RolloutFile) -> String {
    let mut md = String::new();
    let (members, last) = (r.members, r.last);
    let _ =
        writeln!(md, "# Rollout report\n\nFrom `{}`: {members} members, {} emulator steps.\n", r.path.display(), last);
    if r.interim.is_some() {
        let _ = writeln!(
            md,
            "**Interim**: the rollout is in progress or was interrupted; this reports it up to its last checkpoint \
             (step {last}). Members not stopped by then count as surviving to it; time means, wall times and \
             thermalization totals come when it completes.\n"
        );
    }
    md
}

/// "The answer": the horizons and their ratio, the pairings with thermalization, the
/// classifier's calibration, the cost.
fn answer(md: &mut String, r: &RolloutFile, rows: &[ModeRow], pairing: &mut Pairing) {
    let _ = writeln!(md, "## The answer\n\n{}", verdict(rows));
    for line in spectral_verdict(rows, r.last)
        .into_iter()
        .chain(pairing.sentence("thermalized", "emulator", "thermalized", "the emulator alone"))
        .chain(pairing.sentence("guarded_thermalized", "thermalized", "guarded and thermalized", "thermalized"))
    {
        let _ = writeln!(md, "\n{line}");
    }
    if let Some(levels) = &r.noise_level {
        let _ = writeln!(md, "\n{}", calibration(levels, r.s_init, r.s_init_source.as_deref()));
    }
    if let Some(t) = r.mode("thermalized").map(|t| &rows[t]).filter(|t| t.cost_vs_emulator.is_finite()) {
        let _ = writeln!(
            md,
            "\nCost: thermalized members took {:.2}× the emulator's wall time per member-step ({:.2} denoising \
             passes per step; {:.1} % of member-steps thermalized).",
            t.cost_vs_emulator,
            t.denoising_passes_per_step,
            100.0 * t.thermalized_fraction
        );
    }
}

/// "Every mode": the survival figure, the modes table, the other pairings, the short-horizon
/// skill and how well the calibrated classifier tells noise levels apart.
fn every_mode(md: &mut String, table: &str, skill: &str, pairing: &mut Pairing, run_dir: &Path) {
    let _ = writeln!(md, "\n![Members not yet diverged](survival.png)\n\n## Every mode\n\n{table}");
    for (a, b, a_says, b_says) in [
        ("filtered", "emulator", "filtered", "the emulator alone"),
        ("thermalized", "filtered", "thermalized", "filtered"),
        ("guarded", "emulator", "guarded", "the emulator alone"),
        ("guarded_thermalized", "emulator", "guarded and thermalized", "the emulator alone"),
        ("guarded_thermalized", "guarded", "guarded and thermalized", "guarded"),
        ("guarded_thermalized", "filtered", "guarded and thermalized", "filtered"),
    ] {
        if let Some(line) = pairing.sentence(a, b, a_says, b_says) {
            let _ = writeln!(md, "{line}\n");
        }
    }
    let _ = writeln!(md, "{skill}");
    let calibrated = run_dir.join("thermalizer").join("calibration.json");
    if let Some(noised) = Calibration::read(&calibrated).ok().map(|k| k.describe_noised()).filter(|d| !d.is_empty()) {
        let _ = writeln!(md, "\nHow well the classifier tells levels apart (`{}`): {noised}.", calibrated.display());
    }
}

/// What the horizons, the spectrum error and the cost are, and the list of figures.
fn definitions(md: &mut String, r: &RolloutFile) {
    let _ = writeln!(
        md,
        "\nStable horizon: the step at which a member was stopped (non-finite, beyond `rollout.blowup`, or over \
         `rollout.noise_limit` when thermalized), or the rollout length if it never was (\"≥\": a lower bound). \
         Spectral horizon: the first recorded step at which the member's kinetic-energy spectrum is further from the \
         truth's mean log-spectrum (RMS of ln E − ⟨ln E_truth⟩ over the shells 1 ≤ k < N/2 where the truth holds at \
         least {:.0e} of its peak shell's energy) than any stored-truth record ({:.3}); time means over \
         steps ≥ {:.0}. Time-mean spectrum error: RMS over the same shells of ln E − ln E_truth, E the \
         ensemble mean of the members' time-mean spectra (members stopped before the window are left out). Cost ÷ \
         emulator: wall time per member-step (a stopped member runs no more steps) over the emulator-alone run's.\n\n\
         Figures: `mean_square.png`, `mse.png`, `spectra.png`, `pdf.png`, `spectra_times.png`, `survival.png`, \
         `ticker_tape.png`, `snapshots.png` (and `guard_tape_<mode>.png` with the runaway guard), \
         `training_<model>.png` (loss curves of the models trained in the run directory). Every number of the \
         tables is also in `summary.json`.",
        window::RESOLVED_FRACTION,
        r.spectral_threshold,
        r.window_start
    );
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
fn calibration(levels: &Array3<f64>, s_init: f64, source: Option<&str>) -> String {
    let at0 = finite(levels.slice(s![0, .., 0]));
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
pub fn short_horizon_skill(r: &RolloutFile) -> (String, Vec<SkillRow>) {
    let picks: Vec<(usize, f64)> = [1.0, 10.0, 50.0, 100.0, 200.0]
        .iter()
        .filter_map(|&t| r.steps.iter().position(|&s| s == t).map(|at| (at, t)))
        .filter(|&(at, _)| r.mse.slice(s![0, .., at]).iter().any(|v| v.is_finite()))
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
    for (i, name) in r.modes.iter().enumerate() {
        let _ = write!(md, "\n| {name} |");
        for &(at, step) in &picks {
            let median_mse = median(finite(r.mse.slice(s![i, .., at])));
            let _ = write!(md, " {median_mse:.2e} |");
            rows.push(SkillRow { mode: name.clone(), step, median_mse });
        }
    }
    (md, rows)
}
