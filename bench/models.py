"""Generates the benchmark model set with seeded random weights, in the op
patterns PyTorch's exporter writes, with the onnx helper API (no downloads,
no torch). opset 17, symbolic batch dim "batch" on every input.

    python bench/models.py OUTDIR [--only NAME[,NAME...]] [--no-check]

writes OUTDIR/<name>.onnx for
  resnet50     ResNet-50 v1.5: conv1 7x7/2 + BN + ReLU, max pool, bottlenecks
               [3,4,6,3] (stride on the 3x3, projection shortcuts), BN after
               every conv, global average pool, Flatten, Gemm 1000
  mobilenetv2  MobileNetV2 1.0: inverted residuals, depthwise 3x3, ReLU6 as
               Clip(0,6), BN after every conv, 1x1 to 1280, Gemm 1000
  bert_base    BERT-base encoder, sequence 128: Gather embeddings (word +
               position + token type), 12 layers of hidden 768, 12 heads,
               FFN 3072; decomposed LayerNorm, erf GELU, additive mask
  lstm         batch-first input (batch, 64, 256) -> 2 stacked ONNX LSTM
               layers of hidden 512 -> Linear 512->256 on every step
Then checks each with onnx.checker and runs it once in onnxruntime (batch 1,
outputs must be finite), unless --no-check.

Weights are He-scaled (std sqrt(2/fan_in)) so activations stay finite and of
order one; the last BN of every residual branch gets a small gamma so the
residual sum does not grow with depth (what zero-init-residual training does).
"""
import argparse
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

OPSET = 17
SEED = 20260311


