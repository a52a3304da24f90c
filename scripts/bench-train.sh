#!/usr/bin/env bash
# Training-throughput benchmark beside PyTorch, in one run: one update of the emulator UNet (forward,
# MSE loss, backward, clip_grad_norm 1.0, AdamW step; float32, CPU) timed by
#   `thermalizer bench train` (tch/libtorch, src/nn/unet.rs) and
#   scripts/bench_torch_train.py (PyTorch eager, the same ModernUnet; torch 2.11.0 from PyPI in the
#   venv of scripts/setup-torch-bench.sh, the same version as our binary's libtorch),
# for each model and thread count, then a merged table (samples/s and the ratio thermalizer/pytorch),
# then weak scaling of our data-parallel training under mpirun (each rank trains its own batch of
# the first model, 1 thread per rank; gradients allreduced): ms/update and efficiency t1/tP.
#   scripts/bench-train.sh [--models JSON] [--threads 1 2] [--seconds 5.0] [--repeats 3] [--ranks 1 2 4] [--no-build]
# --models: a JSON list of {"name","hidden","dim_mults","blocks","channels","grid","batch"}; default
#   quickstart (hidden 16, dim_mults [1,2,2], 1 block) and w32-l4 (hidden 32, dim_mults [1,2,2,2],
#   2 blocks), both 1 channel, 64², batch 32.
# --no-build skips `cargo build --release --locked` and uses ${CARGO_TARGET_DIR:-target}/release/thermalizer.
# stdout is the summary (machine, date, tables: paste into docs/performance.md); each code's own table
# goes to stderr. OMP_NUM_THREADS is unset: both codes set their thread counts themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
models='[{"name":"quickstart","hidden":16,"dim_mults":[1,2,2],"blocks":1,"channels":1,"grid":64,"batch":32},
 {"name":"w32-l4","hidden":32,"dim_mults":[1,2,2,2],"blocks":2,"channels":1,"grid":64,"batch":32}]'
threads=(1 2); ranks=(1 2 4); seconds=5.0; repeats=3; build=1
list() { local -n _arr=$1; shift; _arr=(); while [ $# -gt 0 ] && [[ "$1" != --* ]]; do _arr+=("$1"); shift; done; }
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models=$2; shift 2 ;;
    --threads) shift; list threads "$@"; shift ${#threads[@]} ;;
    --ranks) shift; list ranks "$@"; shift ${#ranks[@]} ;;
    --seconds) seconds=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#threads[@]} -gt 0 ] && [ ${#ranks[@]} -gt 0 ] || { echo "--threads and --ranks need values" >&2; exit 2; }

scripts/setup.sh >&2
torch_py=$(scripts/setup-torch-bench.sh)
# shellcheck disable=SC1091
source "${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/env.sh"   # cargo, LIBTORCH; mpirun as root + oversubscribe
py=$THERMALIZER_PYTHON                                               # the venv's python, for the JSON work
unset OMP_NUM_THREADS
bin=${CARGO_TARGET_DIR:-target}/release/thermalizer
[ "$build" = 0 ] || cargo build --release --locked -q
[ -x "$bin" ] || { echo "no binary at $bin (drop --no-build)" >&2; exit 1; }

# validate the model list and pick the first model for the scaling runs
scaling_model=$("$py" - "$models" <<'PY'
import json, sys
models = json.loads(sys.argv[1])
keys = {"name", "hidden", "dim_mults", "blocks", "channels", "grid", "batch"}
if not isinstance(models, list) or not models or any(not isinstance(m, dict) or keys - set(m) for m in models):
    sys.exit(f"--models must be a non-empty JSON list of objects with keys {sorted(keys)}")
print(json.dumps(models[:1], separators=(",", ":")))
PY
)
models=$("$py" -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1]), separators=(",", ":")))' "$models")

out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
load1() { cut -d' ' -f1 /proc/loadavg; }
echo "# $(date -u +%FT%TZ) $(uname -n): $(lscpu | sed -n 's/^Model name: *//p' | head -1), nproc $(nproc), load1 $(load1)"
echo "# thermalizer $(git describe --always --dirty 2>/dev/null || echo '?') vs $("$torch_py" -c 'import torch; print("torch", torch.__version__)') eager;" \
     "float32, CPU; ${seconds} s per timed block, median of ${repeats} blocks after 2 warm-up updates"

"$bin" bench train --models "$models" --threads "${threads[@]}" --seconds "$seconds" --repeats "$repeats" \
  --json "$out/thermalizer.json" >&2
"$torch_py" scripts/bench_torch_train.py --models "$models" --threads "${threads[@]}" --seconds "$seconds" \
  --repeats "$repeats" --json "$out/pytorch.json" >&2

"$py" - "$out/thermalizer.json" "$out/pytorch.json" "$models" <<'PY'
import json, math, sys

def rows(path):
    text = open(path).read().strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:                      # JSON lines
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        data = data.get("rows", [data])
    return {(r["model"], int(r["threads"])): r for r in data}

ours, peer = rows(sys.argv[1]), rows(sys.argv[2])
order = [m["name"] for m in json.loads(sys.argv[3])]
batch = {m["name"]: m["batch"] for m in json.loads(sys.argv[3])}
nan = float("nan")
print()
print(f"{'model':14} {'threads':>7} {'batch':>5} {'thermalizer samples/s':>22} {'pytorch samples/s':>18} "
      f"{'ratio':>6}   {'thermalizer ms':>14} {'pytorch ms':>10}")
for key in sorted(set(ours) | set(peer), key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k)):
    o, p = ours.get(key, {}), peer.get(key, {})
    os_, ps = o.get("samples_per_s", nan), p.get("samples_per_s", nan)
    ratio = os_ / ps if ps and not math.isnan(ps) else nan
    print(f"{key[0]:14} {key[1]:7d} {o.get('batch', p.get('batch', batch.get(key[0], 0))):5d} {os_:22.1f} {ps:18.1f} "
          f"{ratio:6.2f}   {o.get('ms_per_update', nan):14.2f} {p.get('ms_per_update', nan):10.2f}")
PY

echo
echo "# weak scaling: mpirun -np P, $(echo "$scaling_model" | "$py" -c 'import json, sys; m = json.load(sys.stdin)[0]; print(m["name"], "batch", m["batch"], "per rank")'), 1 thread per rank"
for p in "${ranks[@]}"; do
  [ "$p" -le "$(nproc)" ] || echo "# note: P=$p > nproc $(nproc): ranks share cores (oversubscribed)"
  mpirun --oversubscribe -np "$p" "$bin" bench train --models "$scaling_model" --threads 1 --seconds "$seconds" \
    --repeats "$repeats" --json "$out/scaling-$p.json" >&2
done
"$py" - "$out" "${ranks[@]}" <<'PY'
import json, os, sys
out, ranks = sys.argv[1], [int(p) for p in sys.argv[2:]]

def row(path):
    text = open(path).read().strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        data = data.get("rows", [data])
    return data[0]

ms = {p: row(os.path.join(out, f"scaling-{p}.json"))["ms_per_update"] for p in ranks}
t1 = ms.get(1)
print(f"{'P':>3} {'ms/update':>10} {'efficiency t1/tP':>17}")
for p in ranks:
    eff = f"{t1 / ms[p]:17.2f}" if t1 else f"{'(no P=1)':>17}"
    print(f"{p:3d} {ms[p]:10.2f} {eff}")
PY
echo "# load1 at end $(load1)"
