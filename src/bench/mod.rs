//! `thermalizer bench solver`: time per step of one trajectory (Kolmogorov, or two-layer QG
//! with `--system qg`) on the calling thread (one core), beside the FFT-bound floor of the same
//! FFT library.
//!
//! Method: a random initial field (`max |u| = 7`, peak wavenumber 4) with jax-cfd's CFL time
//! step `dt = 0.5·dx/7`; warm-up, then `repeats` blocks of about `seconds` each, reporting the
//! median ms per step. The floor is the solver's FFT count, 20 real 2D transforms per CN–RK4 step
//! (5 stages × (2 inverse + 2 forward), Basdevant's form of the advection), times the measured
//! mean time of one full `n × n` forward and inverse transform of [`Grid`] (jax-cfd does 35 per
//! step). The solver transforms only the 2/3-band columns in `y`, so it can beat this floor.
//!
//! With `--device`, [`batched`] (or [`batched_qg`]) also times the libtorch solver stepping
//! `batch` members at once on that device, and checks it against the native solver after 20
//! steps. Its effective memory traffic per member-step is [`fft_bytes`] times the real 2D
//! transforms of one step (an algorithmic minimum: the pointwise products and the temporaries
//! between transforms move more bytes, so bandwidth computed from it is a lower bound).

pub mod command;
pub mod rollout;
pub mod train;

use std::time::Instant;

use num_complex::Complex;
use rand::Rng;

use crate::rng::{member_stream, Purpose};
use crate::rollout::stats::median;
use crate::solver::batched::BatchedDynamics;
use crate::solver::grid::Grid;
use crate::solver::initial::filtered_vorticity;
use crate::solver::kolmogorov::KolmogorovParams;
use crate::solver::qg::{Qg, QgParams, QgState, SmallScales};
use crate::solver::real::Real;
use crate::solver::KolmogorovSolver;

/// Real 2D FFTs per CN–RK4 step of the Kolmogorov solver.
pub const FFTS_PER_STEP: f64 = 20.0;
/// Real 2D FFTs per AB3 step of the two-layer QG model, both layers (pyqg's count: per layer
/// 3 inverse + 2 forward; without Smagorinsky, which adds 3 + 3 per layer and which the
/// benchmark leaves off).
pub const QG_FFTS_PER_STEP: f64 = 10.0;

/// One line of the solver benchmark.
pub struct SolverBench {
    pub grid: usize,
    pub precision: &'static str,
    pub ms_per_step: f64,
    pub floor_ms: f64,
    pub fft_us: f64,
}

/// Times `f` (which does `per_call` units of work) in `repeats` blocks of about `seconds`;
/// returns the median seconds per unit.
fn time_blocks(seconds: f64, repeats: usize, per_call: usize, mut f: impl FnMut()) -> f64 {
    let t0 = Instant::now();
    f();
    let once = t0.elapsed().as_secs_f64().max(1e-7);
    let calls = ((seconds / once).ceil() as usize).max(1);
    let blocks = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                f();
            }
            t.elapsed().as_secs_f64() / (calls * per_call) as f64
        })
        .collect();
    median(blocks)
}

/// Benchmarks one grid size in precision `T`.
pub fn solver<T: Real>(n: usize, viscosity: f64, seconds: f64, repeats: usize) -> SolverBench {
    let params = KolmogorovParams { viscosity, drag: 0.1, forcing_wavenumber: 4, forcing_amplitude: 1.0 };
    let dx = 2.0 * std::f64::consts::PI / n as f64;
    let solver = KolmogorovSolver::<T>::new(n, params, 0.5 * dx / 7.0);
    let mut w = filtered_vorticity(&solver.eq, &mut member_stream(0, Purpose::InitialCondition, 0), 7.0, 4.0);
    let mut work = solver.work();
    let step = time_blocks(seconds, repeats, 1, || {
        solver.step(&mut w, &mut work);
    });
    row::<T>(n, step, FFTS_PER_STEP, fft_time::<T>(n, seconds, repeats))
}

