//! The thermalizer's training objective (paper.md §4): a stored state x_0 (a sample of the
//! invariant measure), a level t ~ Uniform{0..T−1} and noise ε ~ N(0, I) drawn from the
//! sample's own random stream, x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, and
//! loss = MSE(ε̂(x_t), ε) + λ·CrossEntropy(logits(x_t), t), both from one forward pass.
//!
//! Validation diagnostics of the classifier where the rollout thresholds live (paper.md §9
//! item 7): `clean_level`, the mean level it predicts for clean validation states (a rollout
//! thermalizes states of the measure when this is above s_init), and `low_within_2`, the
//! fraction of states noised to a level t ≤ 20 whose predicted level is within ±2 of t.

use rand::Rng;
use tch::{Kind, Reduction, Tensor};

use super::task::{normals, Draw, Setup, Split, Task};
use crate::config::train::ThermalizerConfig;
use crate::error::Result;
use crate::nn::classifier::Thermalizer;
use crate::nn::diffusion::{level_labels, Schedule};

pub struct ThermalizerTask {
    pub setup: Setup,
    pub cfg: ThermalizerConfig,
    pub net: Thermalizer,
    pub schedule: Schedule,
}

impl Task for ThermalizerTask {
    fn setup(&self) -> &Setup {
        &self.setup
    }

    fn loss(&self, split: Split, draws: &[Draw], denom: f64, _applied: u64) -> Result<Tensor> {
        let x0 = self.setup.samples.batch(split, draws)?.select(1, 0);
        let per = x0.size()[1..].iter().product::<i64>() as usize;
        let (mut levels, mut eps) = (Vec::with_capacity(draws.len()), Vec::with_capacity(per * draws.len()));
        for d in draws {
            let mut rng = d.rng(self.setup.seed, split);
            levels.push(rng.random_range(0..self.schedule.levels()));
            eps.extend(normals(&mut rng, per));
        }
        let eps = Tensor::from_slice(&eps).view(x0.size().as_slice()).to_device(x0.device());
        let xt = self.schedule.noised(&x0, &levels, &eps);
        let (eps_hat, logits) = self.net.forward_both(&xt);
        let mse = (eps_hat - eps).square().mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float).sum(Kind::Float);
        let labels = level_labels(&levels).to_device(x0.device());
        let ce = logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::Sum, -100, 0.0);
        Ok((mse + ce * self.cfg.classifier_weight) / denom)
    }

    fn best_counts(&self, _applied: u64) -> bool {
        true
    }

    fn diagnostic_names(&self) -> &'static [&'static str] {
        &["clean_level", "low_within_2"]
    }

    fn diagnostics(&self, draws: &[Draw]) -> Result<Vec<f64>> {
        let x0 = self.setup.samples.batch(Split::Valid, draws)?.select(1, 0);
        let per = x0.size()[1..].iter().product::<i64>() as usize;
        let top = LOW_LEVELS.min(self.schedule.levels() - 1);
        let (mut levels, mut eps) = (Vec::with_capacity(draws.len()), Vec::with_capacity(per * draws.len()));
        for d in draws {
            let mut rng = d.rng(self.setup.seed, Split::Valid);
            levels.push(rng.random_range(0..=top));
            eps.extend(normals(&mut rng, per));
        }
        let eps = Tensor::from_slice(&eps).view(x0.size().as_slice()).to_device(x0.device());
        let xt = self.schedule.noised(&x0, &levels, &eps);
        let predict = |x: &Tensor| Vec::<i64>::try_from(self.net.noise_level(x).to_device(tch::Device::Cpu));
        let clean: i64 = predict(&x0)?.iter().sum();
        let within = predict(&xt)?.iter().zip(&levels).filter(|(p, &t)| (**p - t as i64).abs() <= 2).count();
        Ok(vec![clean as f64, within as f64])
    }
}

/// Levels 0..=LOW_LEVELS are where the rollout thresholds live (s_stop 4, s_init 10 of 1000).
const LOW_LEVELS: usize = 20;
