"""Writes the PyTorch golden data of kiln's training test (tests/train/golden/).

Needs torch, numpy and onnx (the test itself needs none of them: it reads the
files this writes). Run from the repository root, in an environment with torch:

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy onnx
    /tmp/torchvenv/bin/python scripts/make_train_golden.py

A small CNN with seeded weights (the same weights as torch modules and as an
ONNX graph built with onnx.helper, so no exporter is involved):

    x (8,1,8,8) -> Conv 1->4 3x3 pad 1 (no bias) -> BatchNormalization -> Relu
      -> MaxPool 2x2 -> Conv 4->8 3x3 pad 1 groups 2 -> Relu
      -> AveragePool 2x2 -> Flatten -> Gemm 32->10 (transB) -> logits

trained for STEPS steps on fixed random batches (labels: the argmax of a fixed
random projection of the image, so there is something to learn) by each case
of CASES: an optimizer (torch.optim, its hyperparameters below) and a loss
(the mean softmax cross-entropy, with label smoothing in one case; binary
cross-entropy of the logits against one-hot targets in another). Written:

    net.onnx               the initial model
    x.npy, y.npy           the batches: (STEPS,8,1,8,8) f32, (STEPS,8) int64
    <opt>_losses.npy       the loss of each step (STEPS) f64, computed before
                           that step's update
    <opt>_final.onnx       the model after STEPS updates (its initializers)

Running statistics: ONNX's BatchNormalization (which kiln follows) updates the
running variance with the batch's population variance, torch with its
unbiased one. The running statistics written here follow ONNX: they are
recomputed from the BatchNormalization input of every step with
momentum 0.9 (torch's 0.1), so the two agree on everything else exactly.
"""
import os

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join("tests", "train", "golden")
STEPS = 20
BATCH = 8
F = torch.nn.functional
# name: (optimizer, loss of (logits, labels))
CASES = {
    "sgd": (lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3), F.cross_entropy),
    "adam": (lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3), F.cross_entropy),
    "adamw": (lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05), F.cross_entropy),
    "adam_smoothing": (lambda p: torch.optim.Adam(p, lr=0.01),
                       lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1)),
    "sgd_bce": (lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9),
                lambda z, y: F.binary_cross_entropy_with_logits(z, F.one_hot(y, 10).float())),
}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        # no bias before BatchNormalization: its gradient is zero up to
        # rounding, which Adam would scale up into steps of noise
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(4, eps=1e-5, momentum=0.1)
        self.conv2 = torch.nn.Conv2d(4, 8, 3, padding=1, groups=2)
        self.fc = torch.nn.Linear(32, 10)
        self.bn_inputs = []

    def forward(self, x):
        h = self.conv1(x)
        self.bn_inputs.append(h.detach().clone())
        h = torch.relu(self.bn(h))
        h = torch.nn.functional.max_pool2d(h, 2)
        h = torch.relu(self.conv2(h))
        h = torch.nn.functional.avg_pool2d(h, 2)
        return self.fc(torch.flatten(h, 1))


def onnx_model(net, running_mean, running_var):
    """The ONNX form of net (BatchNormalization in inference form) with the
    given running statistics."""
    def t(name, a):
        return numpy_helper.from_array(np.ascontiguousarray(a, dtype=np.float32), name)

    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    inits = [
        t("conv1.weight", sd["conv1.weight"]),
        t("bn.weight", sd["bn.weight"]), t("bn.bias", sd["bn.bias"]),
        t("bn.running_mean", running_mean), t("bn.running_var", running_var),
        t("conv2.weight", sd["conv2.weight"]), t("conv2.bias", sd["conv2.bias"]),
        t("fc.weight", sd["fc.weight"]), t("fc.bias", sd["fc.bias"]),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight"], ["c1"], pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization",
                         ["c1", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
                         ["b1"], epsilon=1e-5, momentum=0.9),
        helper.make_node("Relu", ["b1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3], group=2),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("AveragePool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "golden_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="kiln scripts/make_train_golden.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    torch.manual_seed(1234)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    init = Net()
    with torch.no_grad():  # something other than the trivial BN affine init
        init.bn.weight.uniform_(0.5, 1.5)
        init.bn.bias.uniform_(-0.2, 0.2)
    gen = torch.Generator().manual_seed(99)
    x = torch.rand(STEPS, BATCH, 1, 8, 8, generator=gen)
    # labels that the inputs decide (a fixed random projection's argmax), so
    # that the loss has something to learn and falls
    proj = torch.randn(64, 10, generator=gen)
    y = torch.argmax(x.reshape(STEPS, BATCH, 64) @ proj, dim=2)

    os.makedirs(OUT, exist_ok=True)
    zeros, ones = np.zeros(4, np.float32), np.ones(4, np.float32)
    onnx.save(onnx_model(init, zeros, ones), os.path.join(OUT, "net.onnx"))
    np.save(os.path.join(OUT, "x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(OUT, "y.npy"), y.numpy().astype(np.int64))

    for name, (make_opt, loss_fn) in CASES.items():
        net = Net()
        net.load_state_dict(init.state_dict())
        net.train()
        opt = make_opt(net.parameters())
        losses = []
        running_mean, running_var = zeros.astype(np.float64), ones.astype(np.float64)
        for s in range(STEPS):
            opt.zero_grad()
            net.bn_inputs.clear()
            loss = loss_fn(net(x[s]), y[s])
            loss.backward()
            opt.step()
            losses.append(loss.item())
            h = net.bn_inputs[0].double().numpy()
            running_mean = 0.9 * running_mean + 0.1 * h.mean(axis=(0, 2, 3))
            running_var = 0.9 * running_var + 0.1 * h.var(axis=(0, 2, 3))
        np.save(os.path.join(OUT, f"{name}_losses.npy"), np.array(losses, np.float64))
        onnx.save(onnx_model(net, running_mean, running_var),
                  os.path.join(OUT, f"{name}_final.onnx"))
        moved = max((a - b).abs().max().item()
                    for a, b in zip(net.parameters(), init.parameters()))
        print(f"{name}: loss {losses[0]:.4f} -> {losses[-1]:.4f}, "
              f"largest parameter change {moved:.3f}")


if __name__ == "__main__":
    main()
