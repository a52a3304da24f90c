#!/usr/bin/env bash
# Builds the container image of container/Containerfile (docs/cluster.md, "Container"):
#   scripts/container-build.sh [--binary FILE | --no-build] [--tag NAME] [--archive FILE]
#                              [-- ENGINE-BUILD-OPTION ...]
# Builds the release binary (cargo build --release --locked, as for a host run; a
# `--features cuda` build given with --binary brings libtorch's CUDA libraries along), stages
#   target/container/context/thermalizer   the binary, debug info stripped, rpath $ORIGIN/lib
#   target/container/context/lib/          the libraries it needs from $LIBTORCH (libtorch, c10,
#                                          its libgomp and CUDA runtime), nothing from the system
#   target/container/context/{configs,data}/  the shipped configs and models
# and builds the image NAME (default thermalizer:latest) with podman, else docker
# ($THERMALIZER_CONTAINER_ENGINE picks one). --archive FILE also saves it as a docker-archive,
# which `apptainer build thermalizer.sif docker-archive://FILE` converts. The options after --
# go to `ENGINE build` as they are (e.g. --isolation chroot).
# The base image (the Containerfile's FROM) is pulled from Docker Hub by the engine.
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
binary=
tag=thermalizer:latest
archive=
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) build=0 ;;
    --binary) binary=$2; build=0; shift ;;
    --tag) tag=$2; shift ;;
    --archive) archive=$2; shift ;;
    --) shift; break ;;
    *) echo "usage: $0 [--binary FILE | --no-build] [--tag NAME] [--archive FILE] [-- ENGINE-BUILD-OPTION ...]" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck disable=SC1091
source "${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/env.sh"
# shellcheck source=scripts/lib/bundle.sh
source scripts/lib/bundle.sh
engine=${THERMALIZER_CONTAINER_ENGINE:-$(command -v podman || command -v docker || true)}
[ -n "$engine" ] || { echo "error: neither podman nor docker is on PATH (apt-get install podman)" >&2; exit 1; }
command -v patchelf >/dev/null || apt-get install -y --no-install-recommends patchelf >/dev/null
target=${CARGO_TARGET_DIR:-target}
if [ $build = 1 ]; then
  cargo build --release --locked
fi
binary=${binary:-$target/release/thermalizer}

context=$target/container/context
rm -rf "$context"
bundle_binary "$binary" "$context"
# libtorch as this build found it ($LIBTORCH/lib, and the pip wheel's nvidia/ beside it, which
# ldd names through $LIBTORCH/lib/../..); the rest comes from the image's Debian packages.
from_libtorch() { [[ $2 == "$LIBTORCH"/* ]]; }
bundle_deps "$context/lib" from_libtorch "$binary"
if missing=$(ldd "$context/thermalizer" | grep 'not found'); then
  echo "error: the staged binary misses libraries (is \$LIBTORCH the one it was built with?):" >&2
  echo "$missing" >&2
  exit 1
fi
mkdir -p "$context/configs" "$context/data"
cp configs/*.yaml "$context/configs/"
cp -r data/README.md data/quickstart data/kolmogorov-small "$context/data/"
echo "context: $context ($(( $(du -sb "$context" | cut -f1) / 1048576 )) MiB: $(find "$context/lib" -type f | wc -l) libraries from \$LIBTORCH)"

"$engine" build "$@" -f container/Containerfile -t "$tag" "$context"
echo "image: $tag ($("$engine" image inspect --format '{{.Size}}' "$tag" | awk '{printf "%d MiB", $1 / 1048576}'))"
if [ -n "$archive" ]; then
  rm -f "$archive"
  if [[ $(basename "$engine") == podman ]]; then
    "$engine" save --format docker-archive -o "$archive" "$tag"
  else
    "$engine" save -o "$archive" "$tag"
  fi
  echo "archive: $archive ($(( $(stat -c %s "$archive") / 1048576 )) MiB; apptainer build thermalizer.sif docker-archive://$archive)"
fi
