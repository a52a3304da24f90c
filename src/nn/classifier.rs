//! The thermalizer: the UNet predicting the noise ε of a noised state (no noise-level input), and
//! a classifier head on the bottleneck with one logit per diffusion level.
//!
//! Head (`regressor_block` in the authors' code): GELU → conv3×3 (bottleneck width, circular) →
//! GELU → conv1×1 to `f` filters → flatten (`f·s²` values for an `s²` bottleneck) → Linear to T →
//! GELU → Linear T → T. `f = round(4096 / s²)`, so the flattened vector has about 4096 values.
//! The bottleneck size is computed from the real number of levels (the authors' formula only
//! agrees for 2 or 3 levels).

use tch::nn::{self, Module};
use tch::Tensor;

use super::unet::{conv, torch_default_init, PeriodicConv, Unet, UnetShape};

/// Size of the flattened vector the head aims for (the authors' `mlp_max`).
const MLP_MAX: i64 = 4096;

#[derive(Debug)]
struct Head {
    conv1: PeriodicConv,
    conv2: PeriodicConv,
    linear1: nn::Linear,
    linear2: nn::Linear,
}

/// Blind denoiser plus noise-level classifier.
#[derive(Debug)]
pub struct Thermalizer {
    unet: Unet,
    head: Head,
}

impl Thermalizer {
    /// Variables under `p`: the UNet's names plus `regressor_block.*`.
    pub fn new(p: &nn::Path, shape: &UnetShape, image: i64, levels: i64) -> Thermalizer {
        let unet = Unet::new(p, shape);
        let c = shape.bottleneck_channels();
        let s = shape.bottleneck_size(image);
        let filters = ((MLP_MAX as f64 / (s * s) as f64).round() as i64).max(1);
        let hp = p / "regressor_block";
        let linear = |p: nn::Path, i: i64, o: i64| {
            let init = torch_default_init(i);
            nn::linear(p, i, o, nn::LinearConfig { ws_init: init, bs_init: Some(init), bias: true })
        };
        let head = Head {
            conv1: conv(&hp / "conv1", c, c, 3, 1),
            conv2: conv(&hp / "conv2", c, filters, 1, 1),
            linear1: linear(&hp / "linear1", filters * s * s, levels),
            linear2: linear(&hp / "linear2", levels, levels),
        };
        Thermalizer { unet, head }
    }

    fn classify_bottleneck(&self, x: &Tensor) -> Tensor {
        let h = x.gelu("none").apply(&self.head.conv1);
        let h = h.gelu("none").apply(&self.head.conv2).flatten(1, -1);
        h.apply(&self.head.linear1).gelu("none").apply(&self.head.linear2)
    }

    /// Predicted noise ε̂ and the noise-level logits `[B, T]`, from one pass.
    pub fn forward_both(&self, x: &Tensor) -> (Tensor, Tensor) {
        let e = self.unet.encode(x);
        let logits = self.classify_bottleneck(&e.bottleneck);
        (self.unet.decode(e), logits)
    }

    /// Noise-level logits only (encoder, middle block and head: about half a full pass).
    pub fn logits(&self, x: &Tensor) -> Tensor {
        self.classify_bottleneck(&self.unet.encode(x).bottleneck)
    }

    /// Most likely noise level per sample, `[B]` (int64).
    pub fn noise_level(&self, x: &Tensor) -> Tensor {
        self.logits(x).argmax(-1, false)
    }
}

impl Module for Thermalizer {
    /// Predicted noise ε̂.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.unet.forward(x)
    }
}
