//! Neural networks in libtorch (tch): the paper's UNet, the noise-level classifier head, and the
//! diffusion schedule.
//!
//! Conventions: tensors are `[batch, channel, y, x]` in normalised units (each channel divided
//! by its scale from the training split, no mean subtraction); the domain is doubly periodic, so
//! every convolution pads circularly. Variable names follow the authors' PyTorch modules
//! (`image_proj.weight`, `down.0.res.conv1.weight`, `regressor_block.linear1.bias`, ...), so a
//! state dict converted from their checkpoints loads by name.

pub mod classifier;
pub mod diffusion;
pub mod precision;
pub mod unet;

/// Number of scalar parameters held by a variable store.
pub fn parameter_count(vs: &tch::nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}
