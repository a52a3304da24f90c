#!/usr/bin/env bash
# Every GPU check of thermalizer in one run, from a bundle made by scripts/device-bundle.sh, on
# a machine with CUDA and PyTorch 2.11 (libtorch comes from its torch package):
#   BUNDLE/gpu-checks.sh          results and logs under $OUT (default BUNDLE/out)
# Environment: PYTHON (the python holding torch, default python3), NP (CPU ranks for the
# generation steps, default 8), STEP_TIMEOUT (seconds each step may take, default 150), LOGS (if
# set, a .tgz of every log under $OUT, refreshed after each step, for machines that return few
# files), STEPS (if set, only the steps so named run, e.g. "generate-cpu train-1-nccl").
# Steps, most important first:
# 1. `thermalizer info`: libtorch sees CUDA (fails otherwise);
# 2. the quickstart trajectories generated on NP CPU ranks (Open MPI, parallel HDF5), then the
#    quickstart pipeline with --device cuda on one rank: both trainings on the GPU (the NCCL
#    reducer is built; one rank has nothing to reduce), thermalized rollout on the GPU, report;
# 3. 20 emulator updates in full float32 on one rank with `--allreduce nccl` (NCCL's calls on
#    the gradient in device memory; on one rank they leave it unchanged), on one rank with
#    `--allreduce mpi`, and on two ranks sharing the GPU(s) (`auto`: NCCL with 2+ GPUs; with one
#    GPU NCCL refuses two ranks on one device and every rank falls back to MPI); their weights,
#    Adam moments and loss curves compared;
# 4. the shipped small-experiment models (data/kolmogorov-small, no training) rolled out on the
#    GPU and on the CPU from the same trajectories: their short-horizon skill should agree;
# 5. the batched libtorch solvers on the GPU with `generate --device cuda`: a 256-member
#    quickstart generation, and 256 members of two-layer QG (configs/qg.yaml: 256², 2/3 rule,
#    Smagorinsky; 115 steps);
# 6. `bench train` on the GPU at the paper's model size (45.8 M parameters, 64², one channel)
#    and the quickstart model, beside the same models in PyTorch eager on the same GPU;
# 7. `bench rollout` on the GPU for the same two models, in each rollout.inference_precision
#    (f32, bf16, f16);
# 8. `bench solver --device cuda` (256 members per step) against the native CPU solver after 20
#    steps, with its speed beside the native one-core solver: the Kolmogorov solver, then the
#    QG model under each dealiasing rule;
# 9. the hardware-efficiency table, $OUT/hardware.md (scripts/hardware-table.py): the GPU's
#    nominal peaks and measured copy bandwidth, the FLOPs per sample of both models, then per
#    benchmark of steps 6-8 its rate, achieved bandwidth (solvers) or FLOP/s (train, rollout),
#    % of nominal peak and of copy bandwidth, and the goals (solvers >= 50 % of peak bandwidth
#    at 256² and up; a thermalized step with 6 passes <= 4 emulator steps).
# Each step's stdout/stderr go to $OUT/<step>.{out,err}; a summary line per step is printed.
set -uo pipefail
B=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$B/out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
NP=${NP:-8}
STEP_TIMEOUT=${STEP_TIMEOUT:-150}
site=$($PY -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))') \
  || { echo "FAIL: python with torch not found (set PYTHON)"; exit 1; }
libs=$site/torch/lib
for d in "$site"/nvidia/*/lib "$site"/nvidia/cu*/lib; do [ -d "$d" ] && libs=$libs:$d; done
export LD_LIBRARY_PATH=$B/lib:$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OPAL_PREFIX=$B OMPI_MCA_mca_base_component_path=$B/openmpi/plugins \
       PMIX_MCA_mca_base_component_path=$B/pmix/plugins \
       OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_mca_base_component_show_load_errors=0 \
       OMPI_MCA_plm_rsh_agent=false OMPI_MCA_rmaps_base_oversubscribe=1 \
       OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HDF5_USE_FILE_LOCKING=FALSE \
       OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
