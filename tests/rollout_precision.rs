//! `rollout.inference_precision`: the small experiment's shipped models (data/kolmogorov-small)
//! run in bfloat16 keep the skill they have in float32, measured from the same true states of
//! the experiment's system (a few trajectories generated once per test binary): the emulator's
//! one-step error, the classifier's levels on clean held-out states, the denoiser's noise
//! error, and a short rollout of both modes through the CLI. A bad value of the key is refused.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use tch::nn::Module;
use tch::{Device, Kind, Tensor};
use thermalizer::config::rollout::Precision;
use thermalizer::config::Config;
use thermalizer::nn::diffusion::Schedule;
use thermalizer::rollout::thermalize::Denoiser;
use thermalizer::stages::models::{self, Models};
use thermalizer::store::h5::{Access, File};
use thermalizer::store::trajectories::{Trajectories, Window};

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/kolmogorov-small.yaml");
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/kolmogorov-small");
/// 8 trajectories of 64 states of the experiment's system: 2 training, 2 validation, 4 test.
const DATA: [&str; 4] =
    ["generate.members=8", "generate.samples=64", "generate.split.train=0.25", "generate.split.valid=0.25"];

/// The `--set`s of every command: `run.dir`, the shipped models, [`DATA`], then `extra`.
fn sets(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut s = vec![format!("run.dir={}", dir.display()), format!("rollout.models={SHIPPED}")];
    s.extend(DATA.iter().chain(extra).map(|v| v.to_string()));
    s
}

/// A run directory holding the trajectories, generated on the first call.
fn trajectories() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("precision-data");
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let mut args = vec!["generate".to_string(), "--config".into(), CONFIG.into()];
        for s in sets(&dir, &[]) {
            args.extend(["--set".into(), s]);
        }
        assert_ok(&run(2, &args.iter().map(String::as_str).collect::<Vec<_>>()));
        dir
    })
}

fn load(dir: &Path, p: Precision) -> (Config, Models) {
    let c =
        Config::load(Path::new(CONFIG), &sets(dir, &[&format!("rollout.inference_precision={}", p.name())])).unwrap();
    let m = models::load(&c, c.rollout.as_ref().unwrap(), Device::Cpu).unwrap();
    (c, m)
}

fn mse(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).square().mean(Kind::Double).double_value(&[])
}

/// The held-out (validation and test) members' stored states in normalised units,
/// `[member, time, C, N, N]` per member.
fn held_out(c: &Config, dir: &Path, scale: &[f64]) -> (Vec<Tensor>, usize) {
    let data = Trajectories::open(&dir.join("trajectories.h5"), c.layers(), c.output_grid()).unwrap();
    let scale = Tensor::from_slice(&scale.iter().map(|&s| s as f32).collect::<Vec<_>>()).view([1, -1, 1, 1]);
    let states = [1i8, 2]
        .iter()
        .flat_map(|&split| data.members(split))
        .map(|m| data.read_normalised(Window { member: m, start: 0 }, data.samples, &scale).unwrap())
        .collect();
    (states, data.samples)
}

#[test]
fn bf16_keeps_the_one_step_error_the_levels_and_the_noise_error_of_f32() {
    let dir = trajectories();
    let _torch = seeded_torch(11);
    let (c, f32m) = load(dir, Precision::F32);
    let (bf16m, f16m) = (load(dir, Precision::Bf16).1, load(dir, Precision::F16).1);
    let (members, samples) = held_out(&c, dir, &f32m.scale);
    let pairs =
        |from: i64| Tensor::cat(&members.iter().map(|t| t.narrow(0, from, samples as i64 - 1)).collect::<Vec<_>>(), 0);
    let (now, next) = (pairs(0), pairs(1));
    let all = Tensor::cat(&members, 0); // 6 members × 64 states
    let _g = tch::no_grad_guard();
    // The emulator's one-step error against the truth, over the 378 held-out pairs. Measured
    // (x86-64, libtorch 2.11): 1.7739e-4 in f32, 1.7830e-4 in bf16 (ratio 1.0051).
    let step = |m: &Models, x: &Tensor, y: &Tensor| mse(&(x + m.emulator.forward(x)), y);
    let (s32, s16) = (step(&f32m, &now, &next), step(&bf16m, &now, &next));
    assert!((s16 / s32 - 1.0).abs() < 0.02, "one-step mse: bf16 {s16:.4e}, f32 {s32:.4e}");
    // float16 runs on the CPU too (libtorch 2.11), but some 20× slower than float32 there: its
    // step on 32 pairs only. Measured on all 378: ratio 1.0001.
    let (x, y) = (now.narrow(0, 0, 32), next.narrow(0, 0, 32));
    let (a, b) = (step(&f32m, &x, &y), step(&f16m, &x, &y));
    assert!((b / a - 1.0).abs() < 0.01, "one-step mse on 32 pairs: f16 {b:.4e}, f32 {a:.4e}");
    // The classifier's levels of the 384 clean held-out states. Measured: f32 rates them 0-16;
    // bf16 gives the same level to 346 (90.1 %), within ±1 to 359 (93.5 %). The others are
    // states f32 rates 4-5 or 13-16 whose logits are nearly tied with levels 1-2, where bf16
    // puts them: the selection level > s_init = 2 agrees for 361 (94.0 %).
    let levels = |m: &Models| m.thermalizer.as_ref().unwrap().levels(&all);
    let (l32, l16) = (levels(&f32m), levels(&bf16m));
    let n = l32.len() as f64;
    let share = |near: usize| l32.iter().zip(&l16).filter(|(a, b)| a.abs_diff(**b) <= near).count() as f64 / n;
    assert!(share(0) >= 0.85 && share(1) >= 0.90, "levels equal {:.3}, within 1 {:.3}", share(0), share(1));
    // The denoiser's noise error E|ε̂ − ε|² on the states noised to levels 2, 10 and 40.
    // Measured ratios bf16/f32: 0.99985, 1.00008, 1.00003.
    let schedule = Schedule::cosine(c.thermalizer().levels);
    let eps = Tensor::randn(all.size(), (Kind::Float, Device::Cpu));
    for t in [2usize, 10, 40] {
        let noised = schedule.noised(&all, &vec![t; l32.len()], &eps);
        let err = |m: &Models| mse(&m.thermalizer.as_ref().unwrap().noise(&noised), &eps);
        let (e32, e16) = (err(&f32m), err(&bf16m));
        assert!((e16 / e32 - 1.0).abs() < 0.005, "level {t}: noise mse bf16 {e16:.5}, f32 {e32:.5}");
    }
}

