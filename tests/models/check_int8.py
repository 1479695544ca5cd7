"""Quantized models, kiln --precision int8 against onnxruntime.

Builds two small float models with seeded weights (onnx helper API): a CNN
(conv-relu-conv-relu-maxpool-flatten-gemm) and an MLP (matmul-add-relu x2,
matmul); quantizes each with onnxruntime.quantization.quantize_static from a
seeded calibration reader, QUInt8 activations, QInt8 weights, per-channel:

  - QDQ format (DequantizeLinear -> float op -> QuantizeLinear), which kiln's
    QDQ pass fuses into QLinearConv / QLinearMatMul in int8 sessions;
  - QOperator format (QLinearConv / QLinearMatMul written out), restricted
    to the op types that have ai.onnx QLinear forms (Gemm, Add and the like
    would become com.microsoft ops).

Then runs `kiln run MODEL --precision int8` and onnxruntime on the same
inputs and compares: quantized (uint8/int8) outputs may differ by one step
in at most MAX_STEP_FRACTION of the elements and never more; float outputs
(dequantized at the end) must agree within FLOAT_STEPS quantization steps of
the last quantized tensor (so within a few steps absolute). Also checks that
`kiln bench MODEL --precision int8 --profile --json` ran the QLinear
algorithms (qlinear_conv_u8s8 / qlinear_matmul_u8s8) on those models.

    .venv/bin/python tests/models/check_int8.py --kiln build/kiln

Exits non-zero on any failure; the last line is a summary.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)

MAX_STEP_FRACTION = 0.02  # quantized outputs: share of elements allowed one step off
FLOAT_STEPS = 2.0         # float outputs: |kiln - ort| <= FLOAT_STEPS * output step
OPSET = 17


def cnn_model(rng, batch):
    """x (B,3,16,16) -> conv3x3(8) relu -> conv3x3 s2 (16) relu -> maxpool 2 -> flatten -> gemm(10)."""
    def w(*shape, scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)
    inits = [
        numpy_helper.from_array(w(8, 3, 3, 3, scale=0.3), "w1"),
        numpy_helper.from_array(w(8, scale=0.1), "b1"),
        numpy_helper.from_array(w(16, 8, 3, 3, scale=0.15), "w2"),
        numpy_helper.from_array(w(16, scale=0.1), "b2"),
        numpy_helper.from_array(w(10, 16 * 4 * 4, scale=0.05), "wf"),
        numpy_helper.from_array(w(10, scale=0.1), "bf"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    g = helper.make_graph(nodes, "cnn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)]), (batch, 3, 16, 16)


def mlp_model(rng, batch):
    """x (B,64) -> matmul(96) add relu -> matmul(48) add relu -> matmul(10)."""
    def w(*shape, scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)
    inits = [
        numpy_helper.from_array(w(64, 96, scale=0.15), "w1"),
        numpy_helper.from_array(w(96, scale=0.1), "b1"),
        numpy_helper.from_array(w(96, 48, scale=0.12), "w2"),
        numpy_helper.from_array(w(48, scale=0.1), "b2"),
        numpy_helper.from_array(w(48, 10, scale=0.15), "w3"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["r1"]),
        helper.make_node("MatMul", ["r1", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["a2"]),
        helper.make_node("Relu", ["a2"], ["r2"]),
        helper.make_node("MatMul", ["r2", "w3"], ["y"]),
    ]
    g = helper.make_graph(nodes, "mlp",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)]), (batch, 64)


class Reader(CalibrationDataReader):
    """Seeded calibration batches."""

    def __init__(self, shape, seed, n=8):
        rng = np.random.default_rng(seed)
        self.data = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self.data, None)


def cpu_has_vnni():
    """True if the CPU has a VNNI dot product (AVX512_VNNI or AVX_VNNI)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read().split()
    except OSError:
        return True
    return "avx512_vnni" in flags or "avx_vnni" in flags


# Without VNNI, onnxruntime's u8 x s8 kernel multiplies with vpmaddubsw, which
# saturates the sum of two products at 16 bits, so its outputs drift from the
# exact integer result that kiln computes. Weights quantized to 7 bits
# (reduce_range, the quantizer's option for such CPUs) keep those sums in range,
# and onnxruntime stays an exact anchor.
REDUCE_RANGE = not cpu_has_vnni()


def quantize(src, dst, shape, fmt, op_types):
    quantize_static(src, dst, Reader(shape, 7), quant_format=fmt, op_types_to_quantize=op_types,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, reduce_range=REDUCE_RANGE)
    m = onnx.load(dst)
    foreign = sorted({n.domain + "." + n.op_type for n in m.graph.node
                      if n.domain not in ("", "ai.onnx")})
    if foreign:
        raise RuntimeError(f"{os.path.basename(dst)}: quantizer wrote {foreign}")
    return m


def ort_run(path, feeds):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return names, sess.run(names, feeds)


