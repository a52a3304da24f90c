//! `rollout.*`: long emulator rollouts, alone and thermalized, and what is recorded of them.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A rollout mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The emulator alone.
    Emulator,
    /// The emulator with thermalization after every step (paper.md §5).
    Thermalized,
    /// The emulator with a plain spectral filter after every step (`rollout.filter`): the
    /// baseline that measures what the diffusion model adds over damping the small scales.
    Filtered,
    /// The emulator with the runaway guard after every step (`rollout.guard`; beyond the
    /// paper): the guard's baseline, without diffusion.
    Guarded,
    /// The runaway guard, then thermalization, after every step (beyond the paper).
    GuardedThermalized,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Emulator => "emulator",
            Mode::Thermalized => "thermalized",
            Mode::Filtered => "filtered",
            Mode::Guarded => "guarded",
            Mode::GuardedThermalized => "guarded_thermalized",
        }
    }

    /// Whether the thermalizer acts in this mode.
    pub fn thermalizes(self) -> bool {
        matches!(self, Mode::Thermalized | Mode::GuardedThermalized)
    }

    /// Whether the runaway guard acts in this mode.
    pub fn guarded(self) -> bool {
        matches!(self, Mode::Guarded | Mode::GuardedThermalized)
    }
}

/// `rollout.start_split`: the split a rollout starts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartSplit {
    Validation,
    #[default]
    Test,
}

impl StartSplit {
    /// Its index in the trajectory file's `split` dataset (0 train, 1 validation, 2 test).
    pub fn index(self) -> i8 {
        match self {
            StartSplit::Validation => 1,
            StartSplit::Test => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StartSplit::Validation => "validation",
            StartSplit::Test => "test",
        }
    }
}

/// `rollout.inference_precision`: the floating-point type the emulator and the thermalizer run
/// in during a rollout ([`crate::nn::precision`]). Only the networks: the states between steps,
/// the diffusion schedule's arithmetic, the statistics and the stored outputs stay float32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// The libtorch element type.
    pub fn kind(self) -> tch::Kind {
        match self {
            Precision::F32 => tch::Kind::Float,
            Precision::Bf16 => tch::Kind::BFloat16,
            Precision::F16 => tch::Kind::Half,
        }
    }
}

/// Which checkpoint of a trained model to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weights {
    Best,
    Latest,
}

/// `rollout.s_init`: a noise level, or `auto`, the level below which
/// `rollout.calibration_percentile` % of held-out clean validation states are rated by the
/// classifier (`<run.dir>/thermalizer/calibration.json`, written by `thermalizer calibrate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SInit {
    Auto,
    Level(usize),
}

impl fmt::Display for SInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SInit::Auto => f.write_str("auto"),
            SInit::Level(l) => write!(f, "{l}"),
        }
    }
}

impl Serialize for SInit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SInit::Auto => s.serialize_str("auto"),
            SInit::Level(l) => s.serialize_u64(*l as u64),
        }
    }
}

/// What `rollout.s_init` accepts, for error messages.
const S_INIT_EXPECTED: &str = "a noise level (a non-negative integer) or `auto`";

impl<'de> Deserialize<'de> for SInit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SInit, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = SInit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(S_INIT_EXPECTED)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SInit, E> {
                Ok(SInit::Level(v as usize))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SInit, E> {
                usize::try_from(v).map(SInit::Level).map_err(|_| E::custom(format!("{v}: expected {S_INIT_EXPECTED}")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SInit, E> {
                match v {
                    "auto" => Ok(SInit::Auto),
                    _ => Err(E::custom(format!("{v}: expected {S_INIT_EXPECTED}"))),
                }
            }
        }
        d.deserialize_any(Visit)
    }
}

/// `rollout.small_scale_growth`: after every emulator step, the modes with |k| ≥ `wavenumber`
/// (integer wavenumbers of the stored grid) are multiplied by `1 + rate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrowthConfig {
    pub rate: f64,
    pub wavenumber: f64,
}

/// `rollout.filter`: the exponential filter exp(−strength·(k* − cutoff·π)⁴) for k* > cutoff·π,
/// k* the wavenumber in radians per grid cell ([`crate::rollout::defect`]; pyqg's defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    #[serde(default = "pyqg_cutoff")]
    pub cutoff: f64,
    #[serde(default = "pyqg_strength")]
    pub strength: f64,
}

impl Default for FilterConfig {
    fn default() -> FilterConfig {
        FilterConfig { cutoff: pyqg_cutoff(), strength: pyqg_strength() }
    }
}

/// `rollout.guard`: the runaway guard of the `guarded` and `guarded_thermalized` modes
/// ([`crate::rollout::guard`]). The bound of each spectral shell is the `quantile` of the
/// clean training states' power in it, times `margin`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// In (0, 1]; 1 is the largest power the training states hold in the shell.
    #[serde(default = "one_f")]
    pub quantile: f64,
    /// At least 1.
    #[serde(default = "one_f")]
    pub margin: f64,
}

impl Default for GuardConfig {
    fn default() -> GuardConfig {
        GuardConfig { quantile: 1.0, margin: 1.0 }
    }
}

fn one_f() -> f64 {
    1.0
}

fn pyqg_cutoff() -> f64 {
    0.65
}
fn pyqg_strength() -> f64 {
    23.6
}

