//! Statistics of rollout states, on batches `[B, C, N, N]` of fields in physical units on the
//! stored grid (side L: 2π for Kolmogorov, `system.length` for QG).
//!
//! **Isotropic spectra.** With x̂ the unnormalised 2D real FFT over (y, x) and integer
//! wavenumbers (kx, ky) (physical wavenumber 2π/L times these), the shell of bin k holds the
//! modes with k − ½ ≤ |(kx, ky)| < k + ½, for k = 0 … ⌈N/√2⌉; each rfft mode counts twice except
//! kx = 0 and kx = N/2. Normalised so that the bins sum to the domain mean (Parseval):
//! Σ_k E(k) = mean over the grid of the field's energy density.
//! - Kolmogorov: kinetic energy ½|u|², from ω̂ by û = i k_y ψ̂, v̂ = −i k_x ψ̂, ψ̂ = ω̂/|k|²
//!   (|û|² + |v̂|² = |ω̂|²/|k|²; the k = 0 mode carries none).
//! - QG: kinetic energy ½ Σ_i (H_i/H) |∇ψ_i|², with ψ̂ from q̂ by the two-layer inversion and
//!   layer weights H1/H = δ/(1+δ), H2/H = 1/(1+δ) (the authors' code weighted by δ itself).
//!
//! **Histograms** of the normalised field over [−range, range] in `bins` equal bins, as a
//! density (integrates to 1 over the range; values outside are not counted but their fraction
//! is reported).
//!
//! The [`median`] of a list of numbers, which the report and the benchmarks share.

use tch::{Device, Kind, Tensor};

use crate::solver::grid::isotropic_shells;

/// What the spectrum measures.
#[derive(Clone, Copy, Debug)]
pub enum Energy {
    /// Kinetic energy of a 2D vorticity field.
    Vorticity,
    /// Kinetic energy of two-layer PV with F1 = rd⁻²/(1+δ), F2 = δ·F1, on a side-L domain.
    TwoLayer { length: f64, rd: f64, delta: f64 },
    /// ½|x|² of each channel, summed (a plain power spectrum).
    Power,
}

/// Integer wavenumbers of the rfft2 layout `[N, N/2+1]`: (ky, kx) as f64 tensors.
pub(crate) fn wavenumbers(n: i64, device: Device) -> (Tensor, Tensor) {
    let ky: Vec<f64> = (0..n).map(|j| if j <= n / 2 { j } else { j - n } as f64).collect();
    let kx: Vec<f64> = (0..=n / 2).map(|i| i as f64).collect();
    let ky = Tensor::from_slice(&ky).view([n, 1]).to_device(device);
    let kx = Tensor::from_slice(&kx).view([1, n / 2 + 1]).to_device(device);
    (ky.expand([n, n / 2 + 1], false), kx.expand([n, n / 2 + 1], false))
}

/// Isotropic spectrum `[B, bins]` (f64) of fields `x` `[B, C, N, N]`.
pub fn spectrum(x: &Tensor, energy: Energy) -> Tensor {
    let (b, n) = (x.size()[0], x.size()[3]);
    let device = x.device();
    let xh = x.to_kind(Kind::Double).fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "backward");
    let (ky, kx) = wavenumbers(n, device);
    let k2 = &ky * &ky + &kx * &kx;
    let norm = (n * n) as f64;
    // Energy density per rfft mode, [B, N, N/2+1], before the rfft multiplicity.
    let density = match energy {
        Energy::Power => xh.abs().square().sum_dim_intlist([1i64].as_slice(), false, Kind::Double) * 0.5,
        Energy::Vorticity => {
            let inv = k2.where_scalarother(&k2.gt(0.0), 1.0).reciprocal() * k2.gt(0.0).to_kind(Kind::Double);
            xh.abs().square().sum_dim_intlist([1i64].as_slice(), false, Kind::Double) * inv * 0.5
        }
        Energy::TwoLayer { length, rd, delta } => {
            let kk = &k2 * (2.0 * std::f64::consts::PI / length).powi(2);
            let f1 = 1.0 / (rd * rd * (1.0 + delta));
            let f2 = delta * f1;
            let det = &kk * (&kk + f1 + f2);
            let safe = det.where_scalarother(&det.gt(0.0), 1.0);
            let (q1, q2) = (xh.select(1, 0), xh.select(1, 1));
            let p1 = (-(&q1 * (&kk + f2)) - &q2 * f1) / &safe;
            let p2 = (-(&q1 * f2) - &q2 * (&kk + f1)) / &safe;
            let (h1, h2) = (delta / (1.0 + delta), 1.0 / (1.0 + delta));
            let e = (p1.abs().square() * h1 + p2.abs().square() * h2) * &kk * 0.5;
            e * det.gt(0.0).to_kind(Kind::Double)
        }
    };
    let mut mult = vec![2.0f64; (n / 2 + 1) as usize];
    mult[0] = 1.0;
    mult[(n / 2) as usize] = 1.0;
    let mult = Tensor::from_slice(&mult).view([1, 1, n / 2 + 1]).to_device(device);
    let density = density * mult / (norm * norm);
    let bin = k2.sqrt().round().to_kind(Kind::Int64).reshape([-1]);
    let out = Tensor::zeros([b, isotropic_shells(n as usize) as i64], (Kind::Double, device));
    out.index_add(1, &bin, &density.reshape([b, -1]))
}

/// Histogram densities `[B, bins]` (f64) of each member's values over [−range, range], and the
/// fraction of each member's values outside that range `[B]`.
pub fn histogram(x: &Tensor, bins: i64, range: f64) -> (Tensor, Tensor) {
    let b = x.size()[0];
    let flat = x.to_kind(Kind::Double).reshape([b, -1]);
    let count = flat.size()[1] as f64;
    let width = 2.0 * range / bins as f64;
    let inside = flat.ge(-range).logical_and(&flat.lt(range));
    let idx = ((&flat + range) / width).floor().clamp(0.0, (bins - 1) as f64).to_kind(Kind::Int64);
    let ones = inside.to_kind(Kind::Double);
    let hist = Tensor::zeros([b, bins], (Kind::Double, x.device())).scatter_add(1, &idx, &ones) / (count * width);
    let outside = 1.0 - ones.sum_dim_intlist([1i64].as_slice(), false, Kind::Double) / count;
    (hist, outside)
}

/// Mean square of each member's field `[B]` (f64).
pub fn mean_square(x: &Tensor) -> Tensor {
    x.to_kind(Kind::Double).square().mean_dim([1i64, 2, 3].as_slice(), false, Kind::Double)
}

/// Mean squared difference of each member `[B]` (f64).
pub fn mse(x: &Tensor, y: &Tensor) -> Tensor {
    mean_square(&(x - y))
}

/// The values of `t`, row-major, as f64 on the CPU.
pub fn values(t: &Tensor) -> Vec<f64> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Double).contiguous();
    Vec::<f64>::try_from(t.reshape([-1])).expect("f64 tensor")
}

/// The median of `v`: for an even count the mean of the two middle values; NaN for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}
