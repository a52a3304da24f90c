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
mod file;
mod markdown;
mod modes;
pub mod paired;
mod plots;
pub mod summary;
pub mod training;

use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};
use crate::store::member_states;
use crate::store::resume::StageFiles;
use file::RolloutFile;
use paired::Pairing;
use summary::{ModeRow, Summary};

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
    let step = member_states::stored_step(&ck).input_context(|| ck.display())?;
    Ok((running, Some(step as f64), run_dir.join("report-interim")))
}

/// Writes the report of `run_dir/rollout.h5` (with `partial`, of the rollout in progress): read
/// the file, draw its figures, tabulate the modes, pair them, write `summary.md` and
/// `summary.json`.
pub fn write(run_dir: &Path, partial: bool) -> Result<Headline> {
    let (path, interim, dir) = source(run_dir, partial)?;
    let r = RolloutFile::read(&path, interim)?;
    std::fs::create_dir_all(&dir).context(|| dir.display())?;
    plots::draw(&r, &dir).context(|| path.display())?;
    let horizons = r.stable_horizons();
    let (modes, table) = modes::table(&r, &horizons);
    let mut pairing = Pairing::new(&r.modes, &horizons);
    let (skill, short_horizon_mse) = markdown::short_horizon_skill(&r);
    let md = markdown::summary(&r, run_dir, &modes, &table, &skill, &mut pairing);
    training::draw(run_dir, &dir)?;
    let summary = Summary {
        source: path.display().to_string(),
        interim: interim.is_some(),
        members: r.members,
        steps: r.last,
        s_init: r.s_init,
        s_init_source: r.s_init_source.clone(),
        modes: modes.clone(),
        paired: pairing.rows,
        short_horizon_mse,
    };
    write_summary(&dir, &summary, md)?;
    Ok(Headline { dir, members: r.members, modes })
}

/// `summary.json` and `summary.md` into `dir`.
fn write_summary(dir: &Path, summary: &Summary, md: String) -> Result<()> {
    let json = serde_json::to_string_pretty(summary).map_err(|e| Error::Failure(e.to_string()))?;
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).context(|| path.display())
    };
    write("summary.json", json + "\n")?;
    write("summary.md", md)
}
