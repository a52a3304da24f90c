//! Helpers shared by the end-to-end tests: start `thermalizer` as users do (a plain process or
//! under `mpirun`), scratch directories, and waiting for a checkpoint before a kill.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// MPI jobs share 2 cores: run them one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_thermalizer")
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("thermalizer-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `thermalizer <args>` on `np` ranks (`np = 0`: a plain process, no mpirun), with a timeout
/// so that a hang fails the test instead of blocking it.
pub fn command(np: usize, args: &[&str]) -> Command {
    let mut c = if np == 0 {
        Command::new(bin())
    } else {
        let mut c = Command::new("timeout");
        c.args(["120", "mpirun", "--oversubscribe", "-np", &np.to_string(), bin()]);
        c
    };
    c.args(args)
        .env("OMP_NUM_THREADS", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c
}

pub fn run(np: usize, args: &[&str]) -> Output {
    command(np, args).output().expect("start thermalizer")
}

/// Fails with the command's output unless it exited 0.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until `path` exists (then a little more), failing if `child` ends first.
pub fn wait_for(path: &Path, child: &mut Child) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(child.try_wait().unwrap().is_none(), "run finished before it could be interrupted");
        assert!(t0.elapsed() < Duration::from_secs(60), "no checkpoint after 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
}
