# kiln: the two commands of the README, and their parts.
#   make demo   set up, build, run the main job (train a CNN on Fashion-MNIST, run it)
#   make test   set up, build, run every test suite; non-zero exit on any failure
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PY := .venv/bin/python
ONNX_DATA = $(shell $(PY) -c 'import onnx,os;print(os.path.join(os.path.dirname(onnx.__file__),"backend","test","data"))')

.PHONY: all setup venv build build-asan demo test test-unit test-conformance test-models \
        test-asan test-fuzz fuzz-long clean

all: build

setup:
	@scripts/setup.sh

venv:
	@scripts/setup.sh --venv

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: setup
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Release -DKILN_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

demo: venv build
	@scripts/demo.sh $(BUILD)/kiln

test: venv build build-asan
	@scripts/test.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) out
