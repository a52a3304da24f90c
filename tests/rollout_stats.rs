//! The rollout statistics on fields with known answers.

mod common;

use std::f64::consts::PI;

use common::seeded_torch;
use tch::{Device, Kind, Tensor};
use thermalizer::rollout::stats::{histogram, mean_square, mse, spectrum, Energy};
use thermalizer::solver::grid::isotropic_shells;

fn grid(n: i64) -> (Tensor, Tensor) {
    let c = Tensor::arange(n, (Kind::Double, Device::Cpu)) * (2.0 * PI / n as f64);
    (c.view([n, 1]).expand([n, n], false), c.view([1, n]).expand([n, n], false))
}

#[test]
fn single_fourier_mode_lands_in_its_shell_with_the_analytic_energy() {
    let n = 32;
    let (y, x) = grid(n);
    // ω = cos(3x + 4y): |k| = 5, ψ = ω/25, mean KE = ½⟨|∇ψ|²⟩ = ½·25·(1/25²)·½ = 1/100.
    let w = (&x * 3.0 + &y * 4.0).cos().view([1, 1, n, n]);
    let e = spectrum(&w, Energy::Vorticity);
    assert_eq!(e.size(), vec![1, isotropic_shells(n as usize) as i64]);
    let v = Vec::<f64>::try_from(e.get(0)).unwrap();
    assert!((v[5] - 0.01).abs() < 1e-12, "E(5) = {}", v[5]);
    assert!(v.iter().enumerate().all(|(k, &e)| k == 5 || e.abs() < 1e-14), "energy outside shell 5: {v:?}");
}

#[test]
fn spectra_obey_parseval_for_white_noise() {
    let _torch = seeded_torch(2);
    let n = 24;
    let x = Tensor::randn([3, 2, n, n], (Kind::Double, Device::Cpu));
    let e = spectrum(&x, Energy::Power).sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
    let half_mean_square = x.square().sum_dim_intlist([1i64].as_slice(), false, Kind::Double).mean_dim(
        [1i64, 2].as_slice(),
        false,
        Kind::Double,
    ) * 0.5;
    assert!(e.allclose(&half_mean_square, 1e-12, 1e-14, false));
    // Vorticity KE: the shells sum to the full complex-FFT sum ½ Σ |ω̂|²/|k|² / N⁴ (no rfft
    // bookkeeping there).
    let w = x.narrow(1, 0, 1);
    let total =
        Vec::<f64>::try_from(spectrum(&w, Energy::Vorticity).sum_dim_intlist([1i64].as_slice(), false, Kind::Double))
            .unwrap();
    let wh = w.fft_fft2(None::<&[i64]>, [-2i64, -1].as_slice(), "backward");
    let k: Vec<f64> = (0..n).map(|j| if j <= n / 2 { j } else { j - n } as f64).collect();
    let kt = Tensor::from_slice(&k);
    let k2 = kt.view([n, 1]).square() + kt.view([1, n]).square();
    let inv = k2.where_scalarother(&k2.gt(0.0), 1.0).reciprocal() * k2.gt(0.0).to_kind(Kind::Double);
    let direct = (wh.abs().square() * inv).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double)
        * (0.5 / (n * n * n * n) as f64);
    for (a, b) in total.iter().zip(Vec::<f64>::try_from(direct).unwrap()) {
        assert!((a - b).abs() < 1e-12 * b.abs(), "{a} vs {b}");
    }
}

#[test]
fn two_layer_energy_of_a_barotropic_mode_matches_the_inversion() {
    // Equal PV in both layers, q = −K²ψ for a barotropic ψ: KE = ½K²⟨ψ²⟩ (layer weights sum to 1).
    let n = 16;
    let (length, rd, delta) = (1.0e6, 1.5e4, 0.25);
    let (y, x) = grid(n);
    let kk = (2.0 * PI / length).powi(2) * 2.0; // wavevector (1, 1)
    let psi = (&x + &y).sin() * 1e3;
    let q = &psi * (-kk);
    let qq = Tensor::stack(&[&q, &q], 0).unsqueeze(0);
    let total = spectrum(&qq, Energy::TwoLayer { length, rd, delta }).sum(Kind::Double).double_value(&[]);
    let want = 0.5 * kk * psi.square().mean(Kind::Double).double_value(&[]);
    assert!((total / want - 1.0).abs() < 1e-10, "{total} vs {want}");
}

#[test]
fn histogram_is_a_density_and_mse_of_a_state_with_itself_is_zero() {
    let _torch = seeded_torch(3);
    // 128² values per member: the mean square's sampling error is 0.8 % of 9, the bound 13 times it.
    let x = Tensor::randn([2, 1, 128, 128], (Kind::Float, Device::Cpu)) * 3.0;
    let (h, outside) = histogram(&x, 40, 8.0);
    let integral = h.sum_dim_intlist([1i64].as_slice(), false, Kind::Double) * (16.0 / 40.0) + &outside;
    assert!(integral.allclose(&Tensor::ones([2], (Kind::Double, Device::Cpu)), 1e-12, 1e-12, false));
    assert!(outside.max().double_value(&[]) < 0.02);
    assert_eq!(mse(&x, &x).abs().max().double_value(&[]), 0.0);
    let ms = mean_square(&x).get(0).double_value(&[]);
    assert!((ms / 9.0 - 1.0).abs() < 0.1);
}
