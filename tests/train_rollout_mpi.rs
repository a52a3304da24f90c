//! End-to-end tests of `thermalizer train` and `thermalizer rollout`, launched as users launch
//! them: data-parallel invariance over 1, 2 and 3 ranks, kill-and-resume (SIGKILL, then
//! SIGTERM), non-finite updates, bad input, the checkpoints as Python's `safetensors` reads
//! them, and the rollout file: rank invariance, resume, xarray, netCDF-4/CF (tests/python).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::*;
use thermalizer::store::h5::{Access, File};
use thermalizer::train::weights_file::Checkpoint;

fn config() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/tiny-train.yaml")
}

/// `thermalizer <verb> [model] --config tiny-train --set run.dir=DIR --set ...` on `np` ranks.
fn stage(np: usize, verb: &[&str], dir: &Path, sets: &[&str]) -> Output {
    run(np, &args(verb, dir, sets).iter().map(String::as_str).collect::<Vec<_>>())
}

fn args(verb: &[&str], dir: &Path, sets: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
    a.extend(["--config".into(), config().into(), "--set".into(), format!("run.dir={}", dir.display())]);
    for s in sets {
        a.extend(["--set".into(), s.to_string()]);
    }
    a
}

/// A run directory with the tiny trajectories generated.
fn with_data(name: &str) -> PathBuf {
    let dir = scratch(name);
    assert_ok(&stage(0, &["generate"], &dir, &[]));
    dir
}

/// Copies the trajectories of `from` into a fresh directory.
fn copy_data(from: &Path, name: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::copy(from.join("trajectories.h5"), dir.join("trajectories.h5")).unwrap();
    dir
}

/// Largest relative difference between two checkpoints over every tensor of `a`.
fn max_rel_diff(a: &Path, b: &Path) -> f64 {
    let (ca, cb) = (Checkpoint::load(a).unwrap(), Checkpoint::load(b).unwrap());
    assert_eq!(ca.tensors.len(), cb.tensors.len());
    ca.tensors
        .iter()
        .map(|(k, x)| {
            let y = &cb.tensors[k];
            let scale = x.abs().max().double_value(&[]).max(1e-30);
            (x - y).abs().max().double_value(&[]) / scale
        })
        .fold(0.0, f64::max)
}

/// The `loss` column of a history.csv.
fn losses(dir: &Path, model: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join(model).join("history.csv")).unwrap();
    text.lines().skip(1).map(|l| l.split(',').nth(4).unwrap().parse().unwrap()).collect()
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {} vs {} rows", a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * x.abs().max(1e-30), "{what}: row {i}: {x} vs {y}");
    }
}

#[test]
fn data_parallel_training_does_not_depend_on_the_rank_count() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = with_data("dp1");
    assert_ok(&stage(0, &["train", "emulator"], &base, &[]));
    assert_ok(&stage(0, &["train", "thermalizer"], &base, &[]));
    let reference = losses(&base, "emulator");
    assert_eq!(reference.len(), 8, "2 epochs of 4 batches of 8 windows");
    // Batch 8 over 2 ranks (4 + 4) and over 3 ranks (3 + 3 + 2).
    for np in [2usize, 3] {
        let dir = copy_data(&base, &format!("dp{np}"));
        let out = stage(np, &["train", "emulator"], &dir, &[]);
        assert_ok(&out);
        let d = max_rel_diff(&base.join("emulator/latest.safetensors"), &dir.join("emulator/latest.safetensors"));
        // Float summation order differs; Adam's m/√v amplifies round-off of tiny gradients.
        assert!(d < 1e-3, "{np} ranks: weights/moments differ from 1 rank by {d:e} (relative)");
        assert_close(&reference, &losses(&dir, "emulator"), 1e-5, &format!("emulator loss on {np} ranks"));
        if np == 2 {
            assert_ok(&stage(np, &["train", "thermalizer"], &dir, &[]));
            let d =
                max_rel_diff(&base.join("thermalizer/latest.safetensors"), &dir.join("thermalizer/latest.safetensors"));
            assert!(d < 1e-3, "thermalizer on 2 ranks differs by {d:e}");
        }
    }
    // Training again with the same config finds the finished checkpoint and does nothing.
    let out = stage(0, &["train", "emulator"], &base, &[]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already trained"));
}

#[test]
fn killed_and_stopped_training_resumes_to_the_uninterrupted_result() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let longer = ["emulator.training.epochs=40"];
    let base = with_data("resume-ref");
    assert_ok(&stage(0, &["train", "emulator"], &base, &longer));
    let dir = copy_data(&base, "resume");
    let argv = args(&["train", "emulator"], &dir, &longer);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let latest = dir.join("emulator/latest.safetensors");
    // SIGKILL after the first checkpoint: nothing is lost but the updates since.
    let mut child = command(0, &argv).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for(&latest, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = Checkpoint::load(&latest).unwrap().meta["update"].parse::<u64>().unwrap();
    // SIGTERM: a checkpoint at the next update boundary, exit status 75, not finished.
    let child = command(0, &argv).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = std::time::Instant::now();
    let rows = || std::fs::read_to_string(dir.join("emulator/history.csv")).map_or(0, |t| t.lines().count());
    while rows() < killed_at as usize + 4 {
        assert!(t0.elapsed().as_secs() < 60, "the resumed run makes no progress");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "a stopped run exits 75 (resumable):\n{err}");
    assert!(err.contains(&format!("resuming at update {killed_at}")), "{err}");
    assert!(err.contains("stopped on request"), "SIGTERM should stop the run early:\n{err}");
    let ck = Checkpoint::load(&latest).unwrap();
    assert_eq!(ck.meta["finished"], "false");
    assert!(ck.meta["update"].parse::<u64>().unwrap() < 160);
    // Run to the end and compare with the uninterrupted run.
    assert_ok(&run(0, &argv));
    assert_close(&losses(&base, "emulator"), &losses(&dir, "emulator"), 1e-6, "loss curve after resume");
    // The wall clock of history.csv runs on across the sessions of the resumed run.
    let text = std::fs::read_to_string(dir.join("emulator/history.csv")).unwrap();
    let wall: Vec<f64> = text.lines().skip(1).map(|l| l.split(',').nth(7).unwrap().parse().unwrap()).collect();
    assert!(wall.windows(2).all(|w| w[0] <= w[1]) && wall[0] > 0.0, "wall_seconds {wall:?}");
    let d = max_rel_diff(&base.join("emulator/latest.safetensors"), &latest);
    assert!(d < 1e-5, "resumed weights differ by {d:e}");
}

