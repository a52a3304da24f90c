//! The pipeline's stages: each takes the resolved config and the MPI world, reads its inputs
//! from `run.dir` and writes its outputs there.

pub mod calibrate;
pub mod command;
pub mod generate;
pub mod models;
pub mod rollout;
pub mod status;
pub mod train;
pub mod well;

/// Why a stage failed.
#[derive(Debug)]
pub enum StageError {
    /// Bad input found before any compute, identically on every rank (exit status 2).
    Input(String),
    /// A failure during the run, possibly on one rank only (exit status 1; aborts the job).
    Io(String),
    /// A failure during the run that every rank holds, agreed after a collective operation
    /// ([`World::agree`](crate::parallel::World::agree)): reported once, and every rank ends by
    /// itself, without aborting the job (exit status 1).
    Collective(String),
}
