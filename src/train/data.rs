//! Training data: the stored trajectories of `generate`, read in windows by each rank.
//!
//! A *sample* is a window of consecutive stored states of one member, `[len, C, y, x]` in
//! physical units (`vorticity[member,time,y,x]` has C = 1, `q[member,time,layer,y,x]` C = 2).
//! Members are assigned to splits by the file's `split` dataset (0 train, 1 valid, 2 test).
//! Members that diverged during generation (`diverged_at ≥ 0`) are left out whole.
//!
//! Each epoch's order is a permutation drawn from (run seed, epoch) alone, so the global
//! sequence of batches is the same for any number of ranks; rank r of P trains on the r-th
//! contiguous block of each global batch and reads only those windows from the file.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use tch::Tensor;

use crate::error::{Error, Result};
use crate::parallel::World;
use crate::rng::{member_stream, Purpose};
use crate::store::h5::{self, Access, Hyperslab};

/// Split codes of the `split` dataset.
pub const TRAIN: i8 = 0;
pub const VALID: i8 = 1;
pub const TEST: i8 = 2;

/// An open trajectories file.
pub struct Trajectories {
    file: h5::File,
    path: PathBuf,
    variable: &'static str,
    /// Stored states per member.
    pub samples: usize,
    /// Fields per state (1 or 2).
    pub channels: usize,
    /// Stored grid points per side.
    pub grid: usize,
    split: Vec<i8>,
    diverged: Vec<i64>,
}

/// One window: member and first stored state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub member: usize,
    pub start: usize,
}