#[test]
fn non_finite_updates_are_skipped_then_stop_the_run_with_a_clear_error() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = with_data("nan");
    let out = stage(
        0,
        &["train", "emulator"],
        &dir,
        &["emulator.optimizer.lr=1e30", "emulator.optimizer.grad_clip=null", "emulator.training.max_skipped=2"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("update skipped") && err.contains("consecutive non-finite updates"), "{err}");
    // The last good checkpoint is still there and loads.
    Checkpoint::load(&dir.join("emulator/latest.safetensors")).unwrap();
}

fn refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "expected exit 2, stderr:\n{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    for n in needles {
        assert!(err.contains(n), "error should mention {n:?}:\n{err}");
    }
}

#[test]
fn bad_input_is_refused_before_training() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let empty = scratch("bad-empty");
    refused(
        &stage(0, &["train", "emulator"], &empty, &[]),
        &["trajectories.h5", "does not exist", "thermalizer generate"],
    );
    refused(&stage(2, &["train", "thermalizer"], &empty, &[]), &["does not exist"]);
    std::fs::write(empty.join("trajectories.h5"), b"not hdf5").unwrap();
    refused(&stage(0, &["train", "emulator"], &empty, &[]), &["trajectories.h5", "not readable as HDF5"]);
    refused(
        &stage(0, &["train", "emulator"], &empty, &["emulator.model.dim_mults=[2,2,2,2,2]"]),
        &["emulator.model.dim_mults", "16²", "fewer levels"],
    );
    let dir = with_data("bad");
    refused(
        &stage(0, &["train", "emulator"], &dir, &["emulator.training.batch_size=100"]),
        &["batch_size = 100", "only"],
    );
    // NCCL asked for where it cannot work (a CPU build, or --device cpu), on every rank.
    refused(&stage(2, &["train", "emulator", "--allreduce", "nccl"], &dir, &[]), &["--allreduce nccl"]);
    assert_ok(&stage(0, &["train", "thermalizer"], &dir, &[]));
    // A foreign checkpoint, a corrupt one, and a changed config.
    std::fs::create_dir_all(dir.join("emulator")).unwrap();
    let latest = dir.join("emulator/latest.safetensors");
    std::fs::copy(dir.join("thermalizer/latest.safetensors"), &latest).unwrap();
    refused(&stage(0, &["train", "emulator"], &dir, &[]), &["latest.safetensors", "thermalizer model"]);
    std::fs::write(&latest, b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage").unwrap();
    refused(&stage(0, &["train", "emulator"], &dir, &[]), &["latest.safetensors", "not a safetensors file"]);
    std::fs::remove_file(&latest).unwrap();
    assert_ok(&stage(0, &["train", "emulator"], &dir, &[]));
    let changed = ["emulator.optimizer.lr=2e-3"];
    refused(&stage(0, &["train", "emulator"], &dir, &changed), &["different config", "--allow-config-change"]);
    let mut argv = args(&["train", "emulator", "--allow-config-change"], &dir, &changed);
    argv.push("--set".into());
    argv.push("emulator.training.epochs=3".into());
    assert_ok(&run(0, &argv.iter().map(String::as_str).collect::<Vec<_>>()));
    assert_eq!(losses(&dir, "emulator").len(), 12, "continued for one more epoch");
}

#[test]
fn generate_reads_no_training_key_and_training_checks_its_windows_against_the_file() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("two-samples");
    // tiny-train's emulator.max_rollout = 2 needs 3 stored states: generate does not read it.
    assert_ok(&stage(2, &["generate"], &dir, &["generate.samples=2"]));
    let file = dir.join("trajectories.h5");
    let data = File::open(&file, Access::Serial, false).unwrap();
    assert_eq!(data.dataset("vorticity").unwrap().shape().unwrap()[1], 2);
    let file = file.display().to_string();
    let sets = ["generate.samples=2", "emulator.training.batch_size=2", "thermalizer.training.batch_size=2"];
    for (model, set, key) in [
        ("emulator", "emulator.max_rollout=2", "emulator.max_rollout = 2"),
        ("thermalizer", "thermalizer.skip_samples=2", "thermalizer.skip_samples = 2"),
    ] {
        let out = stage(2, &["train", model], &dir, &[&sets[..], &[set]].concat());
        refused(&out, &[key, &format!("{file} has 2 per member"), "below 2"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "one line, by one rank:\n{err}");
        assert!(!dir.join(model).join("latest.safetensors").exists(), "{model}: trained despite the refusal");
    }
    // One below the stored states is a window the file holds.
    assert_ok(&stage(0, &["train", "emulator"], &dir, &[&sets[..], &["emulator.max_rollout=1"]].concat()));
}

