# slurm/lib/step.sh - the shared logic of every slurm/*.sbatch template. Sourced by the batch
# script (which is a spooled copy, so it is found through $THERMALIZER_SRC, default
# $SLURM_SUBMIT_DIR: submit from the checkout, or export THERMALIZER_SRC=/path/to/checkout).
#
# What it does, for each stage of the job:
#   * sources slurm/site.sh (modules, binary path, HDF5_USE_FILE_LOCKING=FALSE, srun options);
#   * OMP_NUM_THREADS = SLURM_CPUS_PER_TASK, and run.threads likewise when a rank has > 1 CPU;
#   * launches the ranks with `srun --mpi=pmix` in the background and waits for the step;
#   * forwards the USR1 that Slurm sends the batch shell (`--signal=B:USR1@180`) to the step:
#     every rank checkpoints and thermalizer exits 75;
#   * on exit 75 (or a USR1 that arrived between two stages) requeues the job
#     (`--requeue --open-mode=append`: the next run resumes from the checkpoint, same log);
#   * otherwise ends the job with the step's exit status (0 done, 2 bad input, 1 failure).
#
# Entry point: thermalizer_job STAGE DEVICE ARGS...   (DEVICE: cuda, cpu, or - for none)
#   generate  CONFIG [--set k=v ...]
#   train     emulator|thermalizer CONFIG [--set k=v ...]
#   rollout   CONFIG [--set k=v ...]
#   report    CONFIG [--set k=v ...]
#   pipeline  CONFIG [--set k=v ...]
#   sweep     CONFIG BASE_DIR S_INITS S_STOPS [--set k=v ...]   (one job-array task:
#             point SLURM_ARRAY_TASK_ID of the grid S_INITS x S_STOPS, comma lists;
#             rollout + report in BASE_DIR/sweep/sinit-A_sstop-B, models and data linked
#             from BASE_DIR, the run.dir that trained them)
# shellcheck shell=bash

THERMALIZER_SRC=${THERMALIZER_SRC:-${SLURM_SUBMIT_DIR:-$PWD}}
# shellcheck source=slurm/site.sh
source "${THERMALIZER_SITE:-$THERMALIZER_SRC/slurm/site.sh}"

export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}
export HDF5_USE_FILE_LOCKING

_th_step=""   # pid of the running srun, if any
_th_stop=0    # a USR1 arrived: checkpoint and requeue

_th_log() { echo "thermalizer-job: $*"; }

_th_usr1() {
    _th_stop=1
    if [ -n "$_th_step" ] && kill -0 "$_th_step" 2>/dev/null; then
        _th_log "USR1 (time limit near): asking the step to checkpoint and stop"
        kill -USR1 "$_th_step" 2>/dev/null || true
    else
        _th_log "USR1 (time limit near) between steps: requeueing before the next one"
    fi
}
trap _th_usr1 USR1

# The job (array task) id that scontrol requeue takes.
_th_job_id() {
    if [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
        echo "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
    else
        echo "${SLURM_JOB_ID:?not inside a Slurm job}"
    fi
}

# Requeue this job to resume from its checkpoint; never returns.
_th_requeue() {
    local id restarts=${SLURM_RESTART_COUNT:-0}
    id=$(_th_job_id)
    if [ "$restarts" -ge "$THERMALIZER_MAX_RESTARTS" ]; then
        _th_log "checkpointed, but job $id was already restarted $restarts times" \
                "(THERMALIZER_MAX_RESTARTS): not requeueing; submit the same job again to resume"
        exit 75
    fi
    _th_log "checkpointed before the time limit: requeueing job $id (restart $((restarts + 1)))"
    if ! scontrol requeue "$id"; then
        _th_log "scontrol requeue $id failed (job not requeueable?): submit the same job again to resume"
    fi
    exit 75
}

# Runs `thermalizer ARGS...` as one srun step on all tasks of the job; returns its exit status
# (0 and 2 and 1 as the binary's; 75 = checkpointed on USR1).
th_step() {
    local status=0 extra=()
    if [ "$_th_stop" = 1 ]; then _th_requeue; fi
    if [ -n "$THERMALIZER_SRUN_ARGS" ]; then read -r -a extra <<<"$THERMALIZER_SRUN_ARGS"; fi
    _th_log "job ${SLURM_JOB_ID:-?} restart ${SLURM_RESTART_COUNT:-0} (${SLURM_NTASKS:-?} tasks," \
            "$OMP_NUM_THREADS threads each): srun --mpi=$THERMALIZER_SRUN_MPI ${extra[*]:+${extra[*]} }$THERMALIZER $*"
    srun --mpi="$THERMALIZER_SRUN_MPI" "${extra[@]}" "$THERMALIZER" "$@" &
    _th_step=$!
    # `wait` returns early (status > 128) when the USR1 trap runs: wait again for the step.
    while :; do
        status=0
        wait "$_th_step" || status=$?
        if [ "$status" -gt 128 ] && kill -0 "$_th_step" 2>/dev/null; then continue; fi
        break
    done
    _th_step=""
    return "$status"
}

# th_step, then: 0 -> return; 75 -> requeue; anything else -> end the job with that status.
th_stage() {
    local status=0
    th_step "$@" || status=$?
    case $status in
        0) ;;
        75) _th_requeue ;;
        *) _th_log "thermalizer $1 failed with exit status $status"; exit "$status" ;;
    esac
}

