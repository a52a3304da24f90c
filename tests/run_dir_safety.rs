//! Run directories on shared file systems: one writer per stage (`<run.dir>/.<stage>.lock`),
//! stale locks taken over only when their holder cannot be running, a full file system reported
//! in one line without a finished-looking output, and training data with NaN refused by name.
//!
//! The full-disk test mounts a 1 MiB tmpfs, so it needs root (CI runs as root; elsewhere it
//! fails and says so rather than skipping).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::*;

use thermalizer::store::h5::{Access, File, Hyperslab};

fn tiny() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/tiny.yaml")
}

fn tiny_train() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/tiny-train.yaml")
}

/// `thermalizer <verb> --config <config> --set run.dir=<dir> --set <sets>...`.
fn args(verb: &[&str], config: &str, dir: &Path, sets: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
    a.extend(["--config".into(), config.into(), "--set".into(), format!("run.dir={}", dir.display())]);
    for s in sets {
        a.extend(["--set".into(), s.to_string()]);
    }
    a
}

fn stage(np: usize, verb: &[&str], config: &str, dir: &Path, sets: &[&str]) -> Output {
    run(np, &args(verb, config, dir, sets).iter().map(String::as_str).collect::<Vec<_>>())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of `text` that report an error (`error: ...` or `error (rank r): ...`).
fn error_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("error")).collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").expect("Linux host name").trim().to_string()
}

/// A lock file as a stage writes it.
fn write_lock(path: &Path, host: &str, pid: u32, slurm_job: &str, restart: u64) {
    let text = format!(
        "stage = generate\nhost = {host}\npid = {pid}\nslurm_job = {slurm_job}\nslurm_restart = {restart}\n\
         since = 1765135800\n"
    );
    std::fs::write(path, text).unwrap();
}