#[test]
fn checkpoints_read_in_python_with_safetensors() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = with_data("python");
    assert_ok(&stage(0, &["train", "thermalizer"], &dir, &[]));
    let script = r#"
import sys, numpy as np
from safetensors import safe_open
with safe_open(sys.argv[1], "np") as f:
    meta = f.metadata()
    names = set(f.keys())
    assert meta["format"] == "thermalizer-checkpoint-1" and meta["model"] == "thermalizer", meta
    assert meta["finished"] == "true" and int(meta["update"]) == 5, meta
    assert "levels: 20" in meta["config"]
    for n in ["image_proj.weight", "regressor_block.linear2.bias", "ema/final.weight",
              "optimizer/exp_avg", "optimizer/exp_avg_sq", "normalisation/scale"]:
        assert n in names, n
    w = f.get_tensor("image_proj.weight")
    assert w.shape == (4, 1, 3, 3) and w.dtype == np.float32
    params = sum(f.get_tensor(n).size for n in names if "/" not in n)
    assert f.get_tensor("optimizer/exp_avg").shape == (params,)
    scale = f.get_tensor("normalisation/scale")
    assert scale.shape == (1,) and scale[0] > 0
print("ok")
"#;
    python(&["-c", script, dir.join("thermalizer/latest.safetensors").to_str().unwrap()]);
}

