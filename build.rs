//! Build script: embeds the libtorch library directory as an rpath so that
//! `target/release/thermalizer` runs without `LD_LIBRARY_PATH`, keeps libtorch_cuda with the
//! `cuda` feature, links HDF5's
//! high-level library (dimension scales, `H5DS*`), and records the git revision.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    // Feature `cuda`: nothing in the binary calls libtorch_cuda directly, so the default
    // --as-needed would drop it and libtorch would never see a GPU; keep it explicitly.
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let torch = std::env::var("LIBTORCH")
        .ok()
        .and_then(|dir| std::fs::read_to_string(format!("{dir}/version.py")).ok())
        .and_then(|text| {
            text.lines().find_map(|l| l.strip_prefix("__version__ = ").map(|v| v.trim_matches(['\'', '"']).to_string()))
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=THERMALIZER_LIBTORCH_VERSION={torch}");
    println!("cargo:rerun-if-env-changed=HDF5_DIR");
    let hdf5_dir = std::env::var("HDF5_DIR").unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu/hdf5/openmpi".to_string());
    println!("cargo:rustc-link-search=native={hdf5_dir}/lib");
    println!("cargo:rustc-link-search=native={hdf5_dir}");
    println!("cargo:rustc-link-lib=dylib=hdf5_hl");

    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    let rev = if dirty { format!("{rev}-dirty") } else { rev };
    println!("cargo:rustc-env=THERMALIZER_GIT_REV={rev}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
}
