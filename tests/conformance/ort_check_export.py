#!/usr/bin/env python3
"""Checks kiln's ONNX writer against ONNX Runtime.

    kiln_conformance --export /tmp/kiln_export [--suite ...]
    python tests/conformance/ort_check_export.py /tmp/kiln_export [--data ROOT] [-v]

For every model kiln exported (EXPORT/SUITE/TEST.onnx), runs the original
model and kiln's export in ONNX Runtime on the backend test data and compares
both with the expected outputs (rtol 1e-3, atol 1e-7). A model that ORT runs
correctly in its original form but not in kiln's export is a writer bug; the
script lists those and exits non-zero if there are any.
"""
import argparse
import glob
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort

RTOL, ATOL = 1e-3, 1e-7


def default_root():
    env = os.environ.get("KILN_ONNX_TEST_DATA")
    if env:
        return env
    for pattern in (".venv/lib/python3*/site-packages/onnx/backend/test/data",
                    "/tmp/venv/lib/python3*/site-packages/onnx/backend/test/data"):
        hits = glob.glob(pattern)
        if hits:
            return hits[0]
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


def load_sets(test_dir):
    """[(inputs, outputs)] of every test_data_set_N, tensors only (None if a
    file is not a TensorProto)."""
    sets = []
    for d in sorted(glob.glob(os.path.join(test_dir, "test_data_set_*"))):
        def series(prefix):
            out = []
            for path in sorted(glob.glob(os.path.join(d, prefix + "*.pb")),
                               key=lambda p: int(p.rsplit("_", 1)[1][:-3])):
                t = onnx.TensorProto()
                with open(path, "rb") as f:
                    t.ParseFromString(f.read())
                out.append((t.name, onnx.numpy_helper.to_array(t)))
            return out
        try:
            sets.append((series("input_"), series("output_")))
        except Exception:  # sequences, optionals
            return None
    return sets


def load_light(root, name, exported_path):
    """The light suite's one data set: arange(n)/n inputs of the declared
    shapes (unknown dims 1) and ROOT/light/NAME_output_K.pb."""
    model = onnx.load(exported_path)
    inits = {t.name for t in model.graph.initializer}
    inputs = []
    for x in model.graph.input:
        if x.name in inits:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1
                      for d in x.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        inputs.append((x.name, (np.arange(n).reshape(shape) / n).astype(np.float32)))
    outputs = []
    for k in range(len(model.graph.output)):
        t = onnx.TensorProto()
        with open(os.path.join(root, "light", f"{name}_output_{k}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        outputs.append((t.name, onnx.numpy_helper.to_array(t)))
    return [(inputs, outputs)]


def run(model_path, inputs):
    """Outputs of ORT on model_path, or raises."""
    model = onnx.load(model_path)
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    feeds = {}
    for k, (name, value) in enumerate(inputs):
        feeds[name if name in names else names[k]] = value
    return sess.run(None, feeds)


def matches(got, expected):
    if len(got) != len(expected):
        return False
    for g, (_, w) in zip(got, expected):
        g = np.asarray(g)
        if g.shape != w.shape or g.dtype != w.dtype:
            return False
        if w.dtype.kind in "fc":
            if not np.allclose(g, w, rtol=RTOL, atol=ATOL, equal_nan=True):
                return False
        elif not np.array_equal(g, w):
            return False
    return True


def check(model_path, sets):
    """'ok', 'wrong' or 'error: ...' for model_path over all sets."""
    try:
        for inputs, outputs in sets:
            if not matches(run(model_path, inputs), outputs):
                return "wrong"
    except Exception as e:  # noqa: BLE001 - any ORT failure is a result
        return "error: " + str(e).splitlines()[0][:200]
    return "ok"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export_dir")
    ap.add_argument("--data", default=default_root())
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    ort.set_default_logger_severity(4)
    counts = {"ok": 0, "writer bug": 0, "ORT cannot run the original": 0, "no tensor data": 0}
    bugs = []
    for path in sorted(glob.glob(os.path.join(args.export_dir, "*", "*.onnx"))):
        suite = os.path.basename(os.path.dirname(path))
        test = os.path.basename(path)[:-5]
        test_dir = os.path.join(args.data, suite, test)
        original_path = os.path.join(test_dir, "model.onnx")
        if suite == "light":
            original_path = os.path.join(args.data, "light", test + ".onnx")
            sets = load_light(args.data, test, path)
        else:
            sets = load_sets(test_dir) if os.path.isdir(test_dir) else None
        if not sets:
            counts["no tensor data"] += 1
            continue
        original = check(original_path, sets)
        if original != "ok":
            counts["ORT cannot run the original"] += 1
            continue
        exported = check(path, sets)
        if exported == "ok":
            counts["ok"] += 1
        else:
            counts["writer bug"] += 1
            bugs.append(f"{suite}/{test}: {exported}")
        if args.v:
            print(f"{exported:8.8s} {suite}/{test}")
    for b in bugs:
        print("WRITER BUG", b)
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
