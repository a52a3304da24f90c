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
pub mod rollout;
pub mod train;
pub mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};
use crate::solver::kolmogorov::KolmogorovParams;
use crate::solver::qg::{QgParams, SmallScales};

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
    /// The emulator and its training (`train emulator`); absent = the paper's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulator: Option<train::EmulatorConfig>,
    /// The thermalizer and its training (`train thermalizer`); absent = the paper's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thermalizer: Option<train::ThermalizerConfig>,
    /// Long rollouts of the trained models (`rollout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<rollout::RolloutConfig>,
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
    /// Threads per rank: 0 = `OMP_NUM_THREADS` when set, else all cores when run as one rank and
    /// 1 per rank under mpirun.
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    /// Forced 2D Navier–Stokes in vorticity form (jax-cfd's ForcedNavierStokes2D).
    Kolmogorov,
    /// Two-layer quasi-geostrophic turbulence (pyqg's QGModel).
    Qg,
}

/// Floating-point precision of the solver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F64,
    F32,
}

/// `system.*`: the PDE, its parameters and its grid. Keys of the other system stay unset.
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
    /// Solver time step (nondimensional for Kolmogorov, seconds for QG).
    pub dt: f64,
    /// `f64` (default) or `f32`.
    #[serde(default)]
    pub precision: Precision,
    /// Kolmogorov: kinematic viscosity `ν = 1/Re`.
    #[serde(default)]
    pub viscosity: Option<f64>,
    /// Kolmogorov: linear drag coefficient `α`.
    #[serde(default)]
    pub drag: Option<f64>,
    /// Kolmogorov: forcing wavenumber `k_f` (integer).
    #[serde(default)]
    pub forcing_wavenumber: Option<usize>,
    /// Kolmogorov: amplitude `A` of the body force `A sin(k_f y) x̂` (default 1).
    #[serde(default)]
    pub forcing_amplitude: Option<f64>,
    /// QG: parameter set the unset QG keys are taken from, `eddy` (default) or `jet`.
    #[serde(default)]
    pub preset: Option<QgPreset>,
    /// QG: domain side `L` (m).
    #[serde(default)]
    pub length: Option<f64>,
    /// QG: planetary vorticity gradient `β` (m⁻¹ s⁻¹).
    #[serde(default)]
    pub beta: Option<f64>,
    /// QG: deformation radius `rd` (m).
    #[serde(default)]
    pub rd: Option<f64>,
    /// QG: layer-depth ratio `δ = H1/H2`.
    #[serde(default)]
    pub delta: Option<f64>,
    /// QG: upper-layer background zonal velocity `U1` (m/s).
    #[serde(default)]
    pub u1: Option<f64>,
    /// QG: lower-layer background zonal velocity `U2` (m/s).
    #[serde(default)]
    pub u2: Option<f64>,
    /// QG: bottom drag `r_ek` (s⁻¹).
    #[serde(default)]
    pub rek: Option<f64>,
    /// QG: small-scale treatment, `exponential` (pyqg's filter, default) or `two_thirds`.
    #[serde(default)]
    pub dealias: Option<Dealias>,
    /// QG: Smagorinsky constant `C_S` (0 = off).
    #[serde(default)]
    pub smagorinsky: Option<f64>,
}

/// Whether `stored`, the identity YAML that an output or checkpoint of `stage` was written with
/// (possibly by an older version of this program), describes the same run as `current`, this
/// config's [`Config::identity`] for `stage`. The stored YAML is read with this version's
/// defaults and its identity derived again, so a key added since, whose default keeps the old
/// behaviour, does not make an older run look different (a long run resumes across upgrades);
/// a changed value, or a key this version no longer knows, does.
pub fn same_identity(stage: Stage, stored: &str, current: &str) -> bool {
    stored == current || serde_saphyr::from_str::<Config>(stored).is_ok_and(|c| c.identity(stage) == current)
}

/// A stage whose output is matched against the config (resume, "already complete").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Generate,
    TrainEmulator,
    TrainThermalizer,
    Rollout,
}

