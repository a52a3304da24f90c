//! `thermalizer bench rollout`: inference cost per member-step of the pieces of a rollout, at
//! several batch sizes: one emulator step, one classifier pass (encoder + middle + head), one
//! denoising pass (full ε̂ UNet + DDPM step); and the cost of a thermalized step relative to the
//! emulator alone for a given number of passes, (emulator + classifier + k·denoise)/emulator.
//! The networks run in the rollout's `inference_precision` ([`Reduced`]: weights cast once,
//! inputs and outputs float32), so the casts at their boundary are timed too.
//!
//! Random weights and data (the cost does not depend on them); no gradients; one rank; on the
//! CPU or one GPU (each timed call ends with a device synchronisation).

use std::time::Instant;

use tch::nn::{Module, VarStore};
use tch::{Device, Kind, Tensor};

use crate::nn::classifier::Thermalizer;
use crate::nn::diffusion::Schedule;
use crate::nn::precision::Reduced;
use crate::nn::unet::{Unet, UnetShape};
use crate::rollout::stats::median;

/// Per member-step costs in milliseconds at one batch size.
pub struct RolloutRow {
    pub batch: i64,
    pub emulator_ms: f64,
    pub classifier_ms: f64,
    pub denoise_ms: f64,
}

fn median_ms(seconds: f64, repeats: usize, batch: i64, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let per_block = ((seconds / t.elapsed().as_secs_f64().max(1e-9)).ceil() as usize).max(1);
    let times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_block {
                f();
            }
            t.elapsed().as_secs_f64() / per_block as f64
        })
        .collect();
    median(times) * 1e3 / batch as f64
}

/// Waits for the work queued on `device` (a no-op on the CPU).
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Times the pieces for `shape` on an `image`² grid with `levels` (at least 2) diffusion levels,
/// the networks in `precision` (a float kind).
pub fn costs(
    shape: &UnetShape,
    (image, levels, batch): (i64, i64, i64),
    precision: Kind,
    seconds: f64,
    repeats: usize,
    device: Device,
) -> RolloutRow {
    let _g = tch::no_grad_guard();
    tch::manual_seed(0);
    let (mut evs, mut tvs) = (VarStore::new(device), VarStore::new(device));
    let emulator = Reduced::new(Unet::new(&evs.root(), shape), &mut evs, precision);
    let thermalizer = Reduced::new(Thermalizer::new(&tvs.root(), shape, image, levels), &mut tvs, precision);
    let schedule = Schedule::cosine(levels as usize);
    let x = Tensor::randn([batch, shape.in_channels, image, image], (Kind::Float, device));
    let z = x.randn_like();
    let emulator_ms = median_ms(seconds, repeats, batch, || {
        let _ = &x + emulator.forward(&x);
        synchronize(device);
    });
    let classifier_ms = median_ms(seconds, repeats, batch, || {
        let _ = thermalizer.net().noise_level(&thermalizer.input(&x));
        synchronize(device);
    });
    // A level above 0, so that the step draws its noise term as the rollout's steps do.
    let level = (levels as usize - 1).min(8);
    let denoise_ms = median_ms(seconds, repeats, batch, || {
        let _ = schedule.reverse_step(&x, level, &thermalizer.forward(&x), &z);
        synchronize(device);
    });
    RolloutRow { batch, emulator_ms, classifier_ms, denoise_ms }
}
