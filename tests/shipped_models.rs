//! The small experiment's trained models shipped in `data/kolmogorov-small/` (written by
//! `thermalizer export --half`): a rollout runs from them without training, its emulator keeps
//! the short-horizon skill docs/results.md reports, and a config of another system refuses them.

mod common;

use std::path::Path;

use common::*;
use thermalizer::store::h5::{Access, File};

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/kolmogorov-small.yaml");
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/kolmogorov-small");

/// `thermalizer <verb> --config kolmogorov-small --set run.dir=DIR --set rollout.models=SHIPPED ...`.
fn stage(np: usize, verb: &str, dir: &Path, sets: &[&str]) -> std::process::Output {
    let mut a = vec![verb.to_string(), "--config".into(), CONFIG.into()];
    let fixed = [format!("run.dir={}", dir.display()), format!("rollout.models={SHIPPED}")];
    for s in fixed.iter().map(String::as_str).chain(sets.iter().copied()) {
        a.extend(["--set".into(), s.to_string()]);
    }
    run(np, &a.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn the_shipped_models_roll_out_without_training_and_keep_their_skill() {
    // A few of the experiment's trajectories (its physics and spin-up; 1 test member), then
    // 2 members × 20 steps of both modes from the shipped models.
    let dir = scratch("shipped");
    let small = ["generate.members=8", "generate.samples=24"];
    let steps = ["rollout.members=2", "rollout.start_stride=2", "rollout.steps=20", "rollout.spectrum_every=10"];
    let sets: Vec<&str> = small.iter().chain(&steps).copied().collect();
    let out = stage(2, "pipeline", &dir, &sets);
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    for model in ["emulator", "thermalizer"] {
        assert!(err.contains(&format!("train {model}: skipped (rollout.models")), "{err}");
    }
    assert!(!dir.join("emulator").exists(), "nothing trained");
    let f = File::open(&dir.join("rollout.h5"), Access::Serial, false).unwrap();
    let mse = f.dataset("mse").unwrap().read::<f64>(None).unwrap(); // [mode, member, step]
    let ms = f.dataset("mean_square").unwrap().read::<f64>(None).unwrap();
    // The emulator alone: error relative to the field's mean square after 1 and 20 steps.
    for member in 0..2 {
        let at = |step: usize| member * 21 + step;
        let (one, twenty) = (mse[at(1)] / ms[at(0)], mse[at(20)] / ms[at(0)]);
        assert!(one > 0.0 && one < 1e-3, "member {member}: one-step relative error {one:.2e}");
        assert!(twenty < 0.05, "member {member}: 20-step relative error {twenty:.2e}");
    }
    // The shipped classifier rates the true initial states clean (levels 0-199; s_init is 2).
    let level = f.dataset("noise_level").unwrap().read::<f64>(None).unwrap(); // [mode, member, step]
    assert!((0..2).all(|member| (0.0..=2.0).contains(&level[(2 + member) * 21])), "levels {level:?}");
    // The models belong to this system only: refused by the rollout, and by `validate` before
    // a job is queued (which otherwise says it loaded them).
    let out = stage(0, "validate", &dir, &[]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("shipped models:     "));
    for verb in ["rollout", "validate"] {
        let out = stage(0, verb, &scratch("shipped-other"), &["system.viscosity=2.0e-3"]);
        assert_eq!(out.status.code(), Some(2), "{verb}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("emulator.safetensors was trained on another system")
                && err.contains("system.viscosity: 0.001, this config system.viscosity: 0.002"),
            "{verb}: {err}"
        );
    }
}
