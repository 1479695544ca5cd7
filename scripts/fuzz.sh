#!/usr/bin/env bash
# Fuzzes kiln with libFuzzer (clang), seeded from the ONNX backend suite's
# models.
#   scripts/fuzz.sh [SECONDS] [load|run]
#     load (default): the ONNX loader; the documented long run is 600 seconds
#     run: load + plan + run every model on small inputs (every op's shape
#          rule and kernel on hostile attributes and shapes)
#     files: the training file readers (checkpoints restored into a trainer,
#          CSV, IDX, .npy), seeded with a valid file of each
#     serve: the server's inference request parsing and checking (JSON and
#          binary tensor data, shared memory references; tests/fuzz/fuzz_serve_request.c), seeded with
#          valid requests, with a dictionary of the protocol's words
#     serve-config: config.pbtxt parsing, completion against a small model and
#          the JSON form (tests/fuzz/fuzz_serve_config.c), seeded with configs
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
TARGET=${2:-load}
case "$TARGET" in load|run|files|serve|serve-config) ;; *) echo "fuzz.sh: target must be load, run, files, serve or serve-config" >&2; exit 2;; esac
BUILD=${FUZZ_BUILD:-build-fuzz}
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DKILN_FUZZ=ON -DKILN_TESTS=OFF >/dev/null
HARNESS=fuzz_onnx_$TARGET
[ "$TARGET" = files ] && HARNESS=fuzz_train_files
[ "$TARGET" = serve ] && HARNESS=fuzz_serve_request
[ "$TARGET" = serve-config ] && HARNESS=fuzz_serve_config
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
EXTRA=()
if [ "$TARGET" = serve ]; then
  # requests framed as fuzz_serve_request.c reads them: a mode byte (bit 0: a
  # 2-byte header length follows), the JSON, the binary tail
  SEEDS=$BUILD/fuzz-seeds-serve
  mkdir -p "$SEEDS"
  EXTRA=(-dict=tests/fuzz/serve.dict)
  .venv/bin/python - "$SEEDS" <<'PY'
import struct, sys, os
d = sys.argv[1]
def framed(mode, js, tail=b""):
    js = js.encode()
    if mode & 1:
        return bytes([mode]) + struct.pack("<H", len(js)) + js + tail
    return bytes([mode]) + js + tail
a = ('{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2.5,NaN,-Infinity]},'
     '{"name":"ids","shape":[1,3,2],"datatype":"INT64","data":[[1,2],[3,4],[5,-9223372036854775808]]}]}')
b = ('{"id":"7","inputs":[{"name":"s","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":11}}],'
     '"outputs":[{"name":"s","parameters":{"binary_data":true}}]}')
c = ('{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}},'
     '{"name":"ids","shape":[2,1,2],"datatype":"UINT64","data":[18446744073709551615,0,1,2]}],'
     '"outputs":[{"name":"x","parameters":{"classification":3}}],"parameters":{"timeout":5}}')
e = ('{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[[1],[2,3],[4]]},'
     '{"name":"ids","shape":[3,2],"datatype":"INT64","data":[1,2,3,4,5,6]},'
     '{"name":"s","shape":[1],"datatype":"BYTES","data":["h\\u00e9\\n"]},'
     '{"name":"h","shape":[2],"datatype":"FP16","parameters":{"binary_data_size":4}},'
     '{"name":"b","shape":[3],"datatype":"BOOL","data":[true,false,true]}]}')
f = ('{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"shared_memory_region":"r",'
     '"shared_memory_byte_size":16,"shared_memory_offset":4}},{"name":"s","shape":[1],"datatype":"BYTES",'
     '"parameters":{"shared_memory_region":"r","shared_memory_byte_size":5}},'
     '{"name":"ids","shape":[1,1,2],"datatype":"INT64","data":[1,2]}],'
     '"outputs":[{"name":"y","parameters":{"shared_memory_region":"r","shared_memory_byte_size":12}}]}')
seeds = [framed(0, a), framed(2, a), framed(1, b, b"\x02\x00\x00\x00hi\x01\x00\x00\x00!"),
         framed(3, c, struct.pack("<8f", *range(8))), framed(5, e, b"\x00\x3c\x00\xc0"), framed(2, f)]
for i, s in enumerate(seeds):
    open(os.path.join(d, f"seed{i}"), "wb").write(s)
PY
fi
if [ "$TARGET" = serve-config ]; then
  SEEDS=$BUILD/fuzz-seeds-serve-config
  mkdir -p "$SEEDS"
  EXTRA=(-dict=tests/fuzz/serve_config.dict)
  cat > "$SEEDS/full.pbtxt" <<'PB'
name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 3 ] reshape: { shape: [ 3 ] } } ]
output [ { name: "out0", data_type: TYPE_FP32, dims: [ -1 ], label_filename: "labels.txt" } ]
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100
  default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 1000 allow_timeout_override: true max_queue_size: 16 }
}
instance_group [ { count: 2 kind: KIND_CPU } ]
version_policy: { specific: { versions: [ 1, 3 ] } }
parameters { key: "precision" value: { string_value: "fp32" } }
parameters: { key: "threads", value: { string_value: "2" } }
model_warmup [ { name: "w" batch_size: 2 inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 3 ] random_data: true } } } ]
PB
  printf 'max_batch_size: 0
# a comment
input [ { name: "x" data_type: TYPE_FP32 dims: [ -1, 3 ] } ]
' > "$SEEDS/nobatch.pbtxt"
  printf 'name: "m"
' > "$SEEDS/name.pbtxt"
fi
mkdir -p "$SEEDS" "$CORPUS"
if [ -z "$(ls -A "$SEEDS")" ]; then
  i=0
  for f in "$DATA"/node/*/model.onnx "$DATA"/simple/*/model.onnx "$DATA"/pytorch-*/*/model.onnx; do
    cp "$f" "$SEEDS/seed$((i++)).onnx"
  done
fi
echo "fuzz: $TARGET for ${SECONDS_TO_RUN}s ($(ls "$SEEDS" | wc -l) seeds, corpus $CORPUS)"
# the whole log and any failing input stay in $BUILD; on a failure the
# sanitizer's report and the input (base64, when small) are printed, so a CI
# log alone is enough to reproduce it
LOG=$BUILD/fuzz-$TARGET.log
ARTIFACTS=$BUILD/fuzz-artifacts-$TARGET/
rm -rf "$ARTIFACTS" && mkdir -p "$ARTIFACTS"
rc=0
"$BUILD/tests/fuzz/$HARNESS" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 \
  -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$ARTIFACTS" "${EXTRA[@]}" \
  "$CORPUS" "$SEEDS" >"$LOG" 2>&1 || rc=$?
if [ "$rc" -eq 0 ]; then
  tail -n 12 "$LOG"
  exit 0
fi
# the input first, the report last: a log's tail then shows the report
echo "fuzz: $HARNESS failed (exit $rc); whole log: $LOG"
for f in "$ARTIFACTS"*; do
  [ -f "$f" ] || continue
  echo "fuzz: failing input $f ($(stat -c %s "$f") bytes); rerun: $BUILD/tests/fuzz/$HARNESS $f"
  if [ "$(stat -c %s "$f")" -le 4096 ]; then
    echo "--- base64 (decode with: base64 -d > input)"
    base64 -w 100 "$f"
    echo "---"
  fi
done
grep -m1 -A24 -E '^==[0-9]+==.*ERROR|runtime error|ALARM|out-of-memory|deadly signal' "$LOG" || tail -n 25 "$LOG"
grep -m1 '^SUMMARY' "$LOG" || true
exit "$rc"