/// Runs the test venv's python (THERMALIZER_PYTHON, set by scripts/test.sh) with `args`, fails
/// with its output unless it exits 0, and returns its stdout.
fn python(args: &[&str]) -> String {
    let python = std::env::var("THERMALIZER_PYTHON").expect("THERMALIZER_PYTHON (set by scripts/test.sh)");
    let out = std::process::Command::new(python).args(args).output().unwrap();
    assert_ok(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rollout datasets that must not depend on the rank count or on a resume.
fn rollout_series(dir: &Path) -> Vec<(String, Vec<f64>)> {
    let f = File::open(&dir.join("rollout.h5"), Access::Serial, false).unwrap();
    let mut out: Vec<(String, Vec<f64>)> = [
        "mse",
        "mean_square",
        "noise_level",
        "denoising_passes",
        "spectrum",
        "histogram",
        "snapshot",
        "truth_spectrum",
        "spectrum_mean",
        "histogram_mean",
        "truth_spectrum_mean",
        "truth_histogram_mean",
        "spectral_horizon",
    ]
    .iter()
    .map(|n| (n.to_string(), f.dataset(n).unwrap().read::<f64>(None).unwrap()))
    .collect();
    let d = f.dataset("diverged_at").unwrap().read::<i64>(None).unwrap();
    out.push(("diverged_at".into(), d.iter().map(|&v| v as f64).collect()));
    out
}

fn assert_same_series(a: &Path, b: &Path, rel: f64) {
    for ((name, x), (_, y)) in rollout_series(a).iter().zip(rollout_series(b)) {
        assert_eq!(x.len(), y.len());
        let scale = x.iter().filter(|v| v.is_finite()).fold(1e-300f64, |m, v| m.max(v.abs()));
        for (i, (p, q)) in x.iter().zip(&y).enumerate() {
            let same = (p.is_nan() && q.is_nan()) || (p - q).abs() <= rel * scale;
            assert!(same, "{name}[{i}]: {p} vs {q} ({} vs {})", a.display(), b.display());
        }
    }
}

/// A copy of `from` with its trajectories and trained models.
fn copy_trained(from: &Path, name: &str) -> PathBuf {
    let dir = copy_data(from, name);
    for model in ["emulator", "thermalizer"] {
        std::fs::create_dir_all(dir.join(model)).unwrap();
        std::fs::copy(from.join(model).join("latest.safetensors"), dir.join(model).join("latest.safetensors")).unwrap();
    }
    dir
}

#[test]
fn rollout_is_rank_invariant_resumes_reads_in_xarray_and_reports() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The whole pipeline on 2 ranks (rollout members 2 + 2, in batches of 3).
    let base = scratch("ro");
    let out = stage(2, &["pipeline"], &base, &[]);
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("median stable horizon over 4 members: emulator"), "headline:\n{stdout}");
    for file in ["trajectories.h5", "emulator/latest.safetensors", "thermalizer/latest.safetensors", "rollout.h5"] {
        assert!(base.join(file).exists(), "pipeline did not write {file}");
    }
    // The thermalizer's validation rows carry its classifier diagnostics (20 levels here).
    let csv = std::fs::read_to_string(base.join("thermalizer/validation.csv")).unwrap();
    assert_eq!(
        csv.lines().next(),
        Some("update,epoch,valid_loss,clean_level,low_within_2,wall_seconds,samples_per_second")
    );
    let last: Vec<f64> = csv.lines().last().unwrap().split(',').map(|v| v.parse().unwrap()).collect();
    assert!((0.0..20.0).contains(&last[3]) && (0.0..=1.0).contains(&last[4]), "diagnostics {last:?}");
    assert!(last[5] > 0.0 && last[6] > 0.0, "wall seconds and validation samples/s: {last:?}");
    // Every stage of the finished pipeline reads as done.
    let status = run(0, &["status", base.to_str().unwrap()]);
    assert_ok(&status);
    let table = String::from_utf8_lossy(&status.stdout);
    for stage in ["generate", "train emulator", "train thermalizer", "rollout", "report"] {
        let line = table.lines().find(|l| l.starts_with(stage)).unwrap_or_else(|| panic!("{stage}:\n{table}"));
        assert_eq!(line.split_whitespace().nth(stage.split(' ').count()), Some("done"), "{table}");
    }
    // Against another config the data and the models made from it are stale.
    let status = stage(0, &["status"], &base, &["run.seed=99"]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(table.lines().any(|l| l.starts_with("generate") && l.contains("stale")), "{table}");
    // Run again: every stage is found finished for this config and skipped.
    let again = stage(2, &["pipeline"], &base, &[]);
    assert_ok(&again);
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(err.matches("already complete").count(), 2, "generate and rollout skipped:\n{err}");
    assert_eq!(err.matches("already trained").count(), 2, "both trainings skipped:\n{err}");
    // 1 rank: the same statistics to float round-off.
    let one = copy_trained(&base, "ro1");
    let out = stage(0, &["rollout"], &one, &[]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).trim().ends_with("rollout.h5"));
    assert_same_series(&base, &one, 1e-4);
    // Exported float32 weights (default <run.dir>/models) roll out bit for bit the same; float16
    // files are half the size; exported EMA weights are refused to a rollout asking for raw ones.
    assert_ok(&stage(0, &["export"], &base, &[]));
    let exported = copy_data(&base, "ro-exported");
    let models = format!("rollout.models={}", base.join("models").display());
    assert_ok(&stage(2, &["rollout"], &exported, &[&models]));
    assert_same_series(&base, &exported, 0.0);
    let half = scratch("ro-half");
    assert_ok(&stage(0, &["export", "--half", "--out", half.to_str().unwrap()], &base, &[]));
    for model in ["emulator", "thermalizer"] {
        let size = |d: &Path| std::fs::metadata(d.join(format!("{model}.safetensors"))).unwrap().len() as f64;
        let ratio = size(&half) / size(&base.join("models"));
        assert!((0.45..0.55).contains(&ratio), "{model}: float16 file is {ratio:.3} of float32");
    }
    // An emulator without a thermalizer is exported alone, but never beside an earlier export's
    // thermalizer (which a rollout would pair with it); that file is kept.
    let emulator_only = copy_trained(&base, "ro-emulator-only");
    std::fs::remove_dir_all(emulator_only.join("thermalizer")).unwrap();
    let half_arg = half.to_str().unwrap();
    refused(
        &stage(0, &["export", "--out", half_arg], &emulator_only, &[]),
        &["thermalizer.safetensors", "earlier export"],
    );
    assert!(half.join("thermalizer.safetensors").exists());
    assert_ok(&stage(0, &["export"], &emulator_only, &[]));
    assert!(emulator_only.join("models/emulator.safetensors").exists());
    assert!(!emulator_only.join("models/thermalizer.safetensors").exists());
    let half_models = format!("rollout.models={}", half.display());
    refused(
        &stage(0, &["rollout"], &scratch("ro-raw"), &[&half_models, "rollout.ema=false"]),
        &["thermalizer.safetensors: exported with rollout.ema = true", "rollout.ema = false"],
    );
    refused(
        &stage(0, &["rollout"], &scratch("ro-none"), &["rollout.models=/nonexistent"]),
        &["rollout.models: no emulator"],
    );
    // Killed after a checkpoint, then resumed: the same statistics.
    let resumed = copy_trained(&base, "ro-resume");
    let longer = ["rollout.steps=150", "rollout.snapshot_every=50", "rollout.spectrum_every=25"];
    let reference = copy_trained(&base, "ro-long");
    assert_ok(&stage(0, &["rollout"], &reference, &longer));
    let argv = args(&["rollout"], &resumed, &longer);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut child = command(0, &argv).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for(&resumed.join("rollout.checkpoint.h5"), &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(resumed.join("rollout.h5.partial").exists() && !resumed.join("rollout.h5").exists());
    let step = thermalizer::store::member_states::stored_step(&resumed.join("rollout.checkpoint.h5")).unwrap();
    let status = run(0, &["status", resumed.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table.lines().any(|l| l.starts_with("rollout")
            && l.contains("partial")
            && l.contains(&format!("emulator step {step},"))),
        "{table}"
    );
    // The interrupted rollout: `report` points to `--partial`, which reports it up to the checkpoint.
    refused(&stage(0, &["report"], &resumed, &longer), &["rollout.h5 does not exist", "report --partial"]);
    assert_ok(&stage(0, &["report", "--partial"], &resumed, &longer));
    let interim = std::fs::read_to_string(resumed.join("report-interim/summary.md")).unwrap();
    assert!(interim.contains(&format!("up to its last checkpoint (step {step})")), "{interim}");
    assert!(png_size(&resumed.join("report-interim/survival.png")).0 >= 500);
    let out = run(0, &argv);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming from"));
    assert_same_series(&reference, &resumed, 1e-12);
    // The thermalization totals cover the whole run, not only the segment after the resume.
    let totals = |d: &Path| {
        let f = File::open(&d.join("rollout.h5"), Access::Serial, false).unwrap();
        ["emulator", "thermalized"].map(|m| {
            ["thermalized_fraction", "passes_per_step"].map(|k| f.attrs().get::<f64>(&format!("{m}_{k}")).unwrap()[0])
        })
    };
    assert!(totals(&reference)[1][1] > 0.0, "the test should thermalize");
    assert_eq!(totals(&reference), totals(&resumed));
    assert!(!resumed.join("rollout.checkpoint.h5").exists(), "checkpoint removed when complete");
    // xarray opens it with named dimensions and coordinates.
    let script = r#"
import sys, numpy as np, xarray as xr
ds = xr.open_dataset(sys.argv[1], engine="h5netcdf")
assert ds.mse.dims == ("mode", "member", "step"), ds.mse.dims
assert ds.spectrum.dims == ("mode", "member", "spectrum_step", "k")
assert ds.snapshot.dims == ("mode", "member", "snapshot_step", "layer", "y", "x")
assert list(ds.layer.values) == [1]                     # counted from 1, as in trajectories.h5
assert list(ds["mode"].values) == ["emulator", "thermalized"]
assert list(ds.step.values[:3]) == [0, 1, 2] and ds.sizes["member"] == 4
assert float(ds.mse.isel(step=0).max()) == 0.0          # the initial state is the truth
assert np.isnan(ds.mse.isel(member=3, step=-1)).all()   # beyond the stored truth
assert (ds.denoising_passes.sel(mode="emulator") == 0).all()   # the emulator alone is never denoised
assert 0 <= ds.attrs["thermalized_thermalized_fraction"] <= 1
# Time means over the window (steps >= 6: the records at 8 and 12), per member.
assert ds.spectrum_mean.dims == ("mode", "member", "k") and ds.histogram_mean.dims == ("mode", "member", "bin")
assert ds.spectrum_mean.attrs["window_start"] == 6
truth = ds.truth_spectrum                                  # the truth: all its records
expect = truth.where(np.isfinite(truth).all("k")).mean("spectrum_step")
np.testing.assert_allclose(ds.truth_spectrum_mean, expect, rtol=1e-12)
alive = (ds.diverged_at < 0)
mean = ds.spectrum.sel(spectrum_step=[8, 12]).mean("spectrum_step")
np.testing.assert_allclose(ds.spectrum_mean.where(alive), mean.where(alive), rtol=1e-12)
assert np.isnan(ds.spectrum_mean.where(~alive)).all()
# The truth's time-mean PDF integrates to 1 (its normalised values lie inside the bins).
width = float(ds.bin[1] - ds.bin[0])
pdf = ds.truth_histogram_mean.dropna("member", how="any")
assert pdf.sizes["member"] > 0
np.testing.assert_allclose((pdf * width).sum("bin"), 1.0, rtol=1e-6)
# Spectral horizon: -1 or a recorded step, never after the member was stopped.
sh = ds.spectral_horizon
assert sh.dims == ("mode", "member") and ((sh == -1) | (sh % 4 == 0)).all()
stopped = ds.diverged_at >= 0
assert (~stopped | ((sh >= 0) & (sh <= (ds.diverged_at + 3) // 4 * 4))).all()
assert sh.attrs["spectral_threshold"] > 0
print("ok")
"#;
    python(&["-c", script, base.join("rollout.h5").to_str().unwrap()]);
    // ... and as netCDF-4/CF: ncdump, xarray's netcdf4 and h5netcdf engines, CF attributes.
    pytest("THERMALIZER_PYTHON", "tests/python/check_rollout.py", &[("THERMALIZER_ROLLOUT", &base.join("rollout.h5"))]);
    check_report(&base);
}

/// Width and height of a PNG file (from its IHDR chunk).
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

/// `thermalizer report` on a finished rollout: every figure, a summary whose horizons are the
/// file's, and the Python example that redraws one figure.
fn check_report(dir: &Path) {
    refused(&stage(0, &["report"], &scratch("no-rollout"), &[]), &["rollout.h5", "does not exist"]);
    refused(&stage(0, &["report", "--partial"], &scratch("no-rollout"), &[]), &["no rollout in progress"]);
    let out = stage(2, &["report"], dir, &[]);
    assert_ok(&out);
    let report = dir.join("report");
    assert!(String::from_utf8_lossy(&out.stdout).trim().ends_with("summary.md"));
    // The run directory alone suffices; RUST_LOG=warn silences the info lines.
    let out = command(0, &["report", dir.to_str().unwrap()]).env("RUST_LOG", "warn").output().unwrap();
    assert_ok(&out);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("INFO"), "{}", String::from_utf8_lossy(&out.stderr));
    let names = [
        "mean_square",
        "mse",
        "spectra",
        "pdf",
        "spectra_times",
        "survival",
        "ticker_tape",
        "snapshots",
        "training_emulator",
        "training_thermalizer",
    ];
    for name in names {
        let (w, h) = png_size(&report.join(format!("{name}.png")));
        assert!(w >= 500 && h >= 400, "{name}.png is {w}×{h}");
    }
    // Horizons in the summary: a member that never diverged counts the full 12 steps.
    let f = File::open(&dir.join("rollout.h5"), Access::Serial, false).unwrap();
    let diverged = f.dataset("diverged_at").unwrap().read::<i64>(None).unwrap();
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(summary.contains("Classifier calibration: on the true initial states it predicts"), "{summary}");
    assert!(
        ["extended the median", "did not measurably change", "shortened the median", "Neither mode diverged"]
            .iter()
            .any(|v| summary.contains(v)),
        "a verdict on thermalization:\n{summary}"
    );
    let horizon =
        |i: usize| -> Vec<i64> { diverged[4 * i..4 * i + 4].iter().map(|&d| if d >= 0 { d } else { 12 }).collect() };
    let (e, t) = (horizon(0), horizon(1));
    let count = |f: &dyn Fn(i64, i64) -> bool| e.iter().zip(&t).filter(|(a, b)| f(**a, **b)).count();
    let paired = format!(
        "thermalized outlived the emulator alone in {} of 4 members, the reverse in {}, ties {}",
        count(&|a, b| b > a),
        count(&|a, b| a > b),
        count(&|a, b| a == b)
    );
    assert!(summary.contains(&paired), "{paired}:\n{summary}");
    let mut pair_text = String::new();
    for (i, mode) in ["emulator", "thermalized"].iter().enumerate() {
        let mut h = horizon(i);
        h.sort();
        let row = summary.lines().find(|l| l.starts_with(&format!("| {mode} |"))).expect("a row per mode");
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[3], h[0].to_string(), "min horizon of {mode}: {row}");
        assert_eq!(cells[4], h[3].to_string(), "max horizon of {mode}: {row}");
        // Time-mean spectrum error, recomputed from the file: RMS over 1 ≤ k < N/2 of the log
        // ratio of the ensemble means (finite members) of spectrum_mean and truth_spectrum_mean.
        let error: f64 = cells[6].parse().unwrap_or_else(|_| panic!("spectrum error of {mode}: {row}"));
        let n = *f.dataset("snapshot").unwrap().shape().unwrap().last().unwrap();
        let ens = |name: &str, prefix: usize| -> Vec<f64> {
            let d = f.dataset(name).unwrap();
            let kb = *d.shape().unwrap().last().unwrap();
            let v = d.read::<f64>(None).unwrap();
            let rows: Vec<&[f64]> = v[prefix * 4 * kb..(prefix + 1) * 4 * kb]
                .chunks(kb)
                .filter(|r| r.iter().all(|x| x.is_finite()))
                .collect();
            (0..kb).map(|k| rows.iter().map(|r| r[k]).sum::<f64>() / rows.len() as f64).collect()
        };
        let (e, t) = (ens("spectrum_mean", i), ens("truth_spectrum_mean", 0));
        let expect = ((1..n / 2).map(|k| (e[k] / t[k]).ln().powi(2)).sum::<f64>() / (n / 2 - 1) as f64).sqrt();
        assert!(
            error.is_nan() && expect.is_nan() || (error - expect).abs() <= 1e-3 * expect.max(1.0),
            "{row}: {expect}"
        );
        // Cost relative to the emulator alone; then the short-horizon skill table has a row per mode.
        if *mode == "emulator" {
            assert_eq!(cells[11], "1.00", "{row}");
        }
        let skill = summary
            .lines()
            .skip_while(|l| !l.starts_with("Short-horizon skill"))
            .find(|l| l.starts_with(&format!("| {mode} |")));
        let mse: f64 = skill.expect("a skill row per mode").split('|').nth(2).unwrap().trim().parse().unwrap();
        assert!((0.0..1.0).contains(&mse), "one-step MSE of {mode}: {mse}");
        // summary.json holds the same numbers.
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report.join("summary.json")).unwrap()).unwrap();
        let m = &json["modes"][i];
        assert_eq!(m["mode"], *mode);
        assert_eq!(m["min_stable_horizon"].as_f64(), Some(h[0] as f64), "{json}");
        assert_eq!(m["max_stable_horizon"].as_f64(), Some(h[3] as f64), "{json}");
        let skill = json["short_horizon_mse"].as_array().unwrap().iter().find(|r| r["mode"] == *mode).unwrap();
        assert!((skill["median_mse"].as_f64().unwrap() - mse).abs() <= 0.01 * mse.max(1e-12), "{json}");
        if i == 1 {
            let pair = &json["paired"][0];
            pair_text = format!("{}:{} (ties {})", pair["a_longer"], pair["b_longer"], pair["ties"]);
            assert_eq!((pair["a"].as_str(), pair["b"].as_str()), (Some("thermalized"), Some("emulator")));
            assert_eq!(pair["a_longer"].as_u64(), Some(count(&|a, b| b > a) as u64), "{json}");
        }
    }
    // The sweep scripts' table, from summary.json.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/collect-summaries.py");
    let table = python(&[script, dir.to_str().unwrap(), "--csv"]);
    let thermalized = table.lines().find(|l| l.contains(",thermalized,")).unwrap_or_else(|| panic!("{table}"));
    assert!(thermalized.contains(&pair_text), "{pair_text}: {table}");
    let png = report.join("example.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/plot_rollout_example.py");
    python(&[script, dir.join("rollout.h5").to_str().unwrap(), png.to_str().unwrap()]);
    assert!(png_size(&png).0 > 0);
}

#[test]
fn rollout_bad_input_is_refused() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = with_data("ro-bad");
    refused(&stage(0, &["rollout"], &dir, &[]), &["no trained emulator", "thermalizer train emulator"]);
    refused(&stage(0, &["rollout"], &dir, &["rollout.s_stop=5"]), &["rollout.s_stop = 5", "s_init"]);
    refused(&stage(0, &["rollout"], &dir, &["rollout.average_from=13"]), &["rollout.average_from = 13", "step 12"]);
    assert_ok(&stage(0, &["train", "emulator"], &dir, &[]));
    refused(&stage(2, &["rollout"], &dir, &[]), &["no trained thermalizer", "rollout.modes"]);
    // The initial states against the file the rollout reads (10 stored states per member).
    refused(
        &stage(0, &["rollout"], &dir, &["rollout.modes=[emulator]", "rollout.start=10"]),
        &["rollout.start/start_stride: initial state 10", "beyond the 10 stored states of", "trajectories.h5"],
    );
    // The emulator alone needs no thermalizer.
    assert_ok(&stage(0, &["rollout"], &dir, &["rollout.modes=[emulator]", "rollout.steps=3"]));
}

