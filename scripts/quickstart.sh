#!/usr/bin/env bash
# The main job, on a fresh Debian/Ubuntu machine or an existing checkout:
#   scripts/quickstart.sh [--set key=value ...]
# installs what is missing, builds thermalizer, generates the quickstart ensemble
# (configs/quickstart.yaml) on all cores with mpirun, and prints where the file is.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# shellcheck disable=SC1091
source "${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/env.sh"
cargo build --release --locked
ranks=${THERMALIZER_RANKS:-$(nproc)}
bin=target/release/thermalizer
$bin validate --config configs/quickstart.yaml "$@" | tail -n 9
file=$(OMP_NUM_THREADS=1 mpirun -np "$ranks" "$bin" generate --config configs/quickstart.yaml "$@")
echo
echo "Ensemble written to: $file"
echo "Look at it:  h5dump -H $file   or, in Python:  xarray.open_dataset('$file', engine='h5netcdf')"
