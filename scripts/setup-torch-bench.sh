#!/usr/bin/env bash
# Makes (idempotently) the PyTorch *Python* package importable, CPU eager only, from the main venv of
# scripts/setup.sh, for the PyTorch side of the training benchmark (scripts/bench_torch_train.py,
# scripts/bench-train.sh). Prints the python to run it with.
#
# scripts/setup.sh installs torch==2.11.0 with --no-deps: we only need its libtorch_cpu.so (which is
# all the thermalizer binary links). `import torch` needs two more things, which this script adds
# without reinstalling torch and without pulling any CUDA wheel (several GB):
#   1. torch's small pure-Python dependencies (pinned below: the versions the benchmark was measured
#      with), pip-installed into the venv;
#   2. the CUDA libraries torch's Python extension links against (torch/_C -> libtorch_python.so ->
#      libtorch_cuda.so -> libcudnn.so.9, libcublas.so.13, libnccl.so.2, ...; only libcudart and
#      libcupti are in the venv). For each one that is missing we build a small *stub* shared
#      library with the same SONAME, symbol-version node and the symbols torch references, every
#      function of which prints its name and aborts if it is ever called. The stubs live outside the
#      venv ($THERMALIZER_HOME/torch-cuda-stubs) and are put on LD_LIBRARY_PATH only by the wrapper
#      this script prints ($THERMALIZER_HOME/torch-bench/python, which execs the venv's python), so
#      the venv, torch and the thermalizer binary are untouched. CPU ops never call into them; if a
#      real CUDA wheel is installed later, torch's RPATH (searched before LD_LIBRARY_PATH) finds it
#      first, and a regenerated stub set simply no longer contains that library.
#   So the PyTorch side of the benchmark runs the very libtorch_cpu.so our Rust side links.
# Needs: gcc and binutils (nm, readelf), installed by scripts/setup.sh (build-essential).
# Usage: scripts/setup.sh && scripts/setup-torch-bench.sh
#        then: "$(scripts/setup-torch-bench.sh)" scripts/bench_torch_train.py ...
# Knobs: THERMALIZER_HOME (default ~/.local/share/thermalizer) holds venv/, torch-cuda-stubs/, torch-bench/.
set -euo pipefail
TORCH_VERSION=2.11.0
# torch 2.11.0's Requires-Dist minus setuptools (the venv's own satisfies <82) and the CUDA/triton
# wheels; mpmath and MarkupSafe are what sympy and jinja2 pull in.
DEPS=(typing_extensions==4.16.0 filelock==4.3.1 sympy==1.14.0 mpmath==1.3.0 networkx==3.6.1
      jinja2==3.1.6 MarkupSafe==3.0.4 fsspec==2026.9.0)
THERMALIZER_HOME=${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}
VENV=$THERMALIZER_HOME/venv
STUBS=$THERMALIZER_HOME/torch-cuda-stubs
WRAPPER=$THERMALIZER_HOME/torch-bench/python
log() { echo "[setup-torch-bench] $*" >&2; }   # stderr, so stdout is only the python path

[ -x "$VENV/bin/python" ] || { log "error: no venv at $VENV; run scripts/setup.sh first"; exit 1; }
"$VENV/bin/python" - "$TORCH_VERSION" <<'PY' 2>/dev/null \
  || { log "error: torch==$TORCH_VERSION is not installed in $VENV; run scripts/setup.sh first"; exit 1; }
import sys, importlib.metadata as md
sys.exit(md.version("torch") != sys.argv[1])
PY

# 1) pure-Python dependencies (no --upgrade, no torch in the list: pip leaves torch and nvidia-* as they are;
#    pip prints that torch's CUDA requirements are "not installed": expected, they are not wanted here)
deps_ok() {
  "$VENV/bin/python" - "${DEPS[@]}" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
for spec in sys.argv[1:]:
    name, version = spec.split("==")
    if md.version(name) != version:
        sys.exit(1)
PY
}
if ! deps_ok; then
  log "installing torch's pure-Python dependencies into $VENV: ${DEPS[*]}"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${DEPS[@]}" 2>&1 \
    | grep -v -E "dependency resolver does not currently|torch $TORCH_VERSION requires .*(cuda|nvidia|triton)" >&2 || true
  deps_ok || { log "error: dependency versions wrong after install"; exit 1; }
fi

# 2) stubs for the CUDA libraries torch's extension links against but the venv lacks
TORCH_DIR=$(echo "$VENV"/lib/python3*/site-packages/torch)
stamp="torch $TORCH_VERSION $(stat -c %Y "$TORCH_DIR/version.py") $(ls "$TORCH_DIR"/../nvidia 2>/dev/null | tr '\n' ' ')"
if [ "$(cat "$STUBS/.stamp" 2>/dev/null)" != "$stamp" ]; then
  log "building CUDA stub libraries in $STUBS"
  rm -rf "$STUBS.tmp"; mkdir -p "$STUBS.tmp"
  "$VENV/bin/python" - "$TORCH_DIR" "$STUBS.tmp" "$(readlink -f "$VENV/bin/python")" <<'PY' >&2
import glob, os, re, subprocess, sys
torch_dir, out, python = sys.argv[1:]
ext = glob.glob(os.path.join(torch_dir, "_C.cpython-*.so"))[0]

def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

def ldd(path):
    found, missing = {}, set()
    for line in run("ldd", path).splitlines():
        m = re.match(r"\s*(\S+) => (not found|(\S+))", line)
        if m and m.group(2) == "not found":
            missing.add(m.group(1))
        elif m:
            found[m.group(1)] = os.path.realpath(m.group(3))
    return found, missing

