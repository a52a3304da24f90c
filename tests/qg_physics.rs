//! Physics checks of the two-layer QG model.

use num_complex::Complex;
use rand::Rng;
use thermalizer::rng::{member_stream, Purpose};
use thermalizer::solver::qg::{Qg, QgParams, SmallScales};

/// A smooth random PV field of both layers (modes |k| ≤ 8 of the fundamental), amplitude ~1e-6 s⁻¹.
fn smooth_q(model: &Qg<f64>, seed: u64) -> Vec<Complex<f64>> {
    let g = model.grid();
    let mut rng = member_stream(seed, Purpose::InitialCondition, 0);
    let mut q = vec![Complex::default(); 2 * g.spec_len()];
    for layer in 0..2 {
        let mut real = vec![0.0; g.n * g.n];
        for _ in 0..12 {
            let (kx, ky): (f64, f64) = (rng.random_range(-8..=8) as f64, rng.random_range(-8..=8) as f64);
            let (a, ph): (f64, f64) = (rng.random_range(0.2..1.0), rng.random_range(0.0..std::f64::consts::TAU));
            for j in 0..g.n {
                for i in 0..g.n {
                    let arg = 2.0 * std::f64::consts::PI * (kx * i as f64 + ky * j as f64) / g.n as f64;
                    real[j * g.n + i] += 1e-6 * a * (arg + ph).cos() / (1.0 + layer as f64 * 3.0);
                }
            }
        }
        let len = g.spec_len();
        g.forward(&real, &mut q[layer * len..(layer + 1) * len], g.nkx, &mut g.scratch());
    }
    q
}

#[test]
fn inversion_round_trips_to_round_off() {
    let model = Qg::<f64>::new(64, QgParams::eddy());
    let mut q = smooth_q(&model, 1);
    let len = model.grid().spec_len();
    // the domain mean of q is not invertible (ψ's mean is arbitrary): remove it
    q[0] = Complex::default();
    q[len] = Complex::default();
    let mut psi = vec![Complex::default(); 2 * len];
    let mut back = vec![Complex::default(); 2 * len];
    model.invert(&q, &mut psi);
    model.pv(&psi, &mut back);
    let num: f64 = q.iter().zip(&back).map(|(a, b)| (a - b).norm_sqr()).sum();
    let den: f64 = q.iter().map(|a| a.norm_sqr()).sum();
    assert!((num / den).sqrt() < 1e-13, "relative error {}", (num / den).sqrt());
}

fn energy_drift(dt: f64, steps: usize) -> f64 {
    // Inviscid, undamped, unforced: no drag, no background shear, no filter (β stays: it
    // conserves energy too).
    let params = QgParams { u1: 0.0, u2: 0.0, rek: 0.0, small_scales: SmallScales::None, ..QgParams::eddy() };
    let model = Qg::<f64>::new(32, params);
    let mut state = model.state(smooth_q(&model, 2));
    let mut work = model.work();
    // The Euler and AB2 start-up steps leave an O(dt²) offset; measure from after them.
    model.step(&mut state, dt, &mut work);
    model.step(&mut state, dt, &mut work);
    let e0 = model.energy(&state.q);
    for _ in 2..steps {
        model.step(&mut state, dt, &mut work);
    }
    (model.energy(&state.q) / e0 - 1.0).abs()
}

#[test]
fn energy_is_conserved_to_the_order_of_the_time_stepper() {
    // AB3: the drift over a fixed time falls ~8× per halving of dt (3rd order).
    let t = 40.0 * 86400.0;
    let (d1, d2) = (energy_drift(14400.0, (t / 14400.0) as usize), energy_drift(7200.0, (t / 7200.0) as usize));
    assert!(d1 < 1e-3, "drift {d1:e}");
    let order = (d1 / d2).log2();
    assert!(order > 2.5, "observed order {order} (drifts {d1:e}, {d2:e})");
}

