"""Writes a character-level LSTM language model as ONNX, with seeded weights
(onnx helper API), for `kiln train --train-text`:

    x (N,T) int64 byte ids -> Gather(embedding (256,E)) -> (N,T,E)
      -> Transpose -> (T,N,E) -> LSTM hidden H -> (T,1,N,H) -> Squeeze -> (T,N,H)
      -> MatMul (H,256) + bias -> (T,N,256) -> Transpose -> logits (N,256,T)

    python scripts/char_lstm.py OUT.onnx [--embed E] [--hidden H] [--seed S]
"""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

import model_util


def build(embed=16, hidden=64, seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    k = 1 / np.sqrt(hidden)
    inits = {
        "embedding": rng.normal(0, 1, (256, embed)).astype(f32),
        "lstm.W": rng.uniform(-k, k, (1, 4 * hidden, embed)).astype(f32),
        "lstm.R": rng.uniform(-k, k, (1, 4 * hidden, hidden)).astype(f32),
        "lstm.B": np.zeros((1, 8 * hidden), f32),
        "squeeze.axes": np.array([1], np.int64),
        "out.weight": rng.uniform(-k, k, (hidden, 256)).astype(f32),
        "out.bias": np.zeros(256, f32),
    }
    nodes = [
        helper.make_node("Gather", ["embedding", "x"], ["e"]),
        helper.make_node("Transpose", ["e"], ["et"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["et", "lstm.W", "lstm.R", "lstm.B"], ["y"], hidden_size=hidden),
        helper.make_node("Squeeze", ["y", "squeeze.axes"], ["h"]),
        helper.make_node("MatMul", ["h", "out.weight"], ["o"]),
        helper.make_node("Add", ["o", "out.bias"], ["ob"]),
        helper.make_node("Transpose", ["ob"], ["logits"], perm=[1, 2, 0]),
    ]
    g = helper.make_graph(nodes, "char_lstm",
                          [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", "T"])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 256, "T"])],
                          [numpy_helper.from_array(a, n) for n, a in inits.items()])
    return model_util.finish(g, "char_lstm.py")


if __name__ == "__main__":
    model_util.main(build, __doc__, {"embed": 16, "hidden": 64, "seed": 0})
