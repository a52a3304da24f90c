#!/bin/bash
# setup-slurm.sh - install what a throw-away single-node Slurm cluster needs (Debian/Ubuntu, root):
#   slurmctld slurmd slurm-client munge, and libpmix-dev (its unversioned libpmix.so is what
#   Slurm's mpi/pmix plugin loads at run time: without it `srun --mpi=pmix` is missing).
# Idempotent: returns at once when everything is installed. Used by tests/slurm.rs and CI;
# start the cluster afterwards with scripts/slurm-ci/start-slurm.sh.
set -euo pipefail

PKGS=(slurmctld slurmd slurm-client munge libpmix-dev)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup-slurm: already installed: ${PKGS[*]}" >&2
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "setup-slurm: ERROR: missing packages (${missing[*]}) and not root: run as root" \
         "or install them: apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
command -v apt-get >/dev/null || { echo "setup-slurm: ERROR: no apt-get; install ${missing[*]} by hand" >&2; exit 1; }
echo "setup-slurm: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The package index may be stale or absent (fresh container): update once if the install fails.
if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    apt-get update >&2
    apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi
for p in "${PKGS[@]}"; do
    installed "$p" || { echo "setup-slurm: ERROR: $p still not installed" >&2; exit 1; }
done
echo "setup-slurm: installed ${missing[*]}" >&2
