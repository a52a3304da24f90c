//! Physics checks of the Kolmogorov solver against analytic solutions and exact budgets.

use std::f64::consts::PI;

use num_complex::Complex;
use thermalizer::diagnostics::{energy, energy_input, enstrophy, enstrophy_input, palinstrophy};
use thermalizer::rng::{member_stream, Purpose};
use thermalizer::solver::grid::Grid;
use thermalizer::solver::initial::{filtered_vorticity, max_speed};
use thermalizer::solver::kolmogorov::KolmogorovParams;
use thermalizer::solver::resize::Downsampler;
use thermalizer::solver::KolmogorovSolver;

fn params(viscosity: f64, drag: f64, amplitude: f64) -> KolmogorovParams {
    KolmogorovParams { viscosity, drag, forcing_wavenumber: 4, forcing_amplitude: amplitude }
}

fn spectrum(g: &Grid<f64>, f: impl Fn(f64, f64) -> f64) -> Vec<Complex<f64>> {
    let n = g.n;
    let h = 2.0 * PI / n as f64;
    let real: Vec<f64> = (0..n * n).map(|k| f((k % n) as f64 * h, (k / n) as f64 * h)).collect();
    let mut s = vec![Complex::default(); g.spec_len()];
    g.forward(&real, &mut s, g.nkx, &mut g.scratch());
    s
}

