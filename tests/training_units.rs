//! The training pieces in-process: AdamW against its formula, clipping, a tiny UNet
//! overfitting a tiny batch, and the noise-level classifier learning to tell levels apart.
//!
//! The two learning tests draw their initial weights and data from libtorch's global generator
//! under [`common::seeded_torch`], so they give the same numbers whatever `--test-threads` is.
//! Their bounds sit well below what 20 seeds reached (`learning_margins_over_20_seeds`, ignored
//! by default: `cargo test --release --test training_units -- --ignored --nocapture`).

mod common;

use common::seeded_torch;
use tch::nn::{Module, VarStore};
use tch::{Device, Kind, Reduction, Tensor};
use thermalizer::config::train::OptimizerConfig;
use thermalizer::nn::classifier::Thermalizer;
use thermalizer::nn::diffusion::{level_labels, Schedule};
use thermalizer::nn::unet::{Unet, UnetShape};
use thermalizer::train::optim::{clip_grad_norm, AdamW, Ema, Parameters};

fn optimizer(lr: f64, weight_decay: f64) -> OptimizerConfig {
    OptimizerConfig {
        lr,
        weight_decay,
        betas: [0.9, 0.999],
        eps: 1e-8,
        grad_clip: None,
        lr_step: Some(2),
        lr_gamma: 0.5,
        ema_decay: None,
    }
}

/// One update of PyTorch's AdamW on a scalar, written out.
fn adamw_reference(p: f64, m: f64, v: f64, g: f64, t: i32, lr: f64, wd: f64) -> (f64, f64, f64) {
    let p = p * (1.0 - lr * wd);
    let m = 0.9 * m + 0.1 * g;
    let v = 0.999 * v + 0.001 * g * g;
    let denom = (v / (1.0 - 0.999f64.powi(t))).sqrt() + 1e-8;
    (p - lr / (1.0 - 0.9f64.powi(t)) * m / denom, m, v)
}

#[test]
fn adamw_and_steplr_follow_pytorchs_formulas() {
    let vs = VarStore::new(Device::Cpu);
    let w = vs.root().var("w", &[2], tch::nn::Init::Const(0.0));
    tch::no_grad(|| w.detach().copy_(&Tensor::from_slice(&[1.0f32, -2.0])));
    let params = Parameters::of(&vs);
    let mut adam = AdamW::new(&optimizer(0.1, 0.05), 2, Device::Cpu);
    let grads = [[0.5f64, -3.0], [0.2, 1.0], [-1.0, 0.0]];
    let mut reference = [(1.0, 0.0, 0.0), (-2.0, 0.0, 0.0)];
    for (k, g) in grads.iter().enumerate() {
        let lr = adam.lr(k as u64);
        assert_eq!(lr, 0.1 * 0.5f64.powi(k as i32 / 2), "StepLR at update {k}");
        let gt = Tensor::from_slice(&[g[0] as f32, g[1] as f32]);
        adam.step(&params, &gt, k as u64);
        for i in 0..2 {
            let (p, m, v) = reference[i];
            reference[i] = adamw_reference(p, m, v, g[i], k as i32 + 1, lr, 0.05);
        }
    }
    let got = Vec::<f32>::try_from(w.detach()).unwrap();
    for i in 0..2 {
        assert!((got[i] as f64 - reference[i].0).abs() < 1e-6, "parameter {i}: {} vs {}", got[i], reference[i].0);
    }
}

#[test]
fn clipping_bounds_the_global_norm_and_ema_averages() {
    let mut g = Tensor::from_slice(&[3.0f32, 4.0]);
    assert_eq!(clip_grad_norm(&mut g, Some(1.0)), 5.0);
    assert!((g.norm().double_value(&[]) - 1.0).abs() < 1e-5);
    let mut small = Tensor::from_slice(&[0.3f32, 0.4]);
    clip_grad_norm(&mut small, Some(1.0));
    assert_eq!(Vec::<f32>::try_from(small).unwrap(), vec![0.3, 0.4], "below the limit nothing changes");
    let vs = VarStore::new(Device::Cpu);
    let w = vs.root().var("w", &[1], tch::nn::Init::Const(0.0));
    let params = Parameters::of(&vs);
    let mut ema = Ema::new(0.9, &params);
    tch::no_grad(|| w.detach().copy_(&Tensor::from_slice(&[1.0f32])));
    ema.update(&params);
    ema.update(&params);
    assert!((ema.flat.double_value(&[0]) - 0.19).abs() < 1e-6, "0 → 0.1 → 0.19");
}

/// The tiny UNet's loss on 4 samples after 300 updates, as a fraction of its first loss, from
/// torch seed `seed`.
fn overfit_fraction(seed: i64) -> f64 {
    let _torch = seeded_torch(seed);
    let vs = VarStore::new(Device::Cpu);
    let shape = UnetShape { in_channels: 1, out_channels: 1, hidden: 8, dim_mults: vec![1, 2], blocks: 1 };
    let net = Unet::new(&vs.root(), &shape);
    let params = Parameters::of(&vs);
    let mut adam = AdamW::new(&OptimizerConfig { lr_step: None, ..optimizer(3e-3, 0.0) }, params.numel(), Device::Cpu);
    let x = Tensor::randn([4, 1, 16, 16], (Kind::Float, Device::Cpu));
    let y = x.roll([1], [3]) * 0.5 - x.square() * 0.1; // a local nonlinear map
    let loss_of = || net.forward(&x).mse_loss(&y, Reduction::Mean);
    let first = loss_of().double_value(&[]);
    for k in 0..300 {
        params.zero_grad();
        loss_of().backward();
        adam.step(&params, &params.flat_grad(), k);
    }
    tch::no_grad(loss_of).double_value(&[]) / first
}