found, missing = ldd(ext)
if not missing:
    print("[setup-torch-bench] no CUDA library missing: no stubs needed")
    sys.exit(0)
users = [ext] + [p for p in found.values() if p.startswith(os.path.realpath(torch_dir))]
# version nodes each missing library must define (from the users' .gnu.version_r)
nodes, cur = {}, None
for u in users:
    for line in run("readelf", "-V", "-W", u).splitlines():
        m = re.search(r"File: (\S+)", line)
        if m:
            cur = m.group(1)
            continue
        m = re.search(r"Name: (\S+)", line)
        if m and cur in missing:
            nodes.setdefault(cur, set()).add(m.group(1))
node_lib = {n: lib for lib, ns in nodes.items() for n in ns}
# symbols defined by everything that does load (and by the interpreter)
defined = set()
py_found, _ = ldd(python)
for lib in list(found.values()) + list(py_found.values()) + [python]:
    for line in run("nm", "-D", "--defined-only", lib).splitlines():
        f = line.split()
        if len(f) == 3:
            defined.add(f[2].split("@")[0])
# undefined references: versioned ones name their library; unversioned ones that nothing loaded
# defines go by prefix to the library that owns them (which stub defines them does not matter)
prefix_lib = [("cuFile", "libcufile.so.0"), ("cusparseLt", "libcusparseLt.so.0"), ("nccl", "libnccl.so.2"),
              ("cudnn", "libcudnn.so.9"), ("cublasLt", "libcublasLt.so.13"), ("cublas", "libcublas.so.13"),
              ("cusparse", "libcusparse.so.12"), ("cufft", "libcufft.so.12"), ("curand", "libcurand.so.10"),
              ("nvshmem", "libnvshmem_host.so.3")]
syms = {lib: {} for lib in missing}   # lib -> {symbol: version node or None}
for u in users:
    for line in run("nm", "-D", "--undefined-only", u).splitlines():
        f = line.split()
        if len(f) != 2 or f[0] != "U":
            continue
        name, _, ver = f[1].partition("@")
        if ver:
            if ver in node_lib:
                syms[node_lib[ver]][name] = ver
        elif name not in defined:
            lib = next((l for p, l in prefix_lib if name.startswith(p) and l in missing), sorted(missing)[0])
            syms[lib].setdefault(name, None)
for lib in sorted(missing):
    base = os.path.join(out, lib)
    with open(base + ".c", "w") as c:
        c.write("#include <stdio.h>\n#include <stdlib.h>\n"
                "__attribute__((noreturn)) static void stub_called(const char *s) {\n"
                f"  fprintf(stderr, \"thermalizer: %s called, but {lib} is only a stub (scripts/setup-torch-bench.sh: "
                "CPU-only torch)\\n\", s);\n  abort();\n}\n")
        for s in sorted(syms[lib]):
            c.write(f"void {s}(void) {{ stub_called(\"{s}\"); }}\n")
    cmd = ["gcc", "-shared", "-fPIC", "-O1", "-o", base, base + ".c", f"-Wl,-soname,{lib}"]
    if lib in nodes:
        with open(base + ".map", "w") as m:
            for n in sorted(nodes[lib]):
                these = sorted(s for s, v in syms[lib].items() if v == n)
                m.write(f"{n} {{\n  global:\n" + "".join(f"    {s};\n" for s in these) + "};\n")
            rest = sorted(s for s, v in syms[lib].items() if v is None)
            if rest:
                m.write("STUB_UNVERSIONED {\n  global:\n" + "".join(f"    {s};\n" for s in rest) + "};\n")
            m.write("STUB_LOCAL { local: *; };\n")
        cmd.append(f"-Wl,--version-script={base}.map")
    subprocess.run(cmd, check=True)
    print(f"[setup-torch-bench]   stub {lib}: {len(syms[lib])} symbols")
PY
  rm -f "$STUBS.tmp"/*.c "$STUBS.tmp"/*.map
  echo "$stamp" > "$STUBS.tmp/.stamp"
  rm -rf "$STUBS"; mv "$STUBS.tmp" "$STUBS"
fi

# 3) the wrapper: the venv's python with the stubs on the library path
mkdir -p "$(dirname "$WRAPPER")"
cat > "$WRAPPER.tmp" <<EOF
#!/bin/sh
# Written by thermalizer/scripts/setup-torch-bench.sh: the venv's python, with stubs for the CUDA
# libraries torch links against but the venv lacks (CPU eager use only; a stub aborts if called).
LD_LIBRARY_PATH="$STUBS\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$VENV/bin/python" "\$@"
EOF
chmod +x "$WRAPPER.tmp"; mv "$WRAPPER.tmp" "$WRAPPER"

# smoke test: torch imports, runs a CPU op and a conv backward, sees no CUDA device
"$WRAPPER" - "$TORCH_VERSION" <<'PY' >&2 || { log "error: 'import torch; torch.randn(2)' fails with $WRAPPER"; exit 1; }
import sys, torch
assert torch.__version__.startswith(sys.argv[1]), torch.__version__
torch.randn(2).sum().item()
w = torch.randn(2, 1, 3, 3, requires_grad=True)
torch.nn.functional.conv2d(torch.randn(1, 1, 8, 8), w, padding=1).square().sum().backward()
assert w.grad is not None and not torch.cuda.is_available()
PY
echo "$WRAPPER"
