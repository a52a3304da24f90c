#!/usr/bin/env bash
# Installs what thermalizer needs on Debian/Ubuntu, skipping what is already there (idempotent):
#   1. apt: OpenMPI 4.1, Debian's parallel HDF5 built against it (libhdf5-openmpi-dev, h5dump),
#      libclang (bindgen for mpi-sys), a C/C++ toolchain, Debian's CPU PyTorch (python3-torch),
#      netCDF-C's ncdump (netcdf-bin) and UDUNITS-2's udunits2 (udunits-bin) for the tests that check
#      the outputs are netCDF-4/CF;
#   2. a Python venv with libtorch from the PyPI torch==2.11.0 wheel (tch 0.24 needs exactly this
#      version; --no-deps plus the two small CUDA runtime wheels libtorch_cpu.so links against)
#      and h5py, xarray, h5netcdf, netCDF4, safetensors, matplotlib, pytest for the tests that read our files the way users do;
#   3. the Python package python/ (import thermalizer), editable, in that venv (its readers) and
#      in venv-torch/, a venv of the system Python with Debian's CPU PyTorch (python3-torch):
#      the torch wheel above is a CUDA build whose `import torch` needs the CUDA libraries;
#      venv-torch also gets The Well's loader (the-well, --no-deps) for the export-well test;
#   4. an env file that points cargo at libtorch and the MPI flavour of HDF5.
# Usage: scripts/setup.sh            then: source "$THERMALIZER_HOME/env.sh"
# Knobs: THERMALIZER_HOME (default ~/.local/share/thermalizer) holds venv/ and env.sh.
set -euo pipefail
TORCH_VERSION=2.11.0
THERMALIZER_HOME=${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}
VENV=$THERMALIZER_HOME/venv
ENV_FILE=$THERMALIZER_HOME/env.sh
log() { echo "[setup] $*"; }

# 1) system packages
APT_PKGS=(build-essential pkg-config libclang-dev libopenmpi-dev openmpi-bin
          libhdf5-openmpi-dev hdf5-tools python3-venv git procps python3-torch
          netcdf-bin udunits-bin)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  echo "[setup] error: no Rust toolchain (cargo) found; install one with rustup (https://rustup.rs)" >&2
  exit 1
fi

# 2) Python venv with libtorch and the readers the tests use
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

# 3) the Python package: PyTorch modules of the models and xarray readers (python/README.md)
REPO=$(cd "$(dirname "$0")/.." && pwd)
TORCH_VENV=$THERMALIZER_HOME/venv-torch
[ -x "$TORCH_VENV/bin/python" ] || { log "creating venv $TORCH_VENV"; /usr/bin/python3 -m venv --system-site-packages "$TORCH_VENV"; }
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
for v in "$VENV" "$TORCH_VENV"; do
  "$v/bin/python" -I -c 'import sys, thermalizer; sys.exit(thermalizer.__file__ != sys.argv[1])' \
      "$REPO/python/thermalizer/__init__.py" 2>/dev/null || {
    log "installing python/ (editable) into $v"
    "$v/bin/pip" install -q --no-deps -e "$REPO/python"
  }
done

# 4) environment for cargo and for running under mpirun as root on small machines
cat > "$ENV_FILE.tmp" <<ENVEOF
# Written by thermalizer/scripts/setup.sh. Source it before cargo build / mpirun.
export LIBTORCH=$TORCH_DIR
export LIBTORCH_CXX11_ABI=1
unset LIBTORCH_USE_PYTORCH
export HDF5_DIR=/usr/lib/x86_64-linux-gnu/hdf5/openmpi
export THERMALIZER_PYTHON=$VENV/bin/python
export THERMALIZER_TORCH_PYTHON=$TORCH_VENV/bin/python
[ -f "\$HOME/.cargo/env" ] && . "\$HOME/.cargo/env"
if [ "\$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
ENVEOF
mv "$ENV_FILE.tmp" "$ENV_FILE"
log "ready: source $ENV_FILE"
