#!/usr/bin/env bash
# Creates (idempotently) the Python venv with pyqg, the reference two-layer QG solver: used by the
# independent-reference test of the Rust QG solver (tests/python/pyqg_reference.py); separate from
# the main venv of scripts/setup.sh and from the jax-cfd one. Prints its python.
# Pins the version the anchors were measured with (shared/anchors/README.md): pyqg 0.7.2.
# Build recipe: the 0.7.2 sdist does NOT build with Cython 3 (pyqg issues #324/#328), and pyfftw
# must be importable at build time, or pyqg is compiled against numpy.fft ("No pyfftw detected")
# and is much slower; hence the build deps first, then pyqg without build isolation.
# Usage: scripts/setup-pyqg.sh     then: "$(scripts/setup-pyqg.sh)" tests/python/pyqg_reference.py ...
# Knobs: THERMALIZER_HOME (default ~/.local/share/thermalizer) holds pyqg-venv/.
set -euo pipefail
PYQG_VERSION=0.7.2
THERMALIZER_HOME=${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}
VENV=$THERMALIZER_HOME/pyqg-venv
log() { echo "[setup-pyqg] $*" >&2; }   # stderr, so stdout is only the python path

check() {
  "$VENV/bin/python" - "$PYQG_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
sys.exit(md.version("pyqg") != sys.argv[1])
PY
}

mkdir -p "$THERMALIZER_HOME"
[ -x "$VENV/bin/python" ] || { log "creating venv $VENV"; python3 -m venv "$VENV"; }
if ! check; then
  log "installing build deps (cython<3, numpy<2, pyfftw) into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
      "cython<3" "numpy<2" setuptools wheel setuptools_scm pyfftw >&2
  log "building pyqg==$PYQG_VERSION (no build isolation, against pyfftw)"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-build-isolation \
      "pyqg==$PYQG_VERSION" >&2
  check || { log "error: version check failed after install"; exit 1; }
fi
# smoke test: pyqg imports, and its kernel uses pyfftw (not the numpy.fft fallback)
"$VENV/bin/python" - <<'PY' >&2 || { log "error: pyqg import / pyfftw check failed in $VENV"; exit 1; }
import pyqg, pyqg.kernel as k
# kernel.pyx imports pyfftw only when built with it, numpy.fft (as npfft) otherwise
assert hasattr(k, "pyfftw") and not hasattr(k, "npfft"), "pyqg was built without pyfftw"
PY
echo "$VENV/bin/python"
