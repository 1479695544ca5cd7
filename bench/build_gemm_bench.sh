#!/bin/sh
# bench/build_gemm_bench.sh: builds bench/gemm_bench and bench/peak against a
# kiln build directory's libkiln.a (and oneDNN's dnnl_sgemm when libdnnl-dev is
# installed: `apt-get install -y libdnnl-dev`), then runs them unless --no-run:
# the FMA peak, then the GEMM sizes at 1 and 2 threads, each in its own process.
#   bench/build_gemm_bench.sh [BUILD_DIR (default build-rel)] [--no-run]
# oneDNN (Debian) uses OpenMP: its thread count is OMP_NUM_THREADS.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-rel}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
LIB=$BUILD/libkiln.a
[ -f "$LIB" ] || { echo "no $LIB: cmake --build $BUILD first" >&2; exit 1; }
OUT=$BUILD/bench
mkdir -p "$OUT"
DNNL_FLAGS=
if [ -f /usr/include/dnnl.h ] && ls /usr/lib/*/libdnnl.so >/dev/null 2>&1; then
    DNNL_FLAGS="-DHAVE_DNNL -ldnnl"
else
    echo "oneDNN not found: kiln only" >&2
fi
gcc -std=gnu11 -O2 -I"$ROOT/include" -I"$ROOT/src" -o "$OUT/gemm_bench" \
    "$ROOT/bench/gemm_bench.c" "$LIB" $DNNL_FLAGS -lprotobuf-c -lpthread -lm
gcc -std=gnu11 -O2 -o "$OUT/peak" "$ROOT/bench/peak.c" -lpthread
echo "built $OUT/gemm_bench $OUT/peak"
[ "$2" = "--no-run" ] && exit 0
lscpu | grep -E "Model name|^CPU\(s\)|L1d|L2|L3"
"$OUT/peak" 2
for t in 1 2; do
    OMP_NUM_THREADS=$t "$OUT/gemm_bench" -t $t
done