/// Named QG parameter sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QgPreset {
    /// pyqg's QGModel defaults at L = 1e6 m (the paper's data).
    Eddy,
    /// torch_qg's jet configuration.
    Jet,
}

/// QG small-scale treatment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Dealias {
    /// pyqg's exponential spectral filter.
    Exponential,
    /// The 2/3-rule mask (torch_qg).
    TwoThirds,
}

impl Dealias {
    /// The solver's treatment of this name.
    pub fn small_scales(self) -> SmallScales {
        match self {
            Dealias::Exponential => SmallScales::Exponential,
            Dealias::TwoThirds => SmallScales::TwoThirds,
        }
    }
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
    /// Every error is an input error naming the file or the `--set` and the key.
    pub fn load(path: &Path, sets: &[String]) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).input_context(|| format!("cannot read config file {}", path.display()))?;
        let parsed: Config = serde_saphyr::from_str(&text)
            .map_err(|e| parse_message(&e.to_string(), &text))
            .input_context(|| path.display())?;
        let mut config = overrides::apply(parsed, sets)?;
        validate::check(&config).input_context(|| path.display())?;
        config.resolve_defaults();
        Ok(config)
    }

    /// Fills the unset keys of the configured system with their defaults (QG keys from the
    /// preset), so that the stored config is complete.
    pub fn resolve_defaults(&mut self) {
        self.emulator.get_or_insert_with(Default::default);
        self.thermalizer.get_or_insert_with(Default::default);
        let s = &mut self.system;
        match s.kind {
            SystemKind::Kolmogorov => {
                s.forcing_amplitude.get_or_insert(1.0);
            }
            SystemKind::Qg => {
                let p = match s.preset.get_or_insert(QgPreset::Eddy) {
                    QgPreset::Eddy => QgParams::eddy(),
                    QgPreset::Jet => QgParams::jet(),
                };
                s.length.get_or_insert(p.length);
                s.beta.get_or_insert(p.beta);
                s.rd.get_or_insert(p.rd);
                s.delta.get_or_insert(p.delta);
                s.u1.get_or_insert(p.u1);
                s.u2.get_or_insert(p.u2);
                s.rek.get_or_insert(p.rek);
                s.dealias.get_or_insert(Dealias::Exponential);
                s.smagorinsky.get_or_insert(0.0);
            }
        }
    }

    /// Kolmogorov parameters (after [`Config::load`]; panics if the system is not Kolmogorov).
    pub fn kolmogorov(&self) -> KolmogorovParams {
        let s = &self.system;
        KolmogorovParams {
            viscosity: s.viscosity.expect("validated"),
            drag: s.drag.expect("validated"),
            forcing_wavenumber: s.forcing_wavenumber.expect("validated"),
            forcing_amplitude: s.forcing_amplitude.unwrap_or(1.0),
        }
    }

    /// QG parameters (after [`Config::load`]; panics if the system is not QG).
    pub fn qg(&self) -> QgParams {
        let s = &self.system;
        QgParams {
            length: s.length.expect("resolved"),
            beta: s.beta.expect("resolved"),
            rd: s.rd.expect("resolved"),
            delta: s.delta.expect("resolved"),
            u1: s.u1.expect("resolved"),
            u2: s.u2.expect("resolved"),
            rek: s.rek.expect("resolved"),
            small_scales: s.dealias.expect("resolved").small_scales(),
            smagorinsky: s.smagorinsky.expect("resolved"),
        }
    }

    /// QG parameters with unset keys taken from the preset (before or after resolution).
    pub fn qg_or_preset(&self) -> QgParams {
        let mut c = self.clone();
        c.resolve_defaults();
        c.qg()
    }

    /// Side of the periodic domain (2π for Kolmogorov, `L` for QG).
    pub fn domain_length(&self) -> f64 {
        match self.system.kind {
            SystemKind::Kolmogorov => 2.0 * std::f64::consts::PI,
            SystemKind::Qg => self.system.length.unwrap_or(QgParams::eddy().length),
        }
    }

    /// Stored fields per state (1 vorticity; 2 PV layers).
    pub fn layers(&self) -> usize {
        match self.system.kind {
            SystemKind::Kolmogorov => 1,
            SystemKind::Qg => 2,
        }
    }

    /// The resolved configuration as YAML (stored in every output).
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("config serialises")
    }

    /// The emulator section (after [`Config::load`], always present).
    pub fn emulator(&self) -> &train::EmulatorConfig {
        self.emulator.as_ref().expect("resolved")
    }

    /// The thermalizer section (after [`Config::load`], always present).
    pub fn thermalizer(&self) -> &train::ThermalizerConfig {
        self.thermalizer.as_ref().expect("resolved")
    }

    /// What `stage`'s output depends on, as YAML: the resolved config with the run-time keys
    /// (run directory, threads, checkpoint and log cadence) reset and the sections that `stage`
    /// does not read removed. Two runs with the same identity produce the same output;
    /// checkpoints and finished outputs are matched against it, so changing e.g. `rollout.*`
    /// leaves the trajectories and the trained models valid, and a run directory can be moved
    /// or its files copied into another.
    pub fn identity(&self, stage: Stage) -> String {
        let mut c = self.clone();
        c.run.dir = PathBuf::new();
        c.run.threads = 0;
        c.run.checkpoint_interval = 0.0;
        c.run.log_interval = 0.0;
        let (emulator, thermalizer, rollout) = match stage {
            Stage::Generate => (false, false, false),
            Stage::TrainEmulator => (true, false, false),
            Stage::TrainThermalizer => (false, true, false),
            Stage::Rollout => (true, true, true),
        };
        if !emulator {
            c.emulator = None;
        }
        if !thermalizer {
            c.thermalizer = None;
        }
        if !rollout {
            c.rollout = None;
        }
        c.to_yaml()
    }

    /// Threads of each rank: `run.threads`; when 0, a positive `OMP_NUM_THREADS` (how jobs that
    /// share a node say how many cores each process may use), else all cores for a single rank
    /// and 1 per rank under a multi-rank launch.
    pub fn threads_per_rank(&self, ranks: usize) -> usize {
        let from_env = std::env::var("OMP_NUM_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok());
        match (self.run.threads, from_env) {
            (0, Some(t)) if t > 0 => t,
            (0, _) if ranks > 1 => 1,
            (0, _) => std::thread::available_parallelism().map_or(1, |v| v.get()),
            (t, _) => t,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_written_before_a_key_with_a_default_existed_still_matches() {
        let c = Config::load(Path::new("configs/quickstart.yaml"), &[]).expect("quickstart config");
        let current = c.identity(Stage::Rollout);
        // An older version without `rollout.histogram_bins` (default 64) wrote no such line.
        let line = current.lines().find(|l| l.trim_start().starts_with("histogram_bins: 64")).expect("the key");
        let older = current.replacen(&format!("{line}\n"), "", 1);
        assert_ne!(older, current);
        assert!(same_identity(Stage::Rollout, &older, &current));
        // A changed value, or a key this version does not know, is another run.
        let changed = current.replacen(line, &line.replace("64", "32"), 1);
        assert!(!same_identity(Stage::Rollout, &changed, &current));
        let unknown = current.replacen(&format!("{line}\n"), &format!("{line}\n  future_key: 1\n"), 1);
        assert!(!same_identity(Stage::Rollout, &unknown, &current));
    }

    #[test]
    fn the_run_directory_is_not_part_of_an_identity() {
        let c = Config::load(Path::new("configs/quickstart.yaml"), &[]).expect("quickstart config");
        let mut moved = c.clone();
        moved.run.dir = PathBuf::from("elsewhere/run1");
        assert_eq!(c.identity(Stage::Generate), moved.identity(Stage::Generate));
        // A stored identity that names a run directory still matches: `run.dir` is not compared.
        let mut older = serde_saphyr::from_str::<Config>(&c.identity(Stage::Generate)).expect("identity parses");
        older.run.dir = PathBuf::from("runs/quickstart");
        assert!(same_identity(Stage::Generate, &older.to_yaml(), &moved.identity(Stage::Generate)));
    }
}
