"""Generates the whole-model test set: networks in the shapes PyTorch's exporter
writes (dynamic batch, shape subgraphs, decomposed LayerNorm/GELU, LSTM with If,
Loop/Scan, QDQ quantization), with seeded random weights. No downloads.

    python tests/models/gen_models.py OUTDIR
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

RNG = np.random.default_rng(20261122)


def w(name, *shape, scale=0.1, dtype=np.float32):
    return nh.from_array((RNG.standard_normal(shape) * scale).astype(dtype), name)


def const(name, arr):
    return nh.from_array(np.asarray(arr), name)


def model(nodes, inputs, outputs, inits, opset=17, name="g"):
    g = h.make_graph(nodes, name, inputs, outputs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name="kiln-tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def cnn():
    """ResNet-style block: strided conv, BN, ReLU, max pool, grouped conv,
    residual add, global pool, flatten, Gemm, softmax; dynamic batch."""
    n = [
        h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        h.make_node("BatchNormalization", ["c1", "g1", "be1", "m1", "v1"], ["bn1"], epsilon=1e-5),
        h.make_node("Relu", ["bn1"], ["r1"]),
        h.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        h.make_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=4),
        h.make_node("Add", ["c2", "p1"], ["a2"]),
        h.make_node("Relu", ["a2"], ["r2"]),
        h.make_node("GlobalAveragePool", ["r2"], ["gp"]),
        h.make_node("Flatten", ["gp"], ["f"]),
        h.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1),
        h.make_node("Softmax", ["logits"], ["prob"], axis=1),
    ]
    inits = [w("w1", 16, 3, 3, 3), w("b1", 16), const("g1", 1 + RNG.random(16, dtype=np.float32)),
             w("be1", 16), w("m1", 16), const("v1", 0.5 + RNG.random(16, dtype=np.float32)),
             w("w2", 16, 4, 3, 3), w("wf", 10, 16), w("bf", 10)]
    return model(n, [h.make_tensor_value_info("x", TP.FLOAT, ["N", 3, 32, 32])],
                 [h.make_tensor_value_info("prob", TP.FLOAT, ["N", 10])], inits), {"x": (2, 3, 32, 32)}


def lstm_if():
    """Embedding (Gather) -> bidirectional LSTM -> If on the sign of the sum:
    one branch ReLU, the other Tanh (both capture a value of the outer graph)."""
    T, B, E, H = 7, 2, 8, 6
    then_g = h.make_graph([h.make_node("Relu", ["y2"], ["o"])], "then", [],
                          [h.make_tensor_value_info("o", TP.FLOAT, [T, B, 2 * H])])
    else_g = h.make_graph([h.make_node("Tanh", ["y2"], ["o"])], "else", [],
                          [h.make_tensor_value_info("o", TP.FLOAT, [T, B, 2 * H])])
    n = [
        h.make_node("Gather", ["emb", "tok"], ["e"]),                       # (T,B,E)
        h.make_node("LSTM", ["e", "W", "R", "Bias"], ["y", "yh", "yc"], hidden_size=H,
                    direction="bidirectional"),                              # (T,2,B,H)
        h.make_node("Transpose", ["y"], ["yt"], perm=[0, 2, 1, 3]),
        h.make_node("Shape", ["yt"], ["sh"]),
        h.make_node("Slice", ["sh", "zero", "two", "zero"], ["sh2"]),
        h.make_node("Concat", ["sh2", "minus1"], ["newshape"], axis=0),
        h.make_node("Reshape", ["yt", "newshape"], ["y2"]),                 # (T,B,2H)
        h.make_node("ReduceSum", ["y2"], ["s"], keepdims=0),
        h.make_node("Greater", ["s", "zerof"], ["cond"]),
        h.make_node("If", ["cond"], ["out"], then_branch=then_g, else_branch=else_g),
    ]
    inits = [w("emb", 20, E, scale=1.0), w("W", 2, 4 * H, E), w("R", 2, 4 * H, H), w("Bias", 2, 8 * H),
             const("zero", np.array([0], np.int64)), const("two", np.array([2], np.int64)),
             const("minus1", np.array([-1], np.int64)), const("zerof", np.array(0, np.float32))]
    return model(n, [h.make_tensor_value_info("tok", TP.INT64, [T, B])],
                 [h.make_tensor_value_info("out", TP.FLOAT, [T, B, 2 * H]),
                  h.make_tensor_value_info("yh", TP.FLOAT, [2, B, H])], inits), {"tok": (T, B, "int", 20)}


def attention():
    """One transformer encoder layer as exporters write it: decomposed LayerNorm,
    QKV MatMuls, reshapes built from Shape, scaled softmax with an additive
    mask, output projection, erf-GELU MLP, residuals; dynamic sequence."""
    D, Hh, F = 16, 2, 32
    dh = D // Hh
    n = [
        # LayerNorm, decomposed
        h.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]),
        h.make_node("Sub", ["x", "mu"], ["xc"]),
        h.make_node("Pow", ["xc", "twof"], ["sq"]),
        h.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
        h.make_node("Add", ["var", "eps"], ["ve"]),
        h.make_node("Sqrt", ["ve"], ["sd"]),
        h.make_node("Div", ["xc", "sd"], ["xn"]),
        h.make_node("Mul", ["xn", "lng"], ["xs"]),
        h.make_node("Add", ["xs", "lnb"], ["ln"]),
        # shapes: (B, S, H, dh)
        h.make_node("Shape", ["x"], ["xsh"]),
        h.make_node("Gather", ["xsh", "i0"], ["b"], axis=0),
        h.make_node("Gather", ["xsh", "i1"], ["s"], axis=0),
        h.make_node("Unsqueeze", ["b", "ax0"], ["bu"]),
        h.make_node("Unsqueeze", ["s", "ax0"], ["su"]),
        h.make_node("Concat", ["bu", "su", "nh", "hd"], ["qshape"], axis=0),
        h.make_node("Concat", ["bu", "su", "dm"], ["oshape"], axis=0),
    ]
    for p in "qkv":
        n += [h.make_node("MatMul", ["ln", "w" + p], [p + "0"]),
              h.make_node("Add", [p + "0", "b" + p], [p + "1"]),
              h.make_node("Reshape", [p + "1", "qshape"], [p + "2"]),
              h.make_node("Transpose", [p + "2"], [p + "t"], perm=[0, 2, 3, 1] if p == "k" else [0, 2, 1, 3])]
    n += [
        h.make_node("MatMul", ["qt", "kt"], ["sc"]),
        h.make_node("Div", ["sc", "sqrtd"], ["scs"]),
        h.make_node("Add", ["scs", "mask"], ["scm"]),
        h.make_node("Softmax", ["scm"], ["att"], axis=-1),
        h.make_node("MatMul", ["att", "vt"], ["ctx"]),
        h.make_node("Transpose", ["ctx"], ["ctxt"], perm=[0, 2, 1, 3]),
        h.make_node("Reshape", ["ctxt", "oshape"], ["ctxr"]),
        h.make_node("MatMul", ["ctxr", "wo"], ["proj"]),
        h.make_node("Add", ["proj", "x"], ["res1"]),
        h.make_node("MatMul", ["res1", "w1"], ["f1"]),
        h.make_node("Div", ["f1", "sqrt2"], ["f1s"]),
        h.make_node("Erf", ["f1s"], ["erf"]),
        h.make_node("Add", ["erf", "onef"], ["erf1"]),
        h.make_node("Mul", ["f1", "erf1"], ["g0"]),
        h.make_node("Mul", ["g0", "half"], ["gelu"]),
        h.make_node("MatMul", ["gelu", "w2"], ["f2"]),
        h.make_node("Add", ["f2", "res1"], ["y"]),
    ]
    inits = [const("twof", np.float32(2)), const("eps", np.float32(1e-5)), w("lng", D, scale=1.0), w("lnb", D),
             const("i0", np.int64(0)), const("i1", np.int64(1)), const("ax0", np.array([0], np.int64)),
             const("nh", np.array([Hh], np.int64)), const("hd", np.array([dh], np.int64)),
             const("dm", np.array([D], np.int64)), const("sqrtd", np.float32(np.sqrt(dh))),
             w("wq", D, D), w("wk", D, D), w("wv", D, D), w("bq", D), w("bk", D), w("bv", D), w("wo", D, D),
             w("w1", D, F), w("w2", F, D), const("sqrt2", np.float32(np.sqrt(2))),
             const("onef", np.float32(1)), const("half", np.float32(0.5))]
    return model(n, [h.make_tensor_value_info("x", TP.FLOAT, ["B", "S", D]),
                     h.make_tensor_value_info("mask", TP.FLOAT, ["B", 1, 1, "S"])],
                 [h.make_tensor_value_info("y", TP.FLOAT, ["B", "S", D])], inits), \
        {"x": (2, 5, D), "mask": (2, 1, 1, 5)}


def loop_scan():
    """A Loop accumulating a running product with a scan output, and a Scan
    computing a cumulative sum over the sequence axis."""
    body = h.make_graph(
        [h.make_node("Cast", ["i"], ["i_f"], to=TP.FLOAT),
         h.make_node("Mul", ["acc_in", "x"], ["acc_out"]),
         h.make_node("Identity", ["cond_in"], ["cond_out"]),
         h.make_node("Add", ["acc_out", "i_f"], ["scan_out"])],
        "body",
        [h.make_tensor_value_info("i", TP.INT64, []), h.make_tensor_value_info("cond_in", TP.BOOL, []),
         h.make_tensor_value_info("acc_in", TP.FLOAT, [3])],
        [h.make_tensor_value_info("cond_out", TP.BOOL, []), h.make_tensor_value_info("acc_out", TP.FLOAT, [3]),
         h.make_tensor_value_info("scan_out", TP.FLOAT, [3])])
    sbody = h.make_graph(
        [h.make_node("Add", ["s_in", "e"], ["s_out"]), h.make_node("Identity", ["s_out"], ["y_e"])],
        "sbody",
        [h.make_tensor_value_info("s_in", TP.FLOAT, [3]), h.make_tensor_value_info("e", TP.FLOAT, [3])],
        [h.make_tensor_value_info("s_out", TP.FLOAT, [3]), h.make_tensor_value_info("y_e", TP.FLOAT, [3])])
    n = [h.make_node("Loop", ["trip", "cond", "acc0"], ["acc", "scan"], body=body),
         h.make_node("Scan", ["s0", "seq"], ["s_final", "cums"], body=sbody, num_scan_inputs=1)]
    inits = [const("trip", np.int64(4)), const("cond", np.bool_(True)),
             const("acc0", np.ones(3, np.float32)), const("s0", np.zeros(3, np.float32))]
    return model(n, [h.make_tensor_value_info("x", TP.FLOAT, [3]), h.make_tensor_value_info("seq", TP.FLOAT, [5, 3])],
                 [h.make_tensor_value_info("acc", TP.FLOAT, [3]), h.make_tensor_value_info("scan", TP.FLOAT, [4, 3]),
                  h.make_tensor_value_info("s_final", TP.FLOAT, [3]), h.make_tensor_value_info("cums", TP.FLOAT, [5, 3])],
                 inits), {"x": (3,), "seq": (5, 3)}


def qdq():
    """The QDQ form onnxruntime's quantizer writes around a Conv and a MatMul."""
    n = [
        h.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        h.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        h.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
        h.make_node("Conv", ["xd", "wd", "b"], ["c"], pads=[1, 1, 1, 1]),
        h.make_node("Relu", ["c"], ["r"]),
        h.make_node("QuantizeLinear", ["r", "rs", "rz"], ["rq"]),
        h.make_node("DequantizeLinear", ["rq", "rs", "rz"], ["rd"]),
        h.make_node("Flatten", ["rd"], ["f"]),
        h.make_node("MatMul", ["f", "mw"], ["y"]),
    ]
    inits = [const("xs", np.float32(0.02)), const("xz", np.uint8(128)),
             const("wq", RNG.integers(-60, 60, (4, 2, 3, 3)).astype(np.int8)),
             const("ws", (0.01 + 0.01 * RNG.random(4)).astype(np.float32)), const("wz", np.zeros(4, np.int8)),
             w("b", 4), const("rs", np.float32(0.01)), const("rz", np.uint8(0)), w("mw", 4 * 6 * 6, 5)]
    return model(n, [h.make_tensor_value_info("x", TP.FLOAT, [1, 2, 6, 6])],
                 [h.make_tensor_value_info("y", TP.FLOAT, [1, 5])], inits, opset=13), {"x": (1, 2, 6, 6)}


