#!/usr/bin/env bash
# Builds the container (scripts/container-build.sh) and runs the quickstart's generate stage with 2
# ranks twice with it: by the container's own mpirun, and by the host's mpirun with one container
# per rank (the hybrid model, as `mpirun apptainer exec` runs); then checks both trajectories.h5
# against the same stage run on the host:
#   scripts/container-check.sh [--no-build] [--set key=value ...]
# Each file must be complete (no .partial left, 2 ranks recorded) and every dataset equal, bit for
# bit, to the host's (generation is bitwise reproducible). About 12 minutes on 2 cores: three runs
# of the stage. Not part of `cargo test` or CI, which build no images (no registry for the base).
#
# On a machine where the Containerfile's base image cannot be pulled (no container registry),
# it is made from Debian's own mirror (mmdebstrap, minbase) and tagged with the FROM name, so the
# recipe built is the one in container/Containerfile. Where podman's defaults cannot start a
# container (e.g. crun on a cgroup v1 host, or ulimits above the host's hard limits), it uses a
# containers.conf of its own (runc, the host's limits) and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
build_opts=()
sets=()
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) build_opts+=(--no-build) ;;
    --set) sets+=(--set "$2"); shift ;;
    *) echo "usage: $0 [--no-build] [--set key=value ...]" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck disable=SC1091
source "${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/env.sh"
command -v podman >/dev/null || apt-get install -y --no-install-recommends podman >/dev/null
export THERMALIZER_CONTAINER_ENGINE=podman
tag=thermalizer:check
base=$(awk '$1 == "FROM" {print $2; exit}' container/Containerfile)
work=$(mktemp -d "${TMPDIR:-/tmp}/thermalizer-container-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

if ! podman image exists "$base" && ! podman pull -q "$base" >/dev/null 2>&1; then
  echo "base: $base cannot be pulled here; making it from Debian's mirror (mmdebstrap --variant=minbase bookworm)"
  command -v mmdebstrap >/dev/null || apt-get install -y --no-install-recommends mmdebstrap >/dev/null
  mmdebstrap --quiet --variant=minbase bookworm "$work/base.tar" http://deb.debian.org/debian
  podman import -q "$work/base.tar" "$base" >/dev/null
  rm -f "$work/base.tar"
fi
if ! podman run --rm "$base" true 2>"$work/probe.err"; then
  echo "podman: its defaults cannot start a container here ($(tail -n 1 "$work/probe.err")); using runc and the host's limits"
  command -v runc >/dev/null || apt-get install -y --no-install-recommends runc >/dev/null
  # podman's default ulimits exceed what this host lets root set, and podman itself runs under an
  # nproc limit of at most 32768 here.
  nproc=$(ulimit -Hu)
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
  cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
EOF
  export CONTAINERS_CONF=$work/containers.conf
  podman run --rm "$base" true
fi

scripts/container-build.sh "${build_opts[@]}" --tag "$tag"
mkdir -p "$work/container" "$work/hybrid" "$work/host"
echo "== in the container: mpirun -np 2 thermalizer generate --config configs/quickstart.yaml"
podman run --rm --network none --shm-size 1g -v "$work/container:/runs" \
  -e OMPI_ALLOW_RUN_AS_ROOT=1 -e OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 -e OMP_NUM_THREADS=1 "$tag" \
  sh -ec 'thermalizer info
          if ldd /opt/thermalizer/thermalizer | grep "not found"; then exit 1; fi
          exec mpirun -np 2 thermalizer -q generate --config configs/quickstart.yaml --set run.dir=/runs/run "$@"' \
  sh "${sets[@]}"
echo "== host mpirun -np 2, one container per rank (host namespaces and /tmp, as Apptainer)"
tmp=${TMPDIR:-/tmp}
OMP_NUM_THREADS=1 mpirun -np 2 podman run --rm --env-host --network host --ipc host --pid host \
  -v "$tmp:$tmp" -v "$work:$work" "$tag" thermalizer -q generate \
  --config /opt/thermalizer/configs/quickstart.yaml --set run.dir="$work/hybrid/run" "${sets[@]}"
echo "== on the host: the same stage with the same (staged) binary, for reference"
OMP_NUM_THREADS=1 mpirun -np 2 "${CARGO_TARGET_DIR:-target}/container/context/thermalizer" -q generate \
  --config configs/quickstart.yaml --set run.dir="$work/host/run" "${sets[@]}"

"$THERMALIZER_PYTHON" - "$work/host/run" "$work/container/run" "$work/hybrid/run" <<'EOF'
import pathlib, sys
import h5py, numpy as np
host, *runs = (pathlib.Path(p) for p in sys.argv[1:])
for run in runs:
    leftover = sorted(p.name for p in run.iterdir() if p.name.endswith(".partial"))
    assert not leftover, f"{run} left {leftover}"
    with h5py.File(run / "trajectories.h5", "r") as c, h5py.File(host / "trajectories.h5", "r") as h:
        assert c.attrs["mpi_ranks"] == 2, f"{run}: mpi_ranks = {c.attrs['mpi_ranks']}"
        assert set(c) == set(h), f"{run}: datasets {sorted(c)}, on the host {sorted(h)}"
        for name in sorted(h):
            assert c[name].shape == h[name].shape, f"{run}: /{name} {c[name].shape}, host {h[name].shape}"
            assert np.array_equal(c[name][()], h[name][()]), f"{run}: /{name} differs from the host's"
        field = "q" if "q" in c else "vorticity"
        assert np.isfinite(c[field][()]).all(), f"{run}: /{field} holds non-finite values"
        print(f"ok: {run / 'trajectories.h5'}: /{field} {c[field].shape}, all {len(c)} datasets "
              "equal to the host run's, bit for bit")
EOF
