#!/usr/bin/env bash
# Black-box tests of the `kiln` command: contracts of info/run, --help,
# --version, and the one-line errors on bad input.
#   tests/cli/test_cli.sh build/kiln
set -uo pipefail
KILN=${1:-build/kiln}
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
check() { # check NAME CONDITION-COMMAND...
  local name=$1; shift
  if "$@" >/dev/null 2>&1; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name"; fi
}

# a small model with an awkward output name and a dynamic batch dim
$PY - "$TMP" <<'PY'
import sys, numpy as np, onnx
from onnx import helper as h, TensorProto as TP, numpy_helper as nh
d = sys.argv[1]
g = h.make_graph([h.make_node("MatMul", ["x", "w"], ["y/out:0"])], "g",
                 [h.make_tensor_value_info("x", TP.FLOAT, ["N", 3])],
                 [h.make_tensor_value_info("y/out:0", TP.FLOAT, ["N", 2])],
                 [nh.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "w")])
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
onnx.save(m, d + "/m.onnx")
m.graph.output[0].type.tensor_type.ClearField("shape")  # undeclared: kiln info infers it
onnx.save(m, d + "/m_noshape.onnx")
np.save(d + "/x.npy", np.ones((4, 3), np.float32))
np.save(d + "/bad.npy", np.ones((4, 5), np.float32))
np.save(d + "/badtype.npy", np.ones((4, 3), np.int32))
b = m.SerializeToString()
open(d + "/trunc.onnx", "wb").write(b[: len(b) // 2])
open(d + "/garbage.onnx", "wb").write(b"\xff" * 100)
g2 = h.make_graph([h.make_node("FancyOp", ["x"], ["y"])], "g", [h.make_tensor_value_info("x", TP.FLOAT, [1])],
                  [h.make_tensor_value_info("y", TP.FLOAT, [1])])
onnx.save(h.make_model(g2, opset_imports=[h.make_opsetid("", 17)]), d + "/unsup.onnx")
rng = np.random.default_rng(0)  # a grouped 3x3 convolution (groups of 24 channels: stays NCHW): several algorithms compete for it
gc = h.make_graph([h.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], group=2)], "g",
                  [h.make_tensor_value_info("x", TP.FLOAT, [1, 48, 12, 12])],
                  [h.make_tensor_value_info("y", TP.FLOAT, [1, 48, 12, 12])],
                  [nh.from_array(rng.standard_normal((48, 24, 3, 3)).astype(np.float32), "w")])
onnx.save(h.make_model(gc, opset_imports=[h.make_opsetid("", 17)]), d + "/conv.onnx")
g3 = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g", [h.make_tensor_value_info("x", TP.FLOAT, [1])],
                  [h.make_tensor_value_info("y", TP.FLOAT, [1])])
onnx.save(h.make_model(g3, opset_imports=[h.make_opsetid("", 99)]), d + "/future.onnx")
PY

check "--version" bash -c "'$KILN' --version | grep -q '^kiln [0-9]'"
check "--help lists commands" bash -c "'$KILN' --help | grep -q 'run'"
for c in info run bench train; do
  check "$c --help" bash -c "'$KILN' $c --help | grep -q '^usage: kiln $c'"
