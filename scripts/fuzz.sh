#!/usr/bin/env bash
# Fuzzes kiln with libFuzzer (clang), seeded from the ONNX backend suite's
# models.
#   scripts/fuzz.sh [SECONDS] [load|run]
#     load (default): the ONNX loader; the documented long run is 600 seconds
#     run: load + plan + run every model on small inputs (every op's shape
#          rule and kernel on hostile attributes and shapes)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
TARGET=${2:-load}
case "$TARGET" in load|run) ;; *) echo "fuzz.sh: target must be load or run" >&2; exit 2;; esac
BUILD=${FUZZ_BUILD:-build-fuzz}
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DKILN_FUZZ=ON -DKILN_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target "fuzz_onnx_$TARGET" >/dev/null
DATA=$(.venv/bin/python -c 'import onnx,os;print(os.path.join(os.path.dirname(onnx.__file__),"backend","test","data"))')
SEEDS=$BUILD/fuzz-seeds
CORPUS=$BUILD/fuzz-corpus-$TARGET
mkdir -p "$SEEDS" "$CORPUS"
if [ -z "$(ls -A "$SEEDS")" ]; then
  i=0
  for f in "$DATA"/node/*/model.onnx "$DATA"/simple/*/model.onnx "$DATA"/pytorch-*/*/model.onnx; do
    cp "$f" "$SEEDS/seed$((i++)).onnx"
  done
fi
echo "fuzz: $TARGET for ${SECONDS_TO_RUN}s ($(ls "$SEEDS" | wc -l) seeds, corpus $CORPUS)"
"$BUILD/tests/fuzz/fuzz_onnx_$TARGET" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 \
  -rss_limit_mb=4096 -print_final_stats=1 "$CORPUS" "$SEEDS" 2>&1 | tail -n 12