#[test]
fn background_shear_makes_the_flow_baroclinically_unstable() {
    // The eddy configuration from grid-scale noise (as pyqg's random initial condition): after
    // the filter has removed the grid-scale part, the energy grows exponentially (the baroclinic
    // instability feeds on U1 − U2; pyqg's eddy runs take years of model time to saturate).
    let model = Qg::<f64>::new(32, QgParams::eddy());
    let g = model.grid();
    let mut rng = member_stream(3, Purpose::InitialCondition, 0);
    let len = g.spec_len();
    let mut q = vec![Complex::default(); 2 * len];
    for layer in 0..2 {
        let noise: Vec<f64> = (0..g.n * g.n).map(|_| 1e-7 * rng.random_range(-1.0..1.0)).collect();
        g.forward(&noise, &mut q[layer * len..(layer + 1) * len], g.nkx, &mut g.scratch());
    }
    let mut state = model.state(q);
    let mut work = model.work();
    let mut energy = Vec::new();
    for step in 0..=8000 {
        if step % 2000 == 0 {
            energy.push(model.energy(&state.q));
        }
        model.step(&mut state, 3600.0, &mut work);
    }
    assert!(energy[1] < energy[0], "the filter removes grid-scale noise first: {energy:?}");
    assert!(energy[2] > energy[1] && energy[3] > energy[2] && energy[4] > 4.0 * energy[1], "no growth: {energy:?}");
}

/// Under the 2/3 rule the model transforms only the band's columns (exact for a band-limited
/// state): it must step exactly as the full-transform model with the 2/3 mask applied by hand
/// to the initial state and after every step.
#[test]
fn pruned_two_thirds_step_equals_full_transforms_then_mask() {
    for smagorinsky in [0.0, 0.1] {
        let pruned =
            Qg::<f64>::new(64, QgParams { small_scales: SmallScales::TwoThirds, smagorinsky, ..QgParams::eddy() });
        let full = Qg::<f64>::new(64, QgParams { small_scales: SmallScales::None, smagorinsky, ..QgParams::eddy() });
        let g = full.grid();
        let (n, len) = (g.n, g.spec_len());
        let mask = |q: &mut [Complex<f64>]| {
            for (i, v) in q.iter_mut().enumerate() {
                if !g.in_band((i % len) / n, i % n) {
                    *v = Complex::default();
                }
            }
        };
        // 10× the smooth field's amplitude, so that 300 steps of the nonlinear terms fill the band.
        let q0: Vec<_> = smooth_q(&full, 3).iter().map(|v| v * 10.0).collect();
        let (mut a, mut b) = (pruned.state(q0.clone()), full.state(q0));
        mask(&mut b.q);
        assert_eq!(a.q, b.q, "the 2/3-rule model projects its initial state onto the band");
        let (mut wa, mut wb) = (pruned.work(), full.work());
        for _ in 0..300 {
            let (ca, cb) = (pruned.step(&mut a, 3600.0, &mut wa), full.step(&mut b, 3600.0, &mut wb));
            mask(&mut b.q);
            assert!((ca - cb).abs() <= 1e-12 * cb, "CFL numbers differ: {ca} vs {cb}");
        }
        let outside: usize =
            (0..2 * len).filter(|&i| !g.in_band((i % len) / n, i % n) && b.q[i] != Complex::default()).count();
        assert_eq!(outside, 0);
        let filled = (0..len).filter(|&i| g.in_band(i / n, i % n) && b.q[i].norm() > 1e-6 * b.q[1].norm()).count();
        let band = (0..len).filter(|&i| g.in_band(i / n, i % n)).count();
        assert!(filled > band / 2, "the flow reached only {filled} of {band} band modes");
        let num: f64 = a.q.iter().zip(&b.q).map(|(x, y)| (x - y).norm_sqr()).sum();
        let den: f64 = b.q.iter().map(|x| x.norm_sqr()).sum();
        assert!((num / den).sqrt() < 1e-12, "C_S {smagorinsky}: relative L2 difference {}", (num / den).sqrt());
    }
}

/// Relative L2 difference `‖a − b‖/‖a‖` of two spectra.
fn relative(a: &[Complex<f64>], b: &[Complex<f64>]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).norm_sqr()).sum();
    let den: f64 = a.iter().map(|x| x.norm_sqr()).sum();
    (num / den).sqrt()
}