class Builder:
    """Accumulates nodes and initializers of one graph; names are unique."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.names = [], [], set()
        self.consts = {}

    def init(self, name, arr):
        assert name not in self.names, name
        self.names.add(name)
        self.inits.append(nh.from_array(np.asarray(arr), name))
        return name

    def const(self, arr, dtype):
        """A shared constant initializer (scalars, shapes, axes)."""
        arr = np.asarray(arr, dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.consts:
            self.consts[key] = self.init(f"const_{len(self.consts)}", arr)
        return self.consts[key]

    def node(self, op, inputs, name, n_out=1, **attrs):
        outs = [name if n_out == 1 else f"{name}_{i}" for i in range(n_out)]
        outs = [o + "_out" if o in self.names else o for o in outs]
        for o in outs:
            assert o not in self.names, o
            self.names.add(o)
        self.nodes.append(h.make_node(op, inputs, outs, name=name + "/" + op, **attrs))
        return outs[0] if n_out == 1 else outs

    def normal(self, shape, std):
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def uniform(self, shape, lo, hi):
        return self.rng.uniform(lo, hi, shape).astype(np.float32)

    def model(self, name, inputs, outputs):
        g = h.make_graph(self.nodes, name, inputs, outputs, self.inits)
        m = h.make_model(g, opset_imports=[h.make_opsetid("", OPSET)], producer_name="kiln-bench")
        m.ir_version = 8
        return m


# ---------------------------------------------------------------- CNN pieces

def conv_bn(b, x, name, cin, cout, k, stride=1, group=1, gamma=(0.8, 1.2)):
    """Conv (no bias, He init) + BatchNormalization as exporters write them
    before BN folding. x: (N,cin,H,W) -> (N,cout,H/stride,W/stride)."""
    fan_in = (cin // group) * k * k
    w = b.init(f"{name}.weight", b.normal((cout, cin // group, k, k), np.sqrt(2.0 / fan_in)))
    c = b.node("Conv", [x, w], f"{name}/conv", kernel_shape=[k, k], strides=[stride, stride],
               pads=[k // 2] * 4, group=group, dilations=[1, 1])
    p = f"{name}.bn"
    bn = [b.init(p + ".weight", b.uniform(cout, *gamma)), b.init(p + ".bias", b.normal(cout, 0.1)),
          b.init(p + ".running_mean", b.normal(cout, 0.1)),
          b.init(p + ".running_var", b.uniform(cout, 0.5, 1.5))]
    return b.node("BatchNormalization", [c] + bn, f"{name}/bn", epsilon=1e-5, momentum=0.9)


def classifier(b, x, cin, classes=1000):
    """GlobalAveragePool, Flatten, Gemm (transB) as torchvision exports."""
    gp = b.node("GlobalAveragePool", [x], "avgpool")
    f = b.node("Flatten", [gp], "flatten", axis=1)
    w = b.init("fc.weight", b.normal((classes, cin), np.sqrt(1.0 / cin)))
    bias = b.init("fc.bias", b.normal(classes, 0.01))
    return b.node("Gemm", [f, w, bias], "logits", alpha=1.0, beta=1.0, transB=1)


def image_io(b, name, logits):
    inp = [h.make_tensor_value_info("input", TP.FLOAT, ["batch", 3, 224, 224])]
    out = [h.make_tensor_value_info(logits, TP.FLOAT, ["batch", 1000])]
    return b.model(name, inp, out)


def resnet50():
    b = Builder(SEED + 1)
    x = conv_bn(b, "input", "conv1", 3, 64, 7, stride=2)
    x = b.node("Relu", [x], "relu")
    x = b.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for li, (planes, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]):
        for bi in range(blocks):
            p = f"layer{li + 1}.{bi}"
            s = stride if bi == 0 else 1
            y = b.node("Relu", [conv_bn(b, x, p + ".conv1", cin, planes, 1)], p + "/relu1")
            y = b.node("Relu", [conv_bn(b, y, p + ".conv2", planes, planes, 3, stride=s)], p + "/relu2")
            y = conv_bn(b, y, p + ".conv3", planes, planes * 4, 1, gamma=(0.2, 0.4))
            sc = x if bi > 0 else conv_bn(b, x, p + ".downsample", cin, planes * 4, 1, stride=s,
                                          gamma=(0.4, 0.6))
            x = b.node("Relu", [b.node("Add", [y, sc], p + "/add")], p + "/relu3")
            cin = planes * 4
    return image_io(b, "resnet50", classifier(b, x, cin))


def mobilenetv2():
    b = Builder(SEED + 2)
    lo, hi = b.const(0.0, np.float32), b.const(6.0, np.float32)

    def relu6(x, name):
        return b.node("Clip", [x, lo, hi], name)

    x = relu6(conv_bn(b, "input", "features.0", 3, 32, 3, stride=2), "features.0/relu6")
    cin, idx = 32, 1
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            p = f"features.{idx}"
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x
            if t != 1:
                y = relu6(conv_bn(b, y, p + ".expand", cin, hidden, 1), p + "/expand_relu6")
            y = relu6(conv_bn(b, y, p + ".dw", hidden, hidden, 3, stride=stride, group=hidden), p + "/dw_relu6")
            res = stride == 1 and cin == c
            y = conv_bn(b, y, p + ".project", hidden, c, 1, gamma=(0.2, 0.4) if res else (0.8, 1.2))
            x = b.node("Add", [x, y], p + "/add") if res else y
            cin, idx = c, idx + 1
    x = relu6(conv_bn(b, x, f"features.{idx}", cin, 1280, 1), f"features.{idx}/relu6")
    return image_io(b, "mobilenetv2", classifier(b, x, 1280))


# ---------------------------------------------------------------- BERT

BERT_SEQ, BERT_HIDDEN, BERT_HEADS, BERT_FFN, BERT_LAYERS, BERT_VOCAB = 128, 768, 12, 3072, 12, 30522


def linear(b, x, name, din, dout):
    """nn.Linear on a 3-D input as exporters write it: MatMul by W^T, Add bias."""
    w = b.init(name + ".weight_t", b.normal((din, dout), 0.02))
    bias = b.init(name + ".bias", b.normal(dout, 0.02))
    return b.node("Add", [b.node("MatMul", [x, w], name + "/matmul"), bias], name + "/add")


def layer_norm(b, x, name, d, eps=1e-12):
    """LayerNorm over the last axis, decomposed as PyTorch exports it before
    opset 17's LayerNormalization: ReduceMean, Sub, Pow, ReduceMean, Add,
    Sqrt, Div, Mul, Add."""
    mu = b.node("ReduceMean", [x], name + "/mean", axes=[-1], keepdims=1)
    xc = b.node("Sub", [x, mu], name + "/sub")
    sq = b.node("Pow", [xc, b.const(2.0, np.float32)], name + "/pow")
    var = b.node("ReduceMean", [sq], name + "/var", axes=[-1], keepdims=1)
    ve = b.node("Add", [var, b.const(eps, np.float32)], name + "/add_eps")
    sd = b.node("Sqrt", [ve], name + "/sqrt")
    xn = b.node("Div", [xc, sd], name + "/div")
    g = b.init(name + ".weight", 1 + b.normal(d, 0.05))
    beta = b.init(name + ".bias", b.normal(d, 0.02))
    return b.node("Add", [b.node("Mul", [xn, g], name + "/mul"), beta], name + "/out")


def gelu_erf(b, x, name):
    """x * 0.5 * (1 + erf(x / 1.41421)) as PyTorch exports nn.GELU()."""
    e = b.node("Erf", [b.node("Div", [x, b.const(1.41421, np.float32)], name + "/div")], name + "/erf")
    e1 = b.node("Add", [e, b.const(1.0, np.float32)], name + "/add")
    return b.node("Mul", [b.node("Mul", [x, e1], name + "/mul"), b.const(0.5, np.float32)], name + "/out")


def shape_dims(b, x, name, idxs):
    """[Unsqueeze(Shape(x)[i]) for i in idxs]: the shape subgraphs exporters
    write for view() with a dynamic batch."""
    sh = b.node("Shape", [x], name + "/shape")
    return [b.node("Unsqueeze", [b.node("Gather", [sh, b.const(i, np.int64)], f"{name}/dim{i}", axis=0),
                                 b.const([0], np.int64)], f"{name}/dim{i}_u") for i in idxs]


def attention(b, x, mask, name):
    """Self-attention of one BERT layer. x: (B,S,D), mask: (B,1,1,S) additive."""
    D, H = BERT_HIDDEN, BERT_HEADS
    dh = D // H
    bd, sd = shape_dims(b, x, name + "/qshape", [0, 1])
    heads = b.node("Concat", [bd, sd, b.const([H], np.int64), b.const([dh], np.int64)], name + "/heads_shape",
                   axis=0)
    t = {}
    for p in ("query", "key", "value"):
        y = b.node("Reshape", [linear(b, x, f"{name}.{p}", D, D), heads], f"{name}/{p}_view")
        # (B,S,H,dh) -> (B,H,S,dh); the key as (B,H,dh,S)
        t[p] = b.node("Transpose", [y], f"{name}/{p}_t", perm=[0, 2, 3, 1] if p == "key" else [0, 2, 1, 3])
    sc = b.node("MatMul", [t["query"], t["key"]], name + "/scores")
    sc = b.node("Div", [sc, b.const(np.sqrt(dh), np.float32)], name + "/scale")
    sc = b.node("Add", [sc, mask], name + "/mask")
    att = b.node("Softmax", [sc], name + "/softmax", axis=-1)
    ctx = b.node("MatMul", [att, t["value"]], name + "/context")
    ctx = b.node("Transpose", [ctx], name + "/context_t", perm=[0, 2, 1, 3])
    bd2, sd2 = shape_dims(b, ctx, name + "/oshape", [0, 1])
    osh = b.node("Concat", [bd2, sd2, b.const([D], np.int64)], name + "/out_shape", axis=0)
    return b.node("Reshape", [ctx, osh], name + "/context_view")


def bert_base():
    b = Builder(SEED + 3)
    D = BERT_HIDDEN
    ids, mask_in = "input_ids", "attention_mask"
    # embeddings: word[input_ids] + token_type[zeros] + position[arange(S)]
    word = b.init("embeddings.word_embeddings.weight", b.normal((BERT_VOCAB, D), 0.02))
    pos_tab = b.init("embeddings.position_embeddings.weight", b.normal((512, D), 0.02))
    tt_tab = b.init("embeddings.token_type_embeddings.weight", b.normal((2, D), 0.02))
    pos_ids = b.init("embeddings.position_ids", np.arange(512, dtype=np.int64)[None, :])
    (seq_len,) = shape_dims(b, ids, "embeddings/ids_shape", [1])
    pos = b.node("Slice", [pos_ids, b.const([0], np.int64), seq_len, b.const([1], np.int64)],
                 "embeddings/position_ids")                                   # (1,S)
    ids_shape = b.node("Shape", [ids], "embeddings/shape")
    tt_ids = b.node("ConstantOfShape", [ids_shape], "embeddings/token_type_ids",
                    value=nh.from_array(np.zeros(1, np.int64)))              # (B,S)
    e = b.node("Gather", [word, ids], "embeddings/word", axis=0)
    e = b.node("Add", [e, b.node("Gather", [tt_tab, tt_ids], "embeddings/token_type", axis=0)],
               "embeddings/add_tt")
    e = b.node("Add", [e, b.node("Gather", [pos_tab, pos], "embeddings/position", axis=0)], "embeddings/add_pos")
    x = layer_norm(b, e, "embeddings.LayerNorm", D)
    # extended mask: (1 - mask[:, None, None, :]) * -10000
    m = b.node("Unsqueeze", [mask_in, b.const([1], np.int64)], "mask/unsqueeze1")
    m = b.node("Unsqueeze", [m, b.const([2], np.int64)], "mask/unsqueeze2")
    m = b.node("Cast", [m], "mask/cast", to=TP.FLOAT)
    m = b.node("Sub", [b.const(1.0, np.float32), m], "mask/invert")
    mask = b.node("Mul", [m, b.const(-10000.0, np.float32)], "mask/scale")   # (B,1,1,S)
    for li in range(BERT_LAYERS):
        p = f"encoder.layer.{li}"
        a = linear(b, attention(b, x, mask, p + ".attention.self"), p + ".attention.output.dense", D, D)
        x = layer_norm(b, b.node("Add", [a, x], p + "/attn_residual"), p + ".attention.output.LayerNorm", D)
        f = gelu_erf(b, linear(b, x, p + ".intermediate.dense", D, BERT_FFN), p + "/gelu")
        f = linear(b, f, p + ".output.dense", BERT_FFN, D)
        x = layer_norm(b, b.node("Add", [f, x], p + "/ffn_residual"), p + ".output.LayerNorm", D)
    hidden = b.node("Identity", [x], "last_hidden_state")
    first = b.node("Gather", [hidden, b.const(0, np.int64)], "pooler/first_token", axis=1)
    pw = b.init("pooler.dense.weight", b.normal((D, D), 0.02))
    pb = b.init("pooler.dense.bias", b.normal(D, 0.02))
    pooled = b.node("Tanh", [b.node("Gemm", [first, pw, pb], "pooler/dense", transB=1)], "pooler_output")
    inp = [h.make_tensor_value_info(ids, TP.INT64, ["batch", BERT_SEQ]),
           h.make_tensor_value_info(mask_in, TP.INT64, ["batch", BERT_SEQ])]
    out = [h.make_tensor_value_info(hidden, TP.FLOAT, ["batch", BERT_SEQ, D]),
           h.make_tensor_value_info(pooled, TP.FLOAT, ["batch", D])]
    return b.model("bert_base", inp, out)


# ---------------------------------------------------------------- LSTM

LSTM_SEQ, LSTM_IN, LSTM_HIDDEN, LSTM_OUT = 64, 256, 512, 256


def lstm():
    b = Builder(SEED + 4)
    Hd = LSTM_HIDDEN
    k = 1.0 / np.sqrt(Hd)   # PyTorch's LSTM init: U(-1/sqrt(H), 1/sqrt(H))
    x = b.node("Transpose", ["input"], "to_time_major", perm=[1, 0, 2])      # (T,B,I)
    cin = LSTM_IN
    for li in range(2):
        p = f"lstm.l{li}"
        w = b.init(p + ".W", b.uniform((1, 4 * Hd, cin), -k, k))              # gates iofc
        r = b.init(p + ".R", b.uniform((1, 4 * Hd, Hd), -k, k))
        bias = b.init(p + ".B", b.uniform((1, 8 * Hd), -k, k))
        y, _, _ = b.node("LSTM", [x, w, r, bias], p, n_out=3, hidden_size=Hd, direction="forward")
        x = b.node("Squeeze", [y, b.const([1], np.int64)], p + "/squeeze")  # (T,1,B,H) -> (T,B,H)
        cin = Hd
    x = b.node("Transpose", [x], "to_batch_major", perm=[1, 0, 2])           # (B,T,H)
    w = b.init("fc.weight_t", b.normal((Hd, LSTM_OUT), np.sqrt(1.0 / Hd)))
    bias = b.init("fc.bias", b.normal(LSTM_OUT, 0.01))
    y = b.node("Add", [b.node("MatMul", [x, w], "fc/matmul"), bias], "output")
    inp = [h.make_tensor_value_info("input", TP.FLOAT, ["batch", LSTM_SEQ, LSTM_IN])]
    out = [h.make_tensor_value_info(y, TP.FLOAT, ["batch", LSTM_SEQ, LSTM_OUT])]
    return b.model("lstm", inp, out)


MODELS = {"resnet50": resnet50, "mobilenetv2": mobilenetv2, "bert_base": bert_base, "lstm": lstm}


def sample_inputs(name, batch, seed=0):
    """Seeded inputs for MODEL at BATCH: {input name: array}. BERT gets token
    ids over the whole vocabulary and a 0/1 mask whose tail is padding for
    every other sequence."""
    rng = np.random.default_rng(seed + batch)
    if name in ("resnet50", "mobilenetv2"):
        return {"input": rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)}
    if name == "bert_base":
        mask = np.ones((batch, BERT_SEQ), np.int64)
        mask[1::2, BERT_SEQ * 3 // 4:] = 0
        return {"input_ids": rng.integers(0, BERT_VOCAB, (batch, BERT_SEQ), dtype=np.int64),
                "attention_mask": mask}
    if name == "lstm":
        return {"input": rng.standard_normal((batch, LSTM_SEQ, LSTM_IN)).astype(np.float32)}
    raise KeyError(name)


def check(path, name):
    """onnx.checker, then one onnxruntime run at batch 1: outputs finite."""
    import onnxruntime as ort
    onnx.checker.check_model(path, full_check=True)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    t0 = time.perf_counter()
    outs = sess.run(None, sample_inputs(name, 1))
    ms = (time.perf_counter() - t0) * 1e3
    for o, v in zip(sess.get_outputs(), outs):
        if not np.isfinite(v).all():
            raise SystemExit(f"{path}: output {o.name} has non-finite values")
        print(f"  {name}: {o.name} {list(v.shape)} std {v.std():.3g} max|x| {np.abs(v).max():.3g} "
              f"(onnxruntime, {ms:.0f} ms)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--only", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--no-check", action="store_true", help="skip onnx.checker and the onnxruntime run")
    args = ap.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)
    for name in args.only.split(","):
        if name not in MODELS:
            ap.error(f"unknown model '{name}' (have {', '.join(MODELS)})")
        path = os.path.join(args.outdir, name + ".onnx")
        m = MODELS[name]()
        onnx.save(m, path)
        params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
        print(f"wrote {path}: {len(m.graph.node)} nodes, {params / 1e6:.1f} M parameters")
        if not args.no_check:
            check(path, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