/// The tiny classifier's fraction of 400 held-out samples rated within ±1 of their level (of 8)
/// after 250 updates, from torch seed `seed`.
fn classifier_within_one(seed: i64) -> f64 {
    let _torch = seeded_torch(seed);
    let levels = 8usize;
    let schedule = Schedule::cosine(levels);
    let vs = VarStore::new(Device::Cpu);
    let shape = UnetShape { in_channels: 1, out_channels: 1, hidden: 8, dim_mults: vec![1, 2], blocks: 1 };
    let net = Thermalizer::new(&vs.root(), &shape, 16, levels as i64);
    let params = Parameters::of(&vs);
    let mut adam = AdamW::new(&OptimizerConfig { lr_step: None, ..optimizer(2e-3, 0.0) }, params.numel(), Device::Cpu);
    // Smooth unit-variance fields: random low modes on a 16² torus.
    let smooth = |n: i64| {
        let k = Tensor::randn([n, 1, 16, 9], (Kind::ComplexFloat, Device::Cpu));
        let mask = Tensor::arange(16, (Kind::Float, Device::Cpu))
            .view([16, 1])
            .lt(4)
            .logical_or(&Tensor::arange(16, (Kind::Float, Device::Cpu)).view([16, 1]).gt(12))
            .logical_and(&Tensor::arange(9, (Kind::Float, Device::Cpu)).view([1, 9]).lt(4));
        let f = (k * mask).fft_irfft2([16i64, 16].as_slice(), [-2i64, -1].as_slice(), "ortho");
        &f / f.std(true)
    };
    let draw = |n: usize| {
        let t: Vec<usize> = (0..n).map(|i| i % levels).collect();
        let x0 = smooth(n as i64);
        let eps = x0.randn_like();
        (schedule.noised(&x0, &t, &eps), level_labels(&t))
    };
    for k in 0..250 {
        let (xt, labels) = draw(32);
        params.zero_grad();
        net.logits(&xt).cross_entropy_for_logits(&labels).backward();
        adam.step(&params, &params.flat_grad(), k);
    }
    let (xt, labels) = draw(400);
    let predicted = tch::no_grad(|| net.noise_level(&xt));
    (predicted - &labels).abs().le(1).to_kind(Kind::Float).mean(Kind::Float).double_value(&[])
}

/// A correct implementation overfits 4 samples far below this in 300 updates: over seeds 0–19
/// the loss fell to at most 7e-4 of the first (median 1e-5; 2026-12-07).
const OVERFIT_BOUND: f64 = 1.0 / 100.0;
/// Guessing lands within ±1 of the true level (of 8) on 22/64 = 34 % of samples; after 250
/// updates a correct classifier reached 61–99 % over seeds 0–19 (median 94 %; 2026-12-07). The
/// bound lies below that range (a draw perturbed by another thread stays above it) and above
/// guessing.
const WITHIN_ONE_BOUND: f64 = 0.5;

#[test]
fn tiny_unet_overfits_a_tiny_batch() {
    let fraction = overfit_fraction(0);
    println!("loss after 300 updates: {fraction:.3e} of the first");
    assert!(fraction < OVERFIT_BOUND, "loss fell only to {fraction:.3e} of the first: did not overfit 4 samples");
}

#[test]
fn classifier_learns_to_tell_noise_levels_apart() {
    let within_one = classifier_within_one(1);
    println!("classifier within ±1 level on {:.1} % of held-out samples", within_one * 100.0);
    assert!(
        within_one > WITHIN_ONE_BOUND,
        "classifier within ±1 level on {:.1} % of held-out samples",
        within_one * 100.0
    );
}

/// The margins of the two learning tests: both bounds hold for each of 20 seeds, and the
/// distributions are printed (the numbers behind the bounds above).
#[test]
#[ignore = "about a minute: run with --ignored --nocapture to re-measure the learning tests' margins"]
fn learning_margins_over_20_seeds() {
    let overfit: Vec<f64> = (0..20).map(overfit_fraction).collect();
    let within: Vec<f64> = (0..20).map(classifier_within_one).collect();
    let range = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        format!("min {:.4}, median {:.4}, max {:.4}", s[0], s[s.len() / 2], s[s.len() - 1])
    };
    println!("overfit fraction over 20 seeds: {} (bound < {OVERFIT_BOUND})", range(&overfit));
    println!("within ±1 over 20 seeds: {} (bound > {WITHIN_ONE_BOUND})", range(&within));
    assert!(overfit.iter().all(|&f| f < OVERFIT_BOUND) && within.iter().all(|&w| w > WITHIN_ONE_BOUND));
}
