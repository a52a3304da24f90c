//! Helpers shared by the end-to-end tests: start `thermalizer` as users do (a plain process or
//! under `mpirun`), scratch directories, and waiting for a checkpoint before a kill.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// MPI jobs share 2 cores: run them one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Turns at libtorch's global random generator (see [`seeded_torch`]).
static TORCH_RNG: Mutex<()> = Mutex::new(());

/// libtorch's global random generator, seeded with `seed`, for as long as the guard lives.
///
/// The tests of one binary run in parallel threads, and tch 0.24 exposes no `torch::Generator`
/// of one's own: parameter initialisation (`nn::Init`) and `Tensor::randn` always draw from the
/// one global generator. A test that seeds it and then draws would get whatever another thread
/// left of the sequence. So every in-process test that draws from libtorch holds this guard for
/// its whole body: those tests take turns, and each sees the same numbers whatever
/// `--test-threads` is. (The pipeline itself draws only from its own streams, `src/rng.rs`,
/// apart from initialising parameters in a process of its own.)
pub fn seeded_torch(seed: i64) -> MutexGuard<'static, ()> {
    let guard = TORCH_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed);
    guard
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_thermalizer")
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("thermalizer-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The MPI launcher and its flags, before `-np N`: `$THERMALIZER_MPIRUN` split at whitespace
/// (the MPICH env file sets `mpiexec.mpich`), else Open MPI's `mpirun --oversubscribe` (more
/// ranks than the 2 cores of CI). MPICH's hydra needs no such flag.
pub fn mpirun() -> Vec<String> {
    let launcher = std::env::var("THERMALIZER_MPIRUN").unwrap_or_default();
    let words: Vec<String> = launcher.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() {
        vec!["mpirun".into(), "--oversubscribe".into()]
    } else {
        words
    }
}

/// `thermalizer <args>` on `np` ranks (`np = 0`: a plain process, no launcher) started by
/// [`mpirun`] under `timeout`, so that a hang fails the test instead of blocking it. The
/// launcher is then the only child of the returned process.
pub fn command(np: usize, args: &[&str]) -> Command {
    let mut c = if np == 0 {
        Command::new(bin())
    } else {
        let mut c = Command::new("timeout");
        c.arg("120").args(mpirun()).args(["-np", &np.to_string(), bin()]);
        c
    };
    // The Open MPI variables let root run ranks (CI containers); other MPIs ignore them.
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

/// `python -m pytest <target>` (a path under the repository) with the interpreter named by the
/// environment variable `python_var` (set by scripts/test.sh or env.sh) and `env` added; fails
/// on a failed test, on a skipped one (a skip would hide a missing dependency), or when nothing
/// ran. Returns pytest's report.
pub fn pytest(python_var: &str, target: &str, env: &[(&str, &Path)]) -> String {
    let python = std::env::var(python_var).unwrap_or_else(|_| panic!("{python_var} (set by scripts/test.sh)"));
    let out = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(target))
        .envs(env.iter().map(|&(k, v)| (k, v)))
        .env("THERMALIZER_BIN", bin())
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert_ok(&out);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{report}");
    assert!(report.contains(" passed") && !report.contains("skipped"), "{target}:\n{report}");
    report
}
