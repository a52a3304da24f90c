//! `trajectories.h5`: the generated ensemble (schema in docs/file-format.md).
//!
//! ```text
//! /vorticity    float32 [member, time, y, x]   units "1"; NaN after a member diverged
//! /member       int64   [member]               dimension scale, 0..M−1
//! /time         float64 [time]                 dimension scale, simulation time of each state
//! /y, /x        float64 [N]                    dimension scales, i·2π/N
//! /split        int8    [member]               0 train, 1 valid, 2 test (CF flag_values)
//! /diverged_at  int64   [member]               solver step of blow-up, −1 if never
//! root attributes: system, every physical parameter, the resolved config (YAML), code version,
//!                  git revision, number of MPI ranks
//! ```
//!
//! Datasets are contiguous and allocated when the file is created, and all metadata is written
//! then and flushed; afterwards the run writes raw data only (each rank its own members, one
//! collective write per stored time). A crash therefore never corrupts the file's structure,
//! and a resumed run rewrites the samples after its checkpoint with identical values.

use std::ops::Range;
use std::path::Path;

use super::h5::{Access, File, Hyperslab, Result};
use crate::config::Config;
use crate::parallel::World;

/// Everything about the file that is fixed when it is created.
pub struct TrajectoryLayout {
    pub members: usize,
    pub samples: usize,
    /// Stored grid points per side.
    pub grid: usize,
    /// Simulation time of each stored state.
    pub times: Vec<f64>,
    /// Split of each member (0 train, 1 valid, 2 test).
    pub split: Vec<i8>,
}

/// An open `trajectories.h5(.partial)` being written by all ranks.
pub struct TrajectoryWriter {
    file: File,
    members: Range<usize>,
    grid: usize,
}

/// Version of this crate, stored in every file.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git revision of the build (`-dirty` if the tree had changes).
pub const GIT_REVISION: &str = env!("THERMALIZER_GIT_REV");

