//! The rollout file as the report reads it: every dataset it draws or tabulates, read once
//! through the crate's HDF5 layer and shaped as ndarray arrays.
//!
//! Axis order is the file's: `mode` (in the file's order), `member`, then the record axis
//! (`step`, `spectrum_step` or `snapshot_step`), then the record's own axes (`k`, `bin`, or
//! `y, x`); the truth's arrays have no `mode` axis. Values are in the file's units: normalised
//! for the scalar series and PDFs, physical for spectra and snapshots. In an interim report the
//! record axes end at the checkpoint's step: the records after it are not written yet.
//! Also here: the two reductions over members that both the figures and the tables make
//! ([`ensemble_mean`], [`finite`]).

use std::path::{Path, PathBuf};

use ndarray::{
    s, Array, Array2, Array3, Array4, ArrayD, ArrayView1, ArrayView2, Axis, Dimension, Ix1, Ix2, Ix3, Ix5, Ix6, IxDyn,
    Slice,
};

use crate::error::{Context, Error, Result};
use crate::store::h5::{Access, File, H5Scalar};

/// The totals of one mode, written when a rollout completes (NaN in an interim report).
pub struct Totals {
    pub wall_seconds: f64,
    /// Fraction of member-steps thermalized.
    pub thermalized_fraction: f64,
    pub passes_per_step: f64,
}

/// The fields drawn as snapshots: member 0, first layer.
pub struct Snapshots {
    /// Emulator step of each snapshot record.
    pub steps: Vec<f64>,
    /// `field[mode, record, y, x]` (physical units).
    pub field: Array4<f64>,
    /// `truth[record, y, x]`.
    pub truth: Array3<f64>,
}

/// What the report reads from `rollout.h5` (or an interim report's `rollout.h5.partial`).
pub struct RolloutFile {
    pub path: PathBuf,
    /// An interim report's last step (its checkpoint's); `None` for a completed rollout.
    pub interim: Option<f64>,
    /// The modes' names, in their order in the file.
    pub modes: Vec<String>,
    pub members: usize,
    /// Emulator steps reported: the last record's, or an interim report's checkpoint step.
    pub last: f64,
    /// Emulator step of each scalar record.
    pub steps: Vec<f64>,
    /// Emulator step of each spectrum (and PDF) record.
    pub spectrum_steps: Vec<f64>,
    /// Wavenumber of each spectrum shell (2π/L); shell k holds |k| in [k − ½, k + ½).
    pub k: Vec<f64>,
    /// Centre of each PDF bin (normalised units).
    pub bins: Vec<f64>,
    /// `mse[mode, member, record]` against the truth (NaN beyond the truth's horizon).
    pub mse: Array3<f64>,
    /// `mean_square[mode, member, record]` of the normalised state.
    pub mean_square: Array3<f64>,
    /// `truth_mean_square[member, record]`.
    pub truth_mean_square: Array2<f64>,
    /// `denoising_passes[mode, member, record]` since the previous record.
    pub denoising_passes: Array3<f64>,
    /// `guard_corrections[mode, member, record]`: corrected steps since the previous record
    /// (runs with a guarded mode only).
    pub guard_corrections: Option<Array3<f64>>,
    /// `noise_level[mode, member, record]` predicted by the classifier (runs with one only).
    pub noise_level: Option<Array3<f64>>,
    /// `spectrum[mode, member, record, k]` (kinetic energy per shell).
    pub spectrum: Array4<f64>,
    /// `truth_spectrum[member, record, k]`.
    pub truth_spectrum: Array3<f64>,
    /// `spectrum_mean[mode, member, k]`: time mean over the stationary window.
    pub spectrum_mean: Array3<f64>,
    /// `truth_spectrum_mean[member, k]`: time mean over all the truth's records.
    pub truth_spectrum_mean: Array2<f64>,
    /// `histogram_mean[mode, member, bin]`: time-mean PDF over the stationary window.
    pub histogram_mean: Array3<f64>,
    /// `truth_histogram_mean[member, bin]`.
    pub truth_histogram_mean: Array2<f64>,
    /// First step of the stationary window of the time means.
    pub window_start: f64,
    pub snapshots: Option<Snapshots>,
    /// `diverged_at[mode, member]`: the step a member was stopped at, −1 if never (or, in an
    /// interim report, not by its last step).
    pub diverged_at: Array2<i64>,
    /// `spectral_horizon[mode, member]`: the first recorded step at which the member's spectrum
    /// left the truth's spread, −1 if never; found when the rollout completes.
    pub spectral_horizon: Array2<f64>,
    /// The distance from the truth's mean log-spectrum beyond which a spectrum has left its
    /// spread (NaN when absent).
    pub spectral_threshold: f64,
    /// Per mode, in the order of `modes`.
    pub totals: Vec<Totals>,
    /// The level thermalization noises states to, and where it came from.
    pub s_init: f64,
    pub s_init_source: Option<String>,
}