/// `calibration.json` of a run directory.
fn calibration(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("thermalizer/calibration.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn counts(v: &serde_json::Value, key: &str) -> Vec<u64> {
    v[key].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect()
}

#[test]
fn calibration_puts_s_init_at_the_percentile_and_the_rollout_uses_it() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = with_data("cal");
    refused(&stage(0, &["calibrate"], &dir, &[]), &["no trained thermalizer", "thermalizer train thermalizer"]);
    assert_ok(&stage(0, &["train", "emulator"], &dir, &[]));
    assert_ok(&stage(0, &["train", "thermalizer"], &dir, &[]));
    let pct = "rollout.calibration_percentile=80";
    let out = stage(2, &["calibrate"], &dir, &[pct]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).trim().ends_with("thermalizer/calibration.json"));
    let two = calibration(&dir);
    // Every stored state of the one validation member and of the one test member, rated once.
    let (valid, test) = (counts(&two, "counts"), counts(&two, "test_counts"));
    assert_eq!((two["states"].as_u64(), two["test_states"].as_u64()), (Some(10), Some(10)));
    assert_eq!((valid.len(), valid.iter().sum::<u64>(), test.iter().sum::<u64>()), (20, 10, 10));
    // s_init is the smallest level with at least 80 % of the states at or below it.
    let s_init = two["s_init"].as_u64().unwrap() as usize;
    let below = |level: usize| valid[..=level].iter().sum::<u64>();
    assert!(below(s_init) >= 8 && (s_init == 0 || below(s_init - 1) < 8), "s_init {s_init} for counts {valid:?}");
    let above = test[s_init + 1..].iter().sum::<u64>() as f64 / 10.0;
    assert_eq!(two["test_above"].as_f64(), Some(above));
    // Noised validation states: levels 0..=19 (of 20), every 4th of the 10 stored states.
    let noised = two["noised"].as_array().unwrap();
    assert_eq!(noised.len(), 20);
    for (t, n) in noised.iter().enumerate() {
        assert_eq!((n["level"].as_u64(), n["states"].as_u64()), (Some(t as u64), Some(3)));
        assert!((0.0..=1.0).contains(&n["within_2"].as_f64().unwrap()));
    }
    // One rank: the same counts, of clean and of noised states.
    assert_ok(&stage(0, &["calibrate"], &dir, &[pct]));
    assert_eq!(counts(&calibration(&dir), "counts"), valid);
    assert_eq!(calibration(&dir)["noised"], two["noised"]);
    // `s_init: auto`: the rollout uses the calibrated level and records where it came from.
    let auto = ["rollout.s_init=auto", pct, "rollout.s_stop=0", "rollout.noise_limit=19"];
    let out = stage(2, &["rollout"], &dir, &auto);
    if s_init == 0 {
        refused(&out, &["rollout.s_stop = 0", "must be below rollout.s_init = 0", "calibration.json"]);
        return;
    }
    assert_ok(&out);
    let f = File::open(&dir.join("rollout.h5"), Access::Serial, false).unwrap();
    assert_eq!(f.attrs().get::<f64>("s_init").unwrap(), vec![s_init as f64]);
    let source = f.attrs().get_str("s_init_source").unwrap();
    assert!(
        source.starts_with("auto") && source.contains("80th percentile of the classifier's levels for 10"),
        "{source}"
    );
    assert_ok(&stage(0, &["report"], &dir, &auto));
    let summary = std::fs::read_to_string(dir.join("report/summary.md")).unwrap();
    assert!(summary.contains(&format!("against s_init = {s_init} (auto: the 80th percentile")), "{summary}");
    assert!(summary.contains("validation states noised to level 0, 2, 5, 10, 15 are rated"), "{summary}");
    // Bad values are refused with the key and the value.
    refused(&stage(0, &["rollout"], &dir, &["rollout.s_init=often"]), &["rollout.s_init", "often", "auto"]);
    refused(
        &stage(0, &["calibrate"], &dir, &["rollout.calibration_percentile=0"]),
        &["rollout.calibration_percentile = 0"],
    );
}

