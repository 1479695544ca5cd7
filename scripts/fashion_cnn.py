"""Writes the small CNN that `make demo` and bench/train_bench.py train on
Fashion-MNIST, as ONNX with seeded He-initialized weights (onnx helper API):

    x (N,1,28,28) -> Conv 3x3 C1 (pad 1) -> BatchNormalization -> Relu -> MaxPool 2
                  -> Conv 3x3 C2 (pad 1) -> BatchNormalization -> Relu -> MaxPool 2
                  -> Flatten -> Dropout(0.25) -> Gemm -> logits (N,10)

    python scripts/fashion_cnn.py OUT.onnx [--width C1] [--seed S]   (C2 = 2 C1)
"""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

import model_util


def build(width=16, seed=0):
    rng = np.random.default_rng(seed)
    c1, c2 = width, 2 * width

    def he(*shape, fan):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan)).astype(np.float32)

    f32 = np.float32
    inits = {
        "conv1.weight": he(c1, 1, 3, 3, fan=9),
        "bn1.weight": np.ones(c1, f32), "bn1.bias": np.zeros(c1, f32),
        "bn1.running_mean": np.zeros(c1, f32), "bn1.running_var": np.ones(c1, f32),
        "conv2.weight": he(c2, c1, 3, 3, fan=9 * c1),
        "bn2.weight": np.ones(c2, f32), "bn2.bias": np.zeros(c2, f32),
        "bn2.running_mean": np.zeros(c2, f32), "bn2.running_var": np.ones(c2, f32),
        "dropout.ratio": np.array(0.25, f32),
        "fc.weight": he(10, c2 * 49, fan=c2 * 49), "fc.bias": np.zeros(10, f32),
    }
    pool = dict(kernel_shape=[2, 2], strides=[2, 2])
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                                "bn1.running_var"], ["b1"], name="bn1"),
        helper.make_node("Relu", ["b1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], **pool),
        helper.make_node("Conv", ["p1", "conv2.weight"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("BatchNormalization", ["c2", "bn2.weight", "bn2.bias", "bn2.running_mean",
                                                "bn2.running_var"], ["b2"], name="bn2"),
        helper.make_node("Relu", ["b2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], **pool),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Dropout", ["f", "dropout.ratio"], ["d"]),
        helper.make_node("Gemm", ["d", "fc.weight", "fc.bias"], ["logits"], transB=1, name="fc"),
    ]
    g = helper.make_graph(nodes, "fashion_cnn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
                          [numpy_helper.from_array(a, n) for n, a in inits.items()])
    return model_util.finish(g, "fashion_cnn.py")


if __name__ == "__main__":
    model_util.main(build, __doc__, {"width": 16, "seed": 0})