done
check "train without data is a usage error" bash -c "'$KILN' train '$TMP/m.onnx' --out '$TMP/t'; [ \$? -eq 2 ]"
check "train rejects an unknown optimizer" bash -c "'$KILN' train '$TMP/m.onnx' --optimizer lion 2>&1 | grep -q 'expected sgd, adam or adamw'"
check "train rejects an unknown precision" bash -c "'$KILN' train '$TMP/m.onnx' --precision int8 2>&1 | grep -q 'expected fp32, bf16 or fp16'"
check "train rejects an unknown loss" bash -c "'$KILN' train '$TMP/m.onnx' --loss hinge 2>&1 | grep -q 'expected cross-entropy, nll, mse or bce-with-logits'"
check "train names a data file whose samples do not fit the input" bash -c "printf '1,2,0\\n3,4,1\\n' > '$TMP/two.csv'; '$KILN' train '$TMP/m.onnx' --train-csv '$TMP/two.csv' --out '$TMP/t' 2>&1 | grep -q \"two.csv has 2 values per sample; the model's input 'x' (float32\\[N,3\\]) takes 3\""
check "train --arch builds a network sized to the data" bash -c "printf '1,2,0\\n3,4,1\\n5,6,2\\n' > '$TMP/three.csv'; '$KILN' train --arch mlp --width 8 --train-csv '$TMP/three.csv' --batch 2 --out '$TMP/arch' | grep -q '^kiln train: built-in mlp, 51 parameters' && '$KILN' info '$TMP/arch/model.onnx' | grep -q 'logits.*float32\[N,3\]'"
check "train --arch cnn refuses a CSV table" bash -c "'$KILN' train --arch cnn --train-csv '$TMP/three.csv' --out '$TMP/arch' 2>&1 | grep -q \"three.csv has rank 2; the model's input has rank 4\""
check "train takes a model or --arch, not both" bash -c "'$KILN' train '$TMP/m.onnx' --arch cnn --out '$TMP/arch' 2>&1 | grep -q 'not both'"
check "train rejects an unknown architecture" bash -c "'$KILN' train --arch vgg --out '$TMP/arch' 2>&1 | grep -q 'expected mlp, cnn, resnet or char-lstm'"
check "train rejects an unknown schedule" bash -c "'$KILN' train '$TMP/m.onnx' --schedule linear 2>&1 | grep -q 'expected constant, step or cosine'"
check "train's step schedule needs --step-size" bash -c "'$KILN' train '$TMP/m.onnx' --schedule step --train-images a --train-labels b --out '$TMP/t' 2>&1 | grep -q 'needs --step-size'"
check "unknown command fails" bash -c "! '$KILN' frobnicate"
check "serve --help describes the repository" bash -c "'$KILN' serve --help | grep -q 'model-repository DIR'"
check "serve without a repository is a usage error" bash -c "'$KILN' serve; [ \$? -eq 2 ]"
check "serve rejects an unknown control mode" bash -c "'$KILN' serve --model-repository '$TMP' --model-control-mode auto 2>&1 | grep -q 'expected none, poll or explicit'"
check "serve --load-model needs explicit mode" bash -c "'$KILN' serve --model-repository '$TMP' --load-model m 2>&1 | grep -q 'needs --model-control-mode explicit'"
check "serve names a missing repository" bash -c "'$KILN' serve --model-repository '$TMP/none' --http-port 0 --no-metrics 2>&1 | grep -q \"$TMP/none\""
check "serve names a bad host" bash -c "'$KILN' serve --model-repository '$TMP' --host nowhere --http-port 0 --no-metrics 2>&1 | grep -q \"'nowhere' is not an IPv4 or IPv6 address\""

check "info shows inputs" bash -c "'$KILN' info '$TMP/m.onnx' | grep -q 'x: float32\[N,3\]'"
check "info shows parameters" bash -c "'$KILN' info '$TMP/m.onnx' | grep -q 'parameters: 6'"
check "info infers undeclared shapes" bash -c "'$KILN' info '$TMP/m_noshape.onnx' | grep -q 'y/out:0: float32\[N,2\]'"
check "info --shapes lists values" bash -c "'$KILN' info '$TMP/m.onnx' --shapes | grep -q 'w: float32\[3,2\]'"
check "info shows op histogram" bash -c "'$KILN' info '$TMP/m.onnx' | grep -qE 'MatMul +1'"

check "run writes sanitized output names" bash -c \
  "'$KILN' run '$TMP/m.onnx' -i x='$TMP/x.npy' -o '$TMP/out' && test -f '$TMP/out/y_out_0.npy'"
check "run output values" $PY -c "
import numpy as np; y = np.load('$TMP/out/y_out_0.npy')
assert y.shape == (4, 2) and (y == np.ones((4,3)) @ np.arange(6).reshape(3,2)).all()"
check "--random is seeded" bash -c "
  '$KILN' run '$TMP/m.onnx' --random --seed 5 --shape x=2,3 -o '$TMP/r1' &&
  '$KILN' run '$TMP/m.onnx' --random --seed 5 --shape x=2,3 -o '$TMP/r2' &&
  cmp '$TMP/r1/y_out_0.npy' '$TMP/r2/y_out_0.npy'"
