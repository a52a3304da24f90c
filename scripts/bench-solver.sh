#!/usr/bin/env bash
# Solver benchmark beside the peer, in one run: thermalizer's Kolmogorov solver and jax-cfd's
# (ForcedNavierStokes2D + crank_nicolson_rk4), each on one core (taskset -c 0), same grids and
# precisions, then a table with the ratios and the FFT floor.
#   scripts/bench-solver.sh [--grids 64 128 256 512] [--seconds 1.0]
# The jax-cfd venv is made by scripts/setup-jaxcfd.sh (pinned jax 0.10.2, jax-cfd 0.2.1).
set -euo pipefail
cd "$(dirname "$0")/.."
grids=(64 128 256 512); seconds=1.0
while [ $# -gt 0 ]; do
  case "$1" in
    --grids) shift; grids=(); while [ $# -gt 0 ] && [[ "$1" != --* ]]; do grids+=("$1"); shift; done ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
# shellcheck disable=SC1091
source "${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/env.sh"
cargo build --release --locked -q
py=$(scripts/setup-jaxcfd.sh)
out=$(mktemp -d)
echo "# $(date -u +%FT%TZ) $(uname -n), $(nproc) cores, load1 $(cut -d' ' -f1 /proc/loadavg)"
taskset -c 0 target/release/thermalizer bench solver --grids "${grids[@]}" --seconds "$seconds" --json "$out/ours.json" >&2
taskset -c 0 "$py" scripts/bench_jaxcfd.py --grids "${grids[@]}" --precision f64 f32 --viscosity 1e-3 \
  --seconds "$seconds" --json "$out/jax.json" >&2
python3 - "$out/ours.json" "$out/jax.json" <<'PY'
import json, sys
ours = {(r["grid"], r["precision"]): r for r in json.load(open(sys.argv[1]))}
jax = {(r["grid"], r["precision"]): r for r in json.load(open(sys.argv[2]))}
print(f"{'grid':>5} {'prec':>4} {'thermalizer ms':>15} {'jax-cfd ms':>11} {'jax/ours':>9} {'FFT floor ms':>13} {'ours/floor':>11}")
for key in sorted(ours):
    o, j = ours[key], jax.get(key)
    jm = j["ms_per_step"] if j else float("nan")
    print(f"{key[0]:>5} {key[1]:>4} {o['ms_per_step']:>15.4f} {jm:>11.4f} {jm / o['ms_per_step']:>9.2f} "
          f"{o['floor_ms']:>13.4f} {o['ms_per_step'] / o['floor_ms']:>11.2f}")
PY
