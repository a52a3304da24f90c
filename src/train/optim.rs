//! AdamW, StepLR, EMA and gradient clipping over one flat parameter vector, written here (not
//! libtorch's optimizer) so that their whole state can be checkpointed and restored.
//!
//! The parameters stay the model's own tensors; gradients arrive as one flat buffer (the one
//! the ranks allreduce). The update is PyTorch's `AdamW` (amsgrad off):
//! p ← p·(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
//! p ← p − (lr/(1−β1^t)) · m / (√(v/(1−β2^t)) + ε), with t the number of applied updates.

use tch::{Kind, Tensor};

use crate::config::train::OptimizerConfig;

/// The model's parameters in a fixed order (sorted by name), with their shapes.
pub struct Parameters {
    pub named: Vec<(String, Tensor)>,
}

impl Parameters {
    /// All trainable variables of `vs`, sorted by name (the same order on every rank).
    pub fn of(vs: &tch::nn::VarStore) -> Parameters {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Parameters { named }
    }

    /// Total number of scalars.
    pub fn numel(&self) -> i64 {
        self.named.iter().map(|(_, t)| t.numel() as i64).sum()
    }

    /// The parameters concatenated into one flat f32 vector.
    pub fn flat(&self) -> Tensor {
        let _g = tch::no_grad_guard();
        Tensor::cat(&self.named.iter().map(|(_, t)| t.detach().reshape([-1])).collect::<Vec<_>>(), 0)
    }

    /// The gradients concatenated into one flat vector (zeros where a parameter has none).
    pub fn flat_grad(&self) -> Tensor {
        let parts: Vec<Tensor> = self
            .named
            .iter()
            .map(|(_, t)| {
                let g = t.grad();
                if g.defined() {
                    g.reshape([-1])
                } else {
                    t.detach().zeros_like().reshape([-1])
                }
            })
            .collect();
        Tensor::cat(&parts, 0)
    }

    /// Overwrites the parameters from a flat vector.
    pub fn set_flat(&self, flat: &Tensor) {
        let _g = tch::no_grad_guard();
        for ((_, p), v) in self.named.iter().zip(self.split(flat)) {
            p.detach().copy_(&v);
        }
    }

    /// Splits a flat vector into views shaped like the parameters.
    pub fn split(&self, flat: &Tensor) -> Vec<Tensor> {
        let sizes: Vec<i64> = self.named.iter().map(|(_, t)| t.numel() as i64).collect();
        flat.split_with_sizes(&sizes, 0)
            .into_iter()
            .zip(&self.named)
            .map(|(v, (_, p))| v.view(p.size().as_slice()))
            .collect()
    }

    /// Clears the gradients.
    pub fn zero_grad(&self) {
        for (_, t) in &self.named {
            let mut g = t.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }
}

/// AdamW with StepLR; `exp_avg` and `exp_avg_sq` are flat like the gradient buffer.
pub struct AdamW {
    pub cfg: OptimizerConfig,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
}

impl AdamW {
    /// Fresh moments for `numel` parameters on `device`.
    pub fn new(cfg: &OptimizerConfig, numel: i64, device: tch::Device) -> AdamW {
        let zeros = || Tensor::zeros([numel], (Kind::Float, device));
        AdamW { cfg: cfg.clone(), exp_avg: zeros(), exp_avg_sq: zeros() }
    }

    /// StepLR: the learning rate for the update after `applied` updates.
    pub fn lr(&self, applied: u64) -> f64 {
        match self.cfg.lr_step {
            Some(step) => self.cfg.lr * self.cfg.lr_gamma.powi((applied / step) as i32),
            None => self.cfg.lr,
        }
    }

    /// Applies update number `applied + 1` with the (reduced, clipped) flat gradient.
    pub fn step(&mut self, params: &Parameters, grad: &Tensor, applied: u64) {
        let _g = tch::no_grad_guard();
        let lr = self.lr(applied);
        let [b1, b2] = self.cfg.betas;
        let t = (applied + 1) as i32;
        let _ = self.exp_avg.g_mul_scalar_(b1).g_add_(&(grad * (1.0 - b1)));
        let _ = self.exp_avg_sq.g_mul_scalar_(b2).g_add_(&(grad * grad * (1.0 - b2)));
        let denom = (&self.exp_avg_sq / (1.0 - b2.powi(t))).sqrt() + self.cfg.eps;
        let delta = &self.exp_avg / denom * (-lr / (1.0 - b1.powi(t)));
        let decay = 1.0 - lr * self.cfg.weight_decay;
        for ((_, p), d) in params.named.iter().zip(params.split(&delta)) {
            let mut p = p.detach();
            let _ = p.g_mul_scalar_(decay).g_add_(&d);
        }
    }
}

/// Exponential moving average of the flat parameters: e ← d·e + (1−d)·p.
pub struct Ema {
    pub decay: f64,
    pub flat: Tensor,
}

impl Ema {
    pub fn new(decay: f64, params: &Parameters) -> Ema {
        Ema { decay, flat: params.flat() }
    }

    pub fn update(&mut self, params: &Parameters) {
        let _g = tch::no_grad_guard();
        let p = params.flat();
        let _ = self.flat.g_mul_scalar_(self.decay).g_add_(&(p * (1.0 - self.decay)));
    }
}

/// Global L2 norm of `grad`; if it exceeds `max`, scales `grad` in place to norm `max`.
/// Returns the norm before clipping.
pub fn clip_grad_norm(grad: &mut Tensor, max: Option<f64>) -> f64 {
    let norm = grad.norm().double_value(&[]);
    if let Some(max) = max {
        if norm > max {
            let _ = grad.g_mul_scalar_(max / (norm + 1e-6));
        }
    }
    norm
}
