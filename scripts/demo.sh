#!/usr/bin/env bash
# The main job, for now: load a real network from the ONNX backend suite (the
# light ResNet-50 shipped in the onnx wheel), run and time it with kiln, and
# compare its output with the suite's reference output.
#   scripts/demo.sh [KILN_BINARY] [MODEL.onnx]
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${1:-build/kiln}
PY=.venv/bin/python
DATA=$($PY -c 'import onnx,os;print(os.path.join(os.path.dirname(onnx.__file__),"backend","test","data","light"))')
MODEL=${2:-$DATA/light_resnet50.onnx}
REF=${MODEL%.onnx}_output_0.pb
OUT=out/demo
mkdir -p "$OUT"

echo "== kiln info $MODEL"
"$KILN" info "$MODEL"

# The suite's rule for light models: the input is arange(n)/n, float32.
NAME=$($PY - "$MODEL" "$OUT/input.npy" <<'PY'
import sys, numpy as np, onnx
m = onnx.load(sys.argv[1], load_external_data=False)
inits = {i.name for i in m.graph.initializer}
x = [i for i in m.graph.input if i.name not in inits][0]
shape = [d.dim_value for d in x.type.tensor_type.shape.dim]
n = int(np.prod(shape))
np.save(sys.argv[2], (np.arange(n, dtype=np.float32) / n).reshape(shape))
print(x.name)
PY
)

echo
echo "== kiln run (input '$NAME' = arange(n)/n, 3 timed runs after the first)"
"$KILN" run "$MODEL" -i "$NAME=$OUT/input.npy" -o "$OUT/outputs" --repeat 3

echo
echo "== compare with the suite's reference output"
$PY - "$OUT/outputs" "$REF" <<'PY'
import sys, glob, numpy as np, onnx
from onnx import numpy_helper
ref = numpy_helper.to_array(onnx.load_tensor(sys.argv[2]))
out = np.load(sorted(glob.glob(sys.argv[1] + "/*.npy"))[0])
err = np.abs(out.astype(np.float64) - ref).max()
ok = np.allclose(out, ref, rtol=1e-3, atol=1e-7)
top = np.argsort(-out.reshape(-1))[:5]
print(f"top-5 classes: {list(map(int, top))}  (reference: {list(map(int, np.argsort(-ref.reshape(-1))[:5]))})")
print(f"max |kiln - reference| = {err:.3g}: {'MATCH' if ok else 'MISMATCH'} (rtol 1e-3, atol 1e-7)")
sys.exit(0 if ok else 1)
PY
