//! The runaway guard (`rollout.guard`, the `guarded` and `guarded_thermalized` modes): a
//! detector and a correction for drift the noise-level classifier cannot see. Beyond the
//! paper, and off unless one of those modes is run.
//!
//! **Why.** The diffusion model is variance preserving: it is trained on
//! x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε, whose mean square is ≈ 1 at every level t, so a state's amplitude
//! says nothing about t. A state that is too strong (an emulator's amplitude runaway, or a
//! drift of its largest scales) is rated clean however far it has left the invariant measure.
//!
//! **Detector.** The measure's own range, per channel c and spectral shell k: the power
//! P_c(k) = Σ_{round(|k'|) = k} w(k') |x̂_c(k')|² / N⁴ of a state in normalised units (x̂ the
//! unnormalised rfft2, w = 2 for the rfft columns that stand for two modes, else 1; integer
//! shells 0 ≤ k < `bins`, the domain mean being shell 0), and its bound B_c(k): the `quantile` of
//! P_c(k) over every clean state of the training split (1: the largest), times `margin` (never
//! below 1e-12 of the channel's mean total power: float32 round-off). A
//! state's **score** is max over c, k of P_c(k) / B_c(k): above 1 it is outside the range the
//! measure was seen to span in at least one shell.
//!
//! **Correction.** Every shell above its bound is rescaled onto it (its Fourier coefficients
//! multiplied by √(B/P), phases kept), the others are left alone: the smallest change of the
//! shell powers that brings the state back into the box. In `guarded_thermalized` the usual
//! thermalization acts after it, on what the classifier can see.

use tch::{Device, Kind, Tensor};

use super::stats::wavenumbers;
use crate::solver::grid::isotropic_shells;

/// The smallest bound, relative to a channel's mean total power: above the round-off a float32
/// state carries in any shell (~1e-14), far below any shell that holds flow.
const ROUND_OFF: f64 = 1e-12;

/// The integer shells of an `N`² grid's rfft2 layout.
struct Shells {
    /// round(|k|) per rfft mode, flattened `[N·(N/2+1)]` (int64).
    index: Tensor,
    /// Modes each rfft entry stands for, flattened `[N·(N/2+1)]` (f64).
    weight: Tensor,
    n: i64,
    count: i64,
}

impl Shells {
    fn new(n: i64, device: Device) -> Shells {
        let (ky, kx) = wavenumbers(n, device);
        let index = (&ky * &ky + &kx * &kx).sqrt().round().to_kind(Kind::Int64).reshape([-1]);
        let doubled = kx.gt(0.0).logical_and(&kx.lt((n / 2) as f64));
        let weight = (doubled.to_kind(Kind::Double) + 1.0).reshape([-1]);
        Shells { index, weight, n, count: isotropic_shells(n as usize) as i64 }
    }

    /// The unnormalised rfft2 `[B, C, N, N/2+1]` (complex f64) of `x` `[B, C, N, N]`.
    fn transform(x: &Tensor) -> Tensor {
        x.to_kind(Kind::Double).fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "backward")
    }

    /// P_c(k) `[B, C, S]` (f64) from the rfft2 `xh` of states.
    fn power(&self, xh: &Tensor) -> Tensor {
        let (b, c) = (xh.size()[0], xh.size()[1]);
        let density = xh.abs().square().reshape([b, c, -1]) * &self.weight / ((self.n * self.n) as f64).powi(2);
        let index = self.index.view([1, 1, -1]).expand([b, c, -1], false);
        Tensor::zeros([b, c, self.count], (Kind::Double, xh.device())).scatter_add(2, &index, &density)
    }
}

/// Shell bounds of the invariant measure, and the correction they imply.
pub struct Guard {
    shells: Shells,
    /// B_c(k) `[C, S]` (f64).
    bound: Tensor,
}

/// What the guard found for a batch: each state's score before the correction, and whether it
/// was corrected.
pub struct Guarded {
    pub scores: Vec<f64>,
    pub corrected: Vec<bool>,
}

/// Each state's score, the max over channels and shells of `ratio` `[B, C, S]`.
fn scores_of(ratio: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(ratio.amax([1i64, 2].as_slice(), false)).expect("f64 scores")
}

