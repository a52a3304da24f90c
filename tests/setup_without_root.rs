//! scripts/setup.sh on a cluster without root and without apt, as a module system leaves it: run
//! as an unprivileged user (`thermalizer-setup-test`, created with useradd if absent; the test
//! needs root for that and for setpriv) with
//! - a PATH of its own: a directory of links to the tools a module system provides (bash,
//!   coreutils, mpicc, cc/c++, python3, llvm-config, cargo) and none of Debian's package tools
//!   (no apt-get, dpkg, dpkg-query, sudo) nor ncdump/udunits2;
//! - `HDF5_DIR` at a prefix of its own (include/ and lib/ linked to Debian's OpenMPI HDF5);
//! - `THERMALIZER_HOME` in the user's temporary home, with the venvs already there: hard-linked
//!   copies of the ones scripts/setup.sh made for root (`THERMALIZER_PYTHON`,
//!   `THERMALIZER_TORCH_PYTHON`: source env.sh first), so that the run installs nothing and
//!   downloads nothing.
//!
//! Checked: exit 0, an env.sh that exports the given HDF5_DIR (read back by sourcing it as that
//! user) and libtorch from the user's venv, the skipped test tools named; and with mpicc taken off
//! PATH: exit 1 with the line naming mpicc and the module to load, before any venv or env.sh.
//! The cargo build itself is not run here (minutes).
//!
//! Run alone: cargo test --release --locked --test setup_without_root

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const USER: &str = "thermalizer-setup-test";
/// Debian's parallel HDF5 (libhdf5-openmpi-dev), which the test presents at a prefix of its own.
const DEBIAN_HDF5: &str = "/usr/lib/x86_64-linux-gnu/hdf5/openmpi";
/// What a module system puts on PATH; looked up in the system directories only (not in root's
/// home, which the user cannot read). cargo is added from the active toolchain.
const TOOLS: &[&str] = &[
    "bash",
    "sh",
    "env",
    "cat",
    "cp",
    "mv",
    "rm",
    "mkdir",
    "ln",
    "ls",
    "dirname",
    "basename",
    "readlink",
    "realpath",
    "id",
    "grep",
    "sed",
    "head",
    "tail",
    "tr",
    "mpicc",
    "mpicxx",
    "mpirun",
    "cc",
    "c++",
    "gcc",
    "g++",
    "ld",
    "ar",
    "pkg-config",
    "llvm-config",
];
const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
const NO_MPICC: &str =
    "no MPI compiler wrapper mpicc on PATH: load your MPI module (module load openmpi or cray-mpich)";

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed\n{}", text(&out));
    out
}

/// The user's uid, creating the user (no home, no login shell) if absent.
fn unprivileged_user() -> String {
    if !Command::new("id").arg("-u").arg(USER).output().unwrap().status.success() {
        sh(Command::new("useradd").args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER]));
    }
    String::from_utf8(sh(Command::new("id").arg("-u").arg(USER)).stdout).unwrap().trim().to_string()
}

/// Where `tool` is in the system directories.
fn system_tool(tool: &str) -> String {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {tool}")).env("PATH", SYSTEM_PATH).output().unwrap();
    assert!(found.status.success(), "{tool} not found in {SYSTEM_PATH}");
    String::from_utf8(found.stdout).unwrap().trim().to_string()
}

/// A hard-linked copy of `from` at `to` (same file system: instant, no space), or a plain copy.
fn link_copy(from: &Path, to: &Path) {
    let out = Command::new("cp").arg("-al").arg(from).arg(to).output().unwrap();
    if !out.status.success() {
        sh(Command::new("cp").arg("-a").arg(from).arg(to));
    }
}