T=$B/thermalizer
mpi=("$B/bin/mpirun" -x LD_LIBRARY_PATH -x OMP_NUM_THREADS=1)
failed=0
step() { # name command...
  local name=$1 t0 rc; shift
  if [ -n "${STEPS:-}" ] && [[ " $STEPS " != *" $name "* ]]; then return; fi
  t0=$(date +%s%N)
  timeout -k 5 "$STEP_TIMEOUT" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; rc=$?
  printf '%-17s rc=%-3s %6d ms\n' "$name" "$rc" $(( ($(date +%s%N) - t0) / 1000000 ))
  [ $rc = 0 ] || { failed=1; tail -n 5 "$OUT/$name.err"; }
  [ -z "${LOGS:-}" ] || tar czf "$LOGS" -C "$OUT" --exclude='*.h5' --exclude='*.h5.partial' \
    --exclude='*.safetensors' --exclude='*.png' . 2>/dev/null
}
step info "$T" info
grep -q 'CUDA *available' "$OUT/info.out" || { echo "FAIL: libtorch does not see CUDA"; cat "$OUT/info.out"; failed=1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

quick=(--config "$B/configs/kolmogorov-quickstart.yaml" --set "run.dir=$OUT/quickstart")
step generate-cpu "${mpi[@]}" -np "$NP" "$T" generate "${quick[@]}"
step pipeline "$T" pipeline "${quick[@]}" --device cuda
grep -h 'gradient allreduce\|NCCL\|median stable horizon' "$OUT/pipeline.err" "$OUT/pipeline.out" | head -n 6

# Full float32 here (TF32 convolutions alone differ by ~1e-3 after 20 updates; docs/performance.md).
for run in "1 nccl" "1 mpi" "2 auto"; do
  set -- $run
  mkdir -p "$OUT/dp-$1-$2" && cp "$OUT/quickstart/trajectories.h5" "$OUT/dp-$1-$2/" 2>/dev/null
  step "train-$1-$2" env NVIDIA_TF32_OVERRIDE=0 NCCL_DEBUG=VERSION "${mpi[@]}" -np "$1" "$T" train emulator --device cuda \
    --allreduce "$2" --config "$B/configs/kolmogorov-quickstart.yaml" --set "run.dir=$OUT/dp-$1-$2" \
    --set emulator.training.max_updates=20
  grep -h 'gradient allreduce' "$OUT/train-$1-$2.err" | head -n 2
  grep -h -o 'NCCL version.*' "$OUT/train-$1-$2.out" | head -n 1
done
$PY -c 'import torch; print("torch NCCL", torch.cuda.nccl.version())' 
compare() { # name dir-a dir-b: weights/moments and loss curves of two emulator trainings
  step "$1" "$PY" - "$2/emulator" "$3/emulator" <<'EOF'
import sys, numpy as np
from safetensors.numpy import load_file
a, b = (load_file(f"{d}/latest.safetensors") for d in sys.argv[1:3])
rel = max(float(np.abs(a[k] - b[k]).max() / max(np.abs(a[k]).max(), 1e-30)) for k in a)
loss = [[float(l.split(",")[4]) for l in open(f"{d}/history.csv").read().split()[1:]] for d in sys.argv[1:3]]
dl = max(abs(x - y) / abs(x) for x, y in zip(*loss))
print(f"{sys.argv[1]} vs {sys.argv[2]} after {len(loss[0])} updates: weights/moments max relative "
      f"difference {rel:.2e}, loss curve {dl:.2e} (the CPU test's bounds: 1e-3 and 1e-5)")
sys.exit(0 if rel < 1e-3 and dl < 1e-5 else 1)
EOF
  cat "$OUT/$1.out"
}
compare nccl-vs-mpi "$OUT/dp-1-nccl" "$OUT/dp-1-mpi"
compare 1-vs-2-ranks "$OUT/dp-1-nccl" "$OUT/dp-2-auto"

small=(--config "$B/configs/kolmogorov-small.yaml" --set "rollout.models=$B/data/kolmogorov-small"
       --set generate.members=8 --set generate.samples=24 --set rollout.members=2 --set rollout.start_stride=2
       --set rollout.steps=20 --set rollout.spectrum_every=10)
step shipped-generate "${mpi[@]}" -np "$NP" "$T" generate "${small[@]}" --set "run.dir=$OUT/shipped-gpu"
mkdir -p "$OUT/shipped-cpu" && cp "$OUT/shipped-gpu/trajectories.h5" "$OUT/shipped-cpu/"
step shipped-gpu "$T" rollout "${small[@]}" --device cuda --set "run.dir=$OUT/shipped-gpu"
step shipped-cpu "$T" rollout "${small[@]}" --device cpu --set "run.dir=$OUT/shipped-cpu"
for d in gpu cpu; do
  step "report-$d" "$T" report "${small[@]}" --set "run.dir=$OUT/shipped-$d"
  echo "shipped models on $d:"; grep -h -A4 'Short-horizon skill' "$OUT/shipped-$d/report/summary.md"
done

step generate-gpu "$T" generate --device cuda --config "$B/configs/kolmogorov-quickstart.yaml" \
  --set "run.dir=$OUT/generate-gpu" --set generate.members=256
step generate-gpu-qg "$T" generate --device cuda --config "$B/configs/qg.yaml" --set "run.dir=$OUT/generate-gpu-qg" \
  --set generate.members=256 --set generate.samples=4 --set generate.spinup_steps=100

paper='[{"name":"paper","hidden":64,"dim_mults":[2,2,2],"blocks":2,"channels":1,"grid":64,"batch":64},
        {"name":"quickstart","hidden":16,"dim_mults":[1,2,2],"blocks":1,"channels":1,"grid":64,"batch":64}]'
