//! Inference in reduced precision (`rollout.inference_precision`): a network whose weights are
//! cast once to bfloat16 or float16, run on inputs cast to that type, with its outputs cast
//! back to the caller's type (float32 in a rollout).
//!
//! So only the network's arithmetic is in reduced precision: the state carried from step to
//! step, the residual sum `x + f(x)` of the emulator step, the diffusion schedule's arithmetic
//! (√ᾱ, the DDPM reverse step), the statistics and the stored outputs stay float32. In float32
//! both casts are no-ops (libtorch returns the same tensor), so the default path is unchanged
//! bit for bit.
//!
//! **Explicit casts rather than autocast, decided:** tch's `autocast` does nothing unless CUDA
//! is available, so the CPU could neither run nor test that path; explicit casts run the same
//! code on the CPU and the GPU, say exactly which tensors are in reduced precision, and cast the
//! weights once instead of on every call. Every layer of the network then runs in the one type
//! (the UNets hold only convolutions, GELUs and linears, which autocast would also lower).

use tch::nn::{Module, VarStore};
use tch::{Kind, Tensor};

/// A network `M` whose weights are of element type `kind`.
#[derive(Debug)]
pub struct Reduced<M> {
    net: M,
    kind: Kind,
}

impl<M> Reduced<M> {
    /// `net`, whose variables are all in `vs`, with those variables cast to `kind` (a float
    /// type): from then on it runs in `kind`.
    pub fn new(net: M, vs: &mut VarStore, kind: Kind) -> Reduced<M> {
        vs.set_kind(kind);
        Reduced { net, kind }
    }

    /// The network itself: its inputs must be of the type it runs in ([`Reduced::input`]).
    pub fn net(&self) -> &M {
        &self.net
    }

    /// `x` cast to the network's type.
    pub fn input(&self, x: &Tensor) -> Tensor {
        x.to_kind(self.kind)
    }

    /// `f(net, x)` on `x` cast to the network's type, its result cast back to `x`'s type.
    pub fn run(&self, x: &Tensor, f: impl FnOnce(&M, &Tensor) -> Tensor) -> Tensor {
        f(&self.net, &self.input(x)).to_kind(x.kind())
    }
}

impl<M: Module> Module for Reduced<M> {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.run(x, |net, x| net.forward(x))
    }
}
