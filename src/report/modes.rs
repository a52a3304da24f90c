//! The modes table of the report: per mode the stable horizon (median, range, whether a lower
//! bound), the median spectral horizon, the time-mean spectrum's error, survival, thermalization
//! and cost. Steps are emulator steps.

use ndarray::{Array2, ArrayView1, Axis};

use super::file::{ensemble_mean, RolloutFile};
use super::summary::ModeRow;
use crate::rollout::stats::median;
use crate::rollout::window;

const HEADER: &str = "| mode | median stable horizon (steps) | min | max | median spectral horizon (steps) | time-mean spectrum error | surviving at the end | thermalized fraction | denoising passes per step | wall s | cost ÷ emulator |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

/// Every mode's row, and the table of them in markdown; `horizons[mode, member]` are the
/// stable horizons ([`RolloutFile::stable_horizons`]).
pub fn table(r: &RolloutFile, horizons: &Array2<f64>) -> (Vec<ModeRow>, String) {
    let reference = truth_log_spectrum(r);
    let emulator_rate =
        r.mode("emulator").map_or(f64::NAN, |e| r.totals[e].wall_seconds / member_steps(horizons.row(e)));
    let mut md = String::from(HEADER);
    let rows = (0..r.modes.len())
        .map(|i| {
            let (row, line) = row(r, i, horizons.row(i), &reference, emulator_rate);
            md += &line;
            row
        })
        .collect();
    (rows, md)
}

/// Member-steps a mode ran, from its stable horizons `h[member]` (a stopped member runs no
/// more): the cost is per member-step, so that a mode whose members all died early is not
/// counted as cheap.
fn member_steps(h: ArrayView1<f64>) -> f64 {
    h.iter().sum()
}

/// ln of the truth's ensemble-mean time-mean spectrum on the spectral horizon's shells
/// (1 ≤ k < N/2, kmax = N/2 being the complete shells, where the truth holds flow).
fn truth_log_spectrum(r: &RolloutFile) -> Vec<f64> {
    let (truth_mean, _) = ensemble_mean(r.truth_spectrum_mean.view());
    window::compared(truth_mean.iter().map(|e| e.ln()).collect(), r.kmax() - 1)
}

/// Mode `i`'s row and its line of the table, from its stable horizons `h[member]`, the truth's
/// log-spectrum and the emulator's wall time per member-step (NaN without an emulator-alone
/// mode: then no cost ratio).
fn row(r: &RolloutFile, i: usize, h: ArrayView1<f64>, reference: &[f64], emulator_rate: f64) -> (ModeRow, String) {
    let name = &r.modes[i];
    let members = r.members;
    let surv = r.diverged_at.row(i).iter().filter(|&&d| d < 0).count() as f64 / members as f64;
    let med = median(h.to_vec());
    let ge = if surv >= 0.5 { "≥ " } else { "" };
    let (lo, hi) = (h.iter().cloned().fold(f64::INFINITY, f64::min), h.iter().cloned().fold(0.0, f64::max));
    let (spectral_median, spectral_cell) = spectral(r, i);
    let spectrum_error = match ensemble_mean(r.spectrum_mean.index_axis(Axis(0), i)) {
        (_, 0) => f64::NAN,
        (mean, _) => window::log_distance(&mean, reference),
    };
    let totals = &r.totals[i];
    let wall = totals.wall_seconds;
    let cost_ratio = wall / member_steps(h) / emulator_rate;
    let cost = if cost_ratio.is_finite() { format!("{cost_ratio:.2}") } else { "n/a".into() };
    let line = format!(
        "| {name} | {ge}{med:.0} | {lo:.0} | {hi:.0} | {spectral_cell} | {spectrum_error:.3} | {:.0} % | {:.3} | {:.2} | {wall:.1} | {cost} |\n",
        surv * 100.0,
        totals.thermalized_fraction,
        totals.passes_per_step,
    );
    let row = ModeRow {
        mode: name.clone(),
        median_stable_horizon: med,
        median_is_lower_bound: surv >= 0.5,
        min_stable_horizon: lo,
        max_stable_horizon: hi,
        median_spectral_horizon: spectral_median,
        time_mean_spectrum_error: spectrum_error,
        surviving_fraction: surv,
        thermalized_fraction: totals.thermalized_fraction,
        denoising_passes_per_step: totals.passes_per_step,
        wall_seconds: wall,
        cost_vs_emulator: cost_ratio,
    };
    (row, line)
}

/// Mode `i`'s median spectral horizon over members (a member that never left the truth's
/// spread counts as the last step), and its cell ("≥" when most never did). The spectral
/// horizons are found when the rollout completes: none in an interim report ("n/a").
fn spectral(r: &RolloutFile, i: usize) -> (f64, String) {
    if r.interim.is_some() {
        return (f64::NAN, "n/a".into());
    }
    let row = r.spectral_horizon.row(i);
    let median = median(row.iter().map(|&d| if d >= 0.0 { d } else { r.last }).collect());
    let never = row.iter().filter(|&&d| d < 0.0).count() * 2 >= r.members;
    let cell = if median.is_nan() { "n/a".into() } else { format!("{}{median:.0}", if never { "≥ " } else { "" }) };
    (median, cell)
}
