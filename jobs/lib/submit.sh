# jobs/lib/submit.sh - shared by jobs/submit-pipeline.sh and jobs/sweep-rollout.sh: option
# parsing of the common flags, config validation, run.dir lookup, and `sbatch` (or, with
# --dry-run, the exact sbatch command line printed instead).
# shellcheck shell=bash
# shellcheck disable=SC2034  # MODE, CONSUMED, RES, ... are read by the scripts that source this

JOBS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The checkout the jobs take slurm/lib/step.sh and slurm/site.sh from (sbatch exports it).
export THERMALIZER_SRC=${THERMALIZER_SRC:-$(cd "$JOBS_DIR/.." && pwd)}
THERMALIZER=${THERMALIZER:-$THERMALIZER_SRC/target/release/thermalizer}
export THERMALIZER

die() { echo "$(basename "$0"): error: $*" >&2; exit 2; }

# Common options; the caller's parser hands each unknown option to common_opt, which returns
# the number of arguments it consumed (0: not a common option).
MODE=gpu NTASKS="" TIME="" DRY_RUN=0 LOG_DIR="" SETS=() SBATCH_EXTRA=() CPU_SBATCH=() GPU_SBATCH=()
common_opt() { # "$@" of the remaining command line; sets CONSUMED
    CONSUMED=0
    case $1 in
        --cpu) MODE=cpu; CONSUMED=1 ;;
        --gpu) MODE=gpu; CONSUMED=1 ;;
        --ntasks | -n) NTASKS=${2:?$1 needs a number}; CONSUMED=2 ;;
        --time | -t) TIME=${2:?$1 needs a time limit}; CONSUMED=2 ;;
        --dry-run) DRY_RUN=1; CONSUMED=1 ;;
        --log-dir) LOG_DIR=${2:?--log-dir needs a directory}; CONSUMED=2 ;;
        --set) SETS+=(--set "${2:?--set needs key=value}"); CONSUMED=2 ;;
        --set=*) SETS+=(--set "${1#--set=}"); CONSUMED=1 ;;
        --sbatch) SBATCH_EXTRA+=("${2:?--sbatch needs an sbatch option}"); CONSUMED=2 ;;
        --cpu-sbatch) CPU_SBATCH+=("${2:?--cpu-sbatch needs an sbatch option}"); CONSUMED=2 ;;
        --gpu-sbatch) GPU_SBATCH+=("${2:?--gpu-sbatch needs an sbatch option}"); CONSUMED=2 ;;
    esac
    if [ -n "$NTASKS" ] && ! [[ $NTASKS =~ ^[1-9][0-9]*$ ]]; then die "--ntasks $NTASKS: not a positive number"; fi
}

# A common option (see common_opt) or the one positional CONFIG; anything else is refused.
# Sets CONSUMED (always > 0).
common_or_config() { # "$@" of the remaining command line
    common_opt "$@"
    [ "$CONSUMED" -gt 0 ] && return 0
    case $1 in
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$CONFIG" ] || die "two configs: $CONFIG and $1"; CONFIG=$1; CONSUMED=1 ;;
    esac
}

# Checks CONFIG + --set with `thermalizer validate` (nothing is submitted for a bad config) and
# sets RUN_DIR to its run.dir. Without a binary on this host, falls back to the last
# --set run.dir=... or the YAML's run: dir: line.
resolve_config() { # CONFIG
    local config=$1 out
    [ -f "$config" ] || die "no config file $config"
    if [ -x "$THERMALIZER" ]; then
        if ! out=$("$THERMALIZER" validate --config "$config" "${SETS[@]}" 2>&1); then
            echo "$out" >&2
            die "the config does not validate; nothing submitted"
        fi
        RUN_DIR=$(awk '/^run:/ {r = 1; next} r && /^[^ ]/ {r = 0} r && $1 == "dir:" {sub(/^ *dir: */, ""); print; exit}' <<<"$out")
    else
        echo "$(basename "$0"): warning: no binary at $THERMALIZER: config not validated" >&2
        local i
        RUN_DIR=""
        for ((i = 0; i < ${#SETS[@]}; i += 2)); do
            case ${SETS[i + 1]} in run.dir=*) RUN_DIR=${SETS[i + 1]#run.dir=} ;; esac
        done
        if [ -z "$RUN_DIR" ]; then
            RUN_DIR=$(awk '/^run:/ {r = 1; next} r && /^[^ ]/ {r = 0} r && $1 == "dir:" {sub(/^ *dir: */, ""); print; exit}' "$config")
        fi
    fi
    RUN_DIR=${RUN_DIR%\"}; RUN_DIR=${RUN_DIR#\"}; RUN_DIR=${RUN_DIR%\'}; RUN_DIR=${RUN_DIR#\'}
    [ -n "$RUN_DIR" ] || die "cannot find run.dir of $config"
    LOG_DIR=${LOG_DIR:-$RUN_DIR/slurm-logs}
}

# Resource options of one job -> RES: --ntasks (if NTASKS is given), --time, the --sbatch
# options, then those of its class: --cpu-sbatch for a CPU job, --gpu-sbatch for a GPU job (later
# options win in sbatch, so a class's --partition overrides a general one).
resource_opts() { # cpu|gpu [NTASKS]
    RES=()
    if [ -n "${2:-}" ]; then RES+=(--ntasks="$2"); fi
    if [ -n "$TIME" ]; then RES+=(--time="$TIME"); fi
    RES+=("${SBATCH_EXTRA[@]}")
    if [ "$1" = gpu ]; then RES+=("${GPU_SBATCH[@]}"); else RES+=("${CPU_SBATCH[@]}"); fi
}

# sbatch ARGS... -> sets JOB_ID. With --dry-run: prints the exact command line (shell-quoted)
# instead, and JOB_ID is the placeholder $PLACEHOLDER.
JOB_ID="" SUBMITTED=()
submit() {
    if [ "$DRY_RUN" = 1 ]; then
        local q
        if [ ${#SUBMITTED[@]} -eq 0 ]; then   # first command: the environment the jobs inherit
            printf -v q '%q ' export "THERMALIZER_SRC=$THERMALIZER_SRC" "THERMALIZER=$THERMALIZER"
            echo "${q% }"
        fi
        SUBMITTED+=("$PLACEHOLDER")
        printf -v q '%q ' sbatch --parsable "$@"
        echo "${q% }"
        JOB_ID=$PLACEHOLDER
    else
        mkdir -p "$LOG_DIR"
        if ! JOB_ID=$(sbatch --parsable "$@"); then
            if [ ${#SUBMITTED[@]} -gt 0 ]; then
                echo "$(basename "$0"): cancelling the jobs already submitted: ${SUBMITTED[*]}" >&2
                scancel "${SUBMITTED[@]}" || true
            fi
            die "sbatch failed: sbatch $*"
        fi
        JOB_ID=${JOB_ID%%;*}   # --parsable prints id[;cluster]
        SUBMITTED+=("$JOB_ID")
    fi
}
