//! The command line as a user meets it: help, info without any environment, validate.

use std::process::Command;

fn thermalizer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_thermalizer"))
}

#[test]
fn info_runs_without_library_paths_in_the_environment() {
    // libtorch is found through the embedded rpath (no LD_LIBRARY_PATH, LIBTORCH, HDF5_DIR);
    // MPI starts as a singleton (OpenMPI finds its helper `orted` on the system PATH).
    let out = thermalizer().arg("info").env_clear().env("PATH", "/usr/bin:/bin").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for needle in ["thermalizer", "git revision", "Open MPI", "HDF5          1.10", "libtorch      2.11.0", "CUDA"] {
        assert!(text.contains(needle), "info lacks '{needle}':\n{text}");
    }
}

#[test]
fn help_documents_the_commands() {
    let out = thermalizer().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["generate", "validate", "info", "bench", "mpirun", "Exit status"] {
        assert!(text.contains(needle), "--help lacks '{needle}'");
    }
    let out = thermalizer().args(["generate", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--set <KEY=VALUE>"));
}

#[test]
fn validate_prints_the_plan_and_writes_nothing() {
    let dir = std::env::temp_dir().join(format!("thermalizer-validate-{}", std::process::id()));
    let out = thermalizer()
        .args(["validate", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/configs/kolmogorov.yaml")])
        .args(["--set", &format!("run.dir={}", dir.display())])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // the paper's setting: 10,000 spin-up steps + 4,999 intervals of 5 steps, 512² → 64²
    assert!(text.contains("solver steps:       34995"), "{text}");
    assert!(text.contains("512² solver → 64² stored"), "{text}");
    assert!(text.contains("viscosity: 0.0001"), "resolved config is printed:\n{text}");
    assert!(!dir.exists(), "validate created {}", dir.display());
}
