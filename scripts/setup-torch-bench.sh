#!/usr/bin/env bash
# Creates (idempotently) a Python venv with PyTorch as users install it (`pip install
# torch==2.11.0`, the CUDA 13.0 wheel with its nvidia-* dependencies, about 2.6 GB): the peer of
# the training benchmark (scripts/bench_torch_train.py, scripts/bench-train.sh). Separate from
# the main venv of scripts/setup.sh, which holds only the libtorch our binary links. Prints its
# python. Same torch version as the binary's libtorch, so both sides run the same kernels.
# Usage: scripts/setup-torch-bench.sh     then: "$(scripts/setup-torch-bench.sh)" scripts/bench_torch_train.py ...
# Knobs: THERMALIZER_HOME (default ~/.local/share/thermalizer) holds torch-venv/.
set -euo pipefail
TORCH_VERSION=2.11.0
THERMALIZER_HOME=${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}
VENV=$THERMALIZER_HOME/torch-venv
log() { echo "[setup-torch-bench] $*" >&2; }   # stderr, so stdout is only the python path

check() {
  "$VENV/bin/python" -c "import torch, numpy, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null
}

mkdir -p "$THERMALIZER_HOME"
[ -x "$VENV/bin/python" ] || { log "creating venv $VENV"; python3 -m venv "$VENV"; }
if ! check; then
  log "installing torch==$TORCH_VERSION (with its CUDA wheels, ~2.6 GB) and numpy into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "torch==$TORCH_VERSION" numpy >&2
  check || { log "error: torch $TORCH_VERSION does not import from $VENV"; exit 1; }
fi
echo "$VENV/bin/python"
