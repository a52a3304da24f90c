#!/usr/bin/env bash
# Creates (idempotently) the Python venv with jax-cfd, the peer solver: used by the benchmark
# (scripts/bench_jaxcfd.py) and by the independent-reference test (tests/python/test_against_jaxcfd.py);
# separate from the main venv of scripts/setup.sh. Prints its python.
# Pins the versions the anchors were measured with (shared design doc anchors-solver.md):
#   jax == jaxlib == 0.10.2 (CPU wheel from PyPI), jax-cfd 0.2.1.
# Usage: scripts/setup-jaxcfd.sh     then: taskset -c 0 "$(scripts/setup-jaxcfd.sh)" scripts/bench_jaxcfd.py ...
# Knobs: THERMALIZER_HOME (default ~/.local/share/thermalizer) holds bench-venv/.
set -euo pipefail
JAX_VERSION=0.10.2
JAXCFD_VERSION=0.2.1
THERMALIZER_HOME=${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}
VENV=$THERMALIZER_HOME/bench-venv
log() { echo "[setup-jaxcfd] $*" >&2; }   # stderr, so stdout is only the python path

check() {
  "$VENV/bin/python" - "$JAX_VERSION" "$JAXCFD_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
want = {"jax": sys.argv[1], "jaxlib": sys.argv[1], "jax-cfd": sys.argv[2]}
sys.exit(any(md.version(k) != v for k, v in want.items()))
PY
}

mkdir -p "$THERMALIZER_HOME"
[ -x "$VENV/bin/python" ] || { log "creating venv $VENV"; python3 -m venv "$VENV"; }
if ! check; then
  log "installing jax==$JAX_VERSION jaxlib==$JAX_VERSION jax-cfd==$JAXCFD_VERSION into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
      "jax==$JAX_VERSION" "jaxlib==$JAX_VERSION" "jax-cfd==$JAXCFD_VERSION" >&2
  check || { log "error: version check failed after install"; exit 1; }
fi
# smoke test: the spectral module imports and JAX sees a CPU device
JAX_PLATFORMS=cpu "$VENV/bin/python" -c 'import jax, jax_cfd.spectral; assert jax.devices()[0].platform == "cpu"' \
  || { log "error: jax / jax_cfd import failed in $VENV"; exit 1; }
echo "$VENV/bin/python"
