//! The reader of a finished `trajectories.h5`, by window of consecutive stored states of one
//! member.
//!
//! Members are assigned to splits by the file's `split` dataset ([`super::TRAIN`],
//! [`super::VALID`], [`super::TEST`]); members that diverged during generation (`diverged_at ≥ 0`) are left out whole.

use std::path::{Path, PathBuf};

use ndarray::Array4;
use tch::Tensor;

use crate::error::{Context, Error, Result};
use crate::store::h5::{self, Access, Hyperslab};

/// An open trajectories file.
pub struct Trajectories {
    file: h5::File,
    path: PathBuf,
    variable: &'static str,
    /// Stored states per member.
    pub samples: usize,
    /// Fields per state (1 or 2): the layers of QG, the one vorticity of Kolmogorov flow.
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

    /// The split code of `member` ([`super::TRAIN`], [`super::VALID`] or [`super::TEST`]).
    pub fn split_of(&self, member: usize) -> i8 {
        self.split[member]
    }

    /// The solver step at which `member` diverged during generation; −1: never.
    pub fn diverged_at(&self, member: usize) -> i64 {
        self.diverged[member]
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

    /// Reads `len` states of a window in physical units, `[time, layer, y, x]` (the file's
    /// `[member, time, layer, y, x]` at one member; Kolmogorov flow's one field is layer 0).
    pub fn read(&self, w: Window, len: usize) -> Result<Array4<f32>> {
        let ds = self.file.dataset(self.variable)?;
        let (c, g) = (self.channels, self.grid);
        let (start, count): (Vec<usize>, Vec<usize>) = if c == 1 {
            (vec![w.member, w.start, 0, 0], vec![1, len, g, g])
        } else {
            (vec![w.member, w.start, 0, 0, 0], vec![1, len, c, g, g])
        };
        let flat = ds.read::<f32>(Some(&Hyperslab { start: &start, count: &count }))?;
        Array4::from_shape_vec((len, c, g, g), flat).context(|| format!("{}: {}", self.path.display(), self.variable))
    }

    /// `len` consecutive stored states from `w` as a tensor `[len, C, N, N]` on `scale`'s device,
    /// divided by `scale` (`[1, C, 1, 1]`, physical units per normalised unit).
    pub fn read_normalised(&self, w: Window, len: usize, scale: &Tensor) -> Result<Tensor> {
        let (c, g) = (self.channels as i64, self.grid as i64);
        let states = self.read(w, len)?;
        let flat = states.as_slice().expect("an array just read is in standard layout");
        Ok(Tensor::from_slice(flat).view([-1, c, g, g]).to_device(scale.device()) / scale)
    }
}
