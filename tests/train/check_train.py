"""`kiln train` end to end on Fashion-MNIST (Debian dataset-fashion-mnist).

Builds small classifiers with seeded weights (onnx helper API): a CNN with
BatchNormalization, ReLU, max pooling and a residual Add, and an MLP (MatMul,
Add, Tanh, Dropout), and takes a ResNet exported from PyTorch in training mode
(tests/train/torch/, by scripts/export_torch_models.py: BatchNorm, residual
connections, dropout). Trains each on the first --limit images for two epochs
with `kiln train` (SGD with momentum for the CNN, Adam for the MLP and the
ResNet; the CNN also with --precision bf16 and fp16, mixed precision, the
ResNet with bf16), then checks:

  - the run succeeds, the epoch lines show the training loss falling (and
    with fp16 the loss scale and skipped steps), and the last line is
    test_accuracy=0.xxxx, above --min-accuracy (far above the 0.1 of
    guessing: the network learned; 0.15 less for the ResNet, whose global
    pooling learns more slowly in two short epochs);
  - TensorBoard reads DIR/events/ and finds the promised scalars;
  - DIR/model.onnx is the inference form (BatchNormalization with updated
    running statistics, no training nodes) and onnxruntime running it on the
    same test images reaches the same accuracy (to one image in 500: logits
    that tie to float rounding may break either way);
  - two epochs in one run, and one epoch then --resume from its checkpoint
    for the second, give the same model bit for bit (data from .npy files,
    with random-crop and flip augmentation); the checkpoint
    (safetensors, parsed here by hand) holds the exported parameters;
  - --train-csv / --test-csv tables train an MLP on separable clusters;
  - --train-text: a character LSTM on Moby Dick learns (the loss per
    character falls well below ln 256) and onnxruntime agrees with kiln on
    the exported model's test predictions;
  - bad input gets a one-line error: a missing file, a model with an op that
    has no gradient rule (naming the node).

    .venv/bin/python tests/train/check_train.py --kiln build/kiln
"""
import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

DATA = "/usr/share/datasets/fashion-mnist"
TORCH_RESNET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch", "torch_fashion_resnet.onnx")


def idx(path):
    b = gzip.open(path).read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b[4 + 4 * nd:], np.uint8).reshape(dims)


def he(rng, *shape, fan):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan)).astype(np.float32)


