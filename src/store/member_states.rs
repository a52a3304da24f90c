//! Per-member states of a resumable ensemble stage, in HDF5: the solver states of `generate`
//! (`<run.dir>/trajectories.checkpoint.h5`) and the emulator states of `rollout`
//! (`<run.dir>/rollout.checkpoint.h5`).
//!
//! It holds, for every member, its state as numbers (`state[member, word]`, f64; for `generate`
//! the spectra on the solver grid exactly as stepped, plus any multistep history, see
//! [`crate::solver::Dynamics::save`]), the member's `diverged_at`, the step reached (`step`
//! attribute) and the resolved config. The step's stored sample, if any, is already in the
//! stage's partial output. Written collectively to a temporary name and renamed by rank 0, so a
//! file on disk is always complete.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::h5::{abandon_parallel_files, Access, File, Hyperslab};
use crate::error::{Error, Result};
use crate::parallel::World;

/// One rank's share of a checkpoint.
pub struct CheckpointData {
    /// Solver step reached.
    pub step: u64,
    /// Saved state of each local member (all of the same length).
    pub states: Vec<Vec<f64>>,
    /// `diverged_at` of each local member (−1: still running).
    pub diverged_at: Vec<i64>,
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Writes `data` (this rank's `members` of `total`) to `path` atomically (collective). The ranks
/// agree on the outcome of each collective write ([`World::agree`]): an error is returned by
/// every rank alike, at the same call.
pub fn write(
    path: &Path,
    world: &World,
    config_yaml: &str,
    total: usize,
    members: Range<usize>,
    data: &CheckpointData,
) -> Result<()> {
    let tmp = tmp_path(path);
    let words = data.states.first().map(Vec::len).unwrap_or(0);
    let words = world.max_f64(&[words as f64])[0] as usize;
    // Agreed, then a failure like this function's others: the caller says whether all its ranks
    // hold it (generate agrees again; the rollout aborts).
    let agreed = |r: Result<()>| {
        world.agree(r).map_err(|e| {
            abandon_parallel_files();
            Error::Failure(e.to_string())
        })
    };
    {
        let f = File::create(&tmp, Access::Parallel(world.comm()))?;
        f.attrs().set::<i64>("step", &[data.step as i64])?;
        f.attrs().set_str("config", config_yaml)?;
        let state = f.create_dataset::<f64>("state", &[total, words])?;
        let diverged = f.create_dataset::<i64>("diverged_at", &[total])?;
        let flat: Vec<f64> = data.states.concat();
        agreed(state.write(
            Some(&Hyperslab { start: &[members.start, 0], count: &[members.len(), words] }),
            &flat,
            true,
        ))?;
        agreed(diverged.write(
            Some(&Hyperslab { start: &[members.start], count: &[members.len()] }),
            &data.diverged_at,
            true,
        ))?;
        drop((state, diverged));
        agreed(f.close())?;
    }
    world.barrier();
    world.root_decides(|| {
        std::fs::rename(&tmp, path)
            .map(|_| ())
            .map_err(|e| Error::Hdf5(format!("cannot rename {} to {}: {e}", tmp.display(), path.display())))
    })?;
    Ok(())
}

/// The step a checkpoint was written at.
pub fn stored_step(path: &Path) -> Result<u64> {
    step_of(&File::open(path, Access::Serial, false)?)
}

fn step_of(f: &File) -> Result<u64> {
    Ok(f.attrs().get::<i64>("step")?[0] as u64)
}

/// Reads this rank's `members` from the checkpoint at `path`.
pub fn read(path: &Path, members: Range<usize>, words: usize) -> Result<CheckpointData> {
    let f = File::open(path, Access::Serial, false)?;
    let step = step_of(&f)?;
    let state = f.dataset("state")?;
    let shape = state.shape()?;
    if shape.len() != 2 || shape[1] != words || shape[0] < members.end {
        return Err(Error::Hdf5(format!("{}: state has shape {shape:?}, expected [.., {words}]", path.display())));
    }
    let flat: Vec<f64> = state.read(Some(&Hyperslab { start: &[members.start, 0], count: &[members.len(), words] }))?;
    let states = flat.chunks_exact(words.max(1)).map(<[f64]>::to_vec).collect();
    let diverged_at =
        f.dataset("diverged_at")?.read(Some(&Hyperslab { start: &[members.start], count: &[members.len()] }))?;
    Ok(CheckpointData { step, states, diverged_at })
}