#[test]
fn filtered_mode_damps_the_small_scales_and_is_compared_with_the_others() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = with_data("filtered");
    assert_ok(&stage(0, &["train", "emulator"], &dir, &[]));
    assert_ok(&stage(0, &["train", "thermalizer"], &dir, &[]));
    let modes = ["rollout.modes=[emulator, thermalized, filtered]", "rollout.snapshot_every=0"];
    assert_ok(&stage(2, &["pipeline"], &dir, &modes));
    let f = File::open(&dir.join("rollout.h5"), Access::Serial, false).unwrap();
    let d = f.dataset("spectrum").unwrap();
    let shape = d.shape().unwrap(); // (mode, member, spectrum_step, k)
    let spectra = d.read::<f64>(None).unwrap();
    let (members, records, bins) = (shape[1], shape[2], shape[3]);
    // k ≥ 6 of 16² (k* > 0.65π from |k| ≈ 5.2): the filter's band; at the last spectrum record.
    let small = |mode: usize, m: usize| -> f64 {
        let at = ((mode * members + m) * records + records - 1) * bins;
        spectra[at + 6..at + bins].iter().sum()
    };
    for m in 0..members {
        assert!(small(2, m) < 0.5 * small(0, m), "member {m}: filtered {} vs alone {}", small(2, m), small(0, m));
    }
    let summary = std::fs::read_to_string(dir.join("report/summary.md")).unwrap();
    for pair in ["filtered outlived the emulator alone", "thermalized outlived filtered"] {
        assert!(summary.contains(pair), "{pair}:\n{summary}");
    }
    refused(&stage(0, &["rollout"], &dir, &["rollout.filter.cutoff=1.5"]), &["rollout.filter.cutoff = 1.5"]);
}

