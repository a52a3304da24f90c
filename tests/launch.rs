//! How runs are launched and stopped, whatever the launcher: the node-local rank (GPU binding)
//! comes from MPI itself, one Ctrl-C stops at the next checkpoint (exit 75), a second one ends
//! the run at once (exit 130) and keeps the last checkpoint; a repeated SIGTERM (Slurm sends two)
//! still checkpoints.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn tiny() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/tiny.yaml")
}

/// `thermalizer generate` of tiny.yaml in `dir` with `sets`, as a plain process, stderr piped.
fn spawn_generate(dir: &Path, sets: &[&str]) -> Child {
    let d = format!("run.dir={}", dir.display());
    let mut args = vec!["generate", "--config", tiny(), "--set", &d];
    for s in sets {
        args.extend(["--set", s]);
    }
    command(0, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

#[test]
fn node_local_ranks_come_from_mpi() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("local-rank");
    let d = format!("run.dir={}", dir.display());
    // The debug line of the device choice on every rank; --device cpu makes generate choose one.
    let out = command(2, &["generate", "--config", tiny(), "--set", &d, "--device", "cpu"])
        .env("THERMALIZER_LOG", "thermalizer::stages::train=debug")
        // Launcher variables that disagree with MPI must not matter.
        .env("SLURM_LOCALID", "7")
        .output()
        .unwrap();
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    for rank in 0..2 {
        let needle = format!("[{rank}/2] node-local rank {rank} of 2: device Cpu");
        assert!(err.contains(&needle), "no '{needle}' in:\n{err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn one_interrupt_checkpoints_and_a_second_exits_at_once() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());

    // One SIGINT, or SIGTERM twice (inside one segment of about a second): checkpoint at the
    // next boundary, exit 75.
    for (name, signals) in [("sigint-once", &[libc::SIGINT][..]), ("sigterm-twice", &[libc::SIGTERM, libc::SIGTERM])] {
        let dir = scratch(name);
        let mut child =
            spawn_generate(&dir, &["generate.samples=250", "generate.steps_per_sample=300", "system.grid=64"]);
        wait_for(&dir.join("trajectories.checkpoint.h5"), &mut child);
        for &sig in signals {
            signal(&child, sig);
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(75), "{name}: stderr: {err}");
        assert!(err.contains("checkpoint written") && !err.contains("second interrupt"), "{name}: stderr: {err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    // Two SIGINTs inside one long segment: the second ends the run without waiting for it.
    let dir = scratch("sigint-twice");
    let mut child = spawn_generate(&dir, &["generate.steps_per_sample=200000", "system.grid=64"]);
    wait_for(&dir.join("trajectories.h5.partial"), &mut child);
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "the first interrupt ended the run before the segment's end");
    signal(&child, libc::SIGINT);
    let t0 = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(t0.elapsed() < Duration::from_secs(5), "second interrupt took {:?}", t0.elapsed());
    assert_eq!(out.status.code(), Some(130), "stderr: {err}");
    let line = "second interrupt: exiting without a checkpoint; the last checkpoint is kept";
    assert_eq!(err.matches(line).count(), 1, "stderr: {err}");
    assert!(!dir.join("trajectories.h5").exists());
    let _ = std::fs::remove_dir_all(dir);
}
