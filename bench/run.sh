#!/bin/sh
# bench/run.sh: the whole benchmark from a fresh clone, writing docs/BENCHMARKS.md.
#   bench/run.sh [run_models.py options, e.g. --only resnet50 --budget-s 4]
# 1. installs what is missing (scripts/setup.sh --venv: apt packages, .venv with
#    numpy, onnx, onnxruntime; libdnnl-dev for the oneDNN GEMM anchor) and builds
#    kiln (make build);
# 2. generates the model set (bench/models.py) into $BUILD/bench/models;
# 3. runs bench/run_models.py: the GEMM benchmark (bench/build_gemm_bench.sh),
#    then every model x batch x threads x precision on kiln and onnxruntime,
#    then the models the benchmark set never saw, and writes docs/BENCHMARKS.md
#    (raw results in $BUILD/bench/results.json).
# With the defaults it takes about 15 minutes on 2 shared cores, build included
# (bench/README.md); progress, with the seconds since the start, goes to stderr.
# BUILD (default build) names the build directory; BENCH_OUT (default
# docs/BENCHMARKS.md) the report.
set -e
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BENCH_OUT=${BENCH_OUT:-docs/BENCHMARKS.md}
START=$(date +%s)
step() { echo "bench: [$(($(date +%s) - START)) s] $*" >&2; }

# apt packages; the venv only when it cannot import the oracles (setup.sh
# --venv rebuilds it whenever requirements-test.txt changed).
step "set-up (scripts/setup.sh)"
if .venv/bin/python -c "import numpy, onnx, onnxruntime" 2>/dev/null; then
    scripts/setup.sh
else
    scripts/setup.sh --venv
fi
if ! dpkg-query -W -f='${Status}' libdnnl-dev 2>/dev/null | grep -q "install ok installed"; then
    echo "bench: installing libdnnl-dev (the oneDNN GEMM anchor)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libdnnl-dev >/dev/null; } ||
        echo "bench: could not install libdnnl-dev; the GEMM table will have kiln only" >&2
fi
step "build (make build BUILD=$BUILD)"
make build BUILD="$BUILD"

step "model set (bench/models.py $BUILD/bench/models)"
mkdir -p "$BUILD/bench/models"
.venv/bin/python bench/models.py "$BUILD/bench/models"
CMD="bench/run.sh"
[ "$BUILD" != build ] && CMD="BUILD=$BUILD $CMD"
[ $# -gt 0 ] && CMD="$CMD $*"
step "benchmarks (bench/run_models.py)"
exec .venv/bin/python bench/run_models.py --kiln "$BUILD/kiln" --models "$BUILD/bench/models" \
    --gemm-cmd "bench/build_gemm_bench.sh $BUILD" --out "$BENCH_OUT" \
    --json-out "$BUILD/bench/results.json" --command "$CMD" --started-at "$START" "$@"
