//! Per-step spectral multipliers of a rollout state: a defect planted in the emulator for a
//! positive control, and the plain spectral filter of the `filtered` baseline mode.
//!
//! - **Small-scale growth** (`rollout.small_scale_growth`, a positive control only): after
//!   every emulator step, in every mode, each Fourier mode with |k| ≥ `wavenumber` (integer
//!   wavenumbers of the stored grid) is multiplied by `1 + rate`. Small-scale error then grows
//!   by that factor per step whatever the emulator does, until the state blows up: the drift a
//!   noise-level classifier is trained to see (excess small-scale variance looks like added
//!   noise). If thermalization works, it removes that excess whenever the classifier rates the
//!   state above s_init, and the thermalized members outlive those of the emulator alone.
//! - **Exponential filter** (`rollout.filter`, the `filtered` mode): pyqg's filter
//!   F(k*) = exp(−strength·(k* − cutoff·π)⁴) for k* > cutoff·π, else 1, where
//!   k* = √((k_x Δx)² + (k_y Δy)²) = 2π|k|/N is the wavenumber in radians per grid cell (π at
//!   the grid's Nyquist wavenumber along an axis). The baseline a reviewer asks for: does the
//!   diffusion model do more than damp the small scales?

use tch::{Device, Kind, Tensor};

use super::stats::wavenumbers;
use crate::config::rollout::{FilterConfig, GrowthConfig};

/// A real per-mode multiplier on the rfft2 layout, applied as x ← irfft2(G · rfft2(x)).
pub struct SpectralGain {
    /// `[1, 1, N, N/2+1]`, float32.
    gain: Tensor,
}

impl SpectralGain {
    /// The small-scale growth of `cfg` on an `n`² grid.
    pub fn growth(cfg: &GrowthConfig, n: i64, device: Device) -> SpectralGain {
        let k = magnitude(n, device);
        SpectralGain::from(k.ge(cfg.wavenumber).to_kind(Kind::Double) * cfg.rate + 1.0, n)
    }

    /// The exponential filter of `cfg` on an `n`² grid.
    pub fn filter(cfg: &FilterConfig, n: i64, device: Device) -> SpectralGain {
        let kstar = magnitude(n, device) * (2.0 * std::f64::consts::PI / n as f64);
        let cut = cfg.cutoff * std::f64::consts::PI;
        let excess = (kstar - cut).clamp_min(0.0);
        SpectralGain::from((excess.pow_tensor_scalar(4.0) * -cfg.strength).exp(), n)
    }

    fn from(gain: Tensor, n: i64) -> SpectralGain {
        SpectralGain { gain: gain.to_kind(Kind::Float).view([1, 1, n, n / 2 + 1]) }
    }

    /// `x` `[B, C, N, N]` with each Fourier mode multiplied by its gain.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let n = x.size()[3];
        let xh = x.fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "backward") * &self.gain;
        xh.fft_irfft2([n, n].as_slice(), [-2i64, -1].as_slice(), "backward")
    }
}

/// |k| of the rfft2 layout `[N, N/2+1]` in integer wavenumbers (f64).
fn magnitude(n: i64, device: Device) -> Tensor {
    let (ky, kx) = wavenumbers(n, device);
    (&ky * &ky + &kx * &kx).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modes(n: i64) -> (Tensor, Tensor) {
        let grid = Tensor::arange(n, (Kind::Float, Device::Cpu)) * (2.0 * std::f64::consts::PI / n as f64);
        let (y, x) = (grid.view([n, 1]), grid.view([1, n]));
        let low = (&x * 3.0 + &y * 4.0).cos(); // |k| = 5
        let high = (&x * 6.0).sin() + (&y * 6.0 + &x * 2.0).cos(); // |k| = 6 and 6.3
        (low, high)
    }

    #[test]
    fn growth_amplifies_modes_at_and_beyond_the_wavenumber_only() {
        let n = 16;
        let (low, high) = modes(n);
        let field = (&low + &high).view([1, 1, n, n]);
        let growth = SpectralGain::growth(&GrowthConfig { rate: 0.5, wavenumber: 6.0 }, n, Device::Cpu);
        let want = (&low + &high * 1.5).view([1, 1, n, n]);
        let err = (growth.apply(&field) - want).abs().max().double_value(&[]);
        assert!(err < 1e-5, "{err}");
    }

    #[test]
    fn filter_keeps_large_scales_and_damps_the_grid_scale_as_pyqg() {
        let n = 16;
        let (low, _) = modes(n);
        let filter = SpectralGain::filter(&FilterConfig { cutoff: 0.65, strength: 23.6 }, n, Device::Cpu);
        // |k| = 5 of 16: k* = 1.96 < 0.65π = 2.04, untouched.
        let low4 = low.view([1, 1, n, n]);
        assert!((filter.apply(&low4) - &low4).abs().max().double_value(&[]) < 1e-5);
        // The Nyquist mode along x (k* = π): pyqg's factor exp(−23.6·(0.35π)⁴) = 0.0553.
        let nyquist = (Tensor::arange(n, (Kind::Float, Device::Cpu)) * std::f64::consts::PI).cos().view([1, 1, 1, n]);
        let field = nyquist.expand([1, 1, n, n], false).contiguous();
        let ratio = filter.apply(&field).abs().max().double_value(&[]);
        let want = (-23.6 * (0.35 * std::f64::consts::PI).powi(4)).exp();
        assert!((ratio - want).abs() < 1e-5, "{ratio} vs {want}");
    }
}
