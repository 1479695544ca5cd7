"""Whole models, kiln against onnxruntime:
  - the generated model set (tests/models/gen_models.py),
  - real PyTorch exports (tests/models/torch/, written by scripts/export_torch_models.py),
  - the light models of the ONNX backend suite (input arange(n)/n),
at fp32 (graph passes and fast algorithms on) and at --precision bf16
(normalized error within 1e-2 of onnxruntime's fp32), and the export round
trip: each model written back by kiln's exporter must load in onnxruntime and
give onnxruntime's outputs on the original.

    python tests/models/check_models.py --kiln build/kiln --roundtrip build/tests/kiln_roundtrip
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

RTOL, ATOL = 1e-3, 1e-4
BF16_TOL = 1e-2  # normalized error of bf16 runs against fp32 (DESIGN.md section 5)
QDQ_TOL = 2e-2   # normalized error of fp32 runs of QDQ models (one-step flips)


def ort_run(path, feeds, threads):
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only: the light models carry unused initializers
    so.intra_op_num_threads = threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return names, sess.run(names, feeds)


def kiln_run(kiln, path, feeds, threads, tmp, extra=()):
    args = [kiln, "run", path, "-o", os.path.join(tmp, "out"), "-t", str(threads), *extra]
    for i, (k, v) in enumerate(feeds.items()):
        f = os.path.join(tmp, f"in{i}.npy")
        np.save(f, v)
        args += ["-i", f"{k}={f}"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip() or r.stdout.strip())
    return os.path.join(tmp, "out")


def out_file(outdir, name):
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "_"
    return os.path.join(outdir, safe + ".npy")


def quantized(model_path):
    m = onnx.load(model_path, load_external_data=False)
    return any(n.op_type == "QuantizeLinear" for n in m.graph.node)


def normalized_error(k, r):
    d = np.linalg.norm(k.astype(np.float64) - r)
    den = np.linalg.norm(r.astype(np.float64))
    return float(d / den) if den > 0 else float(d)


def compare(names, ref, outdir, quant=False):
    """quant: the model quantizes inside (QDQ): a value within float rounding
    of a quantization boundary may land one step away from onnxruntime's, so
    such outputs are held to a normalized error of QDQ_TOL instead."""
    worst = 0.0
    for n, r in zip(names, ref):
        k = np.load(out_file(outdir, n))
        if k.shape != r.shape:
            return f"output '{n}': shape {k.shape}, onnxruntime {r.shape}"
        if quant and np.issubdtype(r.dtype, np.floating) and np.all(np.isfinite(r)):
            err = normalized_error(k, r)
            if err > QDQ_TOL:
                return f"output '{n}': normalized error {err:.3g} > {QDQ_TOL}"
            worst = max(worst, float(np.abs(k.astype(np.float64) - r).max()))
            continue
        if not np.allclose(k, r, rtol=RTOL, atol=ATOL, equal_nan=True):
            err = np.abs(k.astype(np.float64) - r.astype(np.float64)).max()
            return f"output '{n}': max abs error {err:.3g}"
        if r.size and np.issubdtype(r.dtype, np.floating):
            worst = max(worst, float(np.abs(k.astype(np.float64) - r).max()))
    return worst


def compare_bf16(names, ref, outdir):
    """kiln at --precision bf16 against onnxruntime fp32: normalized error
    ||k - r|| / ||r|| of every float output within BF16_TOL."""
    worst = 0.0
    for n, r in zip(names, ref):
        k = np.load(out_file(outdir, n))
        if k.shape != r.shape:
            return f"output '{n}': shape {k.shape}, onnxruntime {r.shape}"
        if not np.issubdtype(r.dtype, np.floating) or not r.size:
            continue
        fin = np.isfinite(r)
        if not np.array_equal(np.isfinite(k), fin):
            return f"output '{n}': non-finite values at other places than onnxruntime's"
        d = k[fin].astype(np.float64) - r[fin]
        den = np.linalg.norm(r[fin].astype(np.float64))
        err = float(np.linalg.norm(d) / den) if den > 0 else float(np.linalg.norm(d))
        if err > BF16_TOL:
            return f"output '{n}': normalized error {err:.3g} > {BF16_TOL}"
        worst = max(worst, err)
    return worst


def bf16_applies(model_path):
    """Float outputs and no quantization steps (a QuantizeLinear rounds bf16's
    small differences to whole quantization steps: int8 is checked elsewhere)."""
    m = onnx.load(model_path, load_external_data=False)
    return (all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in m.graph.output)
            and not quantized(model_path))


def feeds_for(model_path, spec_file, rng):
    m = onnx.load(model_path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    feeds = {}
    specs = {}
    if spec_file and os.path.exists(spec_file):
        for line in open(spec_file):
            k, v = line.split()
            specs[k] = v.split(",")
    for x in m.graph.input:
        if x.name in inits:
            continue
        dt = onnx.helper.tensor_dtype_to_np_dtype(x.type.tensor_type.elem_type)
        if x.name in specs:
            s = specs[x.name]
            if "int" in s:
                i = s.index("int")
                shape = tuple(int(d) for d in s[:i])
                feeds[x.name] = rng.integers(0, int(s[i + 1]), shape).astype(dt)
            else:
                feeds[x.name] = rng.standard_normal(tuple(int(d) for d in s)).astype(dt)
        else:  # the suite's rule for light models
            shape = [d.dim_value for d in x.type.tensor_type.shape.dim]
            n = int(np.prod(shape))
            feeds[x.name] = (np.arange(n, dtype=np.float32) / n).reshape(shape).astype(dt)
    return feeds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default="build/kiln")
    ap.add_argument("--roundtrip", default="build/tests/kiln_roundtrip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--filter", default="")
    ap.add_argument("--device", default="", help="run kiln with --device DEVICE (e.g. cuda); "
                    "the export round trip, which no device changes, is then skipped")
    args = ap.parse_args()
    dev = ["--device", args.device] if args.device else []
    rng = np.random.default_rng(7)
    data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        gen = os.path.join(tmp, "gen")
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "gen_models.py"), gen],
                       check=True, capture_output=True)
        torch_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch")
        models = (sorted(glob.glob(os.path.join(gen, "*.onnx"))) + sorted(glob.glob(os.path.join(torch_dir, "*.onnx")))
                  + sorted(glob.glob(os.path.join(data, "*.onnx"))))
        for path in models:
            name = os.path.basename(path)[:-5]
            if args.filter not in name:
                continue
            feeds = feeds_for(path, path[:-5] + ".inputs", rng)
            names, ref = ort_run(path, feeds, args.threads)
            results = []
            try:
                res = compare(names, ref, kiln_run(args.kiln, path, feeds, args.threads, tmp, dev),
                              quantized(path))
                results.append(("kiln", res))
                if bf16_applies(path):  # the precision switch: bf16 products, f32 accumulation
                    out = kiln_run(args.kiln, path, feeds, args.threads, tmp, ["--precision", "bf16", *dev])
                    results.append(("bf16", compare_bf16(names, ref, out)))
                rt = os.path.join(tmp, "rt.onnx")
                r = None if dev else subprocess.run([args.roundtrip, path, rt], capture_output=True, text=True)
                if r and r.returncode != 0:
                    results.append(("export", r.stderr.strip()))
                elif r:
                    _, ref2 = ort_run(rt, feeds, args.threads)
                    bad = [n for n, a, b in zip(names, ref, ref2) if not np.array_equal(a, b, equal_nan=True)]
                    results.append(("export", f"onnxruntime differs on {bad}" if bad else 0.0))
            except Exception as e:  # noqa: BLE001 - report any failure of this model
                results.append(("kiln", str(e).splitlines()[-1] if str(e) else repr(e)))
            for what, res in results:
                if isinstance(res, float):
                    passed += 1
                    err = "normalized error" if what == "bf16" else "max abs error"
                    print(f"PASS {name} [{what}] ({err} {res:.2g})")
                else:
                    failed += 1
                    print(f"FAIL {name} [{what}]: {res}")
    print(f"models: {passed} passed, {failed} failed")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