impl Trajectories {
    /// Opens `path` read-only and checks that it is a finished trajectories file of `channels`
    /// fields on a `grid`² grid. Errors name the file and what is wrong.
    pub fn open(path: &Path, channels: usize, grid: usize) -> Result<Trajectories> {
        let bad = |why: String| Error::Input(format!("trajectories file {}: {why}", path.display()));
        if !path.exists() {
            let partial = path.with_extension("h5.partial");
            let hint = if partial.exists() {
                " (generation is unfinished: run `thermalizer generate` with the same config to complete it)"
            } else {
                " (run `thermalizer generate` with this config first)"
            };
            return Err(bad(format!("does not exist{hint}")));
        }
        let file =
            h5::File::open(path, Access::Serial, false).map_err(|e| bad(format!("not readable as HDF5 ({e})")))?;
        let variable = if channels == 1 { "vorticity" } else { "q" };
        if !file.has(variable) {
            return Err(bad(format!("has no dataset '{variable}' (written for another system?)")));
        }
        let shape = file.dataset(variable).and_then(|d| d.shape()).map_err(|e| bad(e.to_string()))?;
        let expect_rank = if channels == 1 { 4 } else { 5 };
        let layers = if channels == 1 { 1 } else { shape.get(2).copied().unwrap_or(0) };
        if shape.len() != expect_rank
            || layers != channels
            || shape[expect_rank - 1] != grid
            || shape[expect_rank - 2] != grid
        {
            return Err(bad(format!(
                "'{variable}' has shape {shape:?}; the config expects {} fields on a {grid}² grid",
                channels
            )));
        }
        let read_i8 = |name: &str| file.dataset(name).and_then(|d| d.read::<i8>(None));
        let split = read_i8("split").map_err(|e| bad(format!("dataset 'split': {e}")))?;
        let diverged = file
            .dataset("diverged_at")
            .and_then(|d| d.read::<i64>(None))
            .map_err(|e| bad(format!("'diverged_at': {e}")))?;
        if split.len() != shape[0] || diverged.len() != shape[0] {
            return Err(bad("'split' or 'diverged_at' does not have one entry per member".into()));
        }
        Ok(Trajectories {
            file,
            path: path.to_path_buf(),
            variable,
            samples: shape[1],
            channels,
            grid,
            split,
            diverged,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Members of `split` that did not diverge.
    pub fn members(&self, split: i8) -> Vec<usize> {
        (0..self.split.len()).filter(|&m| self.split[m] == split && self.diverged[m] < 0).collect()
    }

    /// Members of `split` left out because they diverged during generation.
    pub fn diverged_members(&self, split: i8) -> Vec<usize> {
        (0..self.split.len()).filter(|&m| self.split[m] == split && self.diverged[m] >= 0).collect()
    }

    /// The 1-D coordinate `name` (`time`, `y` or `x`) in the file's units.
    pub fn coordinate(&self, name: &str) -> Result<Vec<f64>> {
        self.file.dataset(name).and_then(|d| d.read::<f64>(None))
    }

    /// All windows of `len` states starting at or after `first` in the members of `split`,
    /// member-major.
    pub fn windows(&self, split: i8, len: usize, first: usize) -> Vec<Window> {
        let starts = first..(self.samples + 1).saturating_sub(len).max(first);
        self.members(split)
            .into_iter()
            .flat_map(|member| starts.clone().map(move |start| Window { member, start }))
            .collect()
    }

    /// Values per stored state (`C·N²`).
    pub fn state_len(&self) -> usize {
        self.channels * self.grid * self.grid
    }

    /// Reads `len` states of a window, `[len, C, y, x]` row-major, physical units.
    pub fn read(&self, w: Window, len: usize) -> Result<Vec<f32>> {
        let ds = self.file.dataset(self.variable)?;
        let g = self.grid;
        let (start, count): (Vec<usize>, Vec<usize>) = if self.channels == 1 {
            (vec![w.member, w.start, 0, 0], vec![1, len, g, g])
        } else {
            (vec![w.member, w.start, 0, 0, 0], vec![1, len, self.channels, g, g])
        };
        ds.read::<f32>(Some(&Hyperslab { start: &start, count: &count }))
    }

    /// `len` consecutive stored states from `w` as a tensor `[len, C, N, N]` on `scale`'s device,
    /// divided by `scale` (`[1, C, 1, 1]`, physical units per normalised unit).
    pub fn read_normalised(&self, w: Window, len: usize, scale: &Tensor) -> Result<Tensor> {
        let (c, g) = (self.channels as i64, self.grid as i64);
        Ok(Tensor::from_slice(&self.read(w, len)?).view([-1, c, g, g]).to_device(scale.device()) / scale)
    }

    /// Per-channel standard deviation over every stored state of the training members (the
    /// normalisation scale; the mean is not subtracted from the fields). The members are read
    /// in shares by the ranks and the sums reduced in f64. The validation members are read too,
    /// to refuse (as bad input, before training) any member with NaN or ±inf that the file does
    /// not mark diverged: one such value would turn the scale or the losses into NaN.
    pub fn channel_std(&self, world: &World) -> Result<Vec<f64>> {
        let members = self.members(TRAIN);
        let c = self.channels;
        let mut sums = vec![0.0f64; 2 * c + 1];
        let checked: Vec<usize> = {
            let mut all = self.members(VALID);
            all.extend(&members);
            all.sort_unstable();
            all
        };
        // The first non-finite value, as `member · samples + time`, over this rank's share.
        let mut first_bad = None;
        for &m in &checked[world.members(checked.len())] {
            let data = self.read(Window { member: m, start: 0 }, self.samples)?;
            if let Some(t) = data.chunks(self.state_len()).position(|s| s.iter().any(|v| !v.is_finite())) {
                first_bad = Some(m * self.samples + t);
                break;
            }
            if self.split[m] != TRAIN {
                continue;
            }
            for state in data.chunks(self.state_len()) {
                for (ch, field) in state.chunks(self.grid * self.grid).enumerate() {
                    sums[ch] += field.iter().map(|&v| v as f64).sum::<f64>();
                    sums[c + ch] += field.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
                }
            }
            sums[2 * c] += (self.samples * self.grid * self.grid) as f64;
        }
        // The smallest over ranks (as the largest negated: every rank learns rank 0's verdict).
        let bad = -world.max_f64(&[first_bad.map_or(f64::NEG_INFINITY, |i| -(i as f64))])[0];
        if bad.is_finite() {
            let (m, t) = (bad as usize / self.samples, bad as usize % self.samples);
            return Err(Error::Input(format!(
                "{}: member {m} has non-finite values at time index {t} but is not marked diverged \
                 (diverged_at = {})",
                self.path.display(),
                self.diverged[m]
            )));
        }
        world.sum_f64(&mut sums);
        let n = sums[2 * c];
        let std: Vec<f64> = (0..c).map(|ch| (sums[c + ch] / n - (sums[ch] / n).powi(2)).max(0.0).sqrt()).collect();
        if !(n > 0.0) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::Input(format!(
                "trajectories file {}: the training split has no usable data (members {:?}, std {std:?})",
                self.path.display(),
                members.len()
            )));
        }
        Ok(std)
    }
}

/// The order of `n` training samples in `epoch`: a permutation from (seed, epoch) only.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut member_stream(seed, Purpose::Shuffle, epoch));
    order
}

/// `count` indices spread evenly over `0..n` (all of them if `count >= n`): the fixed
/// validation subset.
pub fn evenly_spaced(n: usize, count: usize) -> Vec<usize> {
    if count >= n {
        return (0..n).collect();
    }
    (0..count).map(|i| i * n / count).collect()
}