impl TrajectoryWriter {
    /// Creates the file collectively with its full structure and coordinates, then flushes.
    pub fn create(path: &Path, world: &World, layout: &TrajectoryLayout, config: &Config) -> Result<Self> {
        let f = File::create(path, Access::Parallel(world.comm()))?;
        let (m, t, n) = (layout.members, layout.samples, layout.grid);
        let vort = f.create_dataset::<f32>("vorticity", &[m, t, n, n])?;
        let member = f.create_dataset::<i64>("member", &[m])?;
        let time = f.create_dataset::<f64>("time", &[t])?;
        let y = f.create_dataset::<f64>("y", &[n])?;
        let x = f.create_dataset::<f64>("x", &[n])?;
        let split = f.create_dataset::<i8>("split", &[m])?;
        let diverged = f.create_dataset::<i64>("diverged_at", &[m])?;
        for (ds, name) in [(&member, "member"), (&time, "time"), (&y, "y"), (&x, "x")] {
            ds.make_scale(name)?;
        }
        for (i, s) in [&member, &time, &y, &x].into_iter().enumerate() {
            vort.attach_scale(s, i)?;
        }
        split.attach_scale(&member, 0)?;
        diverged.attach_scale(&member, 0)?;

        let va = vort.attrs();
        va.set_str("units", "1")?;
        va.set_str("long_name", "vorticity")?;
        va.set_str(
            "description",
            "z-vorticity dv/dx - du/dy, spectrally truncated to the stored grid; NaN after the member diverged",
        )?;
        for (ds, long_name) in [(&x, "x coordinate"), (&y, "y coordinate"), (&time, "simulation time")] {
            ds.attrs().set_str("units", "1")?;
            ds.attrs().set_str("long_name", long_name)?;
        }
        member.attrs().set_str("long_name", "ensemble member index")?;
        let sa = split.attrs();
        sa.set_str("long_name", "data split of the member")?;
        sa.set::<i8>("flag_values", &[0, 1, 2])?;
        sa.set_str("flag_meanings", "train valid test")?;
        let da = diverged.attrs();
        da.set_str(
            "long_name",
            "solver step (counted from the initial condition) at which the member blew up; -1: never",
        )?;

        let s = &config.system;
        let a = f.attrs();
        a.set_str("title", "thermalizer ensemble of 2D Kolmogorov-flow trajectories")?;
        a.set_str("system", "kolmogorov")?;
        a.set_str(
            "equation",
            "dw/dt + u.grad(w) = nu lap(w) - drag w - A k_f cos(k_f y); u = (dpsi/dy, -dpsi/dx), lap(psi) = -w",
        )?;
        a.set::<i64>("grid", &[s.grid as i64])?;
        a.set::<i64>("output_grid", &[n as i64])?;
        a.set::<f64>("domain_length", &[2.0 * std::f64::consts::PI])?;
        a.set::<f64>("dt", &[s.dt])?;
        a.set::<f64>("viscosity", &[s.viscosity])?;
        a.set::<f64>("reynolds", &[if s.viscosity > 0.0 { 1.0 / s.viscosity } else { f64::INFINITY }])?;
        a.set::<f64>("drag", &[s.drag])?;
        a.set::<i64>("forcing_wavenumber", &[s.forcing_wavenumber as i64])?;
        a.set::<f64>("forcing_amplitude", &[s.forcing_amplitude])?;
        a.set::<i64>("steps_per_sample", &[config.generate.steps_per_sample as i64])?;
        a.set::<i64>("spinup_steps", &[config.spinup_steps() as i64])?;
        a.set_str("initial_condition", &config.generate.initial_condition)?;
        a.set_str(
            "precision",
            match s.precision {
                crate::config::Precision::F64 => "f64",
                crate::config::Precision::F32 => "f32",
            },
        )?;
        a.set::<i64>("seed", &[config.run.seed as i64])?;
        a.set_str("config", &config.to_yaml())?;
        a.set_str("thermalizer_version", VERSION)?;
        a.set_str("git_revision", GIT_REVISION)?;
        a.set::<i64>("mpi_ranks", &[world.size() as i64])?;

        // Coordinates: rank 0 writes, the others join the collective call with nothing.
        let root = world.is_root();
        let grid: Vec<f64> = (0..n).map(|i| i as f64 * 2.0 * std::f64::consts::PI / n as f64).collect();
        x.write_from_root(&grid, root)?;
        y.write_from_root(&grid, root)?;
        time.write_from_root(&layout.times, root)?;
        member.write_from_root(&(0..m as i64).collect::<Vec<_>>(), root)?;
        split.write_from_root(&layout.split, root)?;
        drop((vort, member, time, y, x, split, diverged));
        f.flush()?;
        Ok(TrajectoryWriter { file: f, members: world.members(m), grid: n })
    }

    /// Reopens a partial file (all ranks) to continue writing after a restart.
    pub fn reopen(path: &Path, world: &World, members: usize) -> Result<Self> {
        let f = File::open(path, Access::Parallel(world.comm()), true)?;
        let grid = f.dataset("x")?.shape()?[0];
        Ok(TrajectoryWriter { file: f, members: world.members(members), grid })
    }

    /// Writes stored time `t` of this rank's members (`data`: local members × N × N, f32).
    /// Collective: every rank calls it for every `t`.
    pub fn write_sample(&self, t: usize, data: &[f32]) -> Result<()> {
        let n = self.grid;
        let ds = self.file.dataset("vorticity")?;
        ds.write(
            Some(&Hyperslab { start: &[self.members.start, t, 0, 0], count: &[self.members.len(), 1, n, n] }),
            data,
            true,
        )
    }

    /// Flushes written data to storage (collective).
    pub fn flush(&self) -> Result<()> {
        self.file.flush()
    }

    /// Writes this rank's `diverged_at` values and closes the file (collective).
    pub fn finish(self, diverged_at: &[i64]) -> Result<()> {
        let ds = self.file.dataset("diverged_at")?;
        ds.write(Some(&Hyperslab { start: &[self.members.start], count: &[self.members.len()] }), diverged_at, true)?;
        drop(ds);
        self.file.close()
    }
}

/// The resolved config stored in a finished or partial trajectories file.
pub fn stored_config(path: &Path) -> Result<String> {
    File::open(path, Access::Serial, false)?.attrs().get_str("config")
}