#[test]
fn a_shipped_thermalizer_is_paired_with_an_emulator_trained_here() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The thermalizer is trained once and exported alone (float16 weights).
    let source = with_data("thermalizer-source");
    assert_ok(&stage(0, &["train", "thermalizer"], &source, &[]));
    let shipped = scratch("thermalizer-shipped");
    let out_arg = shipped.to_str().unwrap();
    assert_ok(&stage(0, &["export", "--thermalizer-only", "--half", "--out", out_arg], &source, &[]));
    assert!(shipped.join("thermalizer.safetensors").exists() && !shipped.join("emulator.safetensors").exists());
    let file = format!("rollout.thermalizer_file={}", shipped.join("thermalizer.safetensors").display());
    // The pipeline trains the emulator only and rolls out with the shipped thermalizer.
    // The source's trajectories copied into another run directory: the pipeline finds them done.
    let dir = copy_data(&source, "thermalizer-file");
    let out = stage(2, &["pipeline"], &dir, &[&file]);
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("train thermalizer: skipped (rollout.thermalizer_file"), "{err}");
    assert!(err.contains("trajectories.h5 is already complete for this config"), "generation skipped:\n{err}");
    assert!(dir.join("emulator/latest.safetensors").exists());
    assert!(!dir.join("thermalizer/latest.safetensors").exists(), "no thermalizer trained here");
    let summary = std::fs::read_to_string(dir.join("report/summary.md")).unwrap();
    let answer = summary.find("## The answer").expect("the answer first");
    for needle in [
        "median stable horizon",
        "Median spectral horizon",
        "thermalized outlived the emulator alone",
        "against s_init",
        "Cost:",
    ] {
        let at = summary.find(needle).unwrap_or_else(|| panic!("{needle}:\n{summary}"));
        assert!(at > answer && at < summary.find("## Every mode").unwrap(), "{needle} in the answer:\n{summary}");
    }
    // Validation members as initial states (a prescreen that leaves the test members alone).
    let split_of = |path: &Path| {
        File::open(path, Access::Serial, false).unwrap().dataset("split").unwrap().read::<i8>(None).unwrap()
    };
    let splits = split_of(&dir.join("trajectories.h5"));
    let pre = copy_data(&dir, "thermalizer-file-prescreen");
    std::fs::create_dir_all(pre.join("emulator")).unwrap();
    std::fs::copy(dir.join("emulator/latest.safetensors"), pre.join("emulator/latest.safetensors")).unwrap();
    assert_ok(&stage(0, &["rollout"], &pre, &[&file, "rollout.start_split=validation"]));
    let f = File::open(&pre.join("rollout.h5"), Access::Serial, false).unwrap();
    let starts = f.dataset("initial_member").unwrap().read::<i64>(None).unwrap();
    assert!(starts.iter().all(|&m| splits[m as usize] == 1), "validation members only: {starts:?} of {splits:?}");
    // Not together with rollout.models; a thermalizer of other data is refused.
    refused(
        &stage(0, &["validate"], &dir, &[&file, "rollout.models=data/kolmogorov-small"]),
        &["rollout.thermalizer_file", "rollout.models"],
    );
    let other = scratch("thermalizer-other-data");
    let reseeded = ["run.seed=12"];
    assert_ok(&stage(0, &["generate"], &other, &reseeded));
    assert_ok(&stage(0, &["train", "emulator"], &other, &reseeded));
    refused(&stage(0, &["rollout"], &other, &[&file, reseeded[0]]), &["different normalisations", "not the same data"]);
}

