//! The experiment configuration: one YAML file for all stages, typed and strict.
//!
//! Every struct denies unknown keys, so a typo is an error with its line and column rather than
//! a silently ignored setting. Loading is three steps, each with errors that name the file or
//! key and the offending value:
//! 1. parse the YAML into [`Config`] (serde-saphyr: syntax, unknown keys, wrong types);
//! 2. apply `--set dotted.key=VALUE` overrides ([`overrides`]);
//! 3. check the values' meaning ([`validate`]: signs, grid sizes, CFL estimate).
//!
//! The resolved configuration ([`Config::to_yaml`]) is stored in every output file.

pub mod overrides;
pub mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A configuration problem, already phrased for the user (one line, names the key/file).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The whole experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where outputs go, seeds, threads, checkpoint and log cadence.
    pub run: RunConfig,
    /// The dynamical system and its discretisation.
    pub system: SystemConfig,
    /// Ensemble generation (the `generate` stage).
    pub generate: GenerateConfig,
}

/// `run.*`: settings of the run rather than of the physics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Directory holding every output of the experiment (created if missing).
    pub dir: PathBuf,
    /// Base seed; each member's random stream is derived from (seed, purpose, member index).
    #[serde(default)]
    pub seed: u64,
    /// Threads per rank: 0 = all cores when run as one rank, 1 per rank under mpirun.
    #[serde(default)]
    pub threads: usize,
    /// Seconds between periodic checkpoints (0 = after every stored sample).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: f64,
    /// Seconds between progress lines in the log.
    #[serde(default = "default_log_interval")]
    pub log_interval: f64,
}

fn default_checkpoint_interval() -> f64 {
    600.0
}
fn default_log_interval() -> f64 {
    10.0
}

/// Which system is simulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    /// Forced 2D Navier–Stokes in vorticity form (jax-cfd's ForcedNavierStokes2D).
    Kolmogorov,
    /// Two-layer quasi-geostrophic turbulence (pyqg's QGModel).
    Qg,
}

/// Floating-point precision of the solver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F64,
    F32,
}

/// `system.*`: the PDE, its parameters and its grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// `kolmogorov` or `qg`.
    pub kind: SystemKind,
    /// Solver grid points per side `N` (even, ≥ 8).
    pub grid: usize,
    /// Stored grid points per side (≤ `grid`, even); unset = `grid`.
    #[serde(default)]
    pub output_grid: Option<usize>,
    /// Solver time step (nondimensional time units for Kolmogorov).
    pub dt: f64,
    /// Kinematic viscosity `ν = 1/Re`.
    pub viscosity: f64,
    /// Linear drag coefficient `α`.
    pub drag: f64,
    /// Forcing wavenumber `k_f` (integer).
    pub forcing_wavenumber: usize,
    /// Amplitude `A` of the body force `A sin(k_f y) x̂`.
    #[serde(default = "one")]
    pub forcing_amplitude: f64,
    /// `f64` (default) or `f32`.
    #[serde(default)]
    pub precision: Precision,
}

fn one() -> f64 {
    1.0
}

/// `generate.*`: the ensemble to simulate and store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    /// Number of ensemble members (trajectories).
    pub members: usize,
    /// Stored states per member.
    pub samples: usize,
    /// Solver steps between stored states.
    pub steps_per_sample: usize,
    /// Solver steps before the first stored state (ignored for a file initial condition).
    #[serde(default)]
    pub spinup_steps: usize,
    /// `random` (filtered random velocity field) or the path of an HDF5 file with
    /// `vorticity[member, y, x]` on the solver grid.
    #[serde(default = "random")]
    pub initial_condition: String,
    /// Largest speed of the random initial velocity field.
    #[serde(default = "seven")]
    pub ic_max_velocity: f64,
    /// Wavenumber at which the random initial field's spectrum peaks.
    #[serde(default = "four")]
    pub ic_peak_wavenumber: f64,
    /// Fractions of members in the train / valid / test splits (the test split takes the rest).
    #[serde(default)]
    pub split: SplitConfig,
    /// A member whose CFL number `max|u|·dt/dx` exceeds this is stopped and marked diverged.
    #[serde(default = "two")]
    pub max_cfl: f64,
}

fn random() -> String {
    "random".to_string()
}
fn seven() -> f64 {
    7.0
}
fn four() -> f64 {
    4.0
}
fn two() -> f64 {
    2.0
}

/// `generate.split.*`: fractions of members per split, assigned in member order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    pub train: f64,
    pub valid: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig { train: 0.8, valid: 0.1 }
    }
}

impl Config {
    /// Reads, overrides and validates `path`: the one entry point of every stage.
    pub fn load(path: &Path, sets: &[String]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        let parsed: Config = serde_saphyr::from_str(&text)
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), parse_message(&e.to_string(), &text))))?;
        let config = overrides::apply(parsed, sets)?;
        validate::check(&config).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))?;
        Ok(config)
    }

    /// The resolved configuration as YAML (stored in every output).
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("config serialises")
    }

    /// Stored grid points per side.
    pub fn output_grid(&self) -> usize {
        self.system.output_grid.unwrap_or(self.system.grid)
    }

    /// Whether the initial condition comes from a file.
    pub fn ic_file(&self) -> Option<PathBuf> {
        match self.generate.initial_condition.as_str() {
            "random" => None,
            p => Some(PathBuf::from(p)),
        }
    }

    /// Solver steps before the first stored state (0 with a file initial condition).
    pub fn spinup_steps(&self) -> usize {
        if self.ic_file().is_some() {
            0
        } else {
            self.generate.spinup_steps
        }
    }
}

/// One line from a parser message: its first line (without the snippet that follows), with
/// the offending source line quoted, e.g. `line 11 column 9: invalid u64 (at "grid: thirty-two")`.
fn parse_message(message: &str, source: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let first = first.split(" --> ").next().unwrap_or(first).trim();
    let line_no = first
        .strip_prefix("line ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok());
    match line_no.and_then(|n| source.lines().nth(n.wrapping_sub(1))) {
        Some(src) => format!("{first} (at \"{}\")", src.trim()),
        None => first.to_string(),
    }
}