def cnn(rng):
    """x (N,1,28,28) -> conv3x3(8) BN relu -> conv3x3(8) BN + x1 (residual) relu ->
    maxpool 2 -> conv3x3(16) relu -> maxpool 2 -> flatten -> gemm(10)."""
    z, o = np.zeros, np.ones
    inits = [
        ("w1", he(rng, 8, 1, 3, 3, fan=9)), ("b1", z(8, np.float32)),
        ("g1", o(8, np.float32)), ("be1", z(8, np.float32)), ("m1", z(8, np.float32)), ("v1", o(8, np.float32)),
        ("w2", he(rng, 8, 8, 3, 3, fan=72)),
        ("g2", o(8, np.float32)), ("be2", z(8, np.float32)), ("m2", z(8, np.float32)), ("v2", o(8, np.float32)),
        ("w3", he(rng, 16, 8, 3, 3, fan=72)), ("b3", z(16, np.float32)),
        ("wf", he(rng, 10, 16 * 7 * 7, fan=784)), ("bf", z(10, np.float32)),
    ]
    p = [1, 1, 1, 1]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=p),
        helper.make_node("BatchNormalization", ["c1", "g1", "be1", "m1", "v1"], ["n1"]),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=p),
        helper.make_node("BatchNormalization", ["c2", "g2", "be2", "m2", "v2"], ["n2"]),
        helper.make_node("Add", ["n2", "r1"], ["s2"]),
        helper.make_node("Relu", ["s2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p2", "w3", "b3"], ["c3"], pads=p),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("MaxPool", ["r3"], ["p3"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p3"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1),
    ]
    return graph(nodes, inits, [1, 28, 28])


def mlp(rng, act="Tanh"):
    """x (N,784) -> matmul(64) + b, tanh, dropout(0.2) -> matmul(10) + b."""
    inits = [("w1", he(rng, 784, 64, fan=784)), ("b1", np.zeros(64, np.float32)),
             ("ratio", np.array(0.2, np.float32)),
             ("w2", he(rng, 64, 10, fan=64)), ("b2", np.zeros(10, np.float32))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node(act, ["hb"], ["t"], name="act"), helper.make_node("Dropout", ["t", "ratio"], ["d"]),
             helper.make_node("MatMul", ["d", "w2"], ["o"]), helper.make_node("Add", ["o", "b2"], ["logits"])]
    return graph(nodes, inits, [784])


def graph(nodes, inits, sample_shape, extra=()):
    g = helper.make_graph(list(nodes) + list(extra), "net",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + sample_shape)],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
                          [numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def run(args, expect_ok=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def ort_accuracy(path, x, y):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return float((logits.argmax(1) == y).mean())


def check_events(path, fp16, acc, optim):
    """DIR/events as TensorBoard reads it (its own reader, which checks the
    records' CRCs): the scalars kiln train promises, one learning rate per
    step, and the last test accuracy equal to the printed one."""
    ea = EventAccumulator(path)
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    want = {"train/loss", "train/learning_rate", "train/accuracy", "test/loss", "test/accuracy"}
    if fp16:
        want.add("train/loss_scale")
    if tags != want:
        return f"TensorBoard finds the scalars {sorted(tags)} in {path}, expected {sorted(want)}"
    lrs = ea.Scalars("train/learning_rate")
    lr = float(optim[optim.index("--lr") + 1])
    if [e.step for e in lrs] != list(range(len(lrs))) or any(abs(e.value - lr) > 1e-6 for e in lrs):
        return "train/learning_rate is not the constant --lr at every step"
    accs = ea.Scalars("test/accuracy")
    if len(accs) != 2 or abs(accs[-1].value - acc) > 1e-4:
        return f"test/accuracy events {[a.value for a in accs]}, printed {acc}"
    return None


def check_model(kiln, name, model, optim, tmp, args, x_test, y_test, min_accuracy):
    path = os.path.join(tmp, f"{name}.onnx")
    out = os.path.join(tmp, f"{name}_out")
    onnx.save(model, path)
    cmd = [kiln, "train", path, "--train-images", f"{DATA}/train-images-idx3-ubyte.gz",
           "--train-labels", f"{DATA}/train-labels-idx1-ubyte.gz",
           "--test-images", f"{DATA}/t10k-images-idx3-ubyte.gz",
           "--test-labels", f"{DATA}/t10k-labels-idx1-ubyte.gz",
           "--limit", str(args.limit), "--epochs", "2", "--batch", "32", "--seed", "7",
           "-t", str(args.threads), "--out", out] + optim
    r = run(cmd)
    lines = r.stdout.strip().splitlines()
    print("\n".join("  " + s for s in lines))
    if "--precision" in optim and optim[optim.index("--precision") + 1] not in lines[0]:
        return f"the first line does not name the precision: {lines[0]!r}"
    fp16 = "fp16" in optim
    if fp16 != all(re.search(r", loss_scale [0-9.e+-]+, skipped_steps \d+$", s)
                   for s in lines if s.startswith("epoch ")):
        return "epoch lines show the loss scale and skipped steps with fp16 (and only then)"

    losses = [float(m.group(1)) for m in (re.search(r"^epoch \d+/\d+: loss ([0-9.]+)", s) for s in lines) if m]
    if len(losses) != 2 or not losses[1] < losses[0]:
        return f"training loss did not fall: {losses}"
    m = re.fullmatch(r"test_accuracy=(0\.\d{4}|1\.0000)", lines[-1])
    if not m:
        return f"last line is {lines[-1]!r}, expected test_accuracy=0.xxxx"
    acc = float(m.group(1))
    if acc < min_accuracy:
        return f"test accuracy {acc} below {min_accuracy}"
    exported = onnx.load(os.path.join(out, "model.onnx"))
    ops = {n.op_type for n in exported.graph.node}
    if ops & {"SoftmaxCrossEntropyLoss", "ConvGrad", "TrainDropout"} or any(n.domain for n in exported.graph.node):
        return f"exported model has training nodes: {sorted(ops)}"
    if [i.name for i in exported.graph.input] != ["x"] or [o.name for o in exported.graph.output] != ["logits"]:
        return "exported model's inputs/outputs differ from the model's"
    for n in exported.graph.node:
        if n.op_type == "Dropout" and len(n.input) > 2 or n.op_type == "BatchNormalization" and (
                len(n.output) > 1 or any(a.name == "training_mode" and a.i for a in n.attribute)):
            return f"exported model's {n.op_type} node '{n.name}' is not in inference form"
    before = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    after = {i.name: numpy_helper.to_array(i) for i in exported.graph.initializer}
    stale = [n.name for n in exported.graph.node if n.op_type == "BatchNormalization"
             and any(np.array_equal(after[s], before[s]) for s in n.input[3:5])]
    if stale:
        return f"BatchNormalization running statistics were not updated: {stale}"
    err = check_events(os.path.join(out, "events"), fp16, acc, optim)
    if err:
        return err
    oacc = ort_accuracy(os.path.join(out, "model.onnx"), x_test, y_test)
    if abs(oacc - acc) > 1 / 500:
        return f"onnxruntime on the exported model: accuracy {oacc:.4f}, kiln {acc:.4f}"
    return f"ok: test_accuracy {acc:.4f} (onnxruntime on the export {oacc:.4f}), loss {losses[0]:.3f} -> {losses[1]:.3f}"


def read_safetensors(path):
    """{name: array} and the metadata of a safetensors file, parsed by hand."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    kinds = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, e in header.items():
        b, en = e["data_offsets"]
        out[name] = np.frombuffer(data[b:en], kinds[e["dtype"]]).reshape(e["shape"])
    return out, meta


def check_resume(args, tmp, x, y):
    """Two epochs straight, and one epoch + --resume for the second, give the
    same model bit for bit, with the data in .npy files and augmented (random
    crops and flips, drawn per epoch); the checkpoint holds the exported
    parameters."""
    path = os.path.join(tmp, "cnn.onnx")
    np.save(os.path.join(tmp, "img.npy"), idx(f"{DATA}/train-images-idx3-ubyte.gz")[:800])
    np.save(os.path.join(tmp, "lab.npy"), idx(f"{DATA}/train-labels-idx1-ubyte.gz")[:800].astype(np.int64))
    common = [args.kiln, "train", path, "--train-images", os.path.join(tmp, "img.npy"),
              "--train-labels", os.path.join(tmp, "lab.npy"), "--random-crop", "2", "--hflip",
              "--batch", "32", "--seed", "3", "--optimizer", "adam", "-t", str(args.threads)]
    a, b1, b2 = (os.path.join(tmp, d) for d in ("ra", "rb1", "rb2"))
    run(common + ["--epochs", "2", "--out", a])
    run(common + ["--epochs", "1", "--out", b1])
    r = run(common + ["--epochs", "2", "--resume", os.path.join(b1, "checkpoint.safetensors"), "--out", b2])
    if "resumed from" not in r.stdout:
        return "no 'resumed from' line"
    ia = {i.name: numpy_helper.to_array(i) for i in onnx.load(os.path.join(a, "model.onnx")).graph.initializer}
    ib = {i.name: numpy_helper.to_array(i) for i in onnx.load(os.path.join(b2, "model.onnx")).graph.initializer}
    diff = [k for k in ia if not np.array_equal(ia[k], ib[k])]
    if diff:
        return f"resumed training differs in {diff}"
    ckpt, meta = read_safetensors(os.path.join(a, "checkpoint.safetensors"))
    if meta.get("epoch") != "2" or meta.get("kiln.optimizer") != "adam":
        return f"checkpoint metadata {meta}"
    off = [k for k in ia if ia[k].dtype == np.float32 and not np.array_equal(ckpt.get(k), ia[k])]
    if off:
        return f"checkpoint tensors differ from the exported model: {off}"
    if "kiln.optimizer_state" not in ckpt:
        return "no optimizer state in the checkpoint"
    return f"ok: resumed run identical ({len(ia)} initializers), checkpoint step {meta.get('kiln.step')}"


def check_csv(args, tmp):
    """--train-csv / --test-csv: three Gaussian clusters in 5-D written as CSV
    tables with a header line; an MLP learns them."""
    rng = np.random.default_rng(5)
    centers = rng.normal(0, 2, (3, 5))
    for name, n in (("train", 600), ("test", 300)):
        lab = rng.integers(0, 3, n)
        feat = centers[lab] + rng.normal(0, 0.7, (n, 5))
        with open(os.path.join(tmp, f"{name}.csv"), "w") as f:
            f.write("a,b,c,d,e,label\n")
            for row, l in zip(feat, lab):
                f.write(",".join(f"{v:.5f}" for v in row) + f",{l}\n")
    w1 = rng.normal(0, 0.5, (5, 16)).astype(np.float32)
    w2 = rng.normal(0, 0.5, (16, 10)).astype(np.float32)  # graph() declares 10 classes
    model = graph([helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
                   helper.make_node("MatMul", ["r", "w2"], ["logits"])],
                  [("w1", w1), ("w2", w2)], [5])
    onnx.save(model, os.path.join(tmp, "csv_mlp.onnx"))
    r = run([args.kiln, "train", os.path.join(tmp, "csv_mlp.onnx"), "--train-csv", os.path.join(tmp, "train.csv"),
             "--test-csv", os.path.join(tmp, "test.csv"), "--optimizer", "adam", "--lr", "0.01",
             "--epochs", "3", "--batch", "32", "--out", os.path.join(tmp, "csv_out")])
    acc = float(r.stdout.strip().splitlines()[-1].split("=")[1])
    return f"ok: test_accuracy {acc:.4f}" if acc > 0.9 else f"test accuracy {acc} on separable clusters"


MOBY_DICK = "/usr/share/gocode/src/github.com/colinmarc/hdfs/testdata/mobydick.txt"


def check_char_lstm(args, tmp):
    """--train-text: scripts/char_lstm.py's character LSTM (Gather, Transpose,
    LSTM, Squeeze, MatMul) on Moby Dick (Debian golang-github-colinmarc-hdfs-dev),
    the book's first 90% for training and the rest for testing: the loss per
    character (TensorBoard's train/loss) falls well below its start of about
    ln 256, and onnxruntime running the exported model predicts the test
    characters as kiln's evaluation did."""
    if not os.path.exists(MOBY_DICK):
        return f"{MOBY_DICK} missing (Debian package golang-github-colinmarc-hdfs-dev)"
    text = open(MOBY_DICK, "rb").read()
    cut = len(text) * 9 // 10
    open(os.path.join(tmp, "book_train.txt"), "wb").write(text[:cut])
    open(os.path.join(tmp, "book_test.txt"), "wb").write(text[cut:])
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
    import char_lstm  # noqa: E402
    path, out, T, n_test = os.path.join(tmp, "char_lstm.onnx"), os.path.join(tmp, "lstm_out"), 32, 200
    onnx.save(char_lstm.build(), path)
    r = run([args.kiln, "train", path, "--train-text", os.path.join(tmp, "book_train.txt"), "--seq-len", str(T),
             "--limit", "640", "--test-text", os.path.join(tmp, "book_test.txt"), "--batch", "32",
             "--epochs", "2", "--optimizer", "adam", "--lr", "0.01", "-t", str(args.threads), "--out", out])
    lines = r.stdout.strip().splitlines()
    print("\n".join("  " + s for s in lines))
    acc = float(lines[-1].split("=")[1])
    ea = EventAccumulator(os.path.join(out, "events"))
    ea.Reload()
    losses = [e.value for e in ea.Scalars("train/loss")]
    first, last = losses[0], float(np.mean(losses[-5:]))
    if not (first > 5.0 and last < 0.7 * first):
        return f"loss per character {first:.3f} -> {last:.3f}: did not fall well below its start"
    # onnxruntime on the export, the same test windows (kiln evaluates up to --limit of them)
    test = np.frombuffer(text[cut:], np.uint8)
    n = min(640, (len(test) - 1) // T)
    x = test[:n * T].reshape(n, T).astype(np.int64)
    y = test[1:n * T + 1].reshape(n, T)
    sess = ort.InferenceSession(os.path.join(out, "model.onnx"), providers=["CPUExecutionProvider"])
    pred = np.concatenate([sess.run(None, {"x": x[i:i + n_test]})[0].argmax(1) for i in range(0, n, n_test)])
    oacc = float((pred == y).mean())
    if abs(oacc - acc) > 1e-3:
        return f"onnxruntime on the exported model: accuracy {oacc:.4f}, kiln {acc:.4f}"
    return (f"ok: loss per character {first:.3f} -> {last:.3f}, test accuracy {acc:.4f} "
            f"(onnxruntime on the export {oacc:.4f})")


def check_profile(args, tmp):
    """--profile: one table row per training-graph node, shares adding up to
    100%, the whole step no shorter than its graph, test_accuracy still last."""
    out = os.path.join(tmp, "profile_out")
    r = run([args.kiln, "train", os.path.join(tmp, "mlp.onnx"), "--train-images",
             f"{DATA}/train-images-idx3-ubyte.gz", "--train-labels", f"{DATA}/train-labels-idx1-ubyte.gz",
             "--test-images", f"{DATA}/t10k-images-idx3-ubyte.gz", "--test-labels",
             f"{DATA}/t10k-labels-idx1-ubyte.gz", "--limit", "256", "--batch", "32",
             "-t", str(args.threads), "--profile", "--out", out])
    lines = r.stdout.strip().splitlines()
    if "training graph, per node (8 steps):" not in lines:
        return f"no profile header for 8 steps in {lines}"
    rows = []
    for s in lines[lines.index("training graph, per node (8 steps):") + 2:]:
        rows.append(s.split())
        if s.startswith("  whole step"):
            break
    nodes = [w for w in rows if len(w) > 2 and w[-2].endswith("%")]
    total = next((w for w in rows if w[0] == "total"), None)
    whole = next((w for w in rows if w[0] == "whole"), None)
    if not any(w[0] == "Gemm" and w[2] == "gemm_sgemm" for w in nodes) or not any(w[0] == "TanhGrad" for w in nodes):
        return f"profile rows lack the Gemm (gemm_sgemm) or TanhGrad nodes: {nodes}"
    share = sum(float(w[-2][:-1]) for w in nodes)
    if abs(share - 100) > 1 or total is None or whole is None or float(whole[-1]) < float(total[-1]):
        return f"shares add up to {share:.1f}%, total {total}, whole step {whole}"
    if not re.fullmatch(r"test_accuracy=\d\.\d{4}", lines[-1]):
        return f"last line is {lines[-1]!r}"
    return f"ok: {len(nodes)} nodes, graph {total[-1]} of a {whole[-1]} ms step"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default="build/kiln")
    ap.add_argument("--limit", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-accuracy", type=float, default=0.65)
    args = ap.parse_args()
    if not os.path.isdir(DATA):
        print(f"check_train: {DATA} missing (Debian package dataset-fashion-mnist)")
        return 1
    x = idx(f"{DATA}/t10k-images-idx3-ubyte.gz")[:args.limit].astype(np.float32) / 255
    y = idx(f"{DATA}/t10k-labels-idx1-ubyte.gz")[:args.limit]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(2024)
        sgd = ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9"]
        cnn_model = cnn(rng)
        torch_model = onnx.load(TORCH_RESNET)
        adam = ["--optimizer", "adam", "--lr", "0.002"]
        for name, model, optim, xt in (
                ("cnn", cnn_model, sgd, x[:, None]),
                ("torch_resnet", torch_model, adam, x[:, None]),
                ("torch_resnet_bf16", torch_model, adam + ["--precision", "bf16"], x[:, None]),
                ("mlp", mlp(rng), adam, x.reshape(len(x), -1)),
                ("cnn_bf16", cnn_model, sgd + ["--precision", "bf16"], x[:, None]),
                ("cnn_fp16", cnn_model, sgd + ["--precision", "fp16"], x[:, None])):
            print(f"{name}:", flush=True)
            try:
                # the ResNet's global pooling learns more slowly in two short epochs
                min_acc = args.min_accuracy - (0.15 if name.startswith("torch") else 0)
                res = check_model(args.kiln, name, model, optim, tmp, args, xt, y, min_acc)
            except Exception as e:  # noqa: BLE001 - reported per model
                res = str(e)
            results.append((name, res))
            print(f"{name:4s} {res}", flush=True)

        for name, check in (("resume", lambda: check_resume(args, tmp, x[:, None], y)),
                            ("csv", lambda: check_csv(args, tmp)),
                            ("profile", lambda: check_profile(args, tmp)),
                            ("char_lstm", lambda: check_char_lstm(args, tmp))):
            print(f"{name}:", flush=True)
            try:
                res = check()
            except Exception as e:  # noqa: BLE001
                res = str(e)
            results.append((name, res))
            print(f"{name}: {res}", flush=True)

        # bad input: one-line errors naming what is wrong
        base = [args.kiln, "train", os.path.join(tmp, "mlp.onnx"), "--out", os.path.join(tmp, "bad")]
        r = run(base + ["--train-images", os.path.join(tmp, "nope.gz"), "--train-labels",
                        f"{DATA}/train-labels-idx1-ubyte.gz"], expect_ok=False)
        ok = r.returncode != 0 and "nope.gz" in r.stderr
        results.append(("missing file", "ok" if ok else f"exit {r.returncode}: {r.stderr.strip()}"))
        onnx.save(mlp(np.random.default_rng(1), act="Sin"), os.path.join(tmp, "sin.onnx"))
        r = run([args.kiln, "train", os.path.join(tmp, "sin.onnx"), "--out", os.path.join(tmp, "bad"),
                 "--train-images", f"{DATA}/t10k-images-idx3-ubyte.gz",
                 "--train-labels", f"{DATA}/t10k-labels-idx1-ubyte.gz", "--limit", "64"], expect_ok=False)
        ok = r.returncode != 0 and "'act' (Sin) has no gradient rule" in r.stderr
        results.append(("no gradient rule", "ok" if ok else f"exit {r.returncode}: {r.stderr.strip()}"))
        for n, res in results[-2:]:
            print(f"{n}: {res}")
    bad = [r for r in results if not r[1].startswith("ok")]
    print(f"check_train: {len(results) - len(bad)}/{len(results)} checks passed"
          + (f"; failed: {', '.join(b[0] for b in bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
