//! The Well's layout (PolymathicAI's `the_well` package, its "Data format" page): one HDF5 file
//! per split, which `the_well.data.WellDataset` loads, and the `stats.yaml` that its
//! normalisations read. Written by `thermalizer export-well` (`stages::well`).
//!
//! ```text
//! root attributes: dataset_name, grid_type "cartesian", n_spatial_dims 2, n_trajectories,
//!                  simulation_parameters (names) and one float attribute per parameter
//! /dimensions             @spatial_dims ["x", "y"]
//!   time   float64 [T]    @sample_varying FALSE
//!   x, y   float64 [N]    @sample_varying FALSE, @time_varying FALSE
//! /boundary_conditions/x_periodic, /y_periodic
//!                         @bc_type "PERIODIC", @associated_dims ["x"] or ["y"],
//!                         @associated_fields [], @sample_varying FALSE, @time_varying FALSE
//!   mask   bool [N]       TRUE at both ends of the axis
//! /scalars                @field_names: the parameters, each a float64 scalar, constant
//! /t0_fields              @field_names: the fields, each float32 [trajectory, time, x, y]
//!                         @dim_varying [TRUE, TRUE], @sample_varying TRUE, @time_varying TRUE
//! /t1_fields, /t2_fields  @field_names [] (no vector or tensor fields)
//! ```
//!
//! Flags are HDF5 booleans and name lists 1-D string arrays, as h5py writes them: the loader
//! iterates the lists, and The Well's format checker wants `bool` flags. Fields are indexed
//! `[trajectory, time, x, y]`, x first, as `spatial_dims` says and as the loader's space grid
//! (`meshgrid(x, y, indexing="ij")`) assumes; trajectories.h5 stores `[.., y, x]`, so each
//! state is transposed on the way. Coordinates and time stay float64 (the spec shows float32;
//! the loader takes either) so that QG times in seconds keep every digit.

use std::path::{Path, PathBuf};

use ndarray::{ArrayView3, ArrayView4, Axis};

use super::h5::{Access, Attrs, File, H5Bool, Hyperslab};
use super::partial_path;
use crate::error::{Error, Result};

/// One scalar field (The Well's tensor order 0).
pub struct Field {
    pub name: String,
    pub long_name: String,
    pub units: String,
}

/// What one split's file holds besides its trajectories.
pub struct WellLayout<'a> {
    pub dataset_name: &'a str,
    pub fields: &'a [Field],
    pub trajectories: usize,
    /// Physical time of each stored state.
    pub time: &'a [f64],
    pub x: &'a [f64],
    pub y: &'a [f64],
    pub length_units: &'a str,
    pub time_units: &'a str,
    /// Constant physical parameters: root attributes and The Well's constant scalars.
    pub parameters: &'a [(&'a str, f64)],
}

/// One split's file, written at `<path>.partial` and renamed by [`WellWriter::finish`].
pub struct WellWriter {
    file: File,
    path: PathBuf,
    fields: Vec<String>,
    steps: usize,
    grid: usize,
}

fn flag(attrs: &Attrs, name: &str, value: bool) -> Result<()> {
    attrs.set::<H5Bool>(name, &[value.into()])
}

