#!/bin/bash
# stop-slurm.sh - stop the daemons started by start-slurm.sh, identified ONLY by their pid files
# in $SLURM_CI_DIR/run (no pkill/killall). Running jobs are scancel'ed first so that no
# slurmstepd/job processes outlive slurmd (proctrack/linuxproc does not contain them).
# Safe to run when nothing is running. Knob: SLURM_CI_DIR (default /tmp/thermalizer-slurm-ci).
set -euo pipefail

D=${SLURM_CI_DIR:-/tmp/thermalizer-slurm-ci}
export SLURM_CONF=$D/etc/slurm.conf
log() { echo "stop-slurm: $*" >&2; }

alive() { [ -s "$1" ] && [ "$(ps -o comm= -p "$(cat "$1")" 2>/dev/null)" = "$2" ]; }

# 1. cancel jobs while the controller still answers, wait (max 30 s) until none is left
if alive "$D/run/slurmctld.pid" slurmctld && [ -f "$SLURM_CONF" ]; then
    mapfile -t jobs < <(squeue -h -o %A 2>/dev/null || true)
    if [ ${#jobs[@]} -gt 0 ]; then
        log "cancelling jobs: ${jobs[*]}"
        scancel "${jobs[@]}" 2>/dev/null || true
        for _ in $(seq 300); do
            [ -z "$(squeue -h -t R,CG,PD -o %A 2>/dev/null || true)" ] && break
            sleep 0.1
        done
    fi
fi

# 2. stop daemons in reverse start order: SIGTERM, wait up to 15 s, then SIGKILL
stop_one() { # pidfile comm
    local f=$1 c=$2 p
    if ! alive "$f" "$c"; then rm -f "$f"; return 0; fi
    p=$(cat "$f")
    log "stopping $c (pid $p)"
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then log "$c pid $p still alive, SIGKILL"; kill -KILL "$p" 2>/dev/null || true; fi
    rm -f "$f"
}
stop_one "$D/run/slurmd.pid"    slurmd
stop_one "$D/run/slurmctld.pid" slurmctld
stop_one "$D/run/munged.pid"    munged
exit 0
