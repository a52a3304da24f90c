#!/bin/bash
# submit-pipeline.sh - submit the whole pipeline as five chained Slurm jobs:
#
#   generate ──afterok──> train emulator ────┐
#            └─afterok──> train thermalizer ─┴─afterok──> rollout ──afterok──> report
#
# Usage: jobs/submit-pipeline.sh CONFIG [--cpu|--gpu] [--ntasks N] [--stage-ntasks STAGE=N]...
#                                [--time T] [--dry-run] [--log-dir DIR] [--sbatch OPTION]...
#                                [--cpu-sbatch OPTION]... [--gpu-sbatch OPTION]... [--set key=value]...
#   --gpu (default)  train and rollout on slurm/{train,rollout}.sbatch: one rank per GPU
#   --cpu            slurm/{train,rollout}-cpu.sbatch; generate and report are CPU jobs anyway
#   --ntasks N       MPI ranks of generate, train and rollout (default: the templates' #SBATCH)
#   --stage-ntasks STAGE=N  MPI ranks of one stage, over --ntasks: STAGE is generate, train
#                    (both trainings) or rollout; e.g. --stage-ntasks generate=256 (the CPU
#                    ranks of generate may span nodes)
#   --time T         time limit of every job (default: the templates'); jobs checkpoint and
#                    requeue themselves 180 s before it
#   --dry-run        validate the config and print the sbatch commands; submit nothing
#   --log-dir DIR    job logs (default <run.dir>/slurm-logs), one file per job, %x-%j.out
#   --sbatch OPTION  extra option for every sbatch, e.g. --sbatch --account=abc123
#   --cpu-sbatch OPTION  extra option for the CPU jobs only: generate and report, and train and
#                    rollout with --cpu; e.g. --cpu-sbatch --partition=cpu
#   --gpu-sbatch OPTION  extra option for the GPU jobs only: train and rollout without --cpu;
#                    e.g. --gpu-sbatch --partition=gpu --gpu-sbatch --gres=gpu:4
#                    (a class's option comes after --sbatch's, so it wins over it)
#   --set key=value  config override, passed to every stage (repeatable)
# Prints "<stage> <job id>" per job. Dependents of a job that fails are cancelled by Slurm
# (--kill-on-invalid-dep=yes) instead of pending for ever. Account/partition can also come
# from sbatch's own environment variables (SBATCH_ACCOUNT, SBATCH_PARTITION).
# Jobs run in the current directory (relative paths in CONFIG resolve as here) and take
# slurm/lib/step.sh from THERMALIZER_SRC (default: this checkout) and the binary from
# THERMALIZER (default: $THERMALIZER_SRC/target/release/thermalizer).
set -euo pipefail
# shellcheck source=jobs/lib/submit.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/submit.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

CONFIG=""
declare -A STAGE_NTASKS=()
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) usage 0 ;;
        --stage-ntasks)
            spec=${2:?--stage-ntasks needs STAGE=N}
            stage=${spec%%=*}
            case $stage in generate | train | rollout) ;; *) die "--stage-ntasks $spec: STAGE is generate, train or rollout" ;; esac
            [[ $spec == *=* ]] || die "--stage-ntasks $spec: expected STAGE=N"
            [[ ${spec#*=} =~ ^[1-9][0-9]*$ ]] || die "--stage-ntasks $spec: not a positive number"
            STAGE_NTASKS[$stage]=${spec#*=}
            shift 2 ;;
        *) common_or_config "$@"; shift "$CONSUMED" ;;
    esac
done
[ -n "$CONFIG" ] || usage 2 >&2
resolve_config "$CONFIG"

S=$THERMALIZER_SRC/slurm
suffix=""
[ "$MODE" = cpu ] && suffix=-cpu
out=(--output="$LOG_DIR/%x-%j.out")
dep() { echo "--dependency=afterok:$1"; }
ntasks() { echo "${STAGE_NTASKS[$1]:-$NTASKS}"; } # STAGE

resource_opts cpu "$(ntasks generate)"
PLACEHOLDER=JOBID_generate
submit "${out[@]}" "${RES[@]}" "$S/generate.sbatch" "$CONFIG" "${SETS[@]}"
gen=$JOB_ID

resource_opts "$MODE" "$(ntasks train)"
PLACEHOLDER=JOBID_train_emulator
submit --job-name=thermalizer-train-emulator "$(dep "$gen")" --kill-on-invalid-dep=yes "${out[@]}" "${RES[@]}" \
    "$S/train$suffix.sbatch" emulator "$CONFIG" "${SETS[@]}"
emu=$JOB_ID

PLACEHOLDER=JOBID_train_thermalizer
submit --job-name=thermalizer-train-thermalizer "$(dep "$gen")" --kill-on-invalid-dep=yes "${out[@]}" "${RES[@]}" \
    "$S/train$suffix.sbatch" thermalizer "$CONFIG" "${SETS[@]}"
therm=$JOB_ID

resource_opts "$MODE" "$(ntasks rollout)"
PLACEHOLDER=JOBID_rollout
submit "$(dep "$emu:$therm")" --kill-on-invalid-dep=yes "${out[@]}" "${RES[@]}" \
    "$S/rollout$suffix.sbatch" "$CONFIG" "${SETS[@]}"
roll=$JOB_ID

resource_opts cpu
PLACEHOLDER=JOBID_report
submit "$(dep "$roll")" --kill-on-invalid-dep=yes "${out[@]}" "${RES[@]}" \
    "$S/report.sbatch" "$CONFIG" "${SETS[@]}"
rep=$JOB_ID

if [ "$DRY_RUN" = 1 ]; then
    echo "# dry run: nothing submitted (run.dir $RUN_DIR, logs in $LOG_DIR)" >&2
else
    printf '%s %s\n' generate "$gen" train-emulator "$emu" train-thermalizer "$therm" rollout "$roll" report "$rep"
    echo "# run.dir $RUN_DIR, logs in $LOG_DIR; follow with: squeue -j $gen,$emu,$therm,$roll,$rep" >&2
fi
