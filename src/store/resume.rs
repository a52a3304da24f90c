//! The protocol of every resumable stage (generate, train, rollout), written once.
//!
//! 1. **Decide** ([`decide_locked`]): rank 0 takes the stage's lock in the run directory and
//!    decides, from what is on disk and the identity of the config that made it, whether to start
//!    afresh, resume from a checkpoint, or do nothing because the output already exists from the
//!    same inputs. A file made from other inputs is an input error, never overwritten. Every rank
//!    gets rank 0's [`Decision`].
//! 2. **Write** the output under `<name>.partial` ([`StageFiles::partial`]), checkpointing as it
//!    goes; a stop on request returns [`Outcome::Interrupted`] after a checkpoint.
//! 3. **Publish** ([`StageFiles::publish`]): once complete, rank 0 renames the partial file to
//!    its final name and removes the checkpoint, so a file under a final name is always whole.

use std::path::{Path, PathBuf};

use super::lock::{self, StageLock};
use crate::config::{same_identity, Stage};
use crate::error::{Context, Error, Result};
use crate::parallel::{Verdict, World};

/// What a stage does with the run directory it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing of this stage there yet (or nothing resumable): start from the beginning.
    Fresh,
    /// A checkpoint (and partial output) from the same inputs: continue from it.
    Resume,
    /// The output exists from the same inputs: nothing to do.
    Done,
}

impl Verdict for Decision {
    fn code(&self) -> u8 {
        *self as u8
    }
    fn from_code(code: u8) -> Self {
        [Decision::Fresh, Decision::Resume, Decision::Done][code as usize]
    }
}

/// How a resumable stage ended.
#[derive(Debug, PartialEq)]
pub enum Outcome<T> {
    /// The stage's result exists: made now, or by an earlier run from the same inputs (`already`).
    Complete { result: T, already: bool },
    /// Stopped on request after a checkpoint at `step` (solver step, emulator step or update);
    /// the same command resumes.
    Interrupted { step: u64 },
}

/// A stage's files in its run directory: the output, its `.partial` while being written, and
/// the checkpoint that resumes it.
pub struct StageFiles {
    pub output: PathBuf,
    pub partial: PathBuf,
    pub checkpoint: PathBuf,
}

impl StageFiles {
    /// `<dir>/<output>`, `<dir>/<output>.partial` and `<dir>/<checkpoint>`.
    pub fn new(dir: &Path, output: &str, checkpoint: &str) -> StageFiles {
        let output = dir.join(output);
        StageFiles { partial: super::partial_path(&output), checkpoint: dir.join(checkpoint), output }
    }

    /// The generate stage's: `trajectories.h5` and `trajectories.checkpoint.h5`.
    pub fn generate(dir: &Path) -> StageFiles {
        StageFiles::new(dir, "trajectories.h5", "trajectories.checkpoint.h5")
    }

    /// The rollout stage's: `rollout.h5` and `rollout.checkpoint.h5`.
    pub fn rollout(dir: &Path) -> StageFiles {
        StageFiles::new(dir, "rollout.h5", "rollout.checkpoint.h5")
    }

    /// Rank 0's decision for a stage whose checkpoint resumes a partial output: done when the
    /// output exists from the same `identity` ([`crate::config::Config::identity`] of `stage`),
    /// resume when the checkpoint and the partial file both exist from it, else fresh. An output
    /// or checkpoint from another config is an input error naming the file.
    pub fn decide(&self, stage: Stage, identity: &str) -> Result<Decision> {
        let same = |path: &Path| -> Result<bool> { Ok(same_identity(stage, &super::stored_config(path)?, identity)) };
        if self.output.exists() {
            return if same(&self.output)? {
                Ok(Decision::Done)
            } else {
                Err(Error::Input(format!(
                    "{} exists and was made from a different config; move it away or use another run.dir",
                    self.output.display()
                )))
            };
        }
        if self.checkpoint.exists() && self.partial.exists() {
            return if same(&self.checkpoint)? {
                Ok(Decision::Resume)
            } else {
                Err(Error::Input(format!(
                    "{} belongs to a run with a different config; remove it (and {}) to start afresh",
                    self.checkpoint.display(),
                    self.partial.display()
                )))
            };
        }
        Ok(Decision::Fresh)
    }

    /// Collective, after every rank has closed the partial file: rank 0 renames it to the
    /// output's name and removes the checkpoint.
    pub fn publish(&self, world: &World) -> Result<()> {
        world.barrier();
        world.root_decides(|| {
            std::fs::rename(&self.partial, &self.output)
                .context(|| format!("cannot rename {} to {}", self.partial.display(), self.output.display()))?;
            let _ = std::fs::remove_file(&self.checkpoint);
            Ok(())
        })
    }
}

/// Rank 0 takes `stage`'s lock in `dir`, then runs `decide` under it; every rank gets rank 0's
/// decision, or its refusal as [`Error::Input`], and rank 0 the lock, to hold until the stage
/// returns. A refused run leaves no trace: the directories the lock created go with it.
pub fn decide_locked(
    world: &World,
    dir: &Path,
    stage: &str,
    decide: impl FnOnce() -> Result<Decision>,
) -> Result<(Decision, Option<StageLock>)> {
    let mut held = None;
    let decision = world
        .root_decides(|| {
            let created: Vec<&Path> =
                dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
            let lock = lock::take(dir, stage)?;
            match decide() {
                Ok(decision) => {
                    held = Some(lock);
                    Ok(decision)
                }
                Err(e) => {
                    drop(lock);
                    for d in created {
                        let _ = std::fs::remove_dir(d); // only when empty
                    }
                    Err(e)
                }
            }
        })
        .map_err(|e| Error::Input(e.to_string()))?;
    Ok((decision, held))
}