/// The batched libtorch solver at one grid size and batch.
pub struct BatchedBench {
    pub grid: usize,
    pub precision: &'static str,
    pub batch: usize,
    /// Milliseconds per member-step (one batch step ÷ batch).
    pub ms_per_member_step: f64,
    /// Relative L2 difference of member 0 from the native solver after 20 steps.
    pub vs_native: f64,
    /// Real 2D transforms per member-step ([`FFTS_PER_STEP`] or [`QG_FFTS_PER_STEP`]).
    pub ffts_per_step: f64,
    /// Effective bytes moved per member-step: `ffts_per_step ×` [`fft_bytes`].
    pub bytes_per_member_step: f64,
}

/// Effective bytes of one real 2D transform of an `n × n` field in precision `T`: the real field
/// read and its half spectrum `n × (n/2 + 1)` written (or the reverse), once each; what an FFT
/// must move at least, not what it moves (a multi-pass FFT reads and writes more).
pub fn fft_bytes<T: Real>(n: usize) -> f64 {
    (std::mem::size_of::<T>() * (n * n + 2 * n * (n / 2 + 1))) as f64
}

/// Benchmarks [`BatchedKolmogorov`](crate::solver::batched::BatchedKolmogorov) with `batch`
/// members on `device` (each timed step ends with a device synchronisation).
pub fn batched<T: Real>(
    n: usize,
    viscosity: f64,
    (batch, device): (usize, tch::Device),
    seconds: f64,
    repeats: usize,
) -> BatchedBench {
    use crate::solver::batched::BatchedKolmogorov;
    let params = KolmogorovParams { viscosity, drag: 0.1, forcing_wavenumber: 4, forcing_amplitude: 1.0 };
    let dt = 0.5 * 2.0 * std::f64::consts::PI / n as f64 / 7.0;
    let native = KolmogorovSolver::<T>::new(n, params, dt);
    let torch = BatchedKolmogorov::new::<T>(n, params, dt, device);
    let ics: Vec<Vec<Complex<T>>> = (0..batch)
        .map(|m| filtered_vorticity(&native.eq, &mut member_stream(0, Purpose::InitialCondition, m as u64), 7.0, 4.0))
        .collect();
    let mut work = native.work();
    let step = |w: &mut Vec<Complex<T>>| {
        native.step(w, &mut work);
    };
    let timing = (seconds, repeats);
    batched_against(&torch, ics, (step, |w: &Vec<Complex<T>>| w.to_vec()), device, timing, (n, FFTS_PER_STEP))
}

/// Benchmarks [`BatchedQg`](crate::solver::batched_qg::BatchedQg) as [`qg`] the native model
/// (eddy, dt = 1 h, no Smagorinsky, `small_scales`) with `batch` members on `device`.
pub fn batched_qg<T: Real>(
    n: usize,
    small_scales: SmallScales,
    (batch, device): (usize, tch::Device),
    seconds: f64,
    repeats: usize,
) -> BatchedBench {
    use crate::solver::batched_qg::BatchedQg;
    let (params, dt) = (QgParams { small_scales, ..QgParams::eddy() }, 3600.0);
    let model = Qg::<T>::new(n, params);
    let torch = BatchedQg::new::<T>(n, params, dt, device);
    let ics: Vec<QgState<T>> = (0..batch).map(|m| model.state(qg_noise(&model, m as u64))).collect();
    let mut work = model.work();
    let step = |s: &mut QgState<T>| {
        model.step(s, dt, &mut work);
    };
    let timing = (seconds, repeats);
    batched_against(&torch, ics, (step, |s: &QgState<T>| s.q.clone()), device, timing, (n, QG_FFTS_PER_STEP))
}

