//! DDPM with the cosine schedule (Nichol & Dhariwal 2021), as the authors' `diffusion.py`.
//!
//! Levels are 0-indexed, t = 0..T−1: f(t) = cos²(((t/T + s)/(1+s))·π/2),
//! β_t = min(1 − f(t+1)/f(t), 0.999), α_t = 1 − β_t, ᾱ_t = ∏_{k≤t} α_k.
//! Forward noising: x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε. Reverse (ancestral) step:
//! x_{t−1} = (x_t − β_t/√(1−ᾱ_t) ε̂)/√α_t + σ_t z with σ_t² = β_t (1−ᾱ_{t−1})/(1−ᾱ_t), σ_0 = 0.

use tch::{Kind, Tensor};

/// Offset `s` of the cosine schedule.
pub const COSINE_OFFSET: f64 = 0.008;
/// Largest β.
pub const MAX_BETA: f64 = 0.999;

/// The noise schedule of T levels (f64 host values).
#[derive(Clone, Debug)]
pub struct Schedule {
    pub beta: Vec<f64>,
    pub alpha_bar: Vec<f64>,
}

impl Schedule {
    /// Cosine schedule with `levels` = T levels.
    pub fn cosine(levels: usize) -> Schedule {
        let t_max = levels as f64;
        let f = |t: f64| {
            (((t / t_max + COSINE_OFFSET) / (1.0 + COSINE_OFFSET)) * std::f64::consts::FRAC_PI_2).cos().powi(2)
        };
        let beta: Vec<f64> =
            (0..levels).map(|t| (1.0 - f(t as f64 + 1.0) / f(t as f64)).clamp(0.0, MAX_BETA)).collect();
        let mut alpha_bar = Vec::with_capacity(levels);
        let mut acc = 1.0;
        for b in &beta {
            acc *= 1.0 - b;
            alpha_bar.push(acc);
        }
        Schedule { beta, alpha_bar }
    }

    /// Number of levels T.
    pub fn levels(&self) -> usize {
        self.beta.len()
    }

    /// Noise standard deviation √(1−ᾱ_t) of level t.
    pub fn noise_std(&self, t: usize) -> f64 {
        (1.0 - self.alpha_bar[t]).sqrt()
    }

    /// √ᾱ_t and √(1−ᾱ_t) per sample for integer levels `t` `[B]`, shaped `[B,1,1,1]` like `like`.
    fn coefficients(&self, t: &[usize], like: &Tensor) -> (Tensor, Tensor) {
        let a: Vec<f64> = t.iter().map(|&k| self.alpha_bar[k].sqrt()).collect();
        let b: Vec<f64> = t.iter().map(|&k| self.noise_std(k)).collect();
        let shape = [t.len() as i64, 1, 1, 1];
        let to = |v: Vec<f64>| Tensor::from_slice(&v).view(shape).to_kind(like.kind()).to_device(like.device());
        (to(a), to(b))
    }

    /// x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, per-sample levels `t`.
    pub fn noised(&self, x0: &Tensor, t: &[usize], eps: &Tensor) -> Tensor {
        let (a, b) = self.coefficients(t, x0);
        x0 * a + eps * b
    }

    /// One ancestral reverse step from level `t` (the same for the whole batch) given the
    /// predicted noise `eps_hat` and fresh standard normal `z` (ignored at t = 0).
    pub fn reverse_step(&self, x_t: &Tensor, t: usize, eps_hat: &Tensor, z: &Tensor) -> Tensor {
        let beta = self.beta[t];
        let mean = (x_t - eps_hat * (beta / self.noise_std(t))) / (1.0 - beta).sqrt();
        if t == 0 {
            return mean;
        }
        let var = beta * (1.0 - self.alpha_bar[t - 1]) / (1.0 - self.alpha_bar[t]);
        mean + z * var.sqrt()
    }
}

/// Levels `t` as an int64 tensor (class labels).
pub fn level_labels(t: &[usize]) -> Tensor {
    let v: Vec<i64> = t.iter().map(|&k| k as i64).collect();
    Tensor::from_slice(&v).to_kind(Kind::Int64)
}