impl Guard {
    /// The guard whose bounds are the `quantile` (in (0, 1]) of the shell powers of `states`
    /// (batches `[B, C, N, N]` of clean states, normalised units), times `margin`.
    pub fn from_states<'a>(states: impl IntoIterator<Item = &'a Tensor>, quantile: f64, margin: f64) -> Guard {
        let mut states = states.into_iter().peekable();
        let first = states.peek().expect("at least one batch of training states");
        let shells = Shells::new(first.size()[3], first.device());
        let powers: Vec<Tensor> = states.map(|x| shells.power(&Shells::transform(x))).collect();
        let all = Tensor::cat(&powers, 0); // [T, C, S]
                                           // No bound lies below ROUND_OFF of the channel's mean total power: a float32 state holds
                                           // that much round-off in every shell, which no correction can take out (and a shell
                                           // without modes gets a positive bound, so 0/0 cannot arise).
        let total = all.sum_dim_intlist([2i64].as_slice(), false, Kind::Double).mean_dim(0, false, Kind::Double);
        let bound = all.quantile_scalar(quantile, Some(0), false, "linear") * margin;
        let bound = bound.maximum(&(total * ROUND_OFF).unsqueeze(1).expand_as(&bound));
        Guard { shells, bound }
    }

    /// P_c(k) `[B, C, S]` (f64) of states `x` `[B, C, N, N]`.
    pub fn power(&self, x: &Tensor) -> Tensor {
        self.shells.power(&Shells::transform(x))
    }

    /// Each state's score (max over channels and shells of power over bound) `[B]`.
    pub fn scores(&self, x: &Tensor) -> Vec<f64> {
        scores_of(&(self.power(x) / &self.bound))
    }

    /// `x` `[B, C, N, N]` with every shell above its bound rescaled onto it.
    pub fn apply(&self, x: &Tensor) -> (Tensor, Guarded) {
        let xh = Shells::transform(x);
        let ratio = self.shells.power(&xh) / &self.bound; // [B, C, S]
        let scores = scores_of(&ratio);
        let corrected: Vec<bool> = scores.iter().map(|&s| s > 1.0).collect();
        if !corrected.contains(&true) {
            return (x.shallow_clone(), Guarded { scores, corrected });
        }
        let (b, c, n) = (x.size()[0], x.size()[1], self.shells.n);
        let factor = ratio.clamp_min(1.0).rsqrt(); // 1 where within the bound
        let per_mode = factor.index_select(2, &self.shells.index).view([b, c, n, n / 2 + 1]);
        let back = (xh * per_mode).fft_irfft2([n, n].as_slice(), [-2i64, -1].as_slice(), "backward");
        (back.to_kind(x.kind()), Guarded { scores, corrected })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `b` smooth random states `[b, 2, n, n]`: a few modes with random amplitudes in each shell.
    fn states(b: i64, n: i64, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        let noise = Tensor::randn([b, 2, n, n], (Kind::Double, Device::Cpu));
        let xh = noise.fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "backward");
        let (ky, kx) = wavenumbers(n, Device::Cpu);
        let k = (&ky * &ky + &kx * &kx).sqrt();
        let envelope = (-(&k - 4.0).square() / 8.0).exp(); // energy around k = 4
        xh.multiply(&envelope).fft_irfft2([n, n].as_slice(), [-2i64, -1].as_slice(), "backward")
    }

    #[test]
    fn a_state_with_amplified_large_scales_is_detected_and_brought_back_a_clean_one_is_left_alone() {
        let n = 16;
        let train = states(256, n, 1);
        let guard = Guard::from_states([&train], 1.0, 1.0);
        // Every training state is within its own bounds.
        assert!(guard.scores(&train).iter().all(|&s| s <= 1.0 + 1e-12));
        // A held-out clean state is (almost surely) left as it is.
        let clean = states(1, n, 2);
        let (same, g) = guard.apply(&clean);
        if !g.corrected[0] {
            assert_eq!(same.double_value(&[0, 0, 3, 5]), clean.double_value(&[0, 0, 3, 5]));
        }
        // The synthetic runaway: the clean state with shells k ≤ 3 amplified ×10.
        let (ky, kx) = wavenumbers(n, Device::Cpu);
        let low = (&ky * &ky + &kx * &kx).sqrt().le(3.0).to_kind(Kind::Double) * 9.0 + 1.0;
        let xh = clean.fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "backward") * low;
        let runaway = xh.fft_irfft2([n, n].as_slice(), [-2i64, -1].as_slice(), "backward");
        let (fixed, g) = guard.apply(&runaway);
        assert!(g.corrected[0] && g.scores[0] > 10.0, "score {}", g.scores[0]);
        let after = guard.scores(&fixed)[0];
        assert!(after <= 1.0 + 1e-9, "brought back within the bounds: score {after}");
        // The shells that were within range are untouched: the small scales agree.
        let small = |x: &Tensor| guard.power(x).narrow(2, 6, 4);
        let diff = (small(&fixed) - small(&runaway)).abs().max().double_value(&[]);
        assert!(diff < 1e-12 * small(&runaway).abs().max().double_value(&[]).max(1e-30), "{diff}");
        // A drift of the domain mean (shell 0), which clean states do not have, is taken back.
        let drifted = &clean + 5.0;
        let (fixed_mean, g) = guard.apply(&drifted);
        assert!(g.corrected[0], "score {}", g.scores[0]);
        let mean = fixed_mean.mean(Kind::Double).double_value(&[]).abs();
        assert!(mean < 1.0, "mean after the correction {mean}");
        // Its mean square is back at the clean state's scale, not at the runaway's.
        let ms = |x: &Tensor| x.square().mean(Kind::Double).double_value(&[]);
        assert!(
            ms(&fixed) < 3.0 * ms(&clean) && ms(&runaway) > 10.0 * ms(&clean),
            "{} {} {}",
            ms(&fixed),
            ms(&clean),
            ms(&runaway)
        );
    }
}

#[cfg(test)]
mod float32 {
    use super::*;

    #[test]
    fn a_float32_state_with_content_the_band_limited_measure_lacks_is_brought_within_the_bounds() {
        let n = 16;
        tch::manual_seed(3);
        // Training states without the Nyquist row and column (as the stored fields).
        let cut = |x: Tensor| {
            let xh = x.fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "backward");
            let _ = xh.narrow(2, n / 2, 1).fill_(0.0);
            let _ = xh.narrow(3, n / 2, 1).fill_(0.0);
            xh.fft_irfft2([n, n].as_slice(), [-2i64, -1].as_slice(), "backward")
        };
        let train = cut(Tensor::randn([64, 1, n, n], (Kind::Double, Device::Cpu)));
        let guard = Guard::from_states([&train], 1.0, 1.0);
        let state = Tensor::randn([2, 1, n, n], (Kind::Float, Device::Cpu)) * 1.5;
        let (fixed, g) = guard.apply(&state);
        assert!(g.corrected.iter().all(|&c| c));
        // Within the bounds to the float32 round-off of a shell at the bounds' floor (1e-12 of
        // the power: an amplitude of 1e-6 of the field's, which float32 holds to ~1 %).
        assert!(guard.scores(&fixed).iter().all(|&s| s <= 1.01), "{:?}", guard.scores(&fixed));
    }
}
