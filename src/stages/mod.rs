//! The pipeline's stages: each takes the resolved config and the MPI world, reads its inputs
//! from `run.dir` and writes its outputs there.

pub mod calibrate;
pub mod command;
pub mod describe;
pub mod generate;
pub mod models;
pub mod rollout;
pub mod status;
pub mod train;
pub mod well;