def unet_block():
    """Down/up path: Conv, AveragePool, Resize (linear, half_pixel), Concat,
    Pad (reflect), Slice with negative steps, ConvTranspose, Clip."""
    n = [
        h.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        h.make_node("AveragePool", ["c1"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        h.make_node("Resize", ["p", "", "scales"], ["up"], mode="linear",
                    coordinate_transformation_mode="half_pixel"),
        h.make_node("Concat", ["up", "c1"], ["cat"], axis=1),
        h.make_node("Pad", ["cat", "pads"], ["pad"], mode="reflect"),
        h.make_node("Slice", ["pad", "st", "en", "axs", "sp"], ["sl"]),
        h.make_node("ConvTranspose", ["sl", "wt"], ["ct"], strides=[2, 2]),
        h.make_node("Clip", ["ct", "lo", "hi"], ["y"]),
    ]
    inits = [w("w1", 4, 3, 3, 3, scale=0.3), const("scales", np.array([1, 1, 2, 2], np.float32)),
             const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
             const("st", np.array([-1, -2], np.int64)), const("en", np.array([-100, -100], np.int64)),
             const("axs", np.array([2, 3], np.int64)), const("sp", np.array([-1, -2], np.int64)),
             w("wt", 8, 2, 3, 3, scale=0.3), const("lo", np.float32(-0.5)), const("hi", np.float32(0.5))]
    return model(n, [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                 [h.make_tensor_value_info("y", TP.FLOAT, [1, 2, 21, 11])], inits), {"x": (1, 3, 8, 8)}


MODELS = {"cnn": cnn, "lstm_if": lstm_if, "attention": attention, "loop_scan": loop_scan,
          "qdq": qdq, "unet_block": unet_block}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, fn in MODELS.items():
        m, shapes = fn()
        onnx.save(m, os.path.join(out, name + ".onnx"))
        with open(os.path.join(out, name + ".inputs"), "w") as f:
            for k, v in shapes.items():
                f.write(k + " " + ",".join(map(str, v)) + "\n")
    print(f"wrote {len(MODELS)} models to {out}")


if __name__ == "__main__":
    main()
