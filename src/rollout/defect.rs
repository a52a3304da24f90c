//! A defect planted in the emulator, for a positive control of thermalization
//! (`rollout.small_scale_growth`): after every emulator step, every Fourier mode of the state
//! with |k| ≥ `wavenumber` (integer wavenumbers of the stored grid) is multiplied by
//! `1 + rate`. Small-scale error then grows by that factor per step whatever the emulator does,
//! until the state blows up: the drift a noise-level classifier is trained to see (excess
//! small-scale variance looks like added noise). If thermalization works, it removes that excess
//! whenever the classifier rates the state above s_init, and the thermalized members outlive
//! those of the emulator alone. Applied identically in every mode; off by default.

use tch::{Device, Kind, Tensor};

use super::stats::wavenumbers;
use crate::config::rollout::GrowthConfig;

/// The per-mode gain of the defect on the rfft2 layout `[1, 1, N, N/2+1]`.
pub struct SmallScaleGrowth {
    gain: Tensor,
}

impl SmallScaleGrowth {
    /// The defect of `cfg` on an `n`² grid.
    pub fn new(cfg: &GrowthConfig, n: i64, device: Device) -> SmallScaleGrowth {
        let (ky, kx) = wavenumbers(n, device);
        let k = (&ky * &ky + &kx * &kx).sqrt();
        let gain = k.ge(cfg.wavenumber).to_kind(Kind::Double) * cfg.rate + 1.0;
        SmallScaleGrowth { gain: gain.to_kind(Kind::Float).view([1, 1, n, n / 2 + 1]) }
    }

    /// `x` `[B, C, N, N]` with its modes at |k| ≥ wavenumber amplified by 1 + rate.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let n = x.size()[3];
        let xh = x.fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "backward") * &self.gain;
        xh.fft_irfft2([n, n].as_slice(), [-2i64, -1].as_slice(), "backward")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_at_and_beyond_the_wavenumber_grow_and_the_others_do_not() {
        let n = 16;
        let grid = Tensor::arange(n, (Kind::Float, Device::Cpu)) * (2.0 * std::f64::consts::PI / n as f64);
        let (y, x) = (grid.view([n, 1]), grid.view([1, n]));
        let low = (&x * 3.0 + &y * 4.0).cos(); // |k| = 5
        let high = (&x * 6.0).sin() + (&y * 6.0 + &x * 2.0).cos(); // |k| = 6 and 6.3
        let field = (&low + &high).view([1, 1, n, n]);
        let growth = SmallScaleGrowth::new(&GrowthConfig { rate: 0.5, wavenumber: 6.0 }, n, Device::Cpu);
        let want = (&low + &high * 1.5).view([1, 1, n, n]);
        let err = (growth.apply(&field) - want).abs().max().double_value(&[]);
        assert!(err < 1e-5, "{err}");
    }
}
