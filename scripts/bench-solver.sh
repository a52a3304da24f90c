#!/usr/bin/env bash
# Solver benchmark beside the peer, in one run, each on one core (taskset -c 0), same grids, then a
# table with the ratios and the FFT floor (from our side):
#   --system kolmogorov (default): thermalizer's Kolmogorov solver vs jax-cfd (ForcedNavierStokes2D +
#     crank_nicolson_rk4), f64 and f32; venv from scripts/setup-jaxcfd.sh (jax 0.10.2, jax-cfd 0.2.1).
#   --system qg: thermalizer's two-layer QG solver vs pyqg.QGModel (scripts/bench_pyqg.py), f64 only;
#     venv from scripts/setup-pyqg.sh (pyqg 0.7.2 built against pyfftw). Ours runs twice: with pyqg's
#     exponential filter (the same step as pyqg's) and with the 2/3 rule (the paper's data; pyqg has
#     no such option, so its column repeats the exponential-filter time).
#   scripts/bench-solver.sh [--system kolmogorov|qg] [--grids 64 128 256 512] [--seconds 1.0]
#                           [--rounds 1] [--no-build]
# --rounds R interleaves the two codes R times, grid by grid (ours, then the peer, for one grid; then
# the next grid; then the next round), so both see the same machine state: on a shared VM the speed
# of a core can change by 30-50 % for seconds at a time. The table then gives medians over the
# rounds: of each code's time, of the per-round ratio peer/ours (with its range), and of ours/floor;
# "of minima" is the ratio of the two codes' fastest rounds (the least disturbed time of each).
# --no-build skips `cargo build --release` and uses the binary as it is: $THERMALIZER_BIN, else
# ${CARGO_TARGET_DIR:-target}/release/thermalizer (where cargo build puts it).
set -euo pipefail
cd "$(dirname "$0")/.."
grids=(64 128 256 512); seconds=1.0; system=kolmogorov; build=1; rounds=1
while [ $# -gt 0 ]; do
  case "$1" in
    --grids) shift; grids=(); while [ $# -gt 0 ] && [[ "$1" != --* ]]; do grids+=("$1"); shift; done ;;
    --seconds) seconds=$2; shift 2 ;;
    --system) system=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
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
if [ "$system" = qg ]; then py=$(scripts/setup-pyqg.sh); peer=pyqg; else py=$(scripts/setup-jaxcfd.sh); peer=jax-cfd; fi
echo "# $(date -u +%FT%TZ) $(uname -n), $(nproc) cores, load1 $(cut -d' ' -f1 /proc/loadavg), system $system, $rounds round(s)"
for round in $(seq "$rounds"); do
  for grid in "${grids[@]}"; do
    tag="$out/r$round-$grid"
    if [ "$system" = qg ]; then
      for dealias in exponential two_thirds; do
        taskset -c 0 "$bin" bench solver --system qg --dealias $dealias --grids "$grid" --precision f64 \
          --seconds "$seconds" --json "$tag-ours-$dealias.json" >&2
      done
      taskset -c 0 "$py" scripts/bench_pyqg.py --grids "$grid" --seconds "$seconds" --json "$tag-peer.json" >&2
    else
      taskset -c 0 "$bin" bench solver --grids "$grid" --seconds "$seconds" --json "$tag-ours.json" >&2
      taskset -c 0 "$py" scripts/bench_jaxcfd.py --grids "$grid" --precision f64 f32 --viscosity 1e-3 \
        --seconds "$seconds" --json "$tag-peer.json" >&2
    fi
  done
done
echo "# load1 at end $(cut -d' ' -f1 /proc/loadavg)"
python3 - "$out" "$peer" "$rounds" <<'PY'
import glob, json, os, statistics, sys
out, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
ours, peer = {}, {}   # key -> {round: JSON row}
for r in range(1, rounds + 1):
    for f in sorted(glob.glob(os.path.join(out, f"r{r}-*-ours*.json"))):
        for row in json.load(open(f)):
            if row["solver"] != "native":
                continue
            ours.setdefault((row["grid"], row["precision"], row.get("dealias", "")), {})[r] = row
    for f in sorted(glob.glob(os.path.join(out, f"r{r}-*-peer.json"))):
        for row in json.load(open(f)):
            peer.setdefault((row["grid"], row["precision"]), {})[r] = row
short = name.split("-")[0]
pw = max(len(name) + 3, 11)
qg = any(k[2] for k in ours)
dealias = f" {'dealias':>11}" if qg else ""
span = f" {'(range)':>11} {'of minima':>9}" if rounds > 1 else ""
print(f"{'grid':>5} {'prec':>4}{dealias} {'thermalizer ms':>15} {name + ' ms':>{pw}} {short + '/ours':>9}{span} {'FFT floor ms':>13} {'ours/floor':>11}")
med = statistics.median
for key in sorted(ours):
    o, p = ours[key], peer.get(key[:2], {})
    om = med(x["ms_per_step"] for x in o.values())
    pm = med(x["ms_per_step"] for x in p.values()) if p else float("nan")
    ratios = [p[r]["ms_per_step"] / o[r]["ms_per_step"] for r in o if r in p]
    ratio = med(ratios) if ratios else float("nan")
    floor = med(x["floor_ms"] for x in o.values())
    vs_floor = med(x["ms_per_step"] / x["floor_ms"] for x in o.values())
    d = f" {key[2]:>11}" if qg else ""
    # Ratio of each code's fastest round: the least disturbed time of each on a shared machine.
    minima = min(x["ms_per_step"] for x in p.values()) / min(x["ms_per_step"] for x in o.values()) if p else float("nan")
    rng = f" {min(ratios):>5.2f}-{max(ratios):<5.2f} {minima:>9.2f}" if rounds > 1 and ratios else (f" {'':>21}" if rounds > 1 else "")
    print(f"{key[0]:>5} {key[1]:>4}{d} {om:>15.4f} {pm:>{pw}.4f} {ratio:>9.2f}{rng} {floor:>13.4f} {vs_floor:>11.2f}")
PY
