#!/usr/bin/env bash
# A relocatable GPU bundle of thermalizer, for a machine that has CUDA and PyTorch 2.11 (whose
# package provides libtorch) but no Rust, MPI or HDF5:
#   scripts/device-bundle.sh [--binary FILE | --no-build] [--out DIR]   (DIR: target/device-bundle)
# builds the release binary with the `cuda` feature, and writes
#   DIR/thermalizer        the binary, debug info stripped, rpath $ORIGIN/lib
#   DIR/bin/               Open MPI's orted and mpirun
#   DIR/lib/               the shared libraries it needs that such a machine lacks: Open MPI,
#                          parallel HDF5 and their dependencies (not libtorch, not CUDA, not glibc)
#   DIR/openmpi/plugins/   Open MPI's components (those whose dependencies are bundled), and
#   DIR/share/openmpi/     its help texts (found through OPAL_PREFIX=DIR)
#   DIR/pmix/plugins/      PMIx's components
#   DIR/configs/           the Kolmogorov quickstart and small-experiment configs, the QG one
#   DIR/data/kolmogorov-small/  the small experiment's shipped models
#   DIR/gpu-checks.sh      every GPU check in one script (see there)
#   DIR/bench_torch_train.py  the PyTorch side of `bench train`, run there on the GPU
#   DIR/hardware-table.py  the device's peaks and copy bandwidth, and the efficiency table
# and refuses a bundle over 64 MiB. Run it there as:  DIR/gpu-checks.sh  (results under $OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
out=target/device-bundle
binary=
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) build=0 ;;
    --binary) binary=$2; build=0; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: $0 [--binary FILE | --no-build] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck disable=SC1091
source "${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/env.sh"
# shellcheck source=scripts/lib/bundle.sh
source scripts/lib/bundle.sh
command -v patchelf >/dev/null || apt-get install -y --no-install-recommends patchelf >/dev/null
target=${CARGO_TARGET_DIR:-target}
if [ $build = 1 ]; then
  cargo build --release --locked --features cuda
fi
binary=${binary:-$target/release/thermalizer}
readelf -d "$binary" | grep -q 'libtorch_cuda' \
  || { echo "error: $binary is not a cuda build (cargo build --release --features cuda)" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/bin" "$out/openmpi/plugins" "$out/share" "$out/configs"
bundle_binary "$binary" "$out"

# Libraries the target machine provides itself: glibc, the C++ runtime, libtorch, CUDA.
provided='^(libc|libm|libdl|libpthread|librt|libutil|libresolv|ld-linux.*|libstdc\+\+|libgcc_s|libtorch.*|libc10.*|libcu(da|dart|blas.*|dnn.*|fft.*|rand|sparse.*|solver.*|pti|file.*)|libnv.*|libnccl.*|libgomp.*)\.so'
# Heavy interconnect stacks not needed on one node (their Open MPI components are left out).
heavy='^(libucp|libucs|libuct|libucm|libfabric|libibverbs|librdmacm|libpsm.*|libefa|libjvm)\.so'
not_provided() { ! [[ $1 =~ $provided ]]; }
# Open MPI's daemon (a singleton starts one) and launcher, found as OPAL_PREFIX/bin/*.
cp /usr/bin/orted "$out/bin/orted"
cp "$(readlink -f "$(command -v mpirun)")" "$out/bin/mpirun"
patchelf --set-rpath '$ORIGIN/../lib' "$out/bin/orted" "$out/bin/mpirun"
bundle_deps "$out/lib" not_provided "$out/thermalizer" "$out/bin/orted" "$out/bin/mpirun"
plugins=$(ompi_info --path pkglibdir --parsable | cut -d: -f3-)
for plugin in "$plugins"/mca_*.so; do
  deps=$(ldd "$plugin" 2>/dev/null || true)
  if awk '{print $1}' <<<"$deps" | grep -Eq "$heavy" || grep -q 'not found' <<<"$deps"; then continue; fi
  cp "$plugin" "$out/openmpi/plugins/"
done
# PMIx's own components (compression, resource managers), found as PMIX_MCA_mca_base_component_path.
pmix=$(dirname "$(readlink -f "$(ldd "$out/openmpi/plugins/mca_pmix_ext3x.so" | awk '/libpmix/ {print $3}')")")/pmix
mkdir -p "$out/pmix/plugins"
cp "$pmix"/pmix_mca_*.so "$out/pmix/plugins/"
bundle_deps "$out/lib" not_provided "$out"/openmpi/plugins/*.so "$out"/pmix/plugins/*.so
# the dependencies of the bundled libraries themselves, until nothing new appears
while :; do
  before=$(find "$out/lib" -type f | wc -l)
  bundle_deps "$out/lib" not_provided "$out"/lib/*.so*
  [ "$(find "$out/lib" -type f | wc -l)" = "$before" ] && break
done
for f in "$out"/lib/*.so* "$out"/openmpi/plugins/*.so "$out"/pmix/plugins/*.so; do
  strip --strip-debug "$f" 2>/dev/null || true
  patchelf --set-rpath '$ORIGIN/../lib:$ORIGIN' "$f" 2>/dev/null || true
done
cp -r /usr/share/openmpi "$out/share/openmpi"
cp configs/kolmogorov-quickstart.yaml configs/kolmogorov-small.yaml configs/qg.yaml "$out/configs/"
mkdir -p "$out/data" && cp -r data/kolmogorov-small "$out/data/"
cp scripts/gpu-checks.sh scripts/bench_torch_train.py scripts/hardware-table.py "$out/"

bytes=$(du -sb "$out" | cut -f1)
echo "bundle: $out ($((bytes / 1048576)) MiB: binary $(( $(stat -c %s "$out/thermalizer") / 1048576 )) MiB, $(find "$out/lib" -type f | wc -l) libraries, $(find "$out/openmpi/plugins" -type f | wc -l) Open MPI components)"
if [ "$bytes" -gt $((64 * 1048576)) ]; then
  echo "error: the bundle is over 64 MiB" >&2
  exit 1
fi