#[test]
fn the_runaway_guard_keeps_guarded_states_within_the_measure_and_is_recorded() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = with_data("guard");
    assert_ok(&stage(0, &["train", "emulator"], &dir, &[]));
    assert_ok(&stage(0, &["train", "thermalizer"], &dir, &[]));
    let modes = ["rollout.modes=[emulator, guarded, guarded_thermalized]", "rollout.snapshot_every=0"];
    let out = stage(2, &["rollout"], &dir, &modes);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("runaway guard: shell bounds from"));
    let f = File::open(&dir.join("rollout.h5"), Access::Serial, false).unwrap();
    let d = f.dataset("guard_score").unwrap();
    let shape = d.shape().unwrap(); // (mode, member, step)
    let (scores, records) = (d.read::<f64>(None).unwrap(), shape[2]);
    let corrections = f.dataset("guard_corrections").unwrap().read::<f64>(None).unwrap();
    // After the first step a guarded state is within every shell's bound (to the float32
    // round-off of a shell near the bounds' floor, here the domain mean): the guard is the last
    // thing applied in `guarded`, while the emulator alone leaves the measure's range at once.
    for m in 0..shape[1] {
        for r in 1..records {
            let s = scores[(shape[1] + m) * records + r];
            assert!(s.is_nan() || s <= 1.01, "guarded member {m}, record {r}: score {s}");
        }
        assert!(scores[m * records + 1] > 10.0, "the emulator alone, member {m}: {}", scores[m * records + 1]);
    }
    assert!(corrections.iter().all(|&c| c.is_nan() || (c >= 0.0 && c.fract() == 0.0)));
    assert_ok(&stage(0, &["report"], &dir, &modes));
    let summary = std::fs::read_to_string(dir.join("report/summary.md")).unwrap();
    for pair in ["guarded outlived the emulator alone", "guarded and thermalized outlived guarded"] {
        assert!(summary.contains(pair), "{pair}:\n{summary}");
    }
    assert!(dir.join("report/guard_tape_guarded.png").exists());
    refused(&stage(0, &["rollout"], &dir, &["rollout.guard.quantile=0"]), &["rollout.guard.quantile = 0"]);
    refused(
        &stage(0, &["rollout"], &dir, &["rollout.modes=[guarded, guarded]"]),
        &["rollout.modes", "guarded is listed twice"],
    );
}