/// Dataset `name` as an array of dimension `D`.
fn read<T: H5Scalar, D: Dimension>(f: &File, name: &str) -> Result<Array<T, D>> {
    let d = f.dataset(name)?;
    ArrayD::from_shape_vec(IxDyn(&d.shape()?), d.read::<T>(None)?)
        .and_then(|a| a.into_dimensionality::<D>())
        .map_err(|e| Error::Hdf5(format!("{name}: {e}")))
}

/// One-dimensional dataset `name`, its records after `upto` cut off.
fn read_steps(f: &File, name: &str, upto: Option<f64>) -> Result<Vec<f64>> {
    let mut v = f.dataset(name)?.read::<f64>(None)?;
    v.retain(|&s| upto.is_none_or(|last| s <= last));
    Ok(v)
}

/// `a` with its record axis `axis` cut to its first `n` records.
fn first<D: Dimension>(mut a: Array<f64, D>, axis: usize, n: usize) -> Array<f64, D> {
    a.slice_axis_inplace(Axis(axis), Slice::from(..n));
    a
}

/// Scalar attribute `name` of dataset `dataset` (NaN when absent).
fn dataset_attr(f: &File, dataset: &str, name: &str) -> f64 {
    f.dataset(dataset)
        .and_then(|d| d.attrs().get::<f64>(name))
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

/// The names of the modes: `mode` holds them; files written before it was a string coordinate
/// held indices with the names in `flag_meanings`.
fn mode_names(f: &File) -> Result<Vec<String>> {
    let mode = f.dataset("mode")?;
    mode.read_strings()
        .or_else(|_| mode.attrs().get_str("flag_meanings").map(|s| s.split_whitespace().map(String::from).collect()))
}

impl RolloutFile {
    /// Reads `path`, up to step `interim` when given. Failures name the file.
    pub fn read(path: &Path, interim: Option<f64>) -> Result<RolloutFile> {
        let f = File::open(path, Access::Serial, false)
            .map_err(|e| Error::Input(format!("{}: not readable ({e})", path.display())))?;
        Self::read_open(&f, path, interim).context(|| path.display())
    }

    fn read_open(f: &File, path: &Path, interim: Option<f64>) -> Result<RolloutFile> {
        let modes = mode_names(f)?;
        let steps = read_steps(f, "step", interim)?;
        let spectrum_steps = read_steps(f, "spectrum_step", interim)?;
        let (nr, ns) = (steps.len(), spectrum_steps.len());
        let k = read::<f64, Ix1>(f, "k")?.to_vec();
        let mse: Array3<f64> = first(read(f, "mse")?, 2, nr);
        let last = interim.unwrap_or(*steps.last().unwrap_or(&0.0));
        // A stop after an interim report's last step has not happened yet as far as it is concerned.
        let diverged_at = read::<i64, Ix2>(f, "diverged_at")?.mapv(|d| if d as f64 > last { -1 } else { d });
        let attr = |name: &str| f.attrs().get::<f64>(name).ok().and_then(|v| v.first().copied()).unwrap_or(f64::NAN);
        let totals = modes
            .iter()
            .map(|m| Totals {
                wall_seconds: attr(&format!("{m}_wall_seconds")),
                thermalized_fraction: attr(&format!("{m}_thermalized_fraction")),
                passes_per_step: attr(&format!("{m}_passes_per_step")),
            })
            .collect();
        let optional = |name: &str| f.has(name).then(|| read::<f64, Ix3>(f, name).map(|a| first(a, 2, nr))).transpose();
        Ok(RolloutFile {
            path: path.to_path_buf(),
            interim,
            members: mse.shape()[1],
            last,
            mean_square: first(read(f, "mean_square")?, 2, nr),
            truth_mean_square: first(read(f, "truth_mean_square")?, 1, nr),
            denoising_passes: first(read(f, "denoising_passes")?, 2, nr),
            guard_corrections: optional("guard_corrections")?,
            noise_level: optional("noise_level")?,
            spectrum: first(read(f, "spectrum")?, 2, ns),
            truth_spectrum: first(read(f, "truth_spectrum")?, 1, ns),
            spectrum_mean: read(f, "spectrum_mean")?,
            truth_spectrum_mean: read(f, "truth_spectrum_mean")?,
            histogram_mean: read(f, "histogram_mean")?,
            truth_histogram_mean: read(f, "truth_histogram_mean")?,
            window_start: dataset_attr(f, "spectrum_mean", "window_start"),
            bins: read::<f64, Ix1>(f, "bin")?.to_vec(),
            snapshots: Snapshots::read(f, interim)?,
            diverged_at,
            spectral_horizon: read(f, "spectral_horizon")?,
            spectral_threshold: dataset_attr(f, "spectral_horizon", "spectral_threshold"),
            totals,
            s_init: attr("s_init"),
            s_init_source: f.attrs().get_str("s_init_source").ok(),
            modes,
            steps,
            spectrum_steps,
            k,
            mse,
        })
    }

    /// The complete shells are 1 ≤ k ≤ kmax (N/2): the corners beyond hold the truncated tail.
    pub fn kmax(&self) -> usize {
        ((self.k.len() - 1) as f64 / std::f64::consts::SQRT_2).floor() as usize
    }

    /// `horizon[mode, member]`: the step a member was stopped at, or the last step when it never
    /// was (a lower bound).
    pub fn stable_horizons(&self) -> Array2<f64> {
        self.diverged_at.mapv(|d| if d >= 0 { d as f64 } else { self.last })
    }

    /// The index of mode `name`.
    pub fn mode(&self, name: &str) -> Option<usize> {
        self.modes.iter().position(|m| m == name)
    }
}

impl Snapshots {
    /// Member 0's first layer of the snapshots, when the file has any.
    fn read(f: &File, interim: Option<f64>) -> Result<Option<Snapshots>> {
        if !f.has("snapshot") {
            return Ok(None);
        }
        // `snapshot[mode, member, record, layer, y, x]`, `truth_snapshot[member, record, layer, y, x]`.
        let field = read::<f64, Ix6>(f, "snapshot")?.slice_move(s![.., 0, .., 0, .., ..]);
        let truth = read::<f64, Ix5>(f, "truth_snapshot")?.slice_move(s![0, .., 0, .., ..]);
        let steps = read_steps(f, "snapshot_step", interim)?;
        let n = steps.len();
        Ok(Some(Snapshots { field: first(field, 1, n), truth: first(truth, 0, n), steps }))
    }
}

/// Ensemble mean of the rows `a[member, ..]` that are finite throughout, and how many there are.
pub fn ensemble_mean(a: ArrayView2<f64>) -> (Vec<f64>, usize) {
    let mut sum = vec![0.0; a.ncols()];
    let mut count = 0usize;
    for row in a.outer_iter().filter(|row| row.iter().all(|v| v.is_finite())) {
        sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        count += 1;
    }
    (sum.iter().map(|s| if count > 0 { s / count as f64 } else { f64::NAN }).collect(), count)
}

/// The finite values of `a`.
pub fn finite(a: ArrayView1<f64>) -> Vec<f64> {
    a.iter().copied().filter(|v| v.is_finite()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ensemble_mean_leaves_out_members_with_a_non_finite_value() {
        let a = ndarray::arr2(&[[1.0, 2.0], [f64::NAN, 5.0], [3.0, 4.0]]);
        assert_eq!(ensemble_mean(a.view()), (vec![2.0, 3.0], 2));
        assert!(ensemble_mean(a.slice(s![1..2, ..])).0.iter().all(|v| v.is_nan()));
    }
}
