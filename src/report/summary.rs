//! `summary.json`: every number of `summary.md`'s tables, for scripts that collect many runs
//! (`scripts/collect-summaries.py`). Steps are emulator steps; NaN (not available, e.g. the
//! spectral horizon in an interim report) is written as `null`.

use serde::Serialize;

/// The whole summary of one rollout file.
#[derive(Serialize)]
pub struct Summary {
    /// The rollout file reported.
    pub source: String,
    /// True for an interim report (`report --partial`), up to `steps`.
    pub interim: bool,
    pub members: usize,
    /// Emulator steps reported (the rollout length, or the interim report's last checkpoint).
    pub steps: f64,
    /// The level thermalization noises states to, and where it came from (config/calibration).
    pub s_init: f64,
    pub s_init_source: Option<String>,
    pub modes: Vec<ModeRow>,
    /// Paired comparisons of stable horizons, member by member.
    pub paired: Vec<PairRow>,
    /// Median over members of the MSE against the truth at early steps (normalised units).
    pub short_horizon_mse: Vec<SkillRow>,
}

/// One row of the modes table.
#[derive(Clone, Serialize)]
pub struct ModeRow {
    pub mode: String,
    pub median_stable_horizon: f64,
    /// The median is a lower bound: most members were never stopped.
    pub median_is_lower_bound: bool,
    pub min_stable_horizon: f64,
    pub max_stable_horizon: f64,
    pub median_spectral_horizon: f64,
    /// RMS log-spectral error of the ensemble-mean time-mean spectrum against the truth's.
    pub time_mean_spectrum_error: f64,
    pub surviving_fraction: f64,
    pub thermalized_fraction: f64,
    pub denoising_passes_per_step: f64,
    pub wall_seconds: f64,
    /// Wall time per member-step over the emulator-alone mode's.
    pub cost_vs_emulator: f64,
}

/// A paired sign test of mode `a` against mode `b`.
#[derive(Serialize)]
pub struct PairRow {
    pub a: String,
    pub b: String,
    pub a_longer: usize,
    pub b_longer: usize,
    pub ties: usize,
    /// Exact two-sided sign-test p-value.
    pub p: f64,
}

/// Median MSE of `mode` at `step`.
#[derive(Serialize)]
pub struct SkillRow {
    pub mode: String,
    pub step: f64,
    pub median_mse: f64,
}