/// The batched libtorch model (the GPU path of `generate --device`, run here on the CPU) steps a
/// batch of members exactly as the native model steps each one: after 100 steps of growing
/// eddies, the same q̂ and Adams–Bashforth history (f64, 1e-12 relative) and CFL numbers, under
/// both small-scale rules, with and without Smagorinsky, for members loaded at different
/// Adams–Bashforth levels; f32 to 1e-5 over 20 steps.
#[test]
fn batched_torch_model_matches_the_native_model() {
    use thermalizer::solver::batched::BatchedDynamics;
    use thermalizer::solver::batched_qg::BatchedQg;
    let (n, dt, steps) = (64, 3600.0, 100);
    for small_scales in [SmallScales::Exponential, SmallScales::TwoThirds] {
        for smagorinsky in [0.0, 0.1] {
            let params = QgParams { small_scales, smagorinsky, ..QgParams::eddy() };
            let native = Qg::<f64>::new(n, params);
            let batched = BatchedQg::new::<f64>(n, params, dt, tch::Device::Cpu);
            let mut work = native.work();
            let mut members: Vec<_> =
                (0..3u64).map(|m| native.state(smooth_q(&native, 10 + m).iter().map(|v| v * 10.0).collect())).collect();
            // Member 1 enters with one step of history (AB2 next), member 2 with two (AB3).
            for (m, state) in members.iter_mut().enumerate() {
                for _ in 0..m {
                    native.step(state, dt, &mut work);
                }
            }
            let mut batch = batched.load(&members.iter().collect::<Vec<_>>());
            let mut worst_cfl = 0f64;
            for _ in 0..steps {
                let cfl = Vec::<f64>::try_from(batched.step(&mut batch)).unwrap();
                for (m, state) in members.iter_mut().enumerate() {
                    let c = native.step(state, dt, &mut work);
                    worst_cfl = worst_cfl.max((c - cfl[m]).abs() / c);
                }
            }
            let mut worst = 0f64;
            for (m, state) in members.iter().enumerate() {
                let b: thermalizer::solver::qg::QgState<f64> = batched.unload(&batch, m as i64);
                assert_eq!(b.level, state.level);
                for (a, b) in [(&state.q, &b.q), (&state.dq_prev, &b.dq_prev), (&state.dq_prev2, &b.dq_prev2)] {
                    worst = worst.max(relative(a, b));
                }
            }
            eprintln!(
                "{small_scales:?}, C_S {smagorinsky}: max relative L2 difference {worst:.2e}, CFL {worst_cfl:.2e}"
            );
            assert!(worst <= 1e-12, "{small_scales:?}, C_S {smagorinsky}: relative L2 difference {worst:e}");
            assert!(worst_cfl <= 1e-12, "{small_scales:?}, C_S {smagorinsky}: CFL numbers differ by {worst_cfl:e}");
        }
    }
    // f32: the same scheme in single precision, over 20 steps.
    let params = QgParams { smagorinsky: 0.1, ..QgParams::eddy() };
    let (native, native32) = (Qg::<f64>::new(n, params), Qg::<f32>::new(n, params));
    let batched32 = BatchedQg::new::<f32>(n, params, dt, tch::Device::Cpu);
    let q0 = smooth_q(&native, 10);
    let mut state = native32.state(q0.iter().map(|v| Complex::new(v.re as f32, v.im as f32) * 10.0).collect());
    let mut batch = batched32.load(&[&state]);
    let mut work = native32.work();
    for _ in 0..20 {
        native32.step(&mut state, dt, &mut work);
        let _ = batched32.step(&mut batch);
    }
    let b: thermalizer::solver::qg::QgState<f32> = batched32.unload(&batch, 0);
    let widen = |s: &[Complex<f32>]| s.iter().map(|c| Complex::new(c.re as f64, c.im as f64)).collect::<Vec<_>>();
    let d = relative(&widen(&state.q), &widen(&b.q));
    eprintln!("f32: relative L2 difference {d:.2e}");
    assert!(d < 1e-5, "f32: relative L2 difference {d:e}");
}
