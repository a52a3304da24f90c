//! `emulator.*` and `thermalizer.*`: the two models and how they are trained.
//!
//! Defaults are the authors' Kolmogorov settings (paper.md §3–4): a UNet of width 64 with
//! multipliers [2,2,2]; the emulator with AdamW lr 5e-5, weight decay 0.05, batch 32, 12 epochs,
//! unrolled curriculum up to 4 steps every 20,000 updates, σ = 1e-4, StepLR (100,000, 0.5); the
//! thermalizer with lr 2e-5, batch 64, 50 epochs, EMA 0.995, T = 1000, λ = 1. Unlike the
//! authors' code, gradient clipping is applied (`grad_clip`, global L2 norm; null = off).

use serde::{Deserialize, Serialize};

use crate::nn::unet::UnetShape;

/// `*.model`: the UNet's shape (the channel counts come from the system).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Width after the input projection.
    #[serde(default = "d_hidden")]
    pub hidden: i64,
    /// Channel multiplier per level; its length is the number of levels.
    #[serde(default = "d_mults")]
    pub dim_mults: Vec<i64>,
    /// Residual blocks per encoder level (the decoder has one more).
    #[serde(default = "d_blocks")]
    pub blocks: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig { hidden: d_hidden(), dim_mults: d_mults(), blocks: d_blocks() }
    }
}

impl ModelConfig {
    /// The UNet for fields of `channels` channels.
    pub fn shape(&self, channels: i64) -> UnetShape {
        UnetShape {
            in_channels: channels,
            out_channels: channels,
            hidden: self.hidden,
            dim_mults: self.dim_mults.clone(),
            blocks: self.blocks,
        }
    }
}

/// `*.optimizer`: AdamW with StepLR, optional EMA and gradient clipping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Learning rate at update 0.
    pub lr: f64,
    /// Decoupled weight decay (applied as p ← p·(1 − lr·wd)).
    #[serde(default = "d_wd")]
    pub weight_decay: f64,
    /// Adam's β1, β2.
    #[serde(default = "d_betas")]
    pub betas: [f64; 2],
    /// Adam's ε.
    #[serde(default = "d_eps")]
    pub eps: f64,
    /// Largest global gradient L2 norm (clipped above it); null = no clipping.
    #[serde(default = "d_clip")]
    pub grad_clip: Option<f64>,
    /// Multiply the learning rate by `lr_gamma` every `lr_step` updates; null = constant.
    #[serde(default = "d_lr_step")]
    pub lr_step: Option<u64>,
    #[serde(default = "d_gamma")]
    pub lr_gamma: f64,
    /// Decay of the exponential moving average of the weights; null = no EMA.
    #[serde(default)]
    pub ema_decay: Option<f64>,
}

/// Settings shared by both trainings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopConfig {
    /// Global batch (split over ranks; the result does not depend on the rank count).
    pub batch_size: usize,
    /// Passes over the training samples.
    pub epochs: usize,
    /// Stop after this many optimizer updates (null = by epochs).
    #[serde(default)]
    pub max_updates: Option<u64>,
    /// Validation samples evaluated at the end of each epoch (the first ones of a fixed order).
    #[serde(default = "d_valid")]
    pub valid_samples: usize,
    /// Log a progress line every this many updates.
    #[serde(default = "d_log_every")]
    pub log_every: u64,
    /// Stop with an error after this many consecutive skipped (non-finite) updates.
    #[serde(default = "d_max_skips")]
    pub max_skipped: u64,
}

/// `emulator.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorConfig {
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default = "emulator_optimizer")]
    pub optimizer: OptimizerConfig,
    #[serde(default = "emulator_loop")]
    pub training: LoopConfig,
    /// Longest unroll of the curriculum (steps).
    #[serde(default = "d_max_rollout")]
    pub max_rollout: usize,
    /// Updates between increments of the unroll length.
    #[serde(default = "d_rollout_scheduler")]
    pub rollout_scheduler: u64,
    /// Standard deviation of the noise added to the rolled-out state (normalised units).
    #[serde(default = "d_sigma")]
    pub sigma: f64,
}

/// `thermalizer.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThermalizerConfig {
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default = "thermalizer_optimizer")]
    pub optimizer: OptimizerConfig,
    #[serde(default = "thermalizer_loop")]
    pub training: LoopConfig,
    /// Diffusion levels T (classes of the noise-level classifier).
    #[serde(default = "d_levels")]
    pub levels: usize,
    /// Weight λ of the classifier's cross-entropy in the loss.
    #[serde(default = "d_one")]
    pub classifier_weight: f64,
    /// Stored states at the start of each member left out as not yet stationary.
    #[serde(default)]
    pub skip_samples: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            model: ModelConfig::default(),
            optimizer: emulator_optimizer(),
            training: emulator_loop(),
            max_rollout: d_max_rollout(),
            rollout_scheduler: d_rollout_scheduler(),
            sigma: d_sigma(),
        }
    }
}

impl Default for ThermalizerConfig {
    fn default() -> Self {
        ThermalizerConfig {
            model: ModelConfig::default(),
            optimizer: thermalizer_optimizer(),
            training: thermalizer_loop(),
            levels: d_levels(),
            classifier_weight: 1.0,
            skip_samples: 0,
        }
    }
}

fn emulator_optimizer() -> OptimizerConfig {
    OptimizerConfig {
        lr: 5e-5,
        weight_decay: d_wd(),
        betas: d_betas(),
        eps: d_eps(),
        grad_clip: d_clip(),
        lr_step: d_lr_step(),
        lr_gamma: d_gamma(),
        ema_decay: None,
    }
}
fn thermalizer_optimizer() -> OptimizerConfig {
    OptimizerConfig { lr: 2e-5, ema_decay: Some(0.995), ..emulator_optimizer() }
}
fn emulator_loop() -> LoopConfig {
    LoopConfig {
        batch_size: 32,
        epochs: 12,
        max_updates: None,
        valid_samples: d_valid(),
        log_every: d_log_every(),
        max_skipped: d_max_skips(),
    }
}
fn thermalizer_loop() -> LoopConfig {
    LoopConfig { batch_size: 64, epochs: 50, ..emulator_loop() }
}
fn d_hidden() -> i64 {
    64
}
fn d_mults() -> Vec<i64> {
    vec![2, 2, 2]
}
fn d_blocks() -> usize {
    2
}
fn d_wd() -> f64 {
    0.05
}
fn d_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn d_eps() -> f64 {
    1e-8
}
fn d_clip() -> Option<f64> {
    Some(1.0)
}
fn d_lr_step() -> Option<u64> {
    Some(100_000)
}
fn d_gamma() -> f64 {
    0.5
}
fn d_valid() -> usize {
    512
}
fn d_log_every() -> u64 {
    50
}
fn d_max_skips() -> u64 {
    20
}
fn d_max_rollout() -> usize {
    4
}
fn d_rollout_scheduler() -> u64 {
    20_000
}
fn d_sigma() -> f64 {
    1e-4
}
fn d_levels() -> usize {
    1000
}
fn d_one() -> f64 {
    1.0
}
