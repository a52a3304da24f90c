//! `trajectories.h5`: the generated ensemble (schema in docs/file-format.md).
//!
//! ```text
//! /vorticity    float32 [member, time, y, x]   Kolmogorov, units "1"; NaN after a member diverged
//! /q            float32 [member, time, layer, y, x]   QG PV anomaly, units "s-1"
//! /member       int64   [member]               dimension scale, 0..M−1
//! /time         float64 [time]                 dimension scale, simulation time of each state
//! /layer        int64   [layer]                dimension scale (QG), 1 upper, 2 lower
//! /y, /x        float64 [N]                    dimension scales, i·L/N (L = 2π, or system.length)
//! /split        int8    [member]               0 train, 1 valid, 2 test (CF flag_values)
//! /diverged_at  int64   [member]               solver step of blow-up, −1 if never (CF flag_values)
//! root attributes: system, every physical parameter, the resolved config (YAML), code version,
//!                  git revision, number of MPI ranks, and CF's (see [`super::cf`])
//! ```
//!
//! The file is netCDF-4 as well: every dimension is a dimension scale, the stored field
//! declares its NaN `_FillValue`, and units are UDUNITS strings.
//!
//! [`TrajectoryWriter`]: the collective writer of `generate`. [`Trajectories`]: the serial reader
//! of every later stage (training, calibration, rollout, export), by window of consecutive states.

mod read;
mod write;

pub use read::{Trajectories, Window};
pub use write::{TrajectoryLayout, TrajectoryWriter};

use crate::config::{Config, SystemKind};
use crate::solver::qg::QgParams;

/// Split codes of the `split` dataset.
pub const TRAIN: i8 = 0;
pub const VALID: i8 = 1;
pub const TEST: i8 = 2;

/// Version of this crate, stored in every file.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git revision of the build (`-dirty` if the tree had changes).
pub const GIT_REVISION: &str = env!("THERMALIZER_GIT_REV");

/// The stored variable of a system: name, layers and units.
pub struct Variable {
    pub name: &'static str,
    pub layers: usize,
    pub long_name: &'static str,
    pub units: &'static str,
    pub description: &'static str,
    /// Units of `x`, `y` and of `time`.
    pub length_units: &'static str,
    pub time_units: &'static str,
    /// Units of kinetic energy per unit mass (length² time⁻²), e.g. of the rollout's spectra.
    pub energy_units: &'static str,
}

/// The variable stored for `config`'s system.
pub fn variable(config: &Config) -> Variable {
    match config.system.kind {
        SystemKind::Kolmogorov => Variable {
            name: "vorticity",
            layers: 1,
            long_name: "vorticity",
            units: "1",
            description: "z-vorticity dv/dx - du/dy, spectrally truncated to the stored grid; NaN after the member diverged",
            length_units: "1",
            time_units: "1",
            energy_units: "1",
        },
        SystemKind::Qg => Variable {
            name: "q",
            layers: 2,
            long_name: "potential vorticity anomaly",
            units: "s-1",
            description: "PV anomaly of the upper (layer 1) and lower (layer 2) layer, coarse-grained to the stored grid (spectral truncation times the coarse model's filter); NaN after the member diverged",
            length_units: "m",
            time_units: "s",
            energy_units: "m2 s-2",
        },
    }
}

/// The QG parameters stored as root attributes, by name, in SI units (pyqg's names; `W` = `L`,
/// `F1` and `F2` derived from the others).
pub fn qg_parameters(p: &QgParams) -> [(&'static str, f64); 11] {
    let (f1, f2) = p.f();
    [
        ("L", p.length),
        ("W", p.length),
        ("beta", p.beta),
        ("rd", p.rd),
        ("delta", p.delta),
        ("U1", p.u1),
        ("U2", p.u2),
        ("rek", p.rek),
        ("F1", f1),
        ("F2", f2),
        ("smagorinsky", p.smagorinsky),
    ]
}