/// The venv of `python` (…/venv/bin/python), taken from the environment env.sh sets.
fn venv_of(var: &str) -> PathBuf {
    let python = std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run scripts/setup.sh and source its env.sh first"));
    Path::new(&python).parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// Root's libtorch venv, made usable by another user: its interpreter (root's, unreadable to
/// others) replaced by the system python3 of the same minor version.
fn provide_venv(to: &Path) {
    link_copy(&venv_of("THERMALIZER_PYTHON"), to);
    let lib = fs::read_dir(to.join("lib")).unwrap().next().unwrap().unwrap().file_name();
    let minor = lib.to_str().unwrap().trim_start_matches("python").to_string();
    let system = format!("/usr/bin/python{minor}");
    assert!(Path::new(&system).exists(), "the venv is python{minor}; {system} is needed to hand it to another user");
    for f in ["bin/python3", "pyvenv.cfg"] {
        fs::remove_file(to.join(f)).unwrap(); // hard links to root's files: replace, never edit
    }
    symlink(&system, to.join("bin/python3")).unwrap();
    fs::write(
        to.join("pyvenv.cfg"),
        format!("home = /usr/bin\ninclude-system-site-packages = false\nversion = {minor}\n"),
    )
    .unwrap();
}

struct Sandbox {
    dir: PathBuf,
    bin: PathBuf,
    home: PathBuf,
    hdf5: PathBuf,
    uid: String,
}

impl Sandbox {
    fn new() -> Sandbox {
        let id = String::from_utf8(sh(Command::new("id").arg("-u")).stdout).unwrap();
        assert_eq!(id.trim(), "0", "this test needs root: it creates a user and runs setup.sh as that user");
        let uid = unprivileged_user();
        let dir = std::env::temp_dir().join(format!("thermalizer-setup-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (bin, home, hdf5) = (dir.join("bin"), dir.join("home"), dir.join("hdf5"));
        for d in [&bin, &home, &hdf5] {
            fs::create_dir_all(d).unwrap();
        }
        for tool in TOOLS {
            symlink(system_tool(tool), bin.join(tool)).unwrap();
        }
        symlink("/usr/bin/python3", bin.join("python3")).unwrap();
        let sysroot = String::from_utf8(sh(Command::new("rustc").args(["--print", "sysroot"])).stdout).unwrap();
        let cargo = Path::new(sysroot.trim()).join("bin/cargo");
        if fs::hard_link(&cargo, bin.join("cargo")).is_err() {
            fs::copy(&cargo, bin.join("cargo")).unwrap();
        }
        for sub in ["include", "lib"] {
            symlink(Path::new(DEBIAN_HDF5).join(sub), hdf5.join(sub)).unwrap();
        }
        sh(Command::new("chown").arg("-R").arg(format!("{uid}:{uid}")).arg(&home));
        sh(Command::new("chmod").arg("755").arg(&dir));
        Sandbox { dir, bin, home, hdf5, uid }
    }

    /// `cmd` run by bash as the user, with only the sandbox's environment.
    fn run_as_user(&self, thermalizer_home: &Path, cmd: &str) -> Output {
        Command::new(system_tool("setpriv"))
            .args(["--reuid", &self.uid, "--regid", &self.uid, "--clear-groups", "--"])
            .arg(self.bin.join("bash"))
            .arg("-c")
            .arg(cmd)
            .env_clear()
            .env("PATH", &self.bin)
            .env("HOME", &self.home)
            .env("HDF5_DIR", &self.hdf5)
            .env("THERMALIZER_HOME", thermalizer_home)
            .env("LANG", "C.UTF-8")
            .output()
            .unwrap()
    }

    fn setup(&self, thermalizer_home: &Path) -> Output {
        self.run_as_user(thermalizer_home, &format!("{ROOT}/scripts/setup.sh"))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn setup_runs_without_root_or_apt_on_a_module_system() {
    let sb = Sandbox::new();
    let readable = sb.run_as_user(&sb.home, &format!("test -r {ROOT}/scripts/setup.sh -a -r {ROOT}/python"));
    assert!(readable.status.success(), "{USER} cannot read the checkout {ROOT}: put it where other users can read it");
    for tool in ["apt-get", "dpkg", "dpkg-query", "sudo", "ncdump", "udunits2"] {
        let which = sb.run_as_user(&sb.home, &format!("command -v {tool}"));
        assert!(!which.status.success(), "{tool} is on the user's PATH: {}", text(&which));
    }

    let th = sb.home.join("thermalizer");
    fs::create_dir(&th).unwrap();
    provide_venv(&th.join("venv"));
    link_copy(&venv_of("THERMALIZER_TORCH_PYTHON"), &th.join("venv-torch"));
    sh(Command::new("chown").arg(format!("{0}:{0}", sb.uid)).arg(&th));

    let out = sb.setup(&th);
    let log = text(&out);
    assert!(out.status.success(), "setup.sh as {USER} without apt failed\n{log}");
    assert!(!log.contains("apt-get") && !log.contains("installing"), "setup.sh installed something:\n{log}");
    assert!(log.contains("skipped: no ncdump on PATH") && log.contains("skipped: no udunits2 on PATH"), "{log}");
    let env = sb.run_as_user(&th, ". \"$THERMALIZER_HOME/env.sh\" && echo \"$HDF5_DIR\" && echo \"$LIBTORCH\"");
    let env_text = String::from_utf8_lossy(&env.stdout).to_string();
    let lines: Vec<&str> = env_text.lines().collect();
    assert!(env.status.success() && lines.len() == 2, "sourcing env.sh as {USER}:\n{}", text(&env));
    assert_eq!(lines[0], sb.hdf5.to_str().unwrap(), "env.sh must export the HDF5_DIR given");
    assert!(
        lines[1].starts_with(th.join("venv/lib").to_str().unwrap()),
        "LIBTORCH {} not in the user's venv",
        lines[1]
    );
    assert!(Path::new(lines[1]).join("version.py").exists());

    // Without MPI: refused before any venv or env.sh is made.
    fs::remove_file(sb.bin.join("mpicc")).unwrap();
    let fresh = sb.home.join("fresh");
    let out = sb.setup(&fresh);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "setup.sh without mpicc must fail\n{log}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("[setup] error: {NO_MPICC}")), "{log}");
    assert_eq!(log.matches("[setup] error:").count(), 1, "only mpicc is missing:\n{log}");
    assert!(!fresh.exists(), "setup.sh created {} before failing", fresh.display());
}
