//! The collective writer of `trajectories.h5(.partial)`.
//!
//! Datasets are contiguous and allocated when the file is created, and all metadata is written
//! then and flushed; afterwards the run writes raw data only (each rank its own members, one
//! collective write per stored time). A crash therefore never corrupts the file's structure,
//! and a resumed run rewrites the samples after its checkpoint with identical values.

use std::ops::Range;
use std::path::Path;

use ndarray::ArrayView4;

use super::{qg_parameters, variable, GIT_REVISION, VERSION};
use crate::config::{Config, Precision, SystemKind};
use crate::error::Result;
use crate::parallel::World;
use crate::solver::qg::SmallScales;
use crate::store::cf;
use crate::store::h5::{Access, File, Hyperslab};

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
    layers: usize,
    variable: &'static str,
}

impl TrajectoryWriter {
    /// Creates the file collectively with its full structure and coordinates, then flushes.
    pub fn create(path: &Path, world: &World, layout: &TrajectoryLayout, config: &Config) -> Result<Self> {
        let f = File::create(path, Access::Parallel(world.comm()))?;
        let var = variable(config);
        let (m, t, n, nl) = (layout.members, layout.samples, layout.grid, var.layers);
        let shape: Vec<usize> = if nl > 1 { vec![m, t, nl, n, n] } else { vec![m, t, n, n] };
        let field = f.create_filled::<f32>(var.name, &shape, f32::NAN)?;
        let member = f.create_dataset::<i64>("member", &[m])?;
        let time = f.create_dataset::<f64>("time", &[t])?;
        let layer = if nl > 1 { Some(f.create_dataset::<i64>("layer", &[nl])?) } else { None };
        let y = f.create_dataset::<f64>("y", &[n])?;
        let x = f.create_dataset::<f64>("x", &[n])?;
        let split = f.create_dataset::<i8>("split", &[m])?;
        let diverged = f.create_dataset::<i64>("diverged_at", &[m])?;
        let mut scales = vec![(&member, "member"), (&time, "time")];
        if let Some(l) = &layer {
            scales.push((l, "layer"));
        }
        scales.extend([(&y, "y"), (&x, "x")]);
        for (i, (ds, name)) in scales.iter().enumerate() {
            ds.make_scale(name)?;
            field.attach_scale(ds, i)?;
        }
        split.attach_scale(&member, 0)?;
        diverged.attach_scale(&member, 0)?;

        let va = field.attrs();
        va.set_str("units", var.units)?;
        va.set_str("long_name", var.long_name)?;
        va.set_str("description", var.description)?;
        for (ds, long_name, units) in [
            (&x, "x coordinate", var.length_units),
            (&y, "y coordinate", var.length_units),
            (&time, "simulation time", var.time_units),
        ] {
            ds.attrs().set_str("units", units)?;
            ds.attrs().set_str("long_name", long_name)?;
        }
        x.attrs().set_str("axis", "X")?;
        y.attrs().set_str("axis", "Y")?;
        if let Some(l) = &layer {
            l.attrs().set_str("long_name", "layer (1: upper, 2: lower)")?;
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
        da.set_str("units", "1")?;
        da.set::<i64>("flag_values", &[-1])?;
        da.set_str("flag_meanings", "never_diverged")?;
        write_root_attributes(&f, config, n, world.size())?;
        cf::write_global(&f.attrs(), config.system.kind, cf::creation_time(world))?;

        // Coordinates: rank 0 writes, the others join the collective call with nothing.
        let root = world.is_root();
        let length = config.domain_length();
        let grid: Vec<f64> = (0..n).map(|i| i as f64 * length / n as f64).collect();
        x.write_from_root(&grid, root)?;
        y.write_from_root(&grid, root)?;
        time.write_from_root(&layout.times, root)?;
        if let Some(l) = &layer {
            l.write_from_root(&(1..=nl as i64).collect::<Vec<_>>(), root)?;
        }
        member.write_from_root(&(0..m as i64).collect::<Vec<_>>(), root)?;
        split.write_from_root(&layout.split, root)?;
        drop((field, member, time, layer, y, x, split, diverged));
        f.flush()?;
        Ok(TrajectoryWriter { file: f, members: world.members(m), grid: n, layers: nl, variable: var.name })
    }

    /// Reopens a partial file (all ranks) to continue writing after a restart.
    pub fn reopen(path: &Path, world: &World, config: &Config) -> Result<Self> {
        let f = File::open(path, Access::Parallel(world.comm()), true)?;
        let grid = f.dataset("x")?.shape()?[0];
        let var = variable(config);
        let members = world.members(config.generate.members);
        Ok(TrajectoryWriter { file: f, members, grid, layers: var.layers, variable: var.name })
    }

    /// Writes stored time `t` of this rank's members, `frame[local member, layer, y, x]` (one
    /// layer for Kolmogorov flow). Collective: every rank calls it for every `t`.
    pub fn write_sample(&self, t: usize, frame: ArrayView4<f32>) -> Result<()> {
        let (n, nl, m) = (self.grid, self.layers, self.members.len());
        assert_eq!(frame.dim(), (m, nl, n, n), "the local members' stored state");
        let frame = frame.as_standard_layout();
        let data = frame.as_slice().expect("standard layout");
        let ds = self.file.dataset(self.variable)?;
        if nl > 1 {
            ds.write(
                Some(&Hyperslab { start: &[self.members.start, t, 0, 0, 0], count: &[m, 1, nl, n, n] }),
                data,
                true,
            )
        } else {
            ds.write(Some(&Hyperslab { start: &[self.members.start, t, 0, 0], count: &[m, 1, n, n] }), data, true)
        }
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

/// Root attributes: the system, every physical parameter, provenance.
fn write_root_attributes(f: &File, config: &Config, stored: usize, ranks: usize) -> Result<()> {
    let s = &config.system;
    let a = f.attrs();
    match s.kind {
        SystemKind::Kolmogorov => {
            let p = config.kolmogorov();
            a.set_str("title", "thermalizer ensemble of 2D Kolmogorov-flow trajectories")?;
            a.set_str("system", "kolmogorov")?;
            a.set_str(
                "equation",
                "dw/dt + u.grad(w) = nu lap(w) - drag w - A k_f cos(k_f y); u = (dpsi/dy, -dpsi/dx), lap(psi) = -w",
            )?;
            a.set::<f64>("viscosity", &[p.viscosity])?;
            a.set::<f64>("reynolds", &[if p.viscosity > 0.0 { 1.0 / p.viscosity } else { f64::INFINITY }])?;
            a.set::<f64>("drag", &[p.drag])?;
            a.set::<i64>("forcing_wavenumber", &[p.forcing_wavenumber as i64])?;
            a.set::<f64>("forcing_amplitude", &[p.forcing_amplitude])?;
        }
        SystemKind::Qg => {
            let p = config.qg();
            a.set_str("title", "thermalizer ensemble of two-layer quasi-geostrophic turbulence")?;
            a.set_str("system", "qg")?;
            a.set_str(
                "equation",
                "dq_i/dt + J(psi_i, q_i) + beta_i dpsi_i/dx + U_i dq_i/dx = -delta_i2 rek lap(psi_2); \
                 q1 = lap(psi1) + F1 (psi2 - psi1), q2 = lap(psi2) + F2 (psi1 - psi2); u = -dpsi/dy, v = dpsi/dx",
            )?;
            for (name, v) in qg_parameters(&p) {
                a.set::<f64>(name, &[v])?;
            }
            a.set_str("dealias", if p.small_scales == SmallScales::TwoThirds { "two_thirds" } else { "exponential" })?;
        }
    }
    a.set::<i64>("grid", &[s.grid as i64])?;
    a.set::<i64>("output_grid", &[stored as i64])?;
    a.set::<f64>("domain_length", &[config.domain_length()])?;
    a.set::<f64>("dt", &[s.dt])?;
    a.set::<i64>("steps_per_sample", &[config.generate.steps_per_sample as i64])?;
    a.set::<i64>("spinup_steps", &[config.spinup_steps() as i64])?;
    a.set_str("initial_condition", &config.generate.initial_condition)?;
    a.set_str("precision", if s.precision == Precision::F32 { "f32" } else { "f64" })?;
    a.set::<i64>("seed", &[config.run.seed as i64])?;
    a.set_str("config", &config.to_yaml())?;
    a.set_str("thermalizer_version", VERSION)?;
    a.set_str("git_revision", GIT_REVISION)?;
    a.set::<i64>("mpi_ranks", &[ranks as i64])?;
    Ok(())
}