/// A pid that was this host's and is no longer running.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn a_second_writer_is_refused_while_the_first_finishes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch("second-writer");
    // Long enough (several seconds on 2 ranks) for the second job to start meanwhile.
    let sets = ["generate.samples=600", "system.grid=48"];
    let argv = args(&["generate"], tiny(), &dir, &sets);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut first = command(2, &argv).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for(&dir.join("trajectories.h5.partial"), &mut first);

    let second = run(2, &argv);
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(2), "second writer not refused:\n{err}");
    let lock = dir.join(".generate.lock");
    let lines = error_lines(&err);
    assert_eq!(lines.len(), 1, "expected one error line:\n{err}");
    let expect_start = format!("error: {} is in use by generate on host {} (pid ", dir.display(), hostname());
    let expect_end = format!("; remove {} if that job is gone", lock.display());
    assert!(lines[0].starts_with(&expect_start) && lines[0].ends_with(&expect_end), "unclear line: {}", lines[0]);
    assert!(lines[0].contains(") since 20"), "no start time: {}", lines[0]);
    assert!(first.try_wait().unwrap().is_none(), "the first run ended before the second was refused");

    let out = first.wait_with_output().unwrap();
    assert_ok(&out);
    assert!(dir.join("trajectories.h5").exists() && !dir.join("trajectories.h5.partial").exists());
    assert!(!lock.exists(), "the lock outlived its stage");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stale_lock_of_this_host_is_taken_over_with_a_warning() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch("stale-lock");
    let lock = dir.join(".generate.lock");
    let pid = dead_pid();
    write_lock(&lock, &hostname(), pid, "-", 0);
    let out = stage(2, &["generate"], tiny(), &dir, &[]);
    assert_ok(&out);
    let err = stderr(&out);
    let warning = format!("taking over {} left by generate on host {} (pid {pid})", lock.display(), hostname());
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains(&warning)).collect();
    assert_eq!(warnings.len(), 1, "expected one warning naming the lock and pid:\n{err}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].ends_with(&format!("pid {pid} on this host is no longer running"))
    );
    assert!(!lock.exists() && dir.join("trajectories.h5").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_lock_from_another_host_is_refused_unless_slurm_requeued_this_job() {
    let dir = scratch("foreign-lock");
    let lock = dir.join(".generate.lock");
    write_lock(&lock, "elsewhere-n1", 4242, "1234", 0);

    // Another host, another (or no) job: nothing here can tell whether it still runs.
    let out = stage(0, &["generate"], tiny(), &dir, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        error_lines(&stderr(&out)),
        [format!(
            "error: {} is in use by generate on host elsewhere-n1 (pid 4242, Slurm job 1234) since \
             2025-12-07T19:30:00Z; remove {} if that job is gone",
            dir.display(),
            lock.display()
        )]
    );
    assert!(lock.exists() && !dir.join("trajectories.h5.partial").exists(), "the refused run wrote");

    // The same Slurm job after a requeue (restart count 1 > 0): the earlier run is over.
    let argv = args(&["generate"], tiny(), &dir, &[]);
    let out = command(0, &argv.iter().map(String::as_str).collect::<Vec<_>>())
        .env("SLURM_JOB_ID", "1234")
        .env("SLURM_RESTART_COUNT", "1")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(stderr(&out).contains("Slurm job 1234 was requeued (restart 1)"), "{}", stderr(&out));
    assert!(!lock.exists() && dir.join("trajectories.h5").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tmpfs of `size` mounted at `at` for as long as it lives.
struct Mounted(PathBuf);

impl Mounted {
    fn tmpfs(at: &Path, size: &str) -> Mounted {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mounted(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // The ranks killed by MPI_Abort may hold their files open a moment longer.
        let umount = |lazy: bool| {
            let mut c = std::process::Command::new("umount");
            if lazy {
                c.arg("--lazy");
            }
            c.arg(&self.0).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
        };
        for _ in 0..50 {
            if umount(false) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        umount(true);
    }
}

#[test]
fn a_full_file_system_ends_the_run_with_one_line_and_no_output() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let base = scratch("full-disk");
    let mnt = Mounted::tmpfs(&base.join("mnt"), "1m");
    let dir = mnt.0.join("run");
    // 5 members × 200 states × 32² × 4 bytes = 4 MB: the 1 MiB file system fills up.
    let out = stage(2, &["generate"], tiny(), &dir, &["generate.samples=200", "system.output_grid=32"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "a full file system must fail the run:\n{err}");
    let lines = error_lines(&err);
    assert_eq!(lines.len(), 1, "expected one error line:\n{err}");
    let expect = format!("HDF5: no space left on device writing {}/trajectories.", dir.display());
    assert!(lines[0].contains(&expect) && lines[0].contains(" bytes free"), "unclear line: {}", lines[0]);
    assert!(!dir.join("trajectories.h5").exists(), "a finished-looking output on a full disk");
    drop(mnt);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn training_data_with_nan_in_a_member_not_marked_diverged_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch("nan-member");
    assert_ok(&stage(0, &["generate"], tiny_train(), &dir, &[]));
    let path = dir.join("trajectories.h5");
    {
        // Member 4 is the validation member (split 0.67 / 0.17 of 6), read by rank 1 of 2.
        let f = File::open(&path, Access::Serial, true).unwrap();
        assert_eq!(f.dataset("diverged_at").unwrap().read::<i64>(None).unwrap()[4], -1);
        assert_eq!(f.dataset("split").unwrap().read::<i64>(None).unwrap()[4], 1);
        let slab = Hyperslab { start: &[4, 7, 3, 5], count: &[1, 1, 1, 1] };
        f.dataset("vorticity").unwrap().write(Some(&slab), &[f32::NAN], false).unwrap();
        f.close().unwrap();
    }
    let out = stage(2, &["train", "emulator"], tiny_train(), &dir, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        error_lines(&stderr(&out)),
        [format!(
            "error: {}: member 4 has non-finite values at time index 7 but is not marked diverged (diverged_at = -1)",
            path.display()
        )]
    );
    assert!(!dir.join("emulator").join("latest.safetensors").exists(), "trained on bad data");
    assert!(!dir.join(".train-emulator.lock").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