/// `thermalizer rollout` of the shipped models, 8 members × 50 steps of both modes from the
/// test members, in `precision`; the ensemble-mean MSE per mode and step, and the stored config.
fn rollout(precision: Precision) -> (Vec<Vec<f64>>, String) {
    let dir = scratch(&format!("precision-{}", precision.name()));
    std::fs::copy(trajectories().join("trajectories.h5"), dir.join("trajectories.h5")).unwrap();
    let extra = [
        "rollout.members=8",
        "rollout.start_stride=2",
        "rollout.steps=50",
        "rollout.spectrum_every=10",
        "rollout.snapshot_every=0",
        &format!("rollout.inference_precision={}", precision.name()),
    ];
    let mut args = vec!["rollout".to_string(), "--config".into(), CONFIG.into()];
    for s in sets(&dir, &extra) {
        args.extend(["--set".into(), s]);
    }
    let out = {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        run(0, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert_ok(&out);
    let f = File::open(&dir.join("rollout.h5"), Access::Serial, false).unwrap();
    let mse = f.dataset("mse").unwrap().read::<f64>(None).unwrap(); // [mode, member, step]
    let diverged = f.dataset("diverged_at").unwrap().read::<i64>(None).unwrap();
    assert!(diverged.iter().all(|&d| d < 0), "{}: diverged {diverged:?}", precision.name());
    let mean = |mode: usize, step: usize| (0..8).map(|m| mse[(mode * 8 + m) * 51 + step]).sum::<f64>() / 8.0;
    let per_mode = (0..2).map(|mode| [1, 10, 50].iter().map(|&s| mean(mode, s)).collect()).collect();
    (per_mode, f.attrs().get_str("config").unwrap())
}

#[test]
fn a_short_rollout_in_bf16_keeps_the_skill_of_f32() {
    let (f32r, f32c) = rollout(Precision::F32);
    let (bf16r, bf16c) = rollout(Precision::Bf16);
    assert!(bf16c.contains("inference_precision: bf16") && f32c.contains("inference_precision: f32"));
    // Measured ensemble-mean MSE (normalised units) at steps 1, 10, 50:
    //   emulator     f32 1.9656e-4 6.9967e-3 3.9939e-2, bf16 1.9763e-4 6.9964e-3 3.8058e-2
    //   thermalized  f32 1.8327e-3 1.0924e-2 4.6217e-2, bf16 1.8340e-3 1.0384e-2 4.4197e-2
    // (ratios 1.005 1.000 0.953 and 1.001 0.951 0.956: bf16's round-off, like any perturbation,
    // grows along the chaotic trajectories, and bf16 selects slightly fewer members).
    for (mode, name) in ["emulator", "thermalized"].iter().enumerate() {
        for (k, (step, tol)) in [(1, 0.02), (10, 0.15), (50, 0.2)].into_iter().enumerate() {
            let ratio = bf16r[mode][k] / f32r[mode][k];
            assert!((ratio - 1.0).abs() < tol, "{name} step {step}: bf16/f32 mse {ratio:.4}");
        }
    }
}

#[test]
fn a_bad_precision_is_refused_with_one_line() {
    let dir = scratch("precision-bad");
    let out = run(
        0,
        &[
            "validate",
            "--config",
            CONFIG,
            "--set",
            &format!("run.dir={}", dir.display()),
            "--set",
            "rollout.inference_precision=f64",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("rollout.inference_precision=f64") && err.contains("`f32`, `bf16`, `f16`"), "{err}");
}