def kiln_run(kiln, path, feeds, threads, tmp):
    out = os.path.join(tmp, "out")
    args = [kiln, "run", path, "-o", out, "-t", str(threads), "--precision", "int8"]
    for i, (k, v) in enumerate(feeds.items()):
        f = os.path.join(tmp, f"in{i}.npy")
        np.save(f, v)
        args += ["-i", f"{k}={f}"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip() or r.stdout.strip())
    return out


def out_file(outdir, name):
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "_"
    return os.path.join(outdir, safe + ".npy")


def output_step(model, name):
    """Scale of the last QuantizeLinear / QLinear op before a float output
    (the DequantizeLinear that produces it), or None."""
    prod = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    n = prod.get(name)
    if n is not None and n.op_type == "DequantizeLinear" and n.input[1] in inits:
        return float(np.max(inits[n.input[1]]))
    return None


def compare(model, names, ref, outdir):
    """'' if kiln's outputs match onnxruntime's, else what differs."""
    notes = []
    for n, r in zip(names, ref):
        k = np.load(out_file(outdir, n))
        if k.shape != r.shape or k.dtype != r.dtype:
            return f"output '{n}': {k.dtype}{k.shape}, onnxruntime {r.dtype}{r.shape}"
        if r.dtype in (np.uint8, np.int8):
            d = np.abs(k.astype(np.int64) - r.astype(np.int64))
            off = int((d > 0).sum())
            if d.max(initial=0) > 1 or off > MAX_STEP_FRACTION * r.size:
                return (f"output '{n}': {off} of {r.size} elements differ, by up to "
                        f"{d.max(initial=0)} steps")
            notes.append(f"{n}: {off}/{r.size} one step off")
        else:
            step = output_step(model, n)
            tol = FLOAT_STEPS * step if step else 1e-2 * max(1.0, float(np.abs(r).max()))
            err = float(np.abs(k.astype(np.float64) - r.astype(np.float64)).max()) if r.size else 0.0
            if not err <= tol:
                return f"output '{n}': max abs error {err:.3g} > {tol:.3g}"
            notes.append(f"{n}: max abs error {err:.3g} (<= {tol:.3g})")
    return "ok: " + "; ".join(notes)


def profile_algos(kiln, path, threads):
    """Algorithms the int8 profile shows, by op type."""
    r = subprocess.run([kiln, "bench", path, "--precision", "int8", "--profile", "--json",
                        "--warmup", "1", "--iters", "3", "-t", str(threads)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip() or r.stdout.strip())
    j = json.loads(r.stdout[r.stdout.index("{"):])
    rows = j.get("profile") or j.get("nodes") or []
    return {(row.get("op") or row.get("op_type")): row.get("algorithm") or row.get("algo")
            for row in rows if isinstance(row, dict)}, j


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default="build/kiln")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--keep", help="directory to keep the models in")
    args = ap.parse_args()
    rng = np.random.default_rng(1234)
    results = []
    if REDUCE_RANGE:
        print("no VNNI on this CPU: weights quantized to 7 bits (reduce_range), which keeps "
              "onnxruntime's u8 x s8 kernel exact")
    with tempfile.TemporaryDirectory() as tmp:
        mdir = args.keep or tmp
        os.makedirs(mdir, exist_ok=True)
        for name, build, qop_types, want in (
                ("cnn", cnn_model, ["Conv", "Relu", "MaxPool"], "QLinearConv"),
                ("mlp", mlp_model, ["MatMul"], "QLinearMatMul")):
            model, shape = build(rng, args.batch)
            fpath = os.path.join(mdir, f"{name}_f32.onnx")
            onnx.save(model, fpath)
            feeds = {"x": np.random.default_rng(99).standard_normal(shape).astype(np.float32)}
            for fmt, tag, types in ((QuantFormat.QDQ, "qdq", None),
                                    (QuantFormat.QOperator, "qop", qop_types)):
                label = f"{name}_{tag}"
                path = os.path.join(mdir, f"{label}.onnx")
                try:
                    qm = quantize(fpath, path, shape, fmt, types)
                    names, ref = ort_run(path, feeds)
                    with tempfile.TemporaryDirectory() as t2:
                        res = compare(qm, names, ref, kiln_run(args.kiln, path, feeds, args.threads, t2))
                    algos, _ = profile_algos(args.kiln, path, args.threads)
                    algo = algos.get(want)
                    expect = "qlinear_conv_u8s8" if want == "QLinearConv" else "qlinear_matmul_u8s8"
                    if res.startswith("ok") and algo != expect:
                        res = f"profile: {want} ran {algo!r}, expected {expect} (ops: {sorted(algos)})"
                except Exception as e:  # noqa: BLE001 - reported per model
                    res = str(e).splitlines()[-1] if str(e) else repr(e)
                results.append((label, res))
                print(f"{label:10s} {res}", flush=True)
    bad = [r for r in results if not r[1].startswith("ok")]
    print(f"check_int8: {len(results) - len(bad)}/{len(results)} models match onnxruntime "
          f"with the QLinear algorithms" + (f"; failed: {', '.join(b[0] for b in bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
