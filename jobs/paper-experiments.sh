#!/usr/bin/env bash
# The paper's full-scale experiments on a GPU cluster: Kolmogorov flow (configs/kolmogorov.yaml)
# and two-layer QG (configs/qg.yaml), each as the chained pipeline of jobs/submit-pipeline.sh
# (generate on CPUs, both trainings and the 1e5-step rollouts on GPUs, then the report).
#   jobs/paper-experiments.sh [--dry-run] [--ntasks N] [--base DIR] [any submit-pipeline option]
# Outputs under DIR/kolmogorov and DIR/qg (default: runs/paper). Per-stage time limits are the
# templates' (#SBATCH --time, requeued with a checkpoint when reached); override with --time.
# The generation (1024 members at 512², 512 at 256²) wants far more CPU ranks than the GPU
# stages, on a CPU partition: e.g.
#   jobs/paper-experiments.sh --stage-ntasks generate=256 --cpu-sbatch --partition=cpu \
#       --gpu-sbatch --partition=gpu
# (slurm/generate.sbatch does not pin one node: its ranks may span nodes).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
configs=$(cd "$here/../configs" && pwd)
base=runs/paper
ntasks=4
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --base) base=${2:?--base needs a directory}; shift 2 ;;
    --ntasks | -n) ntasks=${2:?$1 needs a number}; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
for system in kolmogorov qg; do
  echo "# $system"
  "$here/submit-pipeline.sh" "$configs/$system.yaml" --gpu --ntasks "$ntasks" \
    --set "run.dir=$base/$system" "${args[@]}"
done
