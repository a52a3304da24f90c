//! Training of the emulator and the thermalizer, data-parallel over MPI ranks.
//!
//! [`data`] reads windows of the trajectories file; [`task`] is what a model contributes (its
//! samples and loss: [`emulator`], [`thermalizer`]); [`trainer`] is the loop shared by both:
//! gradient reduction ([`reduce`]; NCCL in `nccl` with the `cuda` feature), AdamW/EMA/clipping ([`optim`]), checkpoints
//! ([`checkpoint`]), resume and signals.

pub mod checkpoint;
pub mod data;
pub mod emulator;
#[cfg(feature = "cuda")]
pub mod nccl;
pub mod optim;
pub mod reduce;
pub mod task;
pub mod thermalizer;
pub mod trainer;
