//! `thermalizer bench train`: training throughput of the emulator UNet, one full update as the
//! trainer does it (forward, MSE loss, backward, flat gradient + allreduce over ranks, clipping,
//! AdamW), on random data.
//!
//! Method: per model and thread count, 2 warm-up updates, then `repeats` blocks of about
//! `seconds` each; the median ms per update is reported, and samples/s = batch·ranks / time.
//! Under `mpirun` every rank trains its own `batch` (weak scaling) and rank 0 reports.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::nn::{Module, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

use crate::bench::rollout::synchronize;
use crate::config::train::{EmulatorConfig, OptimizerConfig};
use crate::nn::unet::{Unet, UnetShape};
use crate::parallel::World;
use crate::rollout::stats::median;
use crate::train::optim::{clip_grad_norm, AdamW, Parameters};
use crate::train::reduce;

/// A benchmarked model (the JSON objects of `--models`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchModel {
    pub name: String,
    pub hidden: i64,
    pub dim_mults: Vec<i64>,
    pub blocks: usize,
    pub channels: i64,
    pub grid: i64,
    pub batch: i64,
}

impl BenchModel {
    /// The UNet of this model: as many output channels as input channels (an emulator).
    pub fn shape(&self) -> UnetShape {
        UnetShape {
            in_channels: self.channels,
            out_channels: self.channels,
            hidden: self.hidden,
            dim_mults: self.dim_mults.clone(),
            blocks: self.blocks,
        }
    }
}

/// The default models: the quickstart emulator and a 4-level width-32 UNet, both on 64².
pub fn default_models() -> Vec<BenchModel> {
    let m = |name: &str, hidden, dim_mults: Vec<i64>, blocks| BenchModel {
        name: name.into(),
        hidden,
        dim_mults,
        blocks,
        channels: 1,
        grid: 64,
        batch: 32,
    };
    vec![m("quickstart", 16, vec![1, 2, 2], 1), m("w32-l4", 32, vec![1, 2, 2, 2], 2)]
}

/// One measurement.
pub struct TrainRow {
    pub parameters: i64,
    pub ms_per_update: f64,
    pub samples_per_s: f64,
}

/// Median time of one training update of `m` with `threads` threads per rank.
pub fn update_time(
    m: &BenchModel,
    threads: usize,
    (seconds, repeats): (f64, usize),
    world: &World,
    device: Device,
) -> TrainRow {
    tch::set_num_threads(threads as i32);
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let shape = m.shape();
    let net = Unet::new(&vs.root(), &shape);
    let params = Parameters::of(&vs);
    // The emulator's training optimiser (AdamW 5e-5, wd 0.05, clipping at 1.0), constant lr.
    let cfg = OptimizerConfig { lr_step: None, ..EmulatorConfig::default().optimizer };
    let mut adam = AdamW::new(&cfg, params.numel(), device);
    let reducer = reduce::for_device(world, device, reduce::Allreduce::Auto).expect("auto never fails");
    let x = Tensor::randn([m.batch, m.channels, m.grid, m.grid], (Kind::Float, device));
    let target = x.randn_like();
    let mut applied = 0u64;
    let mut update = || {
        params.zero_grad();
        let loss = net.forward(&x).mse_loss(&target, Reduction::Mean);
        loss.backward();
        let mut flat = Tensor::cat(&[params.flat_grad(), loss.detach().reshape([1])], 0);
        reducer.sum_in_place(&mut flat);
        let mut grad = flat.narrow(0, 0, flat.numel() as i64 - 1);
        clip_grad_norm(&mut grad, cfg.grad_clip);
        adam.step(&params, &grad, applied);
        synchronize(device);
        applied += 1;
    };
    update();
    update();
    world.barrier();
    // Updates per block from a timed probe, agreed over ranks so all do the same count.
    let t = Instant::now();
    update();
    let probe = world.max_f64(&[t.elapsed().as_secs_f64()])[0];
    let per_block = ((seconds / probe).ceil() as usize).max(1);
    let times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            world.barrier();
            let t = Instant::now();
            for _ in 0..per_block {
                update();
            }
            world.max_f64(&[t.elapsed().as_secs_f64()])[0] / per_block as f64
        })
        .collect();
    let ms = median(times) * 1e3;
    TrainRow {
        parameters: params.numel(),
        ms_per_update: ms,
        samples_per_s: (m.batch as usize * world.size()) as f64 / (ms / 1e3),
    }
}
