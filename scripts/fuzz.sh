#!/usr/bin/env bash
# Fuzzes the ONNX loader with libFuzzer (clang), seeded from the ONNX backend
# suite's models.
#   scripts/fuzz.sh [SECONDS]     default 60; the documented long run is 600
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
BUILD=${FUZZ_BUILD:-build-fuzz}
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DKILN_FUZZ=ON -DKILN_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fuzz_onnx_load >/dev/null
DATA=$(.venv/bin/python -c 'import onnx,os;print(os.path.join(os.path.dirname(onnx.__file__),"backend","test","data"))')
SEEDS=$BUILD/fuzz-seeds
CORPUS=$BUILD/fuzz-corpus
mkdir -p "$SEEDS" "$CORPUS"
if [ -z "$(ls -A "$SEEDS")" ]; then
  i=0
  for f in "$DATA"/node/*/model.onnx "$DATA"/simple/*/model.onnx "$DATA"/pytorch-*/*/model.onnx; do
    cp "$f" "$SEEDS/seed$((i++)).onnx"
  done
fi
echo "fuzz: loader for ${SECONDS_TO_RUN}s ($(ls "$SEEDS" | wc -l) seeds, corpus $CORPUS)"
"$BUILD/tests/fuzz/fuzz_onnx_load" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 \
  -rss_limit_mb=4096 -print_final_stats=1 "$CORPUS" "$SEEDS" 2>&1 | tail -n 12