impl WellWriter {
    /// Creates the file (serially) with its whole structure and coordinates.
    pub fn create(path: &Path, layout: &WellLayout) -> Result<WellWriter> {
        let file = File::create(&partial_path(path), Access::Serial)?;
        let (steps, grid) = (layout.time.len(), layout.x.len());
        let root = file.attrs();
        root.set_str("dataset_name", layout.dataset_name)?;
        root.set_str("grid_type", "cartesian")?;
        root.set::<i64>("n_spatial_dims", &[2])?;
        root.set::<i64>("n_trajectories", &[layout.trajectories as i64])?;
        let names: Vec<&str> = layout.parameters.iter().map(|p| p.0).collect();
        root.set_strs("simulation_parameters", &names)?;
        for &(name, value) in layout.parameters {
            root.set::<f64>(name, &[value])?;
        }

        file.create_group("dimensions")?.attrs().set_strs("spatial_dims", &["x", "y"])?;
        let time = file.create_dataset::<f64>("dimensions/time", &[steps])?;
        time.write(None, layout.time, false)?;
        flag(&time.attrs(), "sample_varying", false)?;
        time.attrs().set_str("units", layout.time_units)?;
        for (axis, values) in [("x", layout.x), ("y", layout.y)] {
            let d = file.create_dataset::<f64>(&format!("dimensions/{axis}"), &[values.len()])?;
            d.write(None, values, false)?;
            flag(&d.attrs(), "sample_varying", false)?;
            flag(&d.attrs(), "time_varying", false)?;
            d.attrs().set_str("units", layout.length_units)?;
        }

        file.create_group("boundary_conditions")?;
        for (axis, n) in [("x", layout.x.len()), ("y", layout.y.len())] {
            let name = format!("boundary_conditions/{axis}_periodic");
            let group = file.create_group(&name)?;
            let a = group.attrs();
            a.set_str("bc_type", "PERIODIC")?;
            a.set_strs("associated_dims", &[axis])?;
            a.set_strs("associated_fields", &[])?;
            flag(&a, "sample_varying", false)?;
            flag(&a, "time_varying", false)?;
            let ends: Vec<H5Bool> = (0..n).map(|i| (i == 0 || i + 1 == n).into()).collect();
            file.create_dataset::<H5Bool>(&format!("{name}/mask"), &[n])?.write(None, &ends, false)?;
        }

        file.create_group("scalars")?.attrs().set_strs("field_names", &names)?;
        for &(name, value) in layout.parameters {
            let d = file.create_dataset::<f64>(&format!("scalars/{name}"), &[])?;
            d.write(None, &[value], false)?;
            flag(&d.attrs(), "sample_varying", false)?;
            flag(&d.attrs(), "time_varying", false)?;
        }

        let fields: Vec<&str> = layout.fields.iter().map(|f| f.name.as_str()).collect();
        file.create_group("t0_fields")?.attrs().set_strs("field_names", &fields)?;
        for f in layout.fields {
            let d = file
                .create_dataset::<f32>(&format!("t0_fields/{}", f.name), &[layout.trajectories, steps, grid, grid])?;
            let a = d.attrs();
            a.set_list::<H5Bool>("dim_varying", &[true.into(), true.into()])?;
            flag(&a, "sample_varying", true)?;
            flag(&a, "time_varying", true)?;
            a.set_str("long_name", &f.long_name)?;
            a.set_str("units", &f.units)?;
        }
        for group in ["t1_fields", "t2_fields"] {
            file.create_group(group)?.attrs().set_strs("field_names", &[])?;
        }
        let fields = fields.into_iter().map(String::from).collect();
        Ok(WellWriter { file, path: path.to_path_buf(), fields, steps, grid })
    }

    /// Root attributes, for provenance beyond the format's own.
    pub fn attrs(&self) -> Attrs {
        self.file.attrs()
    }

    /// Writes trajectory `index` from `states`: one member as trajectories.h5 stores it,
    /// `[time, field, y, x]`; the Well's `t0_fields/<field>` is `[trajectory, time, x, y]`.
    pub fn write_trajectory(&self, index: usize, states: ArrayView4<f32>) -> Result<()> {
        let (t, c, n) = (self.steps, self.fields.len(), self.grid);
        assert_eq!(states.dim(), (t, c, n, n), "{}: one member's states", self.path.display());
        for (field, name) in states.axis_iter(Axis(1)).zip(&self.fields) {
            let field: Vec<f32> = field.permuted_axes([0, 2, 1]).iter().copied().collect();
            let slab = Hyperslab { start: &[index, 0, 0, 0], count: &[1, t, n, n] };
            self.file.dataset(&format!("t0_fields/{name}"))?.write(Some(&slab), &field, false)?;
        }
        Ok(())
    }

    /// Closes the file and gives it its final name, which it then has only when complete.
    pub fn finish(self) -> Result<PathBuf> {
        let partial = partial_path(&self.path);
        self.file.close()?;
        std::fs::rename(&partial, &self.path)
            .map_err(|e| Error::Hdf5(format!("cannot rename {} to {}: {e}", partial.display(), self.path.display())))?;
        Ok(self.path)
    }
}

/// Running sums of one field's values and of its differences between consecutive stored states
/// (what the loader calls deltas), over every point of the training trajectories, in f64.
#[derive(Clone, Default)]
struct Sums {
    count: f64,
    sum: f64,
    squares: f64,
    delta_count: f64,
    delta_sum: f64,
    delta_squares: f64,
}

/// The statistics of `stats.yaml` for each field: `mean`, `std` (population), `rms` of the
/// values and `mean_delta`, `std_delta`, `rms_delta` of the one-step differences, which
/// `ZScoreNormalization` and `RMSNormalization` read by field name.
pub struct Statistics {
    sums: Vec<Sums>,
    /// Points per field and state.
    points: usize,
}

impl Statistics {
    /// Nothing yet of `fields` fields on a `grid`² grid.
    pub fn new(fields: usize, grid: usize) -> Statistics {
        Statistics { sums: vec![Sums::default(); fields], points: grid * grid }
    }

