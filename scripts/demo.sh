#!/usr/bin/env bash
# The main job: train a small CNN on Fashion-MNIST (Debian's dataset-fashion-mnist)
# with kiln train in bf16 mixed precision, then run the exported model with
# kiln run and compare it with onnxruntime on the same test images; finally
# serve it with kiln serve and ask it for one classification through curl.
#   scripts/demo.sh [KILN_BINARY] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${1:-build/kiln}
EPOCHS=${2:-2}
PY=.venv/bin/python
D=/usr/share/datasets/fashion-mnist
OUT=out/demo
mkdir -p "$OUT"

echo "== the model: scripts/fashion_cnn.py (2 conv + BatchNorm + ReLU + max pool, dropout, linear)"
$PY scripts/fashion_cnn.py "$OUT/fashion_cnn.onnx"
"$KILN" info "$OUT/fashion_cnn.onnx" | head -4

echo
echo "== kiln train: 60000 images, $EPOCHS epochs, bf16 mixed precision, Adam"
"$KILN" train "$OUT/fashion_cnn.onnx" \
    --train-images $D/train-images-idx3-ubyte.gz --train-labels $D/train-labels-idx1-ubyte.gz \
    --test-images $D/t10k-images-idx3-ubyte.gz --test-labels $D/t10k-labels-idx1-ubyte.gz \
    --precision bf16 --optimizer adam --lr 0.002 --batch 64 --epochs "$EPOCHS" \
    --out "$OUT/train"

echo
echo "== kiln run on the exported model (first 16 test images)"
$PY - "$OUT/x.npy" "$OUT/labels.npy" <<'PY'
import gzip, sys, numpy as np
def idx(p):
    b = gzip.open(p).read(); nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b[4 + 4 * nd:], np.uint8).reshape(dims)
D = "/usr/share/datasets/fashion-mnist"
np.save(sys.argv[1], (idx(f"{D}/t10k-images-idx3-ubyte.gz")[:16, None] / 255).astype(np.float32))
np.save(sys.argv[2], idx(f"{D}/t10k-labels-idx1-ubyte.gz")[:16].astype(np.int64))
PY
rm -rf "$OUT/run"
"$KILN" run "$OUT/train/model.onnx" -i "x=$OUT/x.npy" -o "$OUT/run"
$PY - "$OUT/train/model.onnx" "$OUT/x.npy" "$OUT/labels.npy" "$OUT/run" <<'PY'
import glob, sys, numpy as np, onnxruntime as ort
names = ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
x, y = np.load(sys.argv[2]), np.load(sys.argv[3])
kiln = np.load(sorted(glob.glob(sys.argv[4] + "/*.npy"))[0])
ref = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
pred = kiln.argmax(1)
print("predicted:", " ".join(names[p] for p in pred))
print("true:     ", " ".join(names[t] for t in y))
err = np.abs(kiln - ref).max()
print(f"{(pred == y).sum()}/16 right; max |kiln - onnxruntime| over the logits = {err:.2g}")
sys.exit(0 if err < 1e-3 and (pred == ref.argmax(1)).all() else 1)
PY

echo
echo "== kiln serve: the trained model in a Triton model repository, one request through curl"
REPO=$OUT/repository
rm -rf "$REPO"
mkdir -p "$REPO/fashion_cnn/1"
cp "$OUT/train/model.onnx" "$REPO/fashion_cnn/1/model.onnx"
printf '%s\n' T-shirt trouser pullover dress coat sandal shirt sneaker bag boot > "$REPO/fashion_cnn/labels.txt"
# inputs and outputs come from the model (no dims given); the labels name the classes
cat > "$REPO/fashion_cnn/config.pbtxt" <<'PB'
max_batch_size: 16
output [ { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] label_filename: "labels.txt" } ]
dynamic_batching { }
PB
"$KILN" serve --model-repository "$REPO" --http-port 0 --no-metrics -t 2 2> "$OUT/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
PORT=
for _ in $(seq 1 100); do
  PORT=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$OUT/serve.log")
  [ -n "$PORT" ] && break
  sleep 0.1
done
[ -n "$PORT" ] || { cat "$OUT/serve.log"; exit 1; }
$PY - "$OUT/x.npy" > "$OUT/request.json" <<'PY'
import json, sys, numpy as np
x = np.load(sys.argv[1])[:1]
print(json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                              "data": x.ravel().tolist()}],
                  "outputs": [{"name": "logits", "parameters": {"classification": 3}}]}))
PY
echo "curl -s -X POST localhost:$PORT/v2/models/fashion_cnn/infer -d @$OUT/request.json"
curl -s -X POST "localhost:$PORT/v2/models/fashion_cnn/infer" -d @"$OUT/request.json" | tee "$OUT/response.json"
echo
kill -TERM $SERVER
wait $SERVER
trap - EXIT
$PY - "$OUT/response.json" "$OUT/run" <<'PY'
import glob, json, sys, numpy as np
top = json.load(open(sys.argv[1]))["outputs"][0]["data"]
print("the server's top 3 for the first test image (score:class:label):", ", ".join(top))
ran = np.load(sorted(glob.glob(sys.argv[2] + "/*.npy"))[0])[0]  # kiln run's logits
sys.exit(0 if int(top[0].split(":")[1]) == int(ran.argmax()) else 1)
PY
