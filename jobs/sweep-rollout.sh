#!/bin/bash
# sweep-rollout.sh - roll out the trained models of a run over a grid of thermalizer settings:
# one Slurm job-array task per (s_init, s_stop) point, each running rollout + report in its own
# directory <run.dir>/sweep/sinit-A_sstop-X (the models and trajectories.h5 of <run.dir> are
# symlinked into it, so nothing is copied or retrained). When the tasks are done,
# `scripts/collect-summaries.py <run.dir>/sweep/*/` puts every point's summary.json in one table.
#
# Usage: jobs/sweep-rollout.sh CONFIG --s-init A,B,... --s-stop X,Y,... [--cpu|--gpu]
#            [--ntasks N] [--time T] [--max-parallel K] [--after JOBID[:JOBID...]]
#            [--dry-run] [--log-dir DIR] [--sbatch OPTION]... [--cpu-sbatch OPTION]...
#            [--gpu-sbatch OPTION]... [--set key=value]...
#   --s-init, --s-stop  comma-separated values of rollout.s_init and rollout.s_stop
#   --gpu (default)     slurm/sweep-rollout.sbatch, one rank per GPU; --cpu: the -cpu variant
#   --ntasks N          MPI ranks per grid point (default: the template's #SBATCH)
#   --time T            time limit per task (tasks checkpoint and requeue 180 s before it)
#   --max-parallel K    at most K tasks at a time (--array=0-N%K)
#   --after JOBIDS      start only after these jobs succeeded (e.g. both train jobs printed by
#                       jobs/submit-pipeline.sh: --after 1234:1235)
#   --dry-run           validate the config and print the sbatch command; submit nothing
#   --log-dir DIR       task logs (default <run.dir>/slurm-logs), %x-%A_%a.out
#   --sbatch OPTION     extra sbatch option, e.g. --sbatch --partition=gpu
#   --cpu-sbatch, --gpu-sbatch OPTION  extra sbatch option only with --cpu / --gpu
#   --set key=value     config override for every point (repeatable); run.dir is the run
#                       whose models are swept
# Prints the array job id.
set -euo pipefail
# shellcheck source=jobs/lib/submit.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/submit.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

CONFIG="" INITS="" STOPS="" MAXPAR="" AFTER=""
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) usage 0 ;;
        --s-init) INITS=${2:?--s-init needs a list}; shift 2 ;;
        --s-stop) STOPS=${2:?--s-stop needs a list}; shift 2 ;;
        --max-parallel) MAXPAR=${2:?--max-parallel needs a number}; shift 2 ;;
        --after) AFTER=${2:?--after needs job ids}; shift 2 ;;
        *) common_or_config "$@"; shift "$CONSUMED" ;;
    esac
done
if [ -z "$CONFIG" ] || [ -z "$INITS" ] || [ -z "$STOPS" ]; then usage 2 >&2; fi
num='^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$'
IFS=, read -r -a inits <<<"$INITS"
IFS=, read -r -a stops <<<"$STOPS"
for v in "${inits[@]}" "${stops[@]}"; do [[ $v =~ $num ]] || die "'$v' is not a number (lists are comma-separated)"; done
[ -z "$MAXPAR" ] || [[ $MAXPAR =~ ^[1-9][0-9]*$ ]] || die "--max-parallel $MAXPAR: not a positive number"
[ -z "$AFTER" ] || [[ $AFTER =~ ^[0-9_:]+$ ]] || die "--after $AFTER: not job ids separated by ':'"
# validate the config at the first and last grid points (the rest differ only in these values)
base_sets=("${SETS[@]}")
SETS=("${base_sets[@]}" --set "rollout.s_init=${inits[-1]}" --set "rollout.s_stop=${stops[-1]}")
resolve_config "$CONFIG"
SETS=("${base_sets[@]}" --set "rollout.s_init=${inits[0]}" --set "rollout.s_stop=${stops[0]}")
resolve_config "$CONFIG"
SETS=("${base_sets[@]}")

n=$((${#inits[@]} * ${#stops[@]}))
suffix=""
[ "$MODE" = cpu ] && suffix=-cpu
resource_opts "$MODE" "$NTASKS"
opts=(--array="0-$((n - 1))${MAXPAR:+%$MAXPAR}" --output="$LOG_DIR/%x-%A_%a.out")
[ -z "$AFTER" ] || opts+=(--dependency="afterok:$AFTER" --kill-on-invalid-dep=yes)
PLACEHOLDER=JOBID_sweep
submit "${opts[@]}" "${RES[@]}" "$THERMALIZER_SRC/slurm/sweep-rollout$suffix.sbatch" \
    "$CONFIG" "$RUN_DIR" "$INITS" "$STOPS" "${SETS[@]}"
if [ "$DRY_RUN" = 1 ]; then
    echo "# dry run: nothing submitted ($n points under $RUN_DIR/sweep/, logs in $LOG_DIR)" >&2
else
    echo "sweep $JOB_ID"
    echo "# $n points under $RUN_DIR/sweep/sinit-*_sstop-*/, logs in $LOG_DIR" >&2
fi
