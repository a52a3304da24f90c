#!/usr/bin/env bash
# Installs what thermalizer needs, skipping what is already there (idempotent). Two ways to get the
# system parts (MPI, parallel HDF5, libclang, a C/C++ toolchain, Python, Rust):
#   - Debian/Ubuntu as root (or with sudo): apt installs what is missing: OpenMPI 4.1, Debian's
#     parallel HDF5 built against it (libhdf5-openmpi-dev, h5dump), libclang (bindgen for mpi-sys),
#     a C/C++ toolchain, Debian's CPU PyTorch (python3-torch), netCDF-C's ncdump (netcdf-bin) and
#     UDUNITS-2's udunits2 (udunits-bin) for the tests that check the outputs are netCDF-4/CF;
#   - anywhere else (a cluster with environment modules, no root, no apt): nothing is installed
#     system-wide; what the loaded modules put on PATH is used (docs/cluster.md). Whatever is
#     missing is named, with the module to load, before anything long starts (exit 1).
# Then, in both cases, under $THERMALIZER_HOME:
#   1. a Python venv with libtorch from the PyPI torch==2.11.0 wheel (tch 0.24 needs exactly this
#      version; --no-deps plus the two small CUDA runtime wheels libtorch_cpu.so links against)
#      and h5py, xarray, h5netcdf, netCDF4, safetensors, matplotlib, pytest for the tests that read our files the way users do;
#   2. the Python package python/ (import thermalizer), editable, in that venv (its readers) and
#      in venv-torch/, a venv of the system Python with Debian's CPU PyTorch (python3-torch):
#      the torch wheel above is a CUDA build whose `import torch` needs the CUDA libraries;
#      venv-torch also gets The Well's loader (the-well, --no-deps) for the export-well test.
#      Without a system Python that imports torch, venv-torch is skipped (and said so): only the
#      tests of the PyTorch modules and of export-well need it, not the build;
#   3. an env file that points cargo at libtorch and at the parallel HDF5 found (HDF5_DIR).
# Usage: scripts/setup.sh            then: source "$THERMALIZER_HOME/env.sh"
# Knobs: THERMALIZER_HOME (default ~/.local/share/thermalizer) holds venv/ and env.sh;
#        HDF5_DIR (the parallel HDF5 prefix; else derived from h5pcc; Debian's on Debian);
#        LIBCLANG_PATH (directory of libclang.so, passed on to bindgen when set);
#        THERMALIZER_MPI=mpich: build against MPICH (Debian's mpich + libhdf5-mpich-dev, or the
#        loaded MPICH-family module) instead of Open MPI; writes env-mpich.sh instead of env.sh.
set -euo pipefail
TORCH_VERSION=2.11.0
THERMALIZER_HOME=${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}
VENV=$THERMALIZER_HOME/venv
TORCH_VENV=$THERMALIZER_HOME/venv-torch
ENV_FILE=$THERMALIZER_HOME/env.sh
REPO=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "[setup] $*"; }

# ---- MPI flavour: THERMALIZER_MPI=openmpi (default) or mpich ---------------------------------
# Debian co-installs both, each with its own parallel HDF5; there MPICH's wrappers and launcher
# carry a .mpich suffix (the plain names are Open MPI's). Elsewhere (modules of Cray MPICH, Intel
# MPI, MVAPICH) the plain mpicc/mpiexec of the loaded module are used. MPICH gets its own env file
# (env-mpich.sh) and cargo target directory, so that the two builds do not invalidate each other.
first_on_path() { local c; for c in "$@"; do command -v "$c" >/dev/null 2>&1 && { echo "$c"; return; }; done; echo "$1"; }
case "${THERMALIZER_MPI:=openmpi}" in
  openmpi)
    MPI_APT_PKGS=(libopenmpi-dev openmpi-bin libhdf5-openmpi-dev)
    DEBIAN_HDF5_DIR=/usr/lib/x86_64-linux-gnu/hdf5/openmpi ;;
  mpich)
    MPI_APT_PKGS=(mpich libmpich-dev libhdf5-mpich-dev)
    DEBIAN_HDF5_DIR=/usr/lib/x86_64-linux-gnu/hdf5/mpich
    ENV_FILE=$THERMALIZER_HOME/env-mpich.sh ;;
  *) echo "[setup] error: THERMALIZER_MPI=$THERMALIZER_MPI: expected openmpi or mpich" >&2; exit 1 ;;
