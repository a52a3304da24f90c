//! Training of the emulator and the thermalizer, data-parallel over MPI ranks.
//!
//! [`data`] orders the training windows (per-epoch permutation, validation subset) and sets
//! their normalisation; [`task`] is what a model contributes (its samples and loss:
//! [`emulator`], [`thermalizer`]); [`trainer`] is the loop shared by both: gradient reduction
//! ([`reduce`]; NCCL in `nccl` with the `cuda` feature), AdamW/EMA/clipping ([`optim`]), the
//! safetensors file of weights, optimizer state and progress ([`weights_file`]; the state
//! itself in `state`, the CSV logs in `logs`), resume and signals.

pub mod data;
pub mod emulator;
mod logs;
#[cfg(feature = "cuda")]
pub mod nccl;
pub mod optim;
pub mod reduce;
mod state;
pub mod task;
pub mod thermalizer;
pub mod trainer;
pub mod weights_file;