/// The common part of the batched benchmarks: 20 steps of the batch of `ics` and of member 0 by
/// the native solver (`native.0` steps it, `native.1` gives its spectra), their relative L2
/// difference, then the timing (each timed step ends with a device synchronisation), on an
/// `n × n` grid with `ffts` real 2D transforms per member-step.
fn batched_against<T: Real, S, B: BatchedDynamics<S>>(
    torch: &B,
    ics: Vec<S>,
    mut native: (impl FnMut(&mut S), impl Fn(&S) -> Vec<Complex<T>>),
    device: tch::Device,
    (seconds, repeats): (f64, usize),
    (n, ffts): (usize, f64),
) -> BatchedBench {
    let mut w = torch.load(&ics.iter().collect::<Vec<_>>());
    let batch = ics.len();
    let mut reference = ics.into_iter().next().expect("a batch of at least one member");
    for _ in 0..20 {
        (native.0)(&mut reference);
        let _ = torch.step(&mut w);
    }
    let (want, got) = ((native.1)(&reference), (native.1)(&torch.unload(&w, 0)));
    let wide = |c: &Complex<T>| Complex::new(c.re.to64(), c.im.to64());
    let num: f64 = want.iter().zip(&got).map(|(a, b)| (wide(a) - wide(b)).norm_sqr()).sum();
    let den: f64 = want.iter().map(|a| wide(a).norm_sqr()).sum();
    let step = time_blocks(seconds, repeats, batch, || {
        let _ = torch.step(&mut w);
        crate::bench::rollout::synchronize(device);
    });
    BatchedBench {
        grid: n,
        precision: T::NAME,
        batch,
        ms_per_member_step: step * 1e3,
        vs_native: (num / den).sqrt(),
        ffts_per_step: ffts,
        bytes_per_member_step: ffts * fft_bytes::<T>(n),
    }
}

/// Benchmarks the two-layer QG model (pyqg's eddy configuration, dt = 1 h, no Smagorinsky,
/// with `small_scales`) on one grid size; the floor is [`QG_FFTS_PER_STEP`] full transforms
/// (under the 2/3 rule the model transforms only the band's columns, so it can beat it).
pub fn qg<T: Real>(n: usize, small_scales: SmallScales, seconds: f64, repeats: usize) -> SolverBench {
    let model = Qg::<T>::new(n, QgParams { small_scales, ..QgParams::eddy() });
    let mut state = model.state(qg_noise(&model, 0));
    let mut work = model.work();
    let step = time_blocks(seconds, repeats, 1, || {
        model.step(&mut state, 3600.0, &mut work);
    });
    row::<T>(n, step, QG_FFTS_PER_STEP, fft_time::<T>(n, seconds, repeats))
}

/// Uniform noise of amplitude 1e-6 s⁻¹ in the PV of both layers (member `m`'s stream), as spectra.
fn qg_noise<T: Real>(model: &Qg<T>, m: u64) -> Vec<Complex<T>> {
    let (g, mut rng) = (model.grid(), member_stream(0, Purpose::InitialCondition, m));
    let (n, len) = (g.n, g.spec_len());
    let mut q = vec![Complex::default(); 2 * len];
    for layer in 0..2 {
        let noise: Vec<T> = (0..n * n).map(|_| T::of(1e-6 * (rng.random::<f64>() - 0.5))).collect();
        g.forward(&noise, &mut q[layer * len..(layer + 1) * len], g.nkx, &mut g.scratch());
    }
    q
}

/// A table row from seconds per step, transforms per step and seconds per transform.
fn row<T: Real>(n: usize, step: f64, ffts: f64, fft: f64) -> SolverBench {
    SolverBench { grid: n, precision: T::NAME, ms_per_step: step * 1e3, floor_ms: ffts * fft * 1e3, fft_us: fft * 1e6 }
}

/// Mean seconds of one full `n × n` real 2D transform (forward and inverse averaged).
fn fft_time<T: Real>(n: usize, seconds: f64, repeats: usize) -> f64 {
    let g = Grid::<T>::new(n, 2.0 * std::f64::consts::PI);
    let mut ws = g.scratch();
    let real: Vec<T> = (0..n * n).map(|i| T::of(((i * 7919) % 1000) as f64 / 1000.0 - 0.5)).collect();
    let mut out = vec![T::zero(); n * n];
    let mut spec = vec![Complex::default(); g.spec_len()];
    time_blocks(seconds / 2.0, repeats, 2, || {
        g.forward(&real, &mut spec, g.nkx, &mut ws);
        g.inverse_in_place(&mut spec, &mut out, g.nkx, &mut ws);
    })
}