step bench-train "$T" bench train --device cuda --models "$paper" --threads 8 --seconds 2 --repeats 3 \
  --json "$OUT/bench-train.json"
step bench-train-torch "$PY" "$B/bench_torch_train.py" --device cuda --models "$paper" --threads 8 \
  --seconds 2 --repeats 3 --json "$OUT/bench-train-torch.json"
cat "$OUT/bench-train.out" "$OUT/bench-train-torch.out"
# One step per rollout.inference_precision (each as long as the float32 one); thermalized/s is
# member-steps per second.
for p in f32 bf16 f16; do
  step "bench-rollout-$p" "$T" bench rollout --device cuda --models "$paper" --batches 1 16 64 256 --precisions "$p" \
    --seconds 1 --repeats 3 --levels 1000 --json "$OUT/bench-rollout-$p.json"
done
cat "$OUT"/bench-rollout-{f32,bf16,f16}.out
step solver "$T" bench solver --grids 64 128 256 512 --precision f64 f32 --seconds 0.5 --repeats 3 \
  --device cuda --batch 256 --json "$OUT/solver.json"
cat "$OUT/solver.out"
for d in two_thirds exponential; do
  step "solver-qg-$d" "$T" bench solver --system qg --dealias "$d" --grids 64 128 256 512 --precision f64 f32 \
    --seconds 0.5 --repeats 3 --device cuda --batch 256 --json "$OUT/solver-qg-$d.json"
  cat "$OUT/solver-qg-$d.out"
done
step flops "$PY" "$B/bench_torch_train.py" --flops --models "$paper" --levels 1000 --json "$OUT/flops.json"
step device-peaks "$PY" "$B/hardware-table.py" device --device cuda --json "$OUT/device.json"
# The table of whatever benchmarks of steps 6-8 wrote their JSON.
present() { for f in "$@"; do [ -s "$f" ] && echo "$f"; done; }
mapfile -t solvers < <(present "$OUT"/solver.json "$OUT"/solver-qg-{two_thirds,exponential}.json)
mapfile -t trains < <(present "$OUT"/bench-train.json "$OUT"/bench-train-torch.json)
mapfile -t rollouts < <(present "$OUT"/bench-rollout-{f32,bf16,f16}.json)
step hardware "$PY" "$B/hardware-table.py" table --device-json "$OUT/device.json" --flops "$OUT/flops.json" \
  --solver "${solvers[@]}" --train "${trains[@]}" --rollout "${rollouts[@]}"
[ -s "$OUT/hardware.out" ] && cp "$OUT/hardware.out" "$OUT/hardware.md" && cat "$OUT/hardware.md"
exit $failed