check "bench --json" bash -c "'$KILN' bench '$TMP/m.onnx' --iters 5 --json | $PY -c '
import json, sys; r = json.load(sys.stdin); l = r[\"latency_ms\"]
assert l[\"p50\"] <= l[\"p99\"] and r[\"throughput_per_s\"] > 0 and r[\"iters\"] == 5'"
check "bench --profile" bash -c "'$KILN' bench '$TMP/m.onnx' --iters 3 --profile --shape x=8,3 | grep -qE '^  MatMul +- +[a-z0-9_]+ '"
check "bench --reference runs reference kernels" bash -c "'$KILN' bench '$TMP/m.onnx' --iters 3 --profile --reference | grep -qE '^  MatMul +- +reference '"
check "bench --json --profile lists nodes" bash -c "'$KILN' bench '$TMP/m.onnx' --iters 2 --json --profile | $PY -c '
import json, sys; r = json.load(sys.stdin); n = r[\"nodes\"]
assert r[\"precision\"] == \"fp32\" and len(n) == 1 and n[0][\"op\"] == \"MatMul\" and n[0][\"ms\"] >= 0'"
check "-t 1 works" "$KILN" run "$TMP/m.onnx" -i "x=$TMP/x.npy" -t 1
# --tune writes the winners to the timing cache; a later start without --tune reuses them
check "--tune writes the timing cache" bash -c "
  '$KILN' bench '$TMP/conv.onnx' --iters 2 --tune --timing-cache '$TMP/tc.txt' >/dev/null &&
  grep -qE '^[a-z0-9_]+ [0-9.]+ .*\|\.Conv\|' '$TMP/tc.txt'"
check "timing cache reused without --tune" bash -c "
  algo=\$(grep -oE '^[a-z0-9_]+ [0-9.]+ .*\|\.Conv\|' '$TMP/tc.txt' | head -1 | cut -d' ' -f1) &&
  '$KILN' bench '$TMP/conv.onnx' --iters 2 --profile --timing-cache '$TMP/tc.txt' | grep -qE \"^  Conv +- +\$algo \""
check "bf16 precision runs" bash -c "'$KILN' run '$TMP/conv.onnx' --random --precision bf16 -o '$TMP/bf' && test -f '$TMP/bf/y.npy'"

# errors: non-zero exit and one line naming what is wrong
err() { # err NAME PATTERN ARGS...
  local name=$1 pat=$2; shift 2
  local out
  out=$("$KILN" "$@" 2>&1 >/dev/null)
  local rc=$?
  if [ $rc -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && printf '%s' "$out" | grep -q -- "$pat"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1)); echo "FAIL: $name (rc=$rc): $out"
  fi
}
err "missing model file" "no/such.onnx" run no/such.onnx --random
err "truncated model" "trunc.onnx" run "$TMP/trunc.onnx" --random
err "garbage model" "garbage.onnx" info "$TMP/garbage.onnx"
err "unsupported op" "FancyOp" run "$TMP/unsup.onnx" --random
err "opset too new" "opset 99" run "$TMP/future.onnx" --random
err "wrong input shape" "(4,5)" run "$TMP/m.onnx" -i "x=$TMP/bad.npy"
err "wrong input dtype" "int32" run "$TMP/m.onnx" -i "x=$TMP/badtype.npy"
err "unknown input name" "'nope'" run "$TMP/m.onnx" -i "nope=$TMP/x.npy"
err "missing input" "'x'" run "$TMP/m.onnx"
err "missing npy" "missing.npy" run "$TMP/m.onnx" -i "x=$TMP/missing.npy"
err "bench bad --iters" "iters" bench "$TMP/m.onnx" --iters 0
err "bad thread count" "thread" run "$TMP/m.onnx" --random -t 0
err "unknown precision" "precision 'fp7'" bench "$TMP/m.onnx" --precision fp7
err "--reference with --tune" "reference" run "$TMP/m.onnx" --random --reference --tune
err "unknown device" "device 'tpu'" run "$TMP/m.onnx" --random --device tpu
err "--reference with --device" "reference" run "$TMP/m.onnx" --random --reference --device cuda
if ! nvidia-smi >/dev/null 2>&1; then # no GPU: --device cuda says why, in one line
  err "--device cuda without a GPU" "CUDA" run "$TMP/m.onnx" --random --device cuda
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
