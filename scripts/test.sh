#!/usr/bin/env bash
# Runs every test suite (called by `make test` after building build/ and
# build-asan/). Prints one line per suite and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ASAN_BUILD=${ASAN_BUILD:-build-asan}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONUNBUFFERED=1 # progress lines stream through the tee below
BASELINE=tests/conformance/baseline.txt

passed=0
failed=0
failed_names=()
# each suite's output is also kept, so that the summary can repeat the end
# of a failed one: a CI log's tail then shows why, not only that
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/kiln-test-XXXXXX")
trap 'rm -rf "$LOGS"' EXIT
failed_logs=()
suite() {
  local name=$1; shift
  echo
  echo "=== $name"
  local t0=$SECONDS log="$LOGS/$((passed + failed)).log"
  if "$@" 2>&1 | tee "$log"; then
    passed=$((passed + 1)); echo "--- $name: ok ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1)); failed_names+=("$name"); failed_logs+=("$log")
    echo "--- $name: FAILED ($((SECONDS - t0)) s)"
  fi
}

suite "unit tests" ctest --test-dir "$BUILD" --output-on-failure
suite "ONNX conformance (graph passes, fast algorithms)" "$BUILD/tests/kiln_conformance" --baseline "$BASELINE"
suite "ONNX conformance (reference kernels)" "$BUILD/tests/kiln_conformance" --baseline "$BASELINE" --reference
suite "models vs onnxruntime (fp32, bf16) + export round trip" \
  .venv/bin/python tests/models/check_models.py --kiln "$BUILD/kiln" --roundtrip "$BUILD/tests/kiln_roundtrip"
suite "quantized models vs onnxruntime (int8)" .venv/bin/python tests/models/check_int8.py --kiln "$BUILD/kiln"
suite "training on Fashion-MNIST, export vs onnxruntime" .venv/bin/python tests/train/check_train.py --kiln "$BUILD/kiln"
suite "CLI" tests/cli/test_cli.sh "$BUILD/kiln"
suite "server vs Triton's client (kiln serve)" .venv/bin/python tests/serve/check_serve.py --kiln "$BUILD/kiln"
suite "unit tests (ASan+UBSan)" ctest --test-dir "$ASAN_BUILD" --output-on-failure
suite "ONNX conformance (ASan+UBSan)" "$ASAN_BUILD/tests/kiln_conformance" --baseline "$BASELINE"
suite "server vs Triton's client (ASan+UBSan)" .venv/bin/python tests/serve/check_serve.py --kiln "$ASAN_BUILD/kiln"
suite "fuzz ONNX loader (${FUZZ_SECONDS}s)" scripts/fuzz.sh "$FUZZ_SECONDS"
suite "fuzz training file readers (30s)" scripts/fuzz.sh 30 files
suite "fuzz server request parsing (30s)" scripts/fuzz.sh 30 serve
suite "fuzz server config.pbtxt parsing (20s)" scripts/fuzz.sh 20 serve-config

echo
echo "=== summary"
for i in "${!failed_names[@]}"; do
  echo "--- the end of what '${failed_names[$i]}' printed:"
  tail -n 40 "${failed_logs[$i]}"
done
for n in "${failed_names[@]}"; do echo "FAILED: $n"; done
echo "suites: $passed passed, $failed failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
