#!/bin/sh
# bench/build_gemm_bench.sh: builds bench/gemm_bench and bench/peak against a
# kiln build directory's libkiln.a and oneDNN (Debian libdnnl-dev, installed
# here with apt-get when missing, through sudo when not root, as
# scripts/setup.sh does), then runs them unless --no-run: the arithmetic
# peaks, then the GEMM table at 1 and 2 threads, each in its own process.
#   bench/build_gemm_bench.sh [BUILD_DIR (default build-rel)] [--no-run]
# oneDNN (Debian) uses OpenMP: its thread count is OMP_NUM_THREADS.
# The tables are markdown (bench/gemm_bench.c says what the columns are).
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-rel}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
LIB=$BUILD/libkiln.a
[ -f "$LIB" ] || { echo "no $LIB: cmake --build $BUILD first" >&2; exit 1; }
OUT=$BUILD/bench
mkdir -p "$OUT"
if ! dpkg-query -W -f='${Status}' libdnnl-dev 2>/dev/null | grep -q "install ok installed"; then
    echo "build_gemm_bench: installing libdnnl-dev" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    { $SUDO apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libdnnl-dev >/dev/null; } ||
        echo "build_gemm_bench: could not install libdnnl-dev" >&2
fi
DNNL_FLAGS=
if [ -f /usr/include/dnnl.h ] && ls /usr/lib/*/libdnnl.so >/dev/null 2>&1; then
    DNNL_FLAGS="-DHAVE_DNNL -ldnnl"
else
    echo "oneDNN not found: kiln only" >&2
fi
gcc -std=gnu11 -O2 -I"$ROOT/include" -I"$ROOT/src" -o "$OUT/gemm_bench" \
    "$ROOT/bench/gemm_bench.c" "$LIB" $DNNL_FLAGS -lprotobuf-c -lz -lcjson -lpthread -lm
gcc -std=gnu11 -O2 -o "$OUT/peak" "$ROOT/bench/peak.c" -lpthread
echo "built $OUT/gemm_bench $OUT/peak"
[ "$2" = "--no-run" ] && exit 0
lscpu | grep -E "Model name|^CPU\(s\)|L1d|L2|L3"
"$OUT/peak" 2
for t in 1 2; do
    OMP_NUM_THREADS=$t "$OUT/gemm_bench" -t $t
    echo
done