    /// Adds one member, `[time, field, y, x]` row-major as trajectories.h5 stores it.
    pub fn add(&mut self, states: &[f32]) {
        let (c, n2) = (self.sums.len(), self.points);
        let states = ArrayView3::from_shape((states.len() / (c * n2), c, n2), states).expect("whole states");
        for (field, s) in states.axis_iter(Axis(1)).zip(&mut self.sums) {
            for (t, state) in field.outer_iter().enumerate() {
                for &v in state {
                    s.sum += v as f64;
                    s.squares += (v as f64).powi(2);
                }
                s.count += n2 as f64;
                if t > 0 {
                    for (&a, &b) in field.row(t - 1).iter().zip(state) {
                        let d = b as f64 - a as f64;
                        s.delta_sum += d;
                        s.delta_squares += d * d;
                    }
                    s.delta_count += n2 as f64;
                }
            }
        }
    }

    /// The YAML of `stats.yaml`, fields in the order given; an error names a statistic that is
    /// not a finite number (no data, or non-finite values in the training split).
    pub fn to_yaml(&self, names: &[&str]) -> Result<String> {
        let moments = |n: f64, sum: f64, squares: f64| {
            let mean = sum / n;
            [mean, (squares / n - mean * mean).max(0.0).sqrt(), (squares / n).sqrt()]
        };
        let per_field: Vec<[f64; 6]> = self
            .sums
            .iter()
            .map(|s| {
                let [m, sd, rms] = moments(s.count, s.sum, s.squares);
                let [dm, dsd, drms] = moments(s.delta_count, s.delta_sum, s.delta_squares);
                [m, sd, rms, dm, dsd, drms]
            })
            .collect();
        let keys = ["mean", "std", "rms", "mean_delta", "std_delta", "rms_delta"];
        let mut yaml = String::new();
        for (k, key) in keys.iter().enumerate() {
            yaml.push_str(&format!("{key}:\n"));
            for (name, stats) in names.iter().zip(&per_field) {
                if !stats[k].is_finite() {
                    return Err(Error::Input(format!("{key} of {name} is {}", stats[k])));
                }
                yaml.push_str(&format!("  {name}: {}\n", yaml_float(stats[k])));
            }
        }
        Ok(yaml)
    }
}

/// `v` as a YAML float that every YAML reader takes as one: PyYAML (YAML 1.1) reads `1e-05` as
/// a string and wants a dot in the mantissa and a sign in the exponent, `1.0e-05`. Shortest
/// round-trip digits, so the f64 is exact.
fn yaml_float(v: f64) -> String {
    let s = format!("{v:e}");
    let (mantissa, exponent) = s.split_once('e').expect("{:e} has an exponent");
    let mantissa = if mantissa.contains('.') { mantissa.to_string() } else { format!("{mantissa}.0") };
    let sign = if exponent.starts_with('-') { "" } else { "+" };
    format!("{mantissa}e{sign}{exponent}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_floats_are_floats_to_yaml_1_1() {
        assert_eq!(yaml_float(1e-5), "1.0e-5");
        assert_eq!(yaml_float(0.0025), "2.5e-3");
        assert_eq!(yaml_float(-3.25e12), "-3.25e+12");
        assert_eq!(yaml_float(0.0), "0.0e+0");
        let v = 0.1f64 + 0.2;
        assert_eq!(yaml_float(v).parse::<f64>().unwrap(), v);
    }

    #[test]
    fn statistics_of_values_and_one_step_differences() {
        // Two fields on a 1x1 grid, three states: field 0 = 1, 2, 4; field 1 = -1, -1, -1.
        let mut s = Statistics::new(2, 1);
        s.add(&[1.0, -1.0, 2.0, -1.0, 4.0, -1.0]);
        let yaml = s.to_yaml(&["a", "b"]).unwrap();
        let value = |key: &str, name: &str| -> f64 {
            let block = yaml.split(&format!("{key}:\n")).nth(1).unwrap();
            let line = block.lines().find(|l| l.trim_start().starts_with(&format!("{name}:"))).unwrap();
            line.split(": ").nth(1).unwrap().parse().unwrap()
        };
        assert!((value("mean", "a") - 7.0 / 3.0).abs() < 1e-15);
        assert!((value("std", "a") - (21.0f64 / 3.0 - 49.0 / 9.0).sqrt()).abs() < 1e-15);
        assert!((value("rms", "a") - 7.0f64.sqrt()).abs() < 1e-15);
        assert_eq!(value("mean_delta", "a"), 1.5);
        assert_eq!(value("std_delta", "a"), 0.5);
        assert_eq!(value("mean", "b"), -1.0);
        assert_eq!(value("std", "b"), 0.0);
        assert_eq!(value("rms_delta", "b"), 0.0);
        assert!(Statistics::new(1, 4).to_yaml(&["a"]).unwrap_err().to_string().contains("mean of a"));
    }
}
