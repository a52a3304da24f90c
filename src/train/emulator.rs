//! The emulator's training objective: residual one-step prediction x_{t+1} = x_t + f(x_t),
//! trained with the unrolled curriculum of paper.md §3.
//!
//! With `n` the current unroll length (1, plus one every `rollout_scheduler` updates, up to
//! `max_rollout`), a window x_0..x_n of stored states gives
//! loss = Σ_{a<n} MSE(f(s_a), x_{a+1} − x_a), s_0 = x_0, s_{a+1} = s_a + f(s_a) + σ·z_a:
//! gradients flow through the whole unroll, the target is always the true residual, and σ-noise
//! (per sample, from its own random stream) is added to each rolled-out state. Validation uses
//! the same unroll without noise.

use tch::nn::Module;
use tch::{Kind, Tensor};

use super::task::{normals, Draw, Setup, Split, Task};
use crate::config::train::EmulatorConfig;
use crate::error::Result;
use crate::nn::unet::Unet;

pub struct EmulatorTask {
    pub setup: Setup,
    pub cfg: EmulatorConfig,
    pub net: Unet,
}

impl EmulatorTask {
    /// Unroll length after `applied` updates.
    pub fn unroll(&self, applied: u64) -> usize {
        (1 + (applied / self.cfg.rollout_scheduler) as usize).min(self.cfg.max_rollout)
    }
}

impl Task for EmulatorTask {
    fn setup(&self) -> &Setup {
        &self.setup
    }

    // `t = t + u`, not `t += u`: tch's `+=` adds in place, into `x` (a view of which `state` starts as).
    #[allow(clippy::assign_op_pattern)]
    fn loss(&self, split: Split, draws: &[Draw], denom: f64, applied: u64) -> Result<Tensor> {
        let x = self.setup.samples.batch(split, draws)?;
        let n = self.unroll(applied);
        let sigma = if split == Split::Train { self.cfg.sigma } else { 0.0 };
        let noise = if sigma > 0.0 && n > 1 {
            let per = (n - 1) * x.size()[2..].iter().product::<i64>() as usize;
            let mut all = Vec::with_capacity(per * draws.len());
            for d in draws {
                all.extend(normals(&mut d.rng(self.setup.seed, split), per));
            }
            let mut shape = vec![draws.len() as i64, (n - 1) as i64];
            shape.extend(&x.size()[2..]);
            Some(Tensor::from_slice(&all).view(shape.as_slice()).to_device(x.device()) * sigma)
        } else {
            None
        };
        let mut state = x.select(1, 0);
        let mut loss = Tensor::zeros([], (Kind::Float, x.device()));
        let mut dx: Option<Tensor> = None;
        for a in 0..n as i64 {
            if let Some(prev) = dx.take() {
                state = state + prev;
                if let Some(z) = &noise {
                    state = state + z.select(1, a - 1);
                }
            }
            let pred = self.net.forward(&state);
            let target = x.select(1, a + 1) - x.select(1, a);
            loss = loss
                + (&pred - target).square().mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float).sum(Kind::Float)
                    / denom;
            dx = Some(pred);
        }
        Ok(loss)
    }

    fn best_counts(&self, applied: u64) -> bool {
        self.unroll(applied) == self.cfg.max_rollout
    }

    fn progress(&self, applied: u64) -> String {
        format!("unroll {}", self.unroll(applied))
    }
}
