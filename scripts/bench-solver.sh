#!/usr/bin/env bash
# Solver benchmark beside the peer, in one run, each on one core (taskset -c 0), same grids, then a
# table with the ratios and the FFT floor (from our side):
#   --system kolmogorov (default): thermalizer's Kolmogorov solver vs jax-cfd (ForcedNavierStokes2D +
#     crank_nicolson_rk4), f64 and f32; venv from scripts/setup-jaxcfd.sh (jax 0.10.2, jax-cfd 0.2.1).
#   --system qg: thermalizer's two-layer QG solver vs pyqg.QGModel (scripts/bench_pyqg.py), f64 only;
#     venv from scripts/setup-pyqg.sh (pyqg 0.7.2 built against pyfftw). Ours runs twice: with pyqg's
#     exponential filter (the same step as pyqg's) and with the 2/3 rule (the paper's data; pyqg has
#     no such option, so its column repeats the exponential-filter time).
#   scripts/bench-solver.sh [--system kolmogorov|qg] [--grids 64 128 256 512] [--seconds 1.0] [--no-build]
# --no-build skips `cargo build --release` and uses the binary as it is: $THERMALIZER_BIN, else
# ${CARGO_TARGET_DIR:-target}/release/thermalizer (where cargo build puts it).
set -euo pipefail
cd "$(dirname "$0")/.."
grids=(64 128 256 512); seconds=1.0; system=kolmogorov; build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --grids) shift; grids=(); while [ $# -gt 0 ] && [[ "$1" != --* ]]; do grids+=("$1"); shift; done ;;
    --seconds) seconds=$2; shift 2 ;;
    --system) system=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$system" in kolmogorov|qg) ;; *) echo "unknown --system $system (kolmogorov|qg)" >&2; exit 2 ;; esac
# shellcheck disable=SC1091
source "${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/env.sh"
[ "$build" = 0 ] || cargo build --release --locked -q
bin=${THERMALIZER_BIN:-${CARGO_TARGET_DIR:-target}/release/thermalizer}
[ -x "$bin" ] || { echo "bench-solver.sh: no binary $bin" >&2; exit 2; }
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
if [ "$system" = qg ]; then
  py=$(scripts/setup-pyqg.sh)
  echo "# $(date -u +%FT%TZ) $(uname -n), $(nproc) cores, load1 $(cut -d' ' -f1 /proc/loadavg), system qg"
  for dealias in exponential two_thirds; do
    taskset -c 0 "$bin" bench solver --system qg --dealias $dealias --grids "${grids[@]}" --precision f64 \
      --seconds "$seconds" --json "$out/ours-$dealias.json" >&2
  done
  python3 -c 'import json, sys; json.dump(sum((json.load(open(f)) for f in sys.argv[2:]), []), open(sys.argv[1], "w"))' \
    "$out/ours.json" "$out"/ours-*.json
  taskset -c 0 "$py" scripts/bench_pyqg.py --grids "${grids[@]}" --seconds "$seconds" --json "$out/peer.json" >&2
  peer=pyqg
else
  py=$(scripts/setup-jaxcfd.sh)
  echo "# $(date -u +%FT%TZ) $(uname -n), $(nproc) cores, load1 $(cut -d' ' -f1 /proc/loadavg)"
  taskset -c 0 "$bin" bench solver --grids "${grids[@]}" --seconds "$seconds" --json "$out/ours.json" >&2
  taskset -c 0 "$py" scripts/bench_jaxcfd.py --grids "${grids[@]}" --precision f64 f32 --viscosity 1e-3 \
    --seconds "$seconds" --json "$out/peer.json" >&2
  peer=jax-cfd
fi
if [ "$system" = qg ]; then echo "# load1 at end $(cut -d' ' -f1 /proc/loadavg)"; fi
python3 - "$out/ours.json" "$out/peer.json" "$peer" <<'PY'
import json, sys
ours = {(r["grid"], r["precision"], r.get("dealias", "")): r for r in json.load(open(sys.argv[1]))}
peer = {(r["grid"], r["precision"]): r for r in json.load(open(sys.argv[2]))}
name = sys.argv[3]; short = name.split("-")[0]
pw = max(len(name) + 3, 11)
qg = any(k[2] for k in ours)
dealias = f" {'dealias':>11}" if qg else ""
print(f"{'grid':>5} {'prec':>4}{dealias} {'thermalizer ms':>15} {name + ' ms':>{pw}} {short + '/ours':>9} {'FFT floor ms':>13} {'ours/floor':>11}")
for key in sorted(ours):
    o, p = ours[key], peer.get(key[:2])
    pm = p["ms_per_step"] if p else float("nan")
    d = f" {key[2]:>11}" if qg else ""
    print(f"{key[0]:>5} {key[1]:>4}{d} {o['ms_per_step']:>15.4f} {pm:>{pw}.4f} {pm / o['ms_per_step']:>9.2f} "
          f"{o['floor_ms']:>13.4f} {o['ms_per_step'] / o['floor_ms']:>11.2f}")
PY
