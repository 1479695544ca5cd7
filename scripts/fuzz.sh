#!/usr/bin/env bash
# Fuzzes kiln with libFuzzer (clang), seeded from the ONNX backend suite's
# models.
#   scripts/fuzz.sh [SECONDS] [load|run]
#     load (default): the ONNX loader; the documented long run is 600 seconds
#     run: load + plan + run every model on small inputs (every op's shape
#          rule and kernel on hostile attributes and shapes)
#     files: the training file readers (checkpoints restored into a trainer,
#          CSV, IDX, .npy), seeded with a valid file of each
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
TARGET=${2:-load}
case "$TARGET" in load|run|files) ;; *) echo "fuzz.sh: target must be load, run or files" >&2; exit 2;; esac
BUILD=${FUZZ_BUILD:-build-fuzz}
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DKILN_FUZZ=ON -DKILN_TESTS=OFF >/dev/null
HARNESS=fuzz_onnx_$TARGET
[ "$TARGET" = files ] && HARNESS=fuzz_train_files
cmake --build "$BUILD" -j"$(nproc)" --target "$HARNESS" >/dev/null
DATA=$(.venv/bin/python -c 'import onnx,os;print(os.path.join(os.path.dirname(onnx.__file__),"backend","test","data"))')
SEEDS=$BUILD/fuzz-seeds
CORPUS=$BUILD/fuzz-corpus-$TARGET
if [ "$TARGET" = files ]; then
  # a small classifier for the checkpoints, and one valid file per reader,
  # each behind the byte that picks its reader (fuzz_train_files.c)
  SEEDS=$BUILD/fuzz-seeds-files
  mkdir -p "$SEEDS"
  export KILN_FUZZ_MODEL=$SEEDS/../fuzz-model.onnx
  .venv/bin/python - "$SEEDS" "$KILN_FUZZ_MODEL" <<'PY'
import io, json, struct, sys
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
seeds, model = sys.argv[1], sys.argv[2]
w = np.arange(6, dtype=np.float32).reshape(3, 2) / 10
g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["logits"])], "m",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
                      [numpy_helper.from_array(w, "w")])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), model)
state = np.zeros(12, np.float32)
header = {"__metadata__": {"kiln.optimizer": "adam", "kiln.step": "1", "epoch": "1"},
          "w": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 24]},
          "kiln.optimizer_state": {"dtype": "F32", "shape": [12], "data_offsets": [24, 72]}}
h = json.dumps(header).encode()
st = struct.pack("<Q", len(h)) + h + w.tobytes() + state.tobytes()
idx = bytes([0, 0, 8, 2]) + struct.pack(">II", 2, 3) + bytes(range(6))
npy = io.BytesIO()
np.save(npy, np.arange(6, dtype=np.int64).reshape(2, 3))
for i, body in enumerate([st, b"a,b,label\n1.5,2,0\n-3e2,4,1\n", idx, npy.getvalue()]):
    open(f"{seeds}/seed{i}", "wb").write(bytes([i]) + body)
PY
fi
mkdir -p "$SEEDS" "$CORPUS"
if [ -z "$(ls -A "$SEEDS")" ]; then
  i=0
  for f in "$DATA"/node/*/model.onnx "$DATA"/simple/*/model.onnx "$DATA"/pytorch-*/*/model.onnx; do
    cp "$f" "$SEEDS/seed$((i++)).onnx"
  done
fi
echo "fuzz: $TARGET for ${SECONDS_TO_RUN}s ($(ls "$SEEDS" | wc -l) seeds, corpus $CORPUS)"
"$BUILD/tests/fuzz/$HARNESS" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 \
  -rss_limit_mb=4096 -print_final_stats=1 "$CORPUS" "$SEEDS" 2>&1 | tail -n 12