# The --set/--device arguments common to all stages: run.threads from the allocation when a
# rank has several CPUs (it is not part of any stage's identity, so resuming is unaffected).
_th_threads_set() {
    local a
    [ "${OMP_NUM_THREADS:-1}" -gt 1 ] || return 0
    for a in "$@"; do case $a in run.threads=*) return 0 ;; esac; done
    printf '%s\n' --set "run.threads=$OMP_NUM_THREADS"
}

thermalizer_job() {
    local stage=${1:?thermalizer_job STAGE DEVICE ARGS...} device=${2:?device} dev=() threads=()
    shift 2
    [ "$device" = - ] || dev=(--device "$device")
    [ -x "$THERMALIZER" ] || { _th_log "no executable thermalizer at $THERMALIZER (set THERMALIZER or edit slurm/site.sh)"; exit 2; }
    mapfile -t threads < <(_th_threads_set "$@")
    case $stage in
        generate | report)
            local config=${1:?usage: sbatch slurm/$stage.sbatch CONFIG [--set key=value ...]}
            shift
            th_stage "$stage" --config "$config" "$@" "${threads[@]}"
            ;;
        rollout | pipeline)
            local config=${1:?usage: sbatch slurm/$stage.sbatch CONFIG [--set key=value ...]}
            shift
            th_stage "$stage" --config "$config" "$@" "${threads[@]}" "${dev[@]}"
            ;;
        train)
            local model=${1:?usage: sbatch slurm/train.sbatch emulator|thermalizer CONFIG [--set key=value ...]}
            local config=${2:?usage: sbatch slurm/train.sbatch emulator|thermalizer CONFIG [--set key=value ...]}
            shift 2
            th_stage train "$model" --config "$config" "$@" "${threads[@]}" "${dev[@]}"
            ;;
        sweep)
            local usage="usage: sbatch --array=0-N slurm/sweep-rollout.sbatch CONFIG BASE_DIR S_INITS S_STOPS [--set key=value ...]"
            local config=${1:?$usage} base=${2:?$usage} inits stops
            IFS=, read -r -a inits <<<"${3:?$usage}"
            IFS=, read -r -a stops <<<"${4:?$usage}"
            shift 4
            local i=${SLURM_ARRAY_TASK_ID:?$usage (not a job-array task)}
            local n=$((${#inits[@]} * ${#stops[@]}))
            [ "$i" -lt "$n" ] || { _th_log "array task $i beyond the ${#inits[@]}x${#stops[@]} grid"; exit 2; }
            local a=${inits[i / ${#stops[@]}]} b=${stops[i % ${#stops[@]}]}
            local abs dir
            abs=$(cd "$base" && pwd) || { _th_log "no run directory $base (train the models there first)"; exit 2; }
            dir=$abs/sweep/sinit-${a}_sstop-${b}
            mkdir -p "$dir"
            # rollout reads <run.dir>/trajectories.h5, <run.dir>/emulator/ and <run.dir>/thermalizer/.
            local f
            for f in trajectories.h5 emulator thermalizer; do
                [ -e "$abs/$f" ] || { _th_log "missing $abs/$f (run generate and both trainings first)"; exit 2; }
                ln -sfn "$abs/$f" "$dir/$f"
            done
            _th_log "sweep point $i/$n: rollout.s_init=$a rollout.s_stop=$b in $dir"
            local sets=(--set "rollout.s_init=$a" --set "rollout.s_stop=$b" --set "run.dir=$dir")
            th_stage rollout --config "$config" "$@" "${sets[@]}" "${threads[@]}" "${dev[@]}"
            th_stage report --config "$config" "$@" "${sets[@]}" "${threads[@]}"
            ;;
        *)
            _th_log "unknown stage $stage"
            exit 2
            ;;
    esac
}