esac
# Names resolved after apt has run (the .mpich ones exist only once MPICH is installed).
mpi_names() {
  MPICC_NAME=mpicc; H5PCC_NAME=h5pcc
  [ "$THERMALIZER_MPI" = mpich ] || return 0
  MPICC_NAME=$(first_on_path mpicc.mpich mpicc)
  H5PCC_NAME=$(first_on_path h5pcc.mpich h5pcc)
}
# The MPICH lines of its env file: mpi-sys probes $MPICC (it only reruns its probe in a fresh
# target directory, hence the one of MPICH's own), the tests launch ranks with $THERMALIZER_MPIRUN.
mpich_env_lines() {
  echo "export MPICC=$(command -v "$MPICC_NAME")"
  echo "export THERMALIZER_MPIRUN=$(first_on_path mpiexec.mpich mpiexec)"
  echo "case \"\${CARGO_TARGET_DIR:-}\" in */mpich) ;; *) export CARGO_TARGET_DIR=\"\${CARGO_TARGET_DIR:-$REPO/target}/mpich\" ;; esac"
}
problems=()
problem() { problems+=("$*"); }

# ---- system packages: apt on Debian/Ubuntu when we may use it ------------------------------
APT_PKGS=(build-essential pkg-config libclang-dev "${MPI_APT_PKGS[@]}" hdf5-tools python3-venv git procps python3-torch
          netcdf-bin udunits-bin)
