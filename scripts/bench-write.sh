#!/usr/bin/env bash
# Parallel write throughput of `thermalizer generate` at 1, 2 and 4 ranks (default): an
# I/O-heavy ensemble (64 members × 400 states of 64², one solver step per state, 420 MB) is
# generated from scratch at each rank count; the table shows wall time and the time and MB/s
# of the collective HDF5 writes (the slowest rank's), as logged by the run.
#   scripts/bench-write.sh [RANKS...]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source "${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/env.sh"
cargo build --release --locked -q
bin=${CARGO_TARGET_DIR:-target}/release/thermalizer # where cargo build puts it
if [ $# -gt 0 ]; then ranks=("$@"); else ranks=(1 2 4); fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/thermalizer-bench-write.XXXX")
echo "# $(date -u +%FT%TZ) $(uname -n), $(nproc) cores, run dir on $(df --output=fstype "$dir" | tail -1)"
printf '%6s %10s %12s %12s %10s\n' ranks "wall s" "MB written" "write s" "MB/s"
for np in "${ranks[@]}"; do
  rm -rf "$dir/run"
  start=$(date +%s.%N)
  line=$(OMP_NUM_THREADS=1 mpirun -np "$np" "$bin" generate --config configs/kolmogorov-quickstart.yaml \
    --set run.dir="$dir/run" --set system.grid=64 --set system.output_grid=64 --set generate.members=64 \
    --set generate.samples=400 --set generate.steps_per_sample=1 --set generate.spinup_steps=0 \
    --set run.log_interval=1000 2>&1 | grep "HDF5 writes")
  end=$(date +%s.%N)
  mb=$(sed -E 's/.*\(([0-9.]+) MB\).*/\1/' <<<"$line")
  ws=$(sed -E 's/.*HDF5 writes ([0-9.]+)s.*/\1/' <<<"$line")
  rate=$(sed -E 's/.*\(([0-9.]+) MB\/s\).*/\1/' <<<"$line")
  printf '%6s %10.2f %12s %12s %10s\n' "$np" "$(awk "BEGIN{print $end - $start}")" "$mb" "$ws" "$rate"
done
rm -rf "$dir"
