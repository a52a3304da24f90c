//! The Python package (python/) against the real binary: a tiny run trained here and a rollout
//! of the shipped Kolmogorov models, then `pytest python/tests` comparing the PyTorch modules
//! with the rollout's output and loading every form of model file.

mod common;

use std::path::Path;

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `thermalizer <verb> --config <config> --set run.dir=<dir> --set <sets>...`, which must succeed.
fn stage(verb: &[&str], config: &str, dir: &Path, sets: &[&str]) {
    let mut a: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
    a.extend(["--config".into(), format!("{ROOT}/{config}"), "--set".into(), format!("run.dir={}", dir.display())]);
    for s in sets {
        a.extend(["--set".into(), s.to_string()]);
    }
    assert_ok(&run(0, &a.iter().map(String::as_str).collect::<Vec<_>>()));
}

/// The rollout the Python step is compared with: σ = 0 (no random draw between the emulator
/// step and the recorded state) and a snapshot at every step.
const EXACT: [&str; 2] = ["rollout.sigma=0", "rollout.snapshot_every=1"];

/// tiny-train: trained checkpoints, a rollout, and the exports `models/`, `half/` (--half) and
/// `raw/` (--thermalizer-only with the raw weights).
fn tiny_run(dir: &Path) {
    let config = "tests/configs/tiny-train.yaml";
    stage(&["generate"], config, dir, &[]);
    stage(&["train", "emulator"], config, dir, &[]);
    stage(&["train", "thermalizer"], config, dir, &[]);
    stage(&["rollout"], config, dir, &[EXACT[0], EXACT[1], "rollout.steps=3"]);
    let out = |name: &str| dir.join(name).display().to_string();
    stage(&["export", "--out", &out("models")], config, dir, &[]);
    stage(&["export", "--out", &out("half"), "--half"], config, dir, &[]);
    stage(&["export", "--out", &out("raw"), "--thermalizer-only"], config, dir, &["rollout.ema=false"]);
}

/// Data of the small Kolmogorov experiment's system (128² solver, 32² stored), spun up only
/// 1500 steps so that the shipped classifier rates the states at several levels, rolled out
/// with the shipped models (`data/kolmogorov-small`).
fn shipped_run(dir: &Path) {
    let config = "configs/kolmogorov-small.yaml";
    let data = [
        "run.log_interval=0",
        "generate.members=4",
        "generate.samples=6",
        "generate.spinup_steps=1500",
        "generate.split.train=0.5",
        "generate.split.valid=0.25",
    ];
    stage(&["generate"], config, dir, &data);
    let models = format!("rollout.models={ROOT}/data/kolmogorov-small");
    let rollout = [
        models.as_str(),
        "rollout.members=3",
        "rollout.steps=4",
        "rollout.start_stride=1",
        "rollout.spectrum_every=1",
        "rollout.average_from=0",
    ];
    let sets: Vec<&str> = data.iter().chain(&rollout).chain(&EXACT).copied().collect();
    stage(&["rollout"], config, dir, &sets);
}

#[test]
fn python_package_matches_the_rust_rollout_and_loads_every_model_file() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (tiny, shipped) = (scratch("python-tiny"), scratch("python-shipped"));
    tiny_run(&tiny);
    shipped_run(&shipped);
    let runs = [("THERMALIZER_TEST_TINY", tiny.as_path()), ("THERMALIZER_TEST_SHIPPED", shipped.as_path())];
    pytest("THERMALIZER_TORCH_PYTHON", "python/tests", &runs);
    // The readers need no torch: the project's venv (whose torch is libtorch only) runs them.
    pytest("THERMALIZER_PYTHON", "python/tests/test_data.py", &runs);
    for d in [tiny, shipped] {
        let _ = std::fs::remove_dir_all(d);
    }
}
