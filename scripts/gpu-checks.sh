#!/usr/bin/env bash
# Every GPU check of thermalizer in one run, from a bundle made by scripts/device-bundle.sh, on
# a machine with CUDA and PyTorch 2.11 (libtorch comes from its torch package):
#   BUNDLE/gpu-checks.sh          results and logs under $OUT (default BUNDLE/out)
# 1. `thermalizer info`: libtorch sees CUDA (fails otherwise);
# 2. the quickstart pipeline with --device cuda: generation (CPU solver), both trainings on the
#    GPU with the NCCL reducer, thermalized rollout on the GPU, report;
# 3. the batched libtorch Kolmogorov solver on the GPU: a 256-member quickstart generation with
#    `generate --device cuda`, and `bench solver --device cuda` (256 members per step) against
#    the native CPU solver after 20 steps, with its speed beside the native one-core solver;
# 4. two ranks on the GPU(s) (NCCL with 2+ GPUs, else the MPI fallback) for 20 updates;
# 5. `bench train` and `bench rollout` on the GPU at the paper's model size (45.8 M / 53.3 M
#    parameters, 64², one channel) beside the quickstart models;
# 6. the shipped small-experiment models (data/kolmogorov-small, no training) rolled out on the
#    GPU and on the CPU from the same few trajectories: their short-horizon skill should agree.
# Each step's stdout/stderr go to $OUT/<step>.{out,err}; a summary line per step is printed.
set -uo pipefail
B=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$B/out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
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
failed=0
step() { # name command...
  local name=$1 t0 rc; shift
  t0=$(date +%s.%N)
  "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; rc=$?
  printf '%-16s rc=%-3s %6.1f s\n' "$name" "$rc" "$(echo "$(date +%s.%N) - $t0" | bc)"
  [ $rc = 0 ] || { failed=1; tail -n 5 "$OUT/$name.err"; }
}
step info "$T" info
grep -q 'CUDA *available' "$OUT/info.out" || { echo "FAIL: libtorch does not see CUDA"; cat "$OUT/info.out"; failed=1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>&1
step pipeline "$T" pipeline --config "$B/configs/quickstart.yaml" --device cuda --set "run.dir=$OUT/quickstart"
grep -h 'gradient allreduce\|median stable horizon' "$OUT/pipeline.err" "$OUT/pipeline.out" | head -n 4
# Two ranks sharing the GPU: NCCL refuses two ranks on one device, so this checks the fallback
# to the MPI reducer with CUDA tensors (and the NCCL path itself where there are 2+ GPUs).
mkdir -p "$OUT/two" && cp "$OUT/quickstart/trajectories.h5" "$OUT/two/"
step train-2ranks "$B/bin/mpirun" -x LD_LIBRARY_PATH -np 2 "$T" train emulator --device cuda \
  --config "$B/configs/quickstart.yaml" --set "run.dir=$OUT/two" --set emulator.training.max_updates=20
grep -h 'gradient allreduce' "$OUT/train-2ranks.err" | head -n 2
paper='[{"name":"paper","hidden":64,"dim_mults":[2,2,2],"blocks":2,"channels":1,"grid":64,"batch":64},
        {"name":"quickstart","hidden":16,"dim_mults":[1,2,2],"blocks":1,"channels":1,"grid":64,"batch":64}]'
step generate-gpu "$T" generate --device cuda --config "$B/configs/quickstart.yaml" --set "run.dir=$OUT/generate-gpu" \
  --set generate.members=256
step solver "$T" bench solver --grids 64 128 256 512 --precision f64 f32 --seconds 1 --repeats 3 \
  --device cuda --batch 256
step bench-train "$T" bench train --device cuda --models "$paper" --threads 8 --seconds 3 --repeats 3
step bench-rollout "$T" bench rollout --device cuda --models "$paper" --batches 1 16 64 256 --seconds 2 --repeats 3
small=(--config "$B/configs/kolmogorov-small.yaml" --set "rollout.models=$B/data/kolmogorov-small"
       --set generate.members=8 --set generate.samples=24 --set rollout.members=2 --set rollout.start_stride=2
       --set rollout.steps=20 --set rollout.spectrum_every=10)
step shipped-gpu "$T" pipeline "${small[@]}" --device cuda --set "run.dir=$OUT/shipped-gpu"
mkdir -p "$OUT/shipped-cpu" && cp "$OUT/shipped-gpu/trajectories.h5" "$OUT/shipped-cpu/"
step shipped-cpu "$T" rollout "${small[@]}" --device cpu --set "run.dir=$OUT/shipped-cpu"
step shipped-report "$T" report "${small[@]}" --set "run.dir=$OUT/shipped-cpu"
grep -h -A4 'Short-horizon skill' "$OUT"/shipped-{gpu,cpu}/report/summary.md
cat "$OUT/solver.out" "$OUT/bench-train.out" "$OUT/bench-rollout.out"
exit $failed
