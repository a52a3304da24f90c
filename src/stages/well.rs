//! `thermalizer export-well`: `<run.dir>/trajectories.h5` in The Well's layout
//! ([`crate::store::well`]), for `the_well.data.WellDataset` and the tools built on it:
//! `OUT/data/{train,valid,test}/<dataset_name>.hdf5` and `OUT/stats.yaml`.
//!
//! The splits are trajectories.h5's `split`. Members that diverged during generation
//! (`diverged_at ≥ 0`, NaN from then on) are dropped, as training drops them; each file lists
//! them in its root attribute `diverged_members` and names the trajectories.h5 member behind
//! each of its trajectories in `source_members`. Values keep the units of trajectories.h5:
//! Kolmogorov nondimensional, QG PV anomaly in s⁻¹ with x, y in m and time in s. The two QG
//! layers are two scalar fields, `q_upper` and `q_lower`: the loader's fields are functions of
//! the spatial dimensions only, so a layer axis could only be a third spatial dimension (3-D
//! grids, a boundary condition along it), and a 2-component vector field would be rotated with
//! x and y by the loader's augmentations; as two fields they become the two channels in layer
//! order, as the emulator sees them. `stats.yaml` holds the statistics of the training split.

use std::path::{Path, PathBuf};

use crate::config::{same_identity, Config, Stage, SystemKind};
use crate::error::{Context, Error, Result};
use crate::store::resume::StageFiles;
use crate::store::stored_config;
use crate::store::trajectories;
use crate::store::trajectories::{Trajectories, Window, TEST, TRAIN, VALID};
use crate::store::well::{Field, Statistics, WellLayout, WellWriter};

/// The splits by code of trajectories.h5's `split` and by The Well's folder name.
const SPLITS: [(i8, &str); 3] = [(TRAIN, "train"), (VALID, "valid"), (TEST, "test")];

/// The name of `config`'s system (as trajectories.h5's `system`) and its fields.
fn fields(config: &Config) -> (&'static str, Vec<Field>) {
    let var = trajectories::variable(config);
    let field = |name: &str, long_name: String| Field { name: name.into(), long_name, units: var.units.into() };
    match config.system.kind {
        SystemKind::Kolmogorov => ("kolmogorov", vec![field("vorticity", var.long_name.into())]),
        SystemKind::Qg => (
            "qg",
            vec![
                field("q_upper", format!("{} of the upper layer (layer 1)", var.long_name)),
                field("q_lower", format!("{} of the lower layer (layer 2)", var.long_name)),
            ],
        ),
    }
}

/// The constant physical parameters of `config`'s system, named as in trajectories.h5.
fn parameters(config: &Config) -> Vec<(&'static str, f64)> {
    match config.system.kind {
        SystemKind::Kolmogorov => {
            let p = config.kolmogorov();
            vec![
                ("viscosity", p.viscosity),
                ("drag", p.drag),
                ("forcing_wavenumber", p.forcing_wavenumber as f64),
                ("forcing_amplitude", p.forcing_amplitude),
            ]
        }
        SystemKind::Qg => trajectories::qg_parameters(&config.qg()).to_vec(),
    }
}

/// Writes the export into `out` (one process; files appear under their final names only when
/// complete) and returns the files written. Bad input (no or unfinished trajectories.h5, one
/// generated with another config, too few states, no training member left) is refused before
/// anything is written.
pub fn export(config: &Config, out: &Path) -> Result<Vec<PathBuf>> {
    let source = StageFiles::generate(&config.run.dir).output;
    let data = Trajectories::open(&source, config.layers(), config.output_grid())?;
    let bad = |why: String| Error::Input(format!("trajectories file {}: {why}", source.display()));
    let stored = stored_config(&source).map_err(|e| bad(e.to_string()))?;
    if !same_identity(Stage::Generate, &stored, &config.identity(Stage::Generate)) {
        return Err(bad("was generated with another config (system or generate.* differ from this one)".into()));
    }
    if data.samples < 2 {
        return Err(bad(format!(
            "{} stored state per member; The Well's samples take at least 2 (input and output)",
            data.samples
        )));
    }
    if data.members(TRAIN).is_empty() {
        return Err(bad(format!(
            "no training member left: {:?} diverged during generation",
            data.diverged_members(TRAIN)
        )));
    }
    let (time, x, y) = (data.coordinate("time")?, data.coordinate("x")?, data.coordinate("y")?);
    let var = trajectories::variable(config);
    let (system, fields) = fields(config);
    let dataset_name = format!("thermalizer_{system}");
    let parameters = parameters(config);
    for (_, split) in SPLITS {
        let dir = out.join("data").join(split);
        std::fs::create_dir_all(&dir)
            .input_context(|| format!("--out {}: cannot create {}", out.display(), dir.display()))?;
    }

    let mut stats = Statistics::new(fields.len(), data.grid);
    let mut written = Vec::new();
    for (code, split) in SPLITS {
        let (members, diverged) = (data.members(code), data.diverged_members(code));
        if !diverged.is_empty() {
            log::warn!("{split}: members {diverged:?} of {} diverged during generation: dropped", source.display());
        }
        let layout = WellLayout {
            dataset_name: &dataset_name,
            fields: &fields,
            trajectories: members.len(),
            time: &time,
            x: &x,
            y: &y,
            length_units: var.length_units,
            time_units: var.time_units,
            parameters: &parameters,
        };
        let path = out.join("data").join(split).join(format!("{dataset_name}.hdf5"));
        let writer = WellWriter::create(&path, &layout)?;
        let a = writer.attrs();
        let as_i64 = |m: &[usize]| m.iter().map(|&v| v as i64).collect::<Vec<_>>();
        a.set_list::<i64>("source_members", &as_i64(&members))?;
        a.set_list::<i64>("diverged_members", &as_i64(&diverged))?;
        for (name, value) in [
            ("split", split),
            ("system", system),
            ("source", &source.display().to_string()),
            ("thermalizer_version", trajectories::VERSION),
            ("git_revision", trajectories::GIT_REVISION),
        ] {
            a.set_str(name, value)?;
        }
        for (i, &member) in members.iter().enumerate() {
            let states = data.read(Window { member, start: 0 }, data.samples)?;
            writer.write_trajectory(i, states.view())?;
            if code == TRAIN {
                stats.add(states.as_slice().expect("an array just read is in standard layout"));
            }
        }
        if members.is_empty() {
            log::warn!("{split}: no member; {} holds no trajectory", path.display());
        }
        written.push(writer.finish()?);
        log::info!("{split}: {} trajectories of {} states", members.len(), data.samples);
    }

    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    let yaml = stats.to_yaml(&names).map_err(|why| bad(format!("training split: {why}")))?;
    let stats_path = out.join("stats.yaml");
    let partial = crate::store::partial_path(&stats_path);
    std::fs::write(&partial, yaml)
        .and_then(|()| std::fs::rename(&partial, &stats_path))
        .context(|| stats_path.display())?;
    written.push(stats_path);
    Ok(written)
}