/// `rollout.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// Ensemble size. Member j starts from member j mod T of the `start_split` split (T members)
    /// at stored state `start + (j div T)·start_stride`.
    pub members: usize,
    /// Emulator steps.
    pub steps: usize,
    /// Modes to run, in one file.
    #[serde(default = "both_modes")]
    pub modes: Vec<Mode>,
    /// The split whose trajectories give the initial states and the truth: `test` (what a
    /// result reports) or `validation` (a prescreen that chooses settings without looking at
    /// the test members).
    #[serde(default)]
    pub start_split: StartSplit,
    /// Stored state of each member used as the initial condition.
    #[serde(default)]
    pub start: usize,
    /// Offset between initial states taken from the same member (0: each member once).
    #[serde(default)]
    pub start_stride: usize,
    /// Members with a predicted noise level above this are thermalized (a level, or `auto`:
    /// calibrated on held-out clean states, see [`SInit`]).
    #[serde(default = "ten")]
    pub s_init: SInit,
    /// `s_init: auto` puts s_init at this percentile of the classifier's levels for clean
    /// validation states (so that this share of the measure is never thermalized).
    #[serde(default = "ninety_five")]
    pub calibration_percentile: f64,
    /// Denoising stops at this level.
    #[serde(default = "four")]
    pub s_stop: usize,
    /// A thermalized member whose predicted level exceeds this is stopped (marked diverged).
    #[serde(default = "hundred")]
    pub noise_limit: usize,
    /// Noise the selected members forward to their predicted level before denoising.
    #[serde(default = "yes")]
    pub forward_noise: bool,
    /// A positive control only: a defect planted in the emulator, amplifying its small scales
    /// after every step in every mode ([`crate::rollout::defect`]); unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub small_scale_growth: Option<GrowthConfig>,
    /// The filter of the `filtered` mode (default: pyqg's, cutoff 0.65, strength 23.6).
    #[serde(default)]
    pub filter: FilterConfig,
    /// The runaway guard of the `guarded` and `guarded_thermalized` modes (default: each
    /// shell bounded by the largest power the training states hold in it).
    #[serde(default)]
    pub guard: GuardConfig,
    /// Noise added after every emulator step (normalised units); unset = `emulator.sigma`.
    #[serde(default)]
    pub sigma: Option<f64>,
    /// A member whose largest |value| exceeds this (normalised units), or turns non-finite, is
    /// stopped and marked diverged.
    #[serde(default = "hundred_f")]
    pub blowup: f64,
    /// Members stepped together on a rank.
    #[serde(default = "sixteen")]
    pub batch: usize,
    /// Per-member scalars every this many steps.
    #[serde(default = "one")]
    pub record_every: usize,
    /// Spectra and histograms every this many steps.
    #[serde(default = "hundred")]
    pub spectrum_every: usize,
    /// First emulator step of the stationary window over which spectra and PDFs are averaged in
    /// time; unset = half the rollout (or the last spectrum record, if later).
    #[serde(default)]
    pub average_from: Option<usize>,
    /// Snapshots of the state every this many steps (0: none).
    #[serde(default = "thousand")]
    pub snapshot_every: usize,
    /// Histogram bins over [−histogram_range, histogram_range] (normalised units).
    #[serde(default = "sixty_four")]
    pub histogram_bins: usize,
    #[serde(default = "eight")]
    pub histogram_range: f64,
    /// `best` or `latest` checkpoints of the trained models.
    #[serde(default = "best")]
    pub weights: Weights,
    /// A directory holding `emulator.safetensors` and `thermalizer.safetensors` as written by
    /// `thermalizer export` (e.g. `data/kolmogorov-small`), used instead of the training
    /// checkpoints in `<run.dir>` (`weights` then does not apply, and `pipeline` skips training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<PathBuf>,
    /// A thermalizer file written by `thermalizer export` (e.g.
    /// `data/quickstart/thermalizer.safetensors`), used instead of the training checkpoint
    /// `<run.dir>/thermalizer/` while the emulator is trained as usual (`pipeline` then trains
    /// the emulator only). The paper's workflow: the thermalizer is trained once, on samples of
    /// the invariant measure alone, and applied to any emulator of that system. Not together
    /// with `models`, which holds both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thermalizer_file: Option<PathBuf>,
    /// Use the thermalizer's EMA weights (when it has them).
    #[serde(default = "yes")]
    pub ema: bool,
    /// `f32` (default), `bf16` or `f16`: the type the networks run in (see [`Precision`]).
    #[serde(default)]
    pub inference_precision: Precision,
}

impl RolloutConfig {
    /// Step of the last spectrum record.
    pub fn last_spectrum_step(&self) -> usize {
        self.steps / self.spectrum_every.max(1) * self.spectrum_every
    }

    /// First step of the time-averaging window: `average_from`, by default half the rollout
    /// (but no later than the last spectrum record).
    pub fn window_start(&self) -> usize {
        self.average_from.unwrap_or((self.steps / 2).min(self.last_spectrum_step()))
    }
}

fn both_modes() -> Vec<Mode> {
    vec![Mode::Emulator, Mode::Thermalized]
}
fn ten() -> SInit {
    SInit::Level(10)
}
fn ninety_five() -> f64 {
    95.0
}
fn four() -> usize {
    4
}
fn hundred() -> usize {
    100
}
fn hundred_f() -> f64 {
    100.0
}
fn yes() -> bool {
    true
}
fn sixteen() -> usize {
    16
}
fn one() -> usize {
    1
}
fn thousand() -> usize {
    1000
}
fn sixty_four() -> usize {
    64
}
fn eight() -> f64 {
    8.0
}
fn best() -> Weights {
    Weights::Best
}
