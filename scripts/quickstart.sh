#!/usr/bin/env bash
# The main job, on a fresh Debian/Ubuntu machine or an existing checkout:
#   scripts/quickstart.sh [--train-all] [--set key=value ...]
# installs what is missing, builds thermalizer, and runs the whole method on configs/quickstart.yaml
# (two-layer QG) with mpirun on all cores: generate the ensemble, train the emulator, calibrate
# the shipped thermalizer (data/quickstart/thermalizer.safetensors) on clean validation states,
# roll out the emulator alone, thermalized and filtered from the same initial states, and write
# the report. Prints the report's path and the headline numbers. --train-all trains the
# thermalizer too (4000 updates: 17 minutes on one core of a 2-core VM). Rerunning skips the stages
# already done; an interrupted run resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
sets=()
for arg in "$@"; do
    case $arg in
    --train-all) sets+=(--set rollout.thermalizer_file=null) ;;
    *) sets+=("$arg") ;;
    esac
done
scripts/setup.sh
# shellcheck disable=SC1091
source "${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/env.sh"
cargo build --release --locked
ranks=${THERMALIZER_RANKS:-$(nproc)}
bin=${CARGO_TARGET_DIR:-target}/release/thermalizer
"$bin" validate --config configs/quickstart.yaml "${sets[@]}" | tail -n 12
start=$(date +%s)
out=$(OMP_NUM_THREADS=1 mpirun -np "$ranks" "$bin" pipeline --config configs/quickstart.yaml "${sets[@]}")
echo
echo "$out" | tail -n 1
echo "Pipeline: $(( $(date +%s) - start )) s on $ranks rank(s)."
echo "Report:   $(echo "$out" | grep 'summary.md$' | tail -n 1)  (figures beside it)"
echo "Outputs:  h5dump -H <run.dir>/rollout.h5   or, in Python:  xarray.open_dataset(<run.dir>/rollout.h5, engine='h5netcdf')"
