//! Thermalization (paper.md §5, the authors' `therm_algo` + `denoise_heterogen`), batched.
//!
//! After an emulator step, for a batch of members:
//! 1. the classifier estimates each member's noise level s_i (one encoder+head pass, whole batch);
//! 2. members with s_init < s_i ≤ noise_limit are selected (the others are not touched;
//!    members above noise_limit are reported, the caller stops them);
//! 3. with `forward_noise`, each selected member is noised forward to its level:
//!    x ← √ᾱ_{s_i} x + √(1−ᾱ_{s_i}) ε;
//! 4. for t = max s_i down to s_stop + 1, the members with s_i ≥ t take one DDPM reverse step at
//!    level t (one ε̂ pass over just those members, grouped by level).
//!
//! So a member at level s gets exactly s − s_stop reverse steps, t = s, …, s_stop + 1, and ends
//! at level s_stop. **Off-by-one, decided:** the authors' loop starts at max(s) − 1, so their
//! highest-level member skips its own level (one pass fewer than its peers); here every member
//! starts at its own level.
//!
//! Random draws (ε, and z of each reverse step) come from each member's own stream, in a fixed
//! order, so the result of a member does not depend on which members share its batch.

use rand_chacha::ChaCha8Rng;
use tch::Tensor;

use crate::nn::classifier::Thermalizer;
use crate::nn::diffusion::Schedule;
use crate::nn::precision::Reduced;
use crate::train::task::normals;

/// What thermalization needs of the diffusion model.
pub trait Denoiser {
    /// Predicted noise level of each sample of `x` `[B, C, N, N]`.
    fn levels(&self, x: &Tensor) -> Vec<usize>;
    /// Predicted noise ε̂(x) (blind: no level input).
    fn noise(&self, x: &Tensor) -> Tensor;
}

impl Denoiser for Thermalizer {
    fn levels(&self, x: &Tensor) -> Vec<usize> {
        let l = tch::no_grad(|| self.noise_level(x)).to_device(tch::Device::Cpu);
        Vec::<i64>::try_from(l).expect("int64 levels").into_iter().map(|v| v as usize).collect()
    }
    fn noise(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| tch::nn::Module::forward(self, x))
    }
}

/// A denoiser run in reduced precision: it rates and denoises states of the caller's type
/// (float32), the casts at its boundary.
impl<D: Denoiser> Denoiser for Reduced<D> {
    fn levels(&self, x: &Tensor) -> Vec<usize> {
        self.net().levels(&self.input(x))
    }
    fn noise(&self, x: &Tensor) -> Tensor {
        self.run(x, |net, x| net.noise(x))
    }
}

/// The thresholds of the algorithm.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub s_init: usize,
    pub s_stop: usize,
    pub noise_limit: usize,
    pub forward_noise: bool,
}

/// What happened to each member of the batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// Predicted level before thermalization.
    pub levels: Vec<usize>,
    /// Reverse (denoising) passes applied.
    pub passes: Vec<usize>,
    /// Level above the noise limit: not thermalized, to be stopped.
    pub over_limit: Vec<bool>,
}

fn member_noise(rngs: &mut [ChaCha8Rng], members: &[usize], like: &Tensor) -> Tensor {
    let per = like.size()[1..].iter().product::<i64>() as usize;
    let mut v = Vec::with_capacity(per * members.len());
    for &m in members {
        v.extend(normals(&mut rngs[m], per));
    }
    let mut shape = vec![members.len() as i64];
    shape.extend(&like.size()[1..]);
    Tensor::from_slice(&v).view(shape.as_slice()).to_kind(like.kind()).to_device(like.device())
}

fn index(members: &[usize], device: tch::Device) -> Tensor {
    Tensor::from_slice(&members.iter().map(|&m| m as i64).collect::<Vec<_>>()).to_device(device)
}

/// Thermalizes the members of `x` `[B, C, N, N]` in place; `rngs[i]` is member i's stream for
/// this step.
pub fn thermalize(
    x: &mut Tensor,
    model: &dyn Denoiser,
    schedule: &Schedule,
    th: &Thresholds,
    rngs: &mut [ChaCha8Rng],
) -> Applied {
    let _guard = tch::no_grad_guard();
    let levels = model.levels(x);
    let b = levels.len();
    let over_limit: Vec<bool> = levels.iter().map(|&s| s > th.noise_limit).collect();
    let mut passes = vec![0usize; b];
    let selected: Vec<usize> = (0..b).filter(|&i| levels[i] > th.s_init && !over_limit[i]).collect();
    if !selected.is_empty() {
        let device = x.device();
        let idx = index(&selected, device);
        let mut xs = x.index_select(0, &idx);
        let ss: Vec<usize> = selected.iter().map(|&i| levels[i].min(schedule.levels() - 1)).collect();
        if th.forward_noise {
            let eps = member_noise(rngs, &selected, &xs);
            xs = schedule.noised(&xs, &ss, &eps);
        }
        let top = *ss.iter().max().expect("non-empty");
        for t in (th.s_stop + 1..=top).rev() {
            let at: Vec<usize> = (0..ss.len()).filter(|&p| ss[p] >= t).collect();
            let members: Vec<usize> = at.iter().map(|&p| selected[p]).collect();
            let sub_idx = index(&at, device);
            let sub = xs.index_select(0, &sub_idx);
            let eps_hat = model.noise(&sub);
            let z = member_noise(rngs, &members, &sub);
            let next = schedule.reverse_step(&sub, t, &eps_hat, &z);
            xs = xs.index_copy(0, &sub_idx, &next.to_kind(xs.kind()));
            for m in members {
                passes[m] += 1;
            }
        }
        *x = x.index_copy(0, &idx, &xs.to_kind(x.kind()));
    }
    Applied { levels, passes, over_limit }
}
