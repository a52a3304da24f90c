//! End-to-end tests of `thermalizer generate`, launched the way users launch it: as a plain
//! process (an MPI job of one rank) and under `mpirun` with 2 and 3 ranks.
//!
//! They check rank-count invariance (bitwise), kill-and-resume (SIGKILL, and SIGUSR1 forwarded
//! by mpirun), file initial conditions, bad input (one clear error line, exit 2, no output, no
//! hang) and that h5py/xarray read the file as a user would (tests/python).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

use thermalizer::store::h5::{Access, File, Hyperslab};

fn tiny() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/tiny.yaml")
}

fn tiny_qg() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/tiny-qg.yaml")
}

fn generate(np: usize, dir: &Path, extra: &[&str]) -> Output {
    generate_with(tiny(), np, dir, extra)
}

fn generate_with(config: &str, np: usize, dir: &Path, extra: &[&str]) -> Output {
    let d = format!("run.dir={}", dir.display());
    let mut args = vec!["generate", "--config", config, "--set", &d];
    for e in extra {
        args.extend(["--set", e]);
    }
    run(np, &args)
}

/// The bytes of every dataset that must not depend on how the run was spread or interrupted.
fn contents(path: &Path) -> Vec<(String, Vec<u64>)> {
    let f = File::open(path, Access::Serial, false).unwrap();
    let mut out = Vec::new();
    let name = if f.attrs().get_str("system").unwrap() == "qg" { "q" } else { "vorticity" };
    let v = f.dataset(name).unwrap().read::<f32>(None).unwrap();
    assert!(!v.is_empty());
    out.push((name.to_string(), v.iter().map(|x| x.to_bits() as u64).collect()));
    for name in ["time", "x", "y"] {
        let v = f.dataset(name).unwrap().read::<f64>(None).unwrap();
        out.push((name.to_string(), v.iter().map(|x| x.to_bits()).collect()));
    }
    for name in ["diverged_at", "member", "split"] {
        let v = f.dataset(name).unwrap().read::<i64>(None).unwrap();
        out.push((name.to_string(), v.iter().map(|&x| x as u64).collect()));
    }
    out
}

fn assert_same_file(a: &Path, b: &Path) {
    let (ca, cb) = (contents(a), contents(b));
    for ((name, x), (_, y)) in ca.iter().zip(&cb) {
        assert!(x == y, "dataset {name} differs between {} and {}", a.display(), b.display());
    }
}

#[test]
fn output_is_bitwise_identical_on_1_2_and_3_ranks() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dirs: Vec<PathBuf> = [0usize, 2, 3].iter().map(|np| scratch(&format!("ranks{np}"))).collect();
    for (np, dir) in [0usize, 2, 3].iter().zip(&dirs) {
        let out = generate(*np, dir, &[]);
        assert_ok(&out);
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(printed.trim().ends_with("trajectories.h5"), "prints the output path, got {printed}");
        assert!(!dir.join("trajectories.h5.partial").exists() && !dir.join("trajectories.checkpoint.h5").exists());
    }
    let f = File::open(&dirs[0].join("trajectories.h5"), Access::Serial, false).unwrap();
    let v = f.dataset("vorticity").unwrap();
    assert_eq!(v.shape().unwrap(), vec![5, 6, 16, 16]);
    let data = v.read::<f32>(None).unwrap();
    assert!(data.iter().all(|x| x.is_finite()) && data.iter().any(|&x| x.abs() > 1.0));
    assert_eq!(f.attrs().get::<i64>("mpi_ranks").unwrap(), vec![1]);
    for dir in &dirs[1..] {
        assert_same_file(&dirs[0].join("trajectories.h5"), &dir.join("trajectories.h5"));
    }
    // A second run of the same command finds the file complete and does nothing.
    let again = generate(2, &dirs[1], &[]);
    assert_ok(&again);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already complete"));
    // ... but a different config in the same run.dir is refused, leaving the file as it was.
    let other = generate(2, &dirs[1], &["run.seed=8"]);
    assert_eq!(other.status.code(), Some(2));
    assert_same_file(&dirs[0].join("trajectories.h5"), &dirs[1].join("trajectories.h5"));
    // The Python tests: readers (h5py, xarray) on the 3-rank file, and the jax-cfd reference
    // (which needs THERMALIZER_JAX_PYTHON, set by scripts/test.sh).
    std::env::var("THERMALIZER_JAX_PYTHON").expect("THERMALIZER_JAX_PYTHON (set by scripts/test.sh)");
    pytest("THERMALIZER_PYTHON", "tests/python", &[("THERMALIZER_TRAJECTORIES", &dirs[2].join("trajectories.h5"))]);
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Settings that make a run long enough to be killed after its first checkpoint.
const LONG: [&str; 2] = ["generate.samples=250", "system.grid=48"];