fn physical(g: &Grid<f64>, s: &[Complex<f64>]) -> Vec<f64> {
    let mut out = vec![0.0; g.n * g.n];
    g.to_real(s, &mut out, &mut g.scratch());
    out
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn velocity_sign_convention() {
    // ω = sin y ⇒ ψ = sin y (∇²ψ = −ω) ⇒ u = ∂yψ = cos y, v = −∂xψ = 0.
    let solver = KolmogorovSolver::<f64>::new(16, params(0.0, 0.0, 0.0), 0.01);
    let g = solver.eq.grid();
    let w = spectrum(g, |_, y| y.sin());
    let mut uh = vec![Complex::default(); g.spec_len()];
    solver.eq.velocity_hat(&w, 0, &mut uh);
    let u = physical(g, &uh);
    let expect: Vec<f64> = (0..256).map(|k| ((k / 16) as f64 * 2.0 * PI / 16.0).cos()).collect();
    assert!(max_diff(&u, &expect) < 1e-13);
    solver.eq.velocity_hat(&w, 1, &mut uh);
    assert!(physical(g, &uh).iter().all(|v| v.abs() < 1e-13));
}

#[test]
fn taylor_green_decays_as_the_analytic_solution() {
    // ψ = cos 3x cos 2y is an exact nonlinear solution (ω = 13ψ, so u·∇ω = 0):
    // ω(t) = ω(0) exp(−(13ν + α) t).
    let (nu, alpha, dt, steps) = (0.02, 0.1, 0.01, 100);
    let solver = KolmogorovSolver::<f64>::new(32, params(nu, alpha, 0.0), dt);
    let g = solver.eq.grid();
    let w0 = |x: f64, y: f64| 13.0 * (3.0 * x).cos() * (2.0 * y).cos();
    let mut w = spectrum(g, w0);
    let mut work = solver.work();
    for _ in 0..steps {
        solver.step(&mut w, &mut work);
    }
    let t = dt * steps as f64;
    let decay = (-(13.0 * nu + alpha) * t).exp();
    let got = physical(g, &w);
    let h = 2.0 * PI / 32.0;
    let want: Vec<f64> = (0..32 * 32).map(|k| w0((k % 32) as f64 * h, (k / 32) as f64 * h) * decay).collect();
    let err = max_diff(&got, &want) / 13.0;
    assert!(err < 1e-7, "relative error {err:e}");
}

/// Relative max error of the laminar response at t = 3 with time step `dt`.
fn laminar_error(dt: f64) -> f64 {
    // From rest, only the forced mode is excited and advection vanishes:
    // ω(t) = −A k_f/(ν k_f² + α) (1 − e^{−(ν k_f² + α) t}) cos(k_f y).
    let (nu, alpha, amp, t) = (0.05, 0.1, 1.5, 3.0);
    let steps = (t / dt).round() as usize;
    let solver = KolmogorovSolver::<f64>::new(32, params(nu, alpha, amp), dt);
    let g = solver.eq.grid();
    let mut w = vec![Complex::default(); g.spec_len()];
    let mut work = solver.work();
    for _ in 0..steps {
        solver.step(&mut w, &mut work);
    }
    let lam = nu * 16.0 + alpha;
    let a = -amp * 4.0 / lam * (1.0 - (-lam * t).exp());
    let h = 2.0 * PI / 32.0;
    let want: Vec<f64> = (0..32 * 32).map(|k| a * (4.0 * (k / 32) as f64 * h).cos()).collect();
    max_diff(&physical(g, &w), &want) / a.abs()
}

#[test]
fn laminar_kolmogorov_flow_matches_the_analytic_spin_up() {
    // Crank–Nicolson treats ν∇² and α: the error is O((λ dt)²) and halves twice per halving of dt.
    let (e1, e2) = (laminar_error(0.01), laminar_error(0.005));
    assert!(e1 < 1e-6, "relative error {e1:e}");
    let order = (e1 / e2).log2();
    assert!((1.8..2.3).contains(&order), "observed order {order}");
}

fn turbulent_state(n: usize, p: KolmogorovParams, dt: f64) -> (KolmogorovSolver<f64>, Vec<Complex<f64>>) {
    let solver = KolmogorovSolver::<f64>::new(n, p, dt);
    let w = filtered_vorticity(&solver.eq, &mut member_stream(3, Purpose::InitialCondition, 0), 7.0, 4.0);
    (solver, w)
}

#[test]
fn inviscid_unforced_flow_conserves_energy_and_enstrophy() {
    let (solver, mut w) = turbulent_state(64, params(0.0, 0.0, 0.0), 2e-3);
    let g = solver.eq.grid();
    let (e0, z0) = (energy(g, &w), enstrophy(g, &w));
    let mut work = solver.work();
    for _ in 0..200 {
        solver.step(&mut w, &mut work);
    }
    let (de, dz) = ((energy(g, &w) / e0 - 1.0).abs(), (enstrophy(g, &w) / z0 - 1.0).abs());
    assert!(de < 1e-8 && dz < 1e-7, "relative drift: energy {de:e}, enstrophy {dz:e}");
    // and the flow did evolve (the nonlinear term is active)
    let (_, w_init) = turbulent_state(64, params(0.0, 0.0, 0.0), 2e-3);
    let change: f64 =
        w.iter().zip(&w_init).map(|(a, b)| (a - b).norm()).sum::<f64>() / w_init.iter().map(|a| a.norm()).sum::<f64>();
    assert!(change > 0.05, "flow barely changed ({change})");
}

#[test]
fn energy_and_enstrophy_budgets_close_on_a_forced_dissipative_run() {
    // dE/dt = −2νZ − 2αE + ⟨ψF⟩ and dZ/dt = −2νP − 2αZ + ⟨ωF⟩, integrated with the trapezoid rule.
    let (nu, alpha) = (2e-3, 0.1);
    let dt = 1e-3;
    let (solver, mut w) = turbulent_state(64, params(nu, alpha, 1.0), dt);
    let g = solver.eq.grid();
    let f = solver.eq.forcing_spectrum();
    let rates = |w: &[Complex<f64>]| {
        (
            -2.0 * nu * enstrophy(g, w) - 2.0 * alpha * energy(g, w) + energy_input(g, w, &f),
            -2.0 * nu * palinstrophy(g, w) - 2.0 * alpha * enstrophy(g, w) + enstrophy_input(g, w, &f),
        )
    };
    let (e0, z0) = (energy(g, &w), enstrophy(g, &w));
    let (mut ie, mut iz) = (0.0, 0.0);
    let mut r = rates(&w);
    let mut work = solver.work();
    for _ in 0..500 {
        solver.step(&mut w, &mut work);
        let r1 = rates(&w);
        ie += 0.5 * dt * (r.0 + r1.0);
        iz += 0.5 * dt * (r.1 + r1.1);
        r = r1;
    }
    let (de, dz) = (energy(g, &w) - e0, enstrophy(g, &w) - z0);
    assert!(de.abs() > 1e-3 * e0 && dz.abs() > 1e-3 * z0, "budget terms too small to test");
    assert!((de - ie).abs() < 1e-4 * de.abs().max(1e-3 * e0), "energy: ΔE = {de:e}, ∫rate = {ie:e}");
    assert!((dz - iz).abs() < 1e-4 * dz.abs().max(1e-3 * z0), "enstrophy: ΔZ = {dz:e}, ∫rate = {iz:e}");
}

#[test]
fn random_initial_condition_has_the_requested_speed_and_lives_in_the_band() {
    let solver = KolmogorovSolver::<f64>::new(64, params(1e-3, 0.1, 1.0), 1e-3);
    let g = solver.eq.grid();
    let w = filtered_vorticity(&solver.eq, &mut member_stream(1, Purpose::InitialCondition, 5), 7.0, 4.0);
    assert!((max_speed(&solver.eq, &w) - 7.0).abs() < 1e-10);
    for p in 0..g.nkx {
        for q in 0..g.n {
            if !g.in_band(p, q) {
                assert_eq!(w[p * g.n + q], Complex::default());
            }
        }
    }
    // a different member gets a different field, the same member the same
    let again = filtered_vorticity(&solver.eq, &mut member_stream(1, Purpose::InitialCondition, 5), 7.0, 4.0);
    let other = filtered_vorticity(&solver.eq, &mut member_stream(1, Purpose::InitialCondition, 6), 7.0, 4.0);
    assert_eq!(w, again);
    assert_ne!(w, other);
}

#[test]
fn spectral_truncation_keeps_exactly_the_low_modes() {
    // Fine field: modes below the coarse Nyquist (kept) plus modes at/above it (dropped).
    let low =
        |x: f64, y: f64| 0.7 * (3.0 * x + 2.0 * y).cos() - 1.3 * (7.0 * y).sin() + 0.4 * (5.0 * x - 6.0 * y).sin();
    let high = |x: f64, y: f64| 2.0 * (8.0 * x).cos() + (9.0 * y + x).sin() + 0.5 * (20.0 * x + 3.0 * y).cos();
    let fine = Grid::<f64>::new(64, 2.0 * PI);
    let w = spectrum(&fine, |x, y| low(x, y) + high(x, y));
    let down = Downsampler::<f64>::new(64, 16, 2.0 * PI);
    let mut out = vec![0.0; 16 * 16];
    down.apply(&w, &mut out, &mut down.work());
    let h = 2.0 * PI / 16.0;
    let want: Vec<f64> = (0..256).map(|k| low((k % 16) as f64 * h, (k / 16) as f64 * h)).collect();
    assert!(max_diff(&out, &want) < 1e-12, "error {}", max_diff(&out, &want));
    // identity when the grids are equal (the state has no Nyquist content)
    let same = Downsampler::<f64>::new(64, 64, 2.0 * PI);
    let mut out = vec![0.0; 64 * 64];
    let band = spectrum(&fine, low);
    same.apply(&band, &mut out, &mut same.work());
    assert!(max_diff(&out, &physical(&fine, &band)) < 1e-12);
}

#[test]
fn f32_solver_tracks_f64() {
    let p = params(1e-2, 0.1, 1.0);
    let s64 = KolmogorovSolver::<f64>::new(32, p, 5e-3);
    let s32 = KolmogorovSolver::<f32>::new(32, p, 5e-3);
    let mut w64 = filtered_vorticity(&s64.eq, &mut member_stream(2, Purpose::InitialCondition, 0), 3.0, 4.0);
    let mut w32: Vec<Complex<f32>> = w64.iter().map(|c| Complex::new(c.re as f32, c.im as f32)).collect();
    let (mut k64, mut k32) = (s64.work(), s32.work());
    for _ in 0..50 {
        s64.step(&mut w64, &mut k64);
        s32.step(&mut w32, &mut k32);
    }
    let num: f64 = w64.iter().zip(&w32).map(|(a, b)| (a - Complex::new(b.re as f64, b.im as f64)).norm_sqr()).sum();
    let den: f64 = w64.iter().map(|a| a.norm_sqr()).sum();
    assert!((num / den).sqrt() < 1e-4, "f32 vs f64 relative difference {}", (num / den).sqrt());
}

/// The batched libtorch solver (the GPU path, run here on the CPU) steps a batch of members
/// exactly as the native solver steps each one: the same spectra after 200 steps of a
/// turbulent flow (f64 to 1e-10, relative; f32 to 1e-3) and the same CFL numbers.
#[test]
fn batched_torch_solver_matches_the_native_solver() {
    use thermalizer::solver::batched::BatchedKolmogorov;
    let (n, dt, steps) = (64, 0.005, 200);
    let p = params(1e-3, 0.1, 1.0);
    let native = KolmogorovSolver::<f64>::new(n, p, dt);
    let batched = BatchedKolmogorov::new::<f64>(n, p, dt, tch::Device::Cpu);
    let ics: Vec<_> = (0..3)
        .map(|m| filtered_vorticity(&native.eq, &mut member_stream(7, Purpose::InitialCondition, m), 7.0, 4.0))
        .collect();
    let mut batch = batched.state(&ics);
    let mut work = native.work();
    let mut members = ics.clone();
    for step in 0..steps {
        let cfl = Vec::<f64>::try_from(batched.step(&mut batch)).unwrap();
        for (m, w) in members.iter_mut().enumerate() {
            let s = native.step(w, &mut work);
            if step % 50 == 0 {
                assert!((s - cfl[m]).abs() < 1e-9 * s, "CFL of member {m} at step {step}: {s} vs {}", cfl[m]);
            }
        }
    }
    for (m, w) in members.iter().enumerate() {
        let b = batched.spectrum(&batch, m as i64);
        let num: f64 = w.iter().zip(&b).map(|(x, y)| (x - y).norm_sqr()).sum();
        let den: f64 = w.iter().map(|x| x.norm_sqr()).sum();
        assert!((num / den).sqrt() < 1e-10, "member {m}: relative L2 {:e}", (num / den).sqrt());
    }
    // f32: the same scheme in single precision, over 20 steps.
    let native32 = KolmogorovSolver::<f32>::new(n, p, dt);
    let batched32 = BatchedKolmogorov::new::<f32>(n, p, dt, tch::Device::Cpu);
    let mut w32 = filtered_vorticity(&native32.eq, &mut member_stream(7, Purpose::InitialCondition, 0), 7.0, 4.0);
    let mut batch32 = batched32.state(std::slice::from_ref(&w32));
    let mut work32 = native32.work();
    for _ in 0..20 {
        native32.step(&mut w32, &mut work32);
        let _ = batched32.step(&mut batch32);
    }
    let b = batched32.spectrum(&batch32, 0);
    let num: f64 = w32.iter().zip(&b).map(|(x, y)| (x.re as f64 - y.re).powi(2) + (x.im as f64 - y.im).powi(2)).sum();
    let den: f64 = w32.iter().map(|x| x.norm_sqr() as f64).sum();
    assert!((num / den).sqrt() < 1e-3, "f32: relative L2 {:e}", (num / den).sqrt());
}
