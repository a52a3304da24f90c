#!/usr/bin/env bash
# The experiments of docs/results.md that show whether thermalization works (one 2-core machine):
#   scripts/thermalization-experiments.sh [control] [real] [qg]     (default: all three)
# Each stage skips what is done and resumes what was interrupted, so rerunning continues.
# - data: configs/kolmogorov-small.yaml's ensemble (generated once, bitwise reproducible), the
#   shipped thermalizer data/kolmogorov-small/thermalizer.safetensors, its s_init calibrated on
#   the 1200 clean validation states (rollout.s_init: auto, 95th percentile).
# - control: the positive control. The shipped emulator with a planted defect
#   (rollout.small_scale_growth: modes with |k| >= 8 grow by 2 % per step, in every mode);
#   16 members alone for 1000 steps (runs/control-prescreen), then 32 members, emulator alone
#   and thermalized, 4000 steps (runs/control).
# - real: an emulator that drifts at small scales by itself: 300 updates, no unrolling, no σ
#   (runs/real-test/emulator); 32 members, emulator alone, thermalized and filtered (pyqg's
#   spectral filter), 5000 steps (runs/real-test).
# - qg: the quickstart's two-layer QG config (configs/quickstart.yaml) at full size: generate,
#   train its thermalizer (4000 updates; the file the quickstart ships) and its brief emulator
#   (300 updates, no unrolling, no σ), then 32 members in the three modes, 2000 steps
#   (runs/qg-small).
# Each run's report is <run>/report/summary.md; scripts/state_at_death.py <run>/rollout.h5 says
# how its members died. Uses target/release/thermalizer (THERMALIZER_BIN to use another).
set -euo pipefail
cd "$(dirname "$0")/.."
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(control real qg)
# shellcheck disable=SC1091
source "${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/env.sh"
bin=${THERMALIZER_BIN:-${CARGO_TARGET_DIR:-target}/release/thermalizer}
[ -x "$bin" ] || { echo "thermalization-experiments.sh: no binary $bin (run cargo build --release)" >&2; exit 2; }
export OMP_NUM_THREADS=1
ranks=$(nproc)
small=configs/kolmogorov-small.yaml
log() { echo "$(date -u +%H:%M:%S) $*" >&2; }
thermalizer() { "$bin" "$@"; }
# A run directory reading the small experiment's trajectories.
linked() {
    mkdir -p "$1"
    ln -sf "$PWD/runs/kolmogorov-small/trajectories.h5" "$1/trajectories.h5"
}
python="${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/venv/bin/python"
report() { # RUN: the report, its table on stderr, and the state at death of a finished rollout
    local dir=$1
    thermalizer report "$dir" >/dev/null
    "$python" scripts/state_at_death.py "$dir/rollout.h5" >"$dir/report/state_at_death.md"
    log "$dir:"
    "$python" scripts/collect-summaries.py "$dir" >&2
}

log "data: the small experiment's ensemble"
mpirun -np "$ranks" "$bin" generate --config "$small" >/dev/null

for stage in "${stages[@]}"; do
    case $stage in
    control)
        growth="rollout.small_scale_growth={rate: 0.02, wavenumber: 8}"
        shipped=rollout.models=data/kolmogorov-small
        linked runs/control-prescreen
        log "control: prescreen, emulator alone, 16 members x 1000 steps"
        thermalizer rollout --config "$small" --set run.dir=runs/control-prescreen --set "$shipped" \
            --set "rollout.modes=[emulator]" --set rollout.members=16 --set rollout.steps=1000 \
            --set rollout.record_every=10 --set rollout.spectrum_every=50 --set rollout.snapshot_every=0 \
            --set "$growth" >/dev/null
        linked runs/control
        log "control: 32 members x 4000 steps, alone and thermalized"
        sets=(--set "$shipped" --set rollout.s_init=auto --set rollout.steps=4000 --set rollout.record_every=10
            --set rollout.spectrum_every=100 --set rollout.snapshot_every=1000 --set "$growth")
        mpirun -np "$ranks" "$bin" rollout --config "$small" --set run.dir=runs/control "${sets[@]}" >/dev/null
        report runs/control
        ;;
    real)
        dir=runs/real-test
        linked $dir
        brief=(--set emulator.training.max_updates=300 --set emulator.max_rollout=1 --set emulator.sigma=0)
        log "real: the brief emulator (300 updates, no unrolling, no sigma)"
        thermalizer train emulator --config "$small" --set run.dir=$dir "${brief[@]}" >/dev/null
        mkdir -p $dir/thermalizer
        [ -e $dir/thermalizer/latest.safetensors ] ||
            cp data/kolmogorov-small/thermalizer.safetensors $dir/thermalizer/latest.safetensors
        log "real: 32 members x 5000 steps, alone, thermalized and filtered"
        sets=("${brief[@]}" --set rollout.weights=latest --set rollout.s_init=auto
            --set "rollout.modes=[emulator, thermalized, filtered]" --set rollout.steps=5000
            --set rollout.record_every=10 --set rollout.spectrum_every=100 --set rollout.snapshot_every=1000)
        mpirun -np "$ranks" "$bin" rollout --config "$small" --set run.dir=$dir "${sets[@]}" >/dev/null
        report "$dir"
        ;;
    qg)
        qg=configs/quickstart.yaml
        sets=(--set run.dir=runs/qg-small --set rollout.thermalizer_file=null)
        log "qg: generate, train the thermalizer and the brief emulator"
        mpirun -np "$ranks" "$bin" generate --config $qg "${sets[@]}" >/dev/null
        thermalizer train thermalizer --config $qg "${sets[@]}" >/dev/null
        thermalizer train emulator --config $qg "${sets[@]}" >/dev/null
        log "qg: 32 members x 2000 steps, alone, thermalized and filtered"
        sets+=(--set rollout.members=32 --set rollout.start_stride=20 --set rollout.steps=2000
            --set rollout.record_every=10 --set rollout.spectrum_every=100 --set rollout.snapshot_every=1000)
        mpirun -np "$ranks" "$bin" rollout --config $qg "${sets[@]}" >/dev/null
        report runs/qg-small
        ;;
    *)
        echo "thermalization-experiments.sh: unknown stage $stage (control, real, qg)" >&2
        exit 2
        ;;
    esac
done