/// Starts `generate` (with `options`, e.g. `--device cpu`) of `config` with `sets` as a plain
/// process, SIGKILLs it once it has checkpointed, checks that only the partial file exists, and
/// reruns the same command on `resume_np` ranks to completion. Returns the run directory.
fn kill_and_resume(options: &[&str], config: &str, sets: &[&str], name: &str, resume_np: usize) -> PathBuf {
    let dir = scratch(name);
    let d = format!("run.dir={}", dir.display());
    let mut args = [&["generate"], options, &["--config", config, "--set", &d]].concat();
    for s in sets {
        args.extend(["--set", s]);
    }
    let mut child = command(0, &args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for(&dir.join("trajectories.checkpoint.h5"), &mut child);
    assert!(child.try_wait().unwrap().is_none(), "run finished before the kill");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(dir.join("trajectories.h5.partial").exists() && !dir.join("trajectories.h5").exists());
    let out = run(resume_np, &args);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming from"));
    dir
}

#[test]
fn killed_run_resumes_to_the_same_file() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let reference = scratch("kill-ref");
    assert_ok(&generate(2, &reference, &LONG));

    // SIGKILL of a plain (one-rank) run: resume from the last periodic checkpoint.
    let killed = kill_and_resume(&[], tiny(), &LONG, "kill9", 0);
    assert_same_file(&reference.join("trajectories.h5"), &killed.join("trajectories.h5"));
    let _ = std::fs::remove_dir_all(killed);

    // SIGUSR1 (Slurm's --signal=USR1@T) forwarded by mpirun to 3 ranks: checkpoint, exit 75, resume.
    let dir = scratch("usr1");
    let d = format!("run.dir={}", dir.display());
    let args = ["generate", "--config", tiny(), "--set", &d, "--set", LONG[0], "--set", LONG[1]];
    let mut child = command(3, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for(&dir.join("trajectories.checkpoint.h5"), &mut child);
    // `timeout` runs the launcher (mpirun, mpiexec.mpich) as its only child: signal the launcher.
    let launcher = Command::new("pgrep").args(["-P", &child.id().to_string()]).output().unwrap();
    let pid = String::from_utf8_lossy(&launcher.stdout).trim().to_string();
    assert!(!pid.is_empty() && !pid.contains('\n'), "launcher pid not found: {pid:?}");
    assert!(Command::new("kill").args(["-USR1", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(75), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.join("trajectories.h5").exists());
    let out = run(2, &args);
    assert_ok(&out);
    assert_same_file(&reference.join("trajectories.h5"), &dir.join("trajectories.h5"));
    for d in [reference, dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn file_initial_condition_is_the_first_stored_state() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("icfile");
    let ic = dir.join("ic.h5");
    // Band-limited field with modes below the stored grid's Nyquist (8): stored exactly.
    let (n, h) = (32usize, 2.0 * std::f64::consts::PI / 32.0);
    let field = |m: usize, x: f64, y: f64| {
        (m as f64 + 1.0) * (3.0 * x + 2.0 * y).cos() - (5.0 * y).sin() + 0.5 * (x - 4.0 * y + m as f64).cos()
    };
    let data: Vec<f64> =
        (0..5).flat_map(|m| (0..n * n).map(move |k| field(m, (k % n) as f64 * h, (k / n) as f64 * h))).collect();
    {
        let f = File::create(&ic, Access::Serial).unwrap();
        f.create_dataset::<f64>("vorticity", &[5, n, n]).unwrap().write(None, &data, false).unwrap();
    }
    let run_dir = dir.join("run");
    let out = generate(2, &run_dir, &[&format!("generate.initial_condition={}", ic.display())]);
    assert_ok(&out);
    let f = File::open(&run_dir.join("trajectories.h5"), Access::Serial, false).unwrap();
    assert_eq!(f.dataset("time").unwrap().read::<f64>(None).unwrap()[0], 0.0);
    assert_eq!(f.attrs().get::<i64>("spinup_steps").unwrap(), vec![0]);
    let first = f
        .dataset("vorticity")
        .unwrap()
        .read::<f32>(Some(&Hyperslab { start: &[0, 0, 0, 0], count: &[5, 1, 16, 16] }))
        .unwrap();
    let h16 = 2.0 * std::f64::consts::PI / 16.0;
    for m in 0..5 {
        for k in 0..256 {
            let want = field(m, (k % 16) as f64 * h16, (k / 16) as f64 * h16);
            assert!((first[m * 256 + k] as f64 - want).abs() < 1e-5, "member {m} point {k}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs a bad input on 2 ranks and checks: exit 2, one `error:` line naming `needles`, no output.
fn refused(dir: &Path, config: &Path, sets: &[&str], needles: &[&str]) {
    let mut args = vec!["generate", "--config", config.to_str().unwrap()];
    for s in sets {
        args.extend(["--set", s]);
    }
    let out = run(2, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{needles:?}: status {:?}, stderr:\n{stderr}", out.status);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{needles:?}: expected one error line, got:\n{stderr}");
    for n in needles {
        assert!(errors[0].contains(n), "error line lacks '{n}': {}", errors[0]);
    }
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
    assert!(
        !dir.join("run").join("trajectories.h5").exists() && !dir.join("run").join("trajectories.h5.partial").exists()
    );
}

#[test]
fn bad_input_is_refused_with_one_clear_line() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("bad");
    let base = std::fs::read_to_string(tiny())
        .unwrap()
        .replace("dir: runs/tiny", &format!("dir: {}", dir.join("run").display()));
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let good = write("good.yaml", &base);
    // YAML-level problems, with the file's name in the message
    refused(&dir, &write("malformed.yaml", &base.replace("grid: 32", "grid: [32")), &[], &["malformed.yaml"]);
    refused(
        &dir,
        &write("unknown.yaml", &base.replace("viscosity:", "viscocity:")),
        &[],
        &["unknown.yaml", "viscocity"],
    );
    refused(
        &dir,
        &write("type.yaml", &base.replace("grid: 32", "grid: thirty-two")),
        &[],
        &["type.yaml", "thirty-two"],
    );
    // semantic problems: key and value named
    refused(&dir, &good, &["system.viscosity=-0.5"], &["system.viscosity", "-0.5"]);
    refused(&dir, &good, &["system.grid=33"], &["system.grid", "33"]);
    refused(&dir, &good, &["system.grid=6"], &["system.grid", "6"]);
    refused(&dir, &good, &["system.output_grid=64"], &["system.output_grid", "64"]);
    refused(&dir, &good, &["system.dt=1.0"], &["system.dt", "CFL"]);
    refused(&dir, &good, &["system.viscosty=1"], &["system.viscosty"]);
    refused(&dir, &good, &["generate.members=many"], &["generate.members", "many"]);
    refused(&dir, &good, &["run.dir=/proc/thermalizer/run"], &["run.dir", "/proc/thermalizer/run"]);
    // initial-condition files: missing, and the wrong shape
    refused(
        &dir,
        &good,
        &["generate.initial_condition=/nonexistent/ic.h5"],
        &["generate.initial_condition", "/nonexistent/ic.h5", "no such file"],
    );
    let ic = dir.join("small-ic.h5");
    {
        let f = File::create(&ic, Access::Serial).unwrap();
        f.create_dataset::<f64>("vorticity", &[5, 16, 16]).unwrap().write(None, &vec![0.0; 5 * 256], false).unwrap();
    }
    let set = format!("generate.initial_condition={}", ic.display());
    refused(&dir, &good, &[&set], &["generate.initial_condition", "small-ic.h5", "[5, 16, 16]", "[5, 32, 32]"]);
    // keys of the other system, and bad QG values
    let qg = std::fs::read_to_string(tiny_qg())
        .unwrap()
        .replace("dir: runs/tiny-qg", &format!("dir: {}", dir.join("run").display()));
    let qg = write("qg.yaml", &qg);
    refused(&dir, &qg, &["system.viscosity=0.1"], &["system.viscosity", "not a parameter of system.kind = qg"]);
    refused(&dir, &good, &["system.beta=1e-11"], &["system.beta", "not a parameter of system.kind = kolmogorov"]);
    refused(&dir, &qg, &["system.rd=-5"], &["system.rd", "-5"]);
    refused(&dir, &qg, &["system.dealias=sharp"], &["system.dealias", "sharp"]);
    let missing = dir.join("missing.yaml");
    refused(&dir, &missing, &[], &["missing.yaml"]);
    assert!(!dir.join("run").exists(), "a refused run created its run.dir");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn blown_up_members_are_marked_and_the_run_completes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // max_cfl below the initial CFL number (~0.36): every member is stopped at its first step.
    // Member 4 runs alone on rank 1 of 2 ranks; the others are unaffected by its state.
    let dir = scratch("diverged");
    let out = generate(2, &dir, &["generate.max_cfl=0.3"]);
    assert_ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("member 4 diverged at solver step 0"), "{log}");
    assert!(log.contains("(5 diverged)"), "{log}");
    let f = File::open(&dir.join("trajectories.h5"), Access::Serial, false).unwrap();
    assert_eq!(f.dataset("diverged_at").unwrap().read::<i64>(None).unwrap(), vec![0; 5]);
    assert!(f.dataset("vorticity").unwrap().read::<f32>(None).unwrap().iter().all(|v| v.is_nan()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn qg_ensemble_is_rank_invariant_and_resumes_bitwise() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dirs: Vec<PathBuf> = [0usize, 2, 3].iter().map(|np| scratch(&format!("qg-ranks{np}"))).collect();
    for (np, dir) in [0usize, 2, 3].iter().zip(&dirs) {
        assert_ok(&generate_with(tiny_qg(), *np, dir, &[]));
    }
    for dir in &dirs[1..] {
        assert_same_file(&dirs[0].join("trajectories.h5"), &dir.join("trajectories.h5"));
    }
    let f = File::open(&dirs[0].join("trajectories.h5"), Access::Serial, false).unwrap();
    assert_eq!(f.dataset("q").unwrap().shape().unwrap(), vec![5, 6, 2, 16, 16]);
    assert_eq!(f.dataset("layer").unwrap().read::<i64>(None).unwrap(), vec![1, 2]);
    let q = f.dataset("q").unwrap().read::<f32>(None).unwrap();
    assert!(q.iter().all(|v| v.is_finite()) && q.iter().any(|&v| v.abs() > 1e-8));
    // The readers, as a user would, on the 3-rank QG file.
    let trajectories = dirs[2].join("trajectories.h5");
    pytest("THERMALIZER_PYTHON", "tests/python/test_trajectories.py", &[("THERMALIZER_TRAJECTORIES", &trajectories)]);

    // SIGKILL mid-run, then the same command: the Adams–Bashforth history comes back from the
    // checkpoint, so the result is the uninterrupted one bit for bit.
    let long = ["generate.samples=200", "system.grid=48"];
    let reference = scratch("qg-kill-ref");
    assert_ok(&generate_with(tiny_qg(), 2, &reference, &long));
    let dir = kill_and_resume(&[], tiny_qg(), &long, "qg-kill9", 3);
    assert_same_file(&reference.join("trajectories.h5"), &dir.join("trajectories.h5"));
    for d in dirs.into_iter().chain([reference, dir]) {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn qg_file_initial_condition_is_the_first_stored_state() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("qg-icfile");
    let ic = dir.join("ic.h5");
    // Modes well inside the stored grid's unfiltered range (|k| dx_16 ≤ 0.65π ⇔ |k| ≤ 5):
    // coarse-graining keeps them exactly.
    let (n, h) = (32usize, 2.0 * std::f64::consts::PI / 32.0);
    let field = |m: usize, layer: usize, x: f64, y: f64| {
        let a = 1e-5 / (1.0 + 4.0 * layer as f64);
        a * ((2.0 * x + y + m as f64).cos() + 0.5 * (3.0 * y).sin() - 0.3 * (3.0 * x - 2.0 * y).cos())
    };
    let data: Vec<f64> = (0..5)
        .flat_map(|m| {
            (0..2).flat_map(move |l| (0..n * n).map(move |k| field(m, l, (k % n) as f64 * h, (k / n) as f64 * h)))
        })
        .collect();
    {
        let f = File::create(&ic, Access::Serial).unwrap();
        f.create_dataset::<f64>("q", &[5, 2, n, n]).unwrap().write(None, &data, false).unwrap();
    }
    let run_dir = dir.join("run");
    assert_ok(&generate_with(tiny_qg(), 2, &run_dir, &[&format!("generate.initial_condition={}", ic.display())]));
    let f = File::open(&run_dir.join("trajectories.h5"), Access::Serial, false).unwrap();
    assert_eq!(f.dataset("time").unwrap().read::<f64>(None).unwrap()[0], 0.0);
    let first = f
        .dataset("q")
        .unwrap()
        .read::<f32>(Some(&Hyperslab { start: &[0, 0, 0, 0, 0], count: &[5, 1, 2, 16, 16] }))
        .unwrap();
    let h16 = 2.0 * std::f64::consts::PI / 16.0;
    for m in 0..5 {
        for l in 0..2 {
            for k in 0..256 {
                let want = field(m, l, (k % 16) as f64 * h16, (k / 16) as f64 * h16);
                let got = first[(m * 2 + l) * 256 + k] as f64;
                assert!((got - want).abs() < 1e-11, "member {m} layer {l} point {k}: {got} vs {want}");
            }
        }
    }
    // a Kolmogorov-shaped file is refused with the expected shape
    let bad = dir.join("bad.h5");
    {
        let f = File::create(&bad, Access::Serial).unwrap();
        f.create_dataset::<f64>("q", &[5, n, n]).unwrap().write(None, &vec![0.0; 5 * n * n], false).unwrap();
    }
    let out =
        generate_with(tiny_qg(), 2, &dir.join("run2"), &[&format!("generate.initial_condition={}", bad.display())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[5, 2, 32, 32]"));
    let _ = std::fs::remove_dir_all(dir);
}

/// `generate --device cpu` steps each rank's members as one batch with the libtorch solver
/// (the GPU path): on 2 ranks it writes the native solver's ensemble to float round-off (the
/// Kolmogorov flow, and QG with its spin-up, Adams–Bashforth history and coarse-graining), and
/// marks the same blown-up members.
#[test]
fn libtorch_solver_writes_the_native_ensemble() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (native, torch) = (scratch("native"), scratch("torch"));
    assert_ok(&generate(2, &native, &[]));
    let d = format!("run.dir={}", torch.display());
    let out = run(2, &["generate", "--device", "cpu", "--config", tiny(), "--set", &d]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("solver: libtorch"));
    // The largest difference of two runs' stored fields, relative to the fields' largest value.
    let difference = |native: &Path, torch: &Path, name: &str| {
        let read = |dir: &Path| {
            let f = File::open(&dir.join("trajectories.h5"), Access::Serial, false).unwrap();
            f.dataset(name).unwrap().read::<f32>(None).unwrap()
        };
        let (a, b) = (read(native), read(torch));
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    };
    let worst = difference(&native, &torch, "vorticity");
    assert!(worst <= 1e-5, "largest difference {worst:e} of the field's largest value");
    let blown = run(
        2,
        &[
            "generate",
            "--device",
            "cpu",
            "--config",
            tiny(),
            "--set",
            &d.replace("torch", "torch-cfl"),
            "--set",
            "generate.max_cfl=0.3",
        ],
    );
    assert_ok(&blown);
    assert!(String::from_utf8_lossy(&blown.stderr).contains("(5 diverged)"));
    let (native_qg, torch_qg) = (scratch("native-qg"), scratch("torch-qg"));
    assert_ok(&generate_with(tiny_qg(), 2, &native_qg, &[]));
    let qg = run(
        2,
        &["generate", "--device", "cpu", "--config", tiny_qg(), "--set", &format!("run.dir={}", torch_qg.display())],
    );
    assert_ok(&qg);
    assert!(String::from_utf8_lossy(&qg.stderr).contains("solver: libtorch"));
    // f64 states equal to ~1e-15 (tests/qg_physics.rs), stored in f32: at most a last-bit flip.
    let worst = difference(&native_qg, &torch_qg, "q");
    eprintln!("QG: largest difference {worst:.2e} of the field's largest value");
    assert!(worst <= 1e-6, "QG: largest difference {worst:e} of the field's largest value");

    // Killed mid-run, the batched model resumes from its checkpoint (each member's state and its
    // two past tendencies) to the uninterrupted batched run, bit for bit. 600 samples (about 5 s
    // on one core) leave seconds between the first checkpoint and the end for the kill.
    let long = ["generate.samples=600", "system.grid=48"];
    let reference = scratch("torch-qg-kill-ref");
    let r = format!("run.dir={}", reference.display());
    let sets = ["--set", &r, "--set", long[0], "--set", long[1]];
    assert_ok(&run(2, &[&["generate", "--device", "cpu", "--config", tiny_qg()][..], &sets].concat()));
    let killed = kill_and_resume(&["--device", "cpu"], tiny_qg(), &long, "torch-qg-kill9", 2);
    assert_same_file(&reference.join("trajectories.h5"), &killed.join("trajectories.h5"));
    for d in [native, torch, native_qg, torch_qg, reference, killed] {
        let _ = std::fs::remove_dir_all(d);
    }
}
