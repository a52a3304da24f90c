//! The thermalization threshold s_init calibrated on held-out clean states.
//!
//! The classifier of a finite-trained thermalizer rates states of the invariant measure
//! (noise level 0 in truth) at some spread of levels. A rollout thermalizes a member whose
//! predicted level exceeds s_init, so an s_init below most clean states' levels denoises states
//! that need nothing. Calibration rates every stored state of the validation split (never used
//! in training, never rolled out) and puts s_init at a percentile of those levels: at 95, 5 % of
//! the measure's states are thermalized, and no more. The test split's states are rated too,
//! as a check that the threshold carries over, never to choose it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// `<run.dir>/thermalizer/calibration.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Clean validation states rated (every stored state of every validation member).
    pub states: u64,
    /// How many of them the classifier rated at each level 0..T−1.
    pub counts: Vec<u64>,
    /// `rollout.calibration_percentile`.
    pub percentile: f64,
    /// The smallest level at or below which `percentile` % of the validation states lie.
    pub s_init: usize,
    /// Clean test states rated, and their counts per level (a check, not used to choose s_init).
    pub test_states: u64,
    pub test_counts: Vec<u64>,
    /// Share of the test states rated above s_init: states of the measure a rollout would
    /// thermalize.
    pub test_above: f64,
    /// The classifier on validation states noised to known levels 0..=20 (where the thresholds
    /// live): how well it can tell them apart.
    #[serde(default)]
    pub noised: Vec<NoisedLevel>,
    /// The thermalizer file rated with and its modification time (seconds since the Unix
    /// epoch), so that a calibration is not reused for a retrained model.
    pub model: String,
    pub model_modified: u64,
    /// Revision of the code that wrote it.
    pub git_revision: String,
}

/// How the classifier rates validation states noised to level `level`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoisedLevel {
    pub level: usize,
    /// States rated.
    pub states: u64,
    /// Median predicted level.
    pub median: usize,
    /// Share predicted within ±2 levels of `level`.
    pub within_2: f64,
}

impl NoisedLevel {
    /// The summary of `counts` (how many states were rated at each level) for true level `level`.
    pub fn of(level: usize, counts: &[u64]) -> NoisedLevel {
        let states = counts.iter().sum();
        let near: u64 = counts.iter().enumerate().filter(|(l, _)| l.abs_diff(level) <= 2).map(|(_, n)| n).sum();
        NoisedLevel {
            level,
            states,
            median: level_at_percentile(counts, 50.0),
            within_2: near as f64 / states.max(1) as f64,
        }
    }
}

/// The smallest level L with at least `percentile` % of `counts` at levels ≤ L.
pub fn level_at_percentile(counts: &[u64], percentile: f64) -> usize {
    let total: u64 = counts.iter().sum();
    // How many states must lie at or below the level (the 1e-9 keeps 95 % of 1200 at 1140).
    let needed = (percentile / 100.0 * total as f64 - 1e-9).ceil().max(0.0) as u64;
    let mut below = 0;
    for (level, &n) in counts.iter().enumerate() {
        below += n;
        if below >= needed {
            return level;
        }
    }
    counts.len().saturating_sub(1)
}

/// Share of `counts` at levels above `level`.
pub fn share_above(counts: &[u64], level: usize) -> f64 {
    let total: u64 = counts.iter().sum();
    let above: u64 = counts.iter().skip(level + 1).sum();
    above as f64 / total.max(1) as f64
}

impl Calibration {
    /// Reads `path`; errors (failures) name the file.
    pub fn read(path: &Path) -> Result<Calibration> {
        let text = std::fs::read_to_string(path).context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Failure(format!("{}: not a calibration file ({e})", path.display())))
    }

    /// Writes `path` whole or not at all (a temporary file renamed into place).
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("calibration serialises");
        std::fs::write(&tmp, text + "\n").context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).context(|| format!("cannot rename {}", tmp.display()))
    }

    /// Whether this calibration was made with the model file `model` as it is now, at `percentile`.
    pub fn is_for(&self, model: &str, modified: u64, percentile: f64) -> bool {
        self.model == model && self.model_modified == modified && self.percentile == percentile
    }

    /// The noised-state summary at a few levels, for logs and the report ("" when not measured).
    pub fn describe_noised(&self) -> String {
        let shown: Vec<&NoisedLevel> =
            self.noised.iter().filter(|n| [0, 2, 5, 10, 15, 20].contains(&n.level)).collect();
        if shown.is_empty() {
            return String::new();
        }
        let list = |f: &dyn Fn(&NoisedLevel) -> String| shown.iter().map(|n| f(n)).collect::<Vec<_>>().join(", ");
        format!(
            "validation states noised to level {} are rated {} (median), within ±2 levels for {} %",
            list(&|n| n.level.to_string()),
            list(&|n| n.median.to_string()),
            list(&|n| format!("{:.0}", n.within_2 * 100.0))
        )
    }

    /// What the level is, for logs and the report: from what, and how it carries over to the
    /// test states.
    pub fn describe(&self) -> String {
        format!(
            "the {}th percentile of the classifier's levels for {} clean validation states (median {}); \
             {:.1} % of {} clean test states are rated above it",
            self.percentile,
            self.states,
            level_at_percentile(&self.counts, 50.0),
            self.test_above * 100.0,
            self.test_states
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_holds_the_percentile_and_no_lower_level_does() {
        // 20 states: 10 at level 0, 5 at 1, 3 at 2, 2 at 7.
        let counts = [10, 5, 3, 0, 0, 0, 0, 2, 0];
        assert_eq!(level_at_percentile(&counts, 50.0), 0); // 10 of 20 at level 0
        assert_eq!(level_at_percentile(&counts, 51.0), 1);
        assert_eq!(level_at_percentile(&counts, 75.0), 1); // 15 of 20
        assert_eq!(level_at_percentile(&counts, 90.0), 2); // 18 of 20
        assert_eq!(level_at_percentile(&counts, 91.0), 7);
        assert_eq!(level_at_percentile(&counts, 100.0), 7);
        assert_eq!(share_above(&counts, 2), 0.1);
        assert_eq!(share_above(&counts, 7), 0.0);
        // 95 % of 1200 is 1140 states exactly, whatever the float rounding of 0.95 · 1200.
        let mut big = vec![0u64; 10];
        big[3] = 1140;
        big[9] = 60;
        assert_eq!(level_at_percentile(&big, 95.0), 3);
    }

    #[test]
    fn noised_summary_counts_the_states_within_two_levels() {
        let n = NoisedLevel::of(3, &[1, 1, 2, 2, 0, 1, 3]);
        assert_eq!((n.states, n.median), (10, 3));
        assert_eq!(n.within_2, 0.6); // levels 1..=5: 1 + 2 + 2 + 0 + 1
    }
}
