#!/usr/bin/env bash
# scripts/gpu-check.sh: verification of the CUDA backend on a machine with an
# NVIDIA GPU. Builds (unless KILN_BUILD names a build directory that already
# has kiln and tests/test_cuda), then:
#   1. tests/test_cuda: every CUDA algorithm against the reference kernels on
#      fresh random inputs (fp32 1e-5, bf16 1e-2), and plans that cross
#      between GPU and CPU;
#   2. the model checks (tests/models/check_models.py) with --device cuda,
#      against onnxruntime on the CPU (needs python3 with numpy, onnx,
#      onnxruntime);
#   3. benchmarks: ResNet-50 at batch 64 and BERT-base (sequence 128) at
#      batch 1 and 8, fp32 and bf16, `kiln bench --device cuda` beside PyTorch
#      eager on the same card (bench/gpu_torch.py; needs torch, torchvision,
#      transformers), printed as a table for docs/BENCHMARKS.md.
# Exits non-zero if a check fails. KILN_GPU_SKIP_BENCH=1 skips step 3.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${KILN_BUILD:-build-gpu}
if [[ ! -x $BUILD/kiln || ! -x $BUILD/tests/test_cuda ]]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target kiln test_cuda >/dev/null
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader

echo "== ops: CUDA algorithms vs the reference kernels"
"$BUILD/tests/test_cuda" | tee /tmp/kiln-gpu-ops.txt
if grep -q "^skipped: no GPU" /tmp/kiln-gpu-ops.txt; then
  echo "gpu-check: no GPU found; nothing was checked" >&2
  exit 1
fi

echo "== models: kiln --device cuda vs onnxruntime"
python3 tests/models/check_models.py --kiln "$BUILD/kiln" --device cuda | grep -v "^PASS"

[[ ${KILN_GPU_SKIP_BENCH:-0} == 1 ]] && exit 0
echo "== benchmarks: kiln --device cuda beside PyTorch eager"
M=$(mktemp -d)
trap 'rm -rf "$M"' EXIT
python3 bench/models.py "$M" --only resnet50,bert_base --no-check >/dev/null
printf '| model | batch | precision | kiln ms | PyTorch eager ms (with copies) | PyTorch eager ms (resident) | kiln / eager (with copies) |\n'
printf '|---|---|---|---|---|---|---|\n'
for cfg in "resnet50 64" "bert_base 1" "bert_base 8"; do
  read -r model batch <<<"$cfg"
  for prec in fp32 bf16; do
    shape=()
    if [[ $model == resnet50 ]]; then shape=(--shape "input=$batch,3,224,224"); fi
    if [[ $model == bert_base ]]; then
      shape=(--shape "input_ids=$batch,128" --shape "attention_mask=$batch,128")
    fi
    k=$("$BUILD/kiln" bench "$M/$model.onnx" --device cuda --precision "$prec" "${shape[@]}" \
          --iters 20 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_ms"]["p50"])')
    t=$(python3 bench/gpu_torch.py "$model" "$batch" "$prec")
    python3 - "$model" "$batch" "$prec" "$k" "$t" <<'PY'
import json, sys
model, batch, prec, k, t = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), json.loads(sys.argv[5])
print(f"| {model} | {batch} | {prec} | {k:.2f} | {t['with_copies_ms']:.2f} | {t['resident_ms']:.2f} | "
      f"{k / t['with_copies_ms']:.2f}x |")
PY
  done
done