on_debian() { command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; }
may_apt() { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; }
apt_install_missing() {
  local p missing=()
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if ! may_apt; then
    log "not root and no sudo: not installing ${missing[*]}; using what PATH provides"
    return 0
  fi
  log "apt-get install ${missing[*]}"
  local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---- what the build needs, found on PATH / in the environment -------------------------------
check_rust() {
  command -v cargo >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/cargo" ] \
    || problem "no Rust toolchain (cargo): install one with rustup (https://rustup.rs) or module load rust"
}
check_c_compiler() {
  command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1 \
    || problem "no C/C++ compiler (cc, c++) on PATH: load your compiler module (module load gcc, or PrgEnv-gnu on Cray)"
}
check_mpicc() {
  command -v "$MPICC_NAME" >/dev/null 2>&1 \
    || problem "no MPI compiler wrapper $MPICC_NAME on PATH: load your MPI module (module load openmpi or cray-mpich)"
}
# The HDF5 prefix, echoed: $HDF5_DIR, else the one of the h5pcc on PATH (its bin/.., or the
# "Installation point" it reports), else Debian's OpenMPI HDF5 on Debian.
hdf5_prefix() {
  if [ -n "${HDF5_DIR:-}" ]; then echo "$HDF5_DIR"; return; fi
  local h5pcc p
  if h5pcc=$(command -v "$H5PCC_NAME" 2>/dev/null); then
    p=$(cd "$(dirname "$(readlink -f "$h5pcc")")/.." && pwd)
    [ -f "$p/include/H5pubconf.h" ] || p=$("$h5pcc" -showconfig 2>/dev/null | sed -n 's/^ *Installation point: *//p')
    if [ -n "$p" ] && [ -f "$p/include/H5pubconf.h" ]; then echo "$p"; return; fi
  fi
  if on_debian && [ -d "$DEBIAN_HDF5_DIR" ]; then echo "$DEBIAN_HDF5_DIR"; fi
}
# Sets HDF5_FOUND to a parallel (MPI) HDF5 prefix, or names what is wrong.
check_parallel_hdf5() {
  HDF5_FOUND=$(hdf5_prefix)
  local hint="(module load cray-hdf5-parallel, or your site's hdf5 module built with MPI, e.g. module load hdf5/1.12-parallel)"
  if [ -z "$HDF5_FOUND" ]; then
    problem "no parallel HDF5: set HDF5_DIR or put h5pcc on PATH $hint"
  elif [ ! -f "$HDF5_FOUND/include/H5pubconf.h" ] || [ ! -d "$HDF5_FOUND/lib" ]; then
    problem "HDF5_DIR=$HDF5_FOUND has no include/H5pubconf.h or lib/: point it at an HDF5 installation prefix $hint"
  elif ! grep -Eq '^#define H5_HAVE_PARALLEL 1' "$HDF5_FOUND/include/H5pubconf.h"; then
    problem "HDF5 at $HDF5_FOUND is a serial build ($HDF5_FOUND/include/H5pubconf.h has no H5_HAVE_PARALLEL 1): load the parallel (MPI) HDF5 $hint"
  fi
}
# libclang for bindgen, searched where clang-sys searches: LIBCLANG_PATH, llvm-config,
# LD_LIBRARY_PATH, the usual system directories.
check_libclang() {
  local d dirs=()
  [ -n "${LIBCLANG_PATH:-}" ] && dirs+=("$LIBCLANG_PATH")
  command -v llvm-config >/dev/null 2>&1 && dirs+=("$(llvm-config --libdir)")
  IFS=: read -r -a ld <<< "${LD_LIBRARY_PATH:-}"; dirs+=("${ld[@]}")
  dirs+=(/usr/lib64 /usr/lib /usr/lib/x86_64-linux-gnu /usr/lib/llvm-*/lib /usr/lib64/llvm*/lib)
  for d in "${dirs[@]}"; do
    compgen -G "$d/libclang*.so*" >/dev/null && return 0
  done
  problem "no libclang (for bindgen): module load llvm (or clang), or set LIBCLANG_PATH to the directory of libclang.so"
}
check_python_venv() {
  command -v python3 >/dev/null 2>&1 && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
    || problem "no python3 >= 3.10 with venv/ensurepip on PATH: module load python (3.10 or newer)"
}
# Tools only some tests use; off Debian their absence is reported, not an error.
report_test_tools() {
  command -v ncdump >/dev/null 2>&1 || log "skipped: no ncdump on PATH (module load netcdf-c): the netCDF-4 checks of the tests need it, the build does not"
  command -v udunits2 >/dev/null 2>&1 || log "skipped: no udunits2 on PATH (module load udunits): the CF unit checks of the tests need it, the build does not"
}

if on_debian; then apt_install_missing; fi
mpi_names
check_rust; check_c_compiler; check_mpicc; check_parallel_hdf5; check_libclang; check_python_venv
if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do echo "[setup] error: $p" >&2; done
  exit 1
fi
report_test_tools

# ---- 1) Python venv with libtorch and the readers the tests use ----------------------------
mkdir -p "$THERMALIZER_HOME"
[ -x "$VENV/bin/python" ] || { log "creating venv $VENV"; python3 -m venv "$VENV"; }
if ! grep -qs "__version__ = '$TORCH_VERSION" "$VENV"/lib/python3*/site-packages/torch/version.py; then
  log "installing torch==$TORCH_VERSION (libtorch) into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q --no-deps "torch==$TORCH_VERSION" \
      "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85"
fi
"$VENV/bin/python" -c 'import h5py, xarray, h5netcdf, netCDF4, safetensors, matplotlib, pytest, numpy' 2>/dev/null || {
  log "installing numpy h5py xarray h5netcdf netCDF4 safetensors matplotlib pytest into $VENV"
  "$VENV/bin/pip" install -q numpy h5py xarray h5netcdf netCDF4 safetensors matplotlib pytest
}
TORCH_DIR=$(echo "$VENV"/lib/python3*/site-packages/torch)
grep -q "__version__ = '$TORCH_VERSION" "$TORCH_DIR/version.py" \
  || { echo "[setup] error: $TORCH_DIR/version.py is not torch $TORCH_VERSION" >&2; exit 1; }

# ---- 2) the Python package: PyTorch modules of the models and xarray readers (python/README.md)
# venv-torch is built on the system Python's own CPU torch (Debian's python3-torch).
if on_debian; then SYSTEM_PYTHON=/usr/bin/python3; else SYSTEM_PYTHON=$(command -v python3); fi
if [ -x "$TORCH_VENV/bin/python" ] || "$SYSTEM_PYTHON" -c 'import torch' 2>/dev/null; then
  [ -x "$TORCH_VENV/bin/python" ] || { log "creating venv $TORCH_VENV"; "$SYSTEM_PYTHON" -m venv --system-site-packages "$TORCH_VENV"; }
  "$TORCH_VENV/bin/python" -c 'import torch, numpy, h5py, xarray, h5netcdf, safetensors, pytest; assert numpy.__version__ < "2"' 2>/dev/null || {
    # numpy < 2: Debian's torch is built against numpy 1.
    log "installing numpy<2 h5py xarray h5netcdf safetensors pytest into $TORCH_VENV"
    "$TORCH_VENV/bin/pip" install -q "numpy<2" h5py xarray h5netcdf safetensors pytest
  }
  # The Well's loader, run by tests/python/test_well_export.py on `thermalizer export-well`'s
  # output: --no-deps, as its requirements would pull another torch; einops and fsspec (the version
  # it pins) are what `the_well.data` imports beyond the packages above.
  "$TORCH_VENV/bin/python" -c 'import the_well.data' 2>/dev/null || {
    log "installing the-well==1.2.0 (--no-deps) einops fsspec==2024.10.0 into $TORCH_VENV"
    "$TORCH_VENV/bin/pip" install -q --no-deps "the-well==1.2.0" einops "fsspec==2024.10.0"
  }
  PY_VENVS=("$VENV" "$TORCH_VENV")
else
  log "skipped: venv-torch ($SYSTEM_PYTHON has no CPU torch, Debian's python3-torch): the tests of the PyTorch modules and of export-well need it, the build does not"
  PY_VENVS=("$VENV")
fi
for v in "${PY_VENVS[@]}"; do
  "$v/bin/python" -I -c 'import sys, thermalizer; sys.exit(thermalizer.__file__ != sys.argv[1])' \
      "$REPO/python/thermalizer/__init__.py" 2>/dev/null || {
    log "installing python/ (editable) into $v"
    "$v/bin/pip" install -q --no-deps -e "$REPO/python"
  }
done

# ---- 3) environment for cargo and for running under mpirun as root on small machines ---------
{
  echo "# Written by thermalizer/scripts/setup.sh. Source it before cargo build / mpirun."
  echo "export LIBTORCH=$TORCH_DIR"
  echo "export LIBTORCH_CXX11_ABI=1"
  echo "unset LIBTORCH_USE_PYTORCH"
  echo "export HDF5_DIR=$HDF5_FOUND"
  [ -n "${LIBCLANG_PATH:-}" ] && echo "export LIBCLANG_PATH=$LIBCLANG_PATH"
  echo "export THERMALIZER_PYTHON=$VENV/bin/python"
  [ ${#PY_VENVS[@]} -eq 2 ] && echo "export THERMALIZER_TORCH_PYTHON=$TORCH_VENV/bin/python"
  cat <<'ENVEOF'
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
ENVEOF
  if [ "$THERMALIZER_MPI" = mpich ]; then mpich_env_lines; fi
} > "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
log "ready: source $ENV_FILE"
