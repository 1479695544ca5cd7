"""Training benchmark (issue 4's targets): kiln train beside PyTorch on the
CPU, the same network, batch, optimizer and thread count, and writes
docs/BENCHMARKS_TRAIN.md.

    python bench/train_bench.py [--kiln build/kiln] [--threads 2] [--batch 64] [--width 32]
        [--steps 100] [--epochs 5] [--torch-epochs 2] [--seq-len 64] [--lstm-hidden 128]
        [--lstm-epochs 3] [--sections speed,accuracy,torch-export,char-lstm]
        [--out docs/BENCHMARKS_TRAIN.md]

Needs torch, numpy and onnx in the Python that runs it (a venv of its own:
python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy onnx onnxruntime).

The network is scripts/fashion_cnn.py's small CNN (two 3x3 convolutions of
--width and 2 --width channels with BatchNormalization, ReLU and max pooling,
dropout, a linear layer), built once as ONNX; PyTorch gets a twin module with
the same initial weights. Adam, lr 0.002, on Fashion-MNIST (Debian
dataset-fashion-mnist).

Sections:
  speed     step time (forward, backward, update) at --batch on --threads:
            `kiln train` on --steps batches for two epochs, the second
            epoch's samples/s (the first plans the graph); PyTorch with
            torch.set_num_threads, --steps timed steps after 10 warm-up
            ones, fp32 and bf16 (torch.autocast on the CPU). Each runner
            twice, alternating, the better time kept.
  accuracy  test accuracy after --epochs epochs over the 60000 training
            images: kiln fp32, bf16, fp16 and PyTorch fp32.
  torch-export  a network kiln never saw, exported from PyTorch in training
            mode (tests/train/torch/torch_fashion_resnet.onnx: BatchNorm,
            residual connections, dropout), trained by `kiln train` for
            --torch-epochs epochs at fp32 and bf16; the test accuracy, and
            onnxruntime's on the written model (needs onnxruntime); and
            PyTorch training the module it came from, from the same weights.
  char-lstm a character LSTM on Moby Dick beside PyTorch: step time, the
            test loss per character before and after --lstm-epochs epochs,
            and the exported model reloaded (bench/char_lstm_bench.py).
"""
import argparse
import gzip
import os
import platform
import re
import sys
import tempfile
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import char_lstm_bench  # noqa: E402
import fashion_cnn  # noqa: E402
from bench_common import ms_per_step, run_checked  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
TORCH_RESNET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "train", "torch",
                            "torch_fashion_resnet.onnx")
LR = 0.002


def idx(path):
    b = gzip.open(path).read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b[4 + 4 * nd:], np.uint8).reshape(dims)


class TorchCNN(torch.nn.Module):
    """fashion_cnn.py's network, its weights taken from the ONNX model."""

    def __init__(self, model):
        super().__init__()
        w = {i.name: torch.tensor(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
        c1, c2 = w["conv1.weight"].shape[0], w["conv2.weight"].shape[0]
        self.conv1 = torch.nn.Conv2d(1, c1, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c1)
        self.conv2 = torch.nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(c2)
        self.drop = torch.nn.Dropout(float(w["dropout.ratio"]))
        self.fc = torch.nn.Linear(c2 * 49, 10)
        with torch.no_grad():
            for name, p in self.named_parameters():
                p.copy_(w[name])

    def forward(self, x):
        h = torch.nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        h = torch.nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(h))), 2)
        return self.fc(self.drop(torch.flatten(h, 1)))


def torch_step_ms(model, x, y, batch, steps, bf16):
    net = TorchCNN(model)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    net.train()
    n = len(x)

    def step(k):
        lo = (k * batch) % (n - batch)
        xb, yb = x[lo:lo + batch], y[lo:lo + batch]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()

    return ms_per_step(step, steps)


def torch_accuracy(model, x, y, xt, yt, batch, epochs):
    torch.manual_seed(0)
    return torch_train_accuracy(TorchCNN(model), x, y, xt, yt, batch, epochs)


def torch_resnet_accuracy(x, y, xt, yt, batch, epochs):
    """PyTorch training the exported ResNet's module (export_torch_models.py)
    from the exported initial weights, as kiln does."""
    import export_torch_models
    torch.manual_seed(0)
    net = export_torch_models.FashionResNet()
    init = {i.name: torch.tensor(numpy_helper.to_array(i).copy()) for i in onnx.load(TORCH_RESNET).graph.initializer}
    missing, unexpected = net.load_state_dict(init, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise RuntimeError(f"the exported ResNet's weights do not fit its module: {missing} {unexpected}")
    return torch_train_accuracy(net, x, y, xt, yt, batch, epochs)


def torch_train_accuracy(net, x, y, xt, yt, batch, epochs):
    """Test accuracy of net after `epochs` epochs of Adam on (x, y)."""
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    for _ in range(epochs):
        net.train()
        for perm in torch.randperm(len(x)).split(batch):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x[perm]), y[perm]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        return float(torch.cat([net(xt[i:i + 1000]).argmax(1) for i in range(0, len(xt), 1000)]).eq(yt)
                     .float().mean())


def kiln_train(args, model_path, out, precision, extra):
    cmd = [args.kiln, "train", model_path, "--train-images", f"{DATA}/train-images-idx3-ubyte.gz",
           "--train-labels", f"{DATA}/train-labels-idx1-ubyte.gz", "--optimizer", "adam", "--lr", str(LR),
           "--batch", str(args.batch), "-t", str(args.threads), "--precision", precision,
           "--out", out] + extra
    return run_checked(cmd)


def kiln_step_ms(args, model_path, tmp, precision):
    out = kiln_train(args, model_path, os.path.join(tmp, f"speed_{precision}"), precision,
                     ["--limit", str(args.steps * args.batch), "--epochs", "2"])
    rates = [float(m.group(1)) for m in re.finditer(r"^epoch \d+/\d+: .* ([0-9.]+) samples/s", out, re.M)]
    return args.batch / rates[-1] * 1000


def kiln_accuracy(args, model_path, tmp, precision):
    out = kiln_train(args, model_path, os.path.join(tmp, f"acc_{precision}"), precision,
                     ["--epochs", str(args.epochs), "--test-images", f"{DATA}/t10k-images-idx3-ubyte.gz",
                      "--test-labels", f"{DATA}/t10k-labels-idx1-ubyte.gz"])
    return float(out.strip().splitlines()[-1].split("=")[1])


def torch_export_accuracy(args, tmp, precision):
    """kiln's and onnxruntime's test accuracy of the PyTorch-exported ResNet
    trained --torch-epochs epochs at precision."""
    import onnxruntime as ort
    out = os.path.join(tmp, f"torch_export_{precision}")
    log = kiln_train(args, TORCH_RESNET, out, precision,
                     ["--epochs", str(args.torch_epochs), "--test-images", f"{DATA}/t10k-images-idx3-ubyte.gz",
                      "--test-labels", f"{DATA}/t10k-labels-idx1-ubyte.gz"])
    acc = float(log.strip().splitlines()[-1].split("=")[1])
    xt = (idx(f"{DATA}/t10k-images-idx3-ubyte.gz")[:, None] / 255).astype(np.float32)
    yt = idx(f"{DATA}/t10k-labels-idx1-ubyte.gz")
    sess = ort.InferenceSession(os.path.join(out, "model.onnx"), providers=["CPUExecutionProvider"])
    pred = np.concatenate([sess.run(None, {"x": xt[i:i + 500]})[0].argmax(1) for i in range(0, len(xt), 500)])
    return acc, float((pred == yt).mean())


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default="build/kiln")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--torch-epochs", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--lstm-hidden", type=int, default=128)
    ap.add_argument("--lstm-epochs", type=int, default=3)
    ap.add_argument("--sections", default="speed,accuracy,torch-export,char-lstm")
    ap.add_argument("--out", default="docs/BENCHMARKS_TRAIN.md")
    args = ap.parse_args()
    sections = args.sections.split(",")
    torch.set_num_threads(args.threads)
    model = fashion_cnn.build(width=args.width)
    n_params = sum(int(np.prod(i.dims)) for i in model.graph.initializer
                   if "running" not in i.name and "ratio" not in i.name)
    x = torch.tensor(idx(f"{DATA}/train-images-idx3-ubyte.gz")[:, None] / 255, dtype=torch.float32)
    y = torch.tensor(idx(f"{DATA}/train-labels-idx1-ubyte.gz").astype(np.int64))
    xt = torch.tensor(idx(f"{DATA}/t10k-images-idx3-ubyte.gz")[:, None] / 255, dtype=torch.float32)
    yt = torch.tensor(idx(f"{DATA}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    avx = sorted({f for f in open("/proc/cpuinfo").read().split() if f.startswith(("avx512", "avx2"))})
    lines = ["# Training benchmarks", "",
             f"Generated by `{' '.join([os.path.basename(sys.executable)] + sys.argv)}` on "
             f"{time.strftime('%Y-%m-%d')}: {cpu_name()}, {os.cpu_count()} cores ({', '.join(avx)}), "
             f"PyTorch {torch.__version__}, {args.threads} threads for both.", "",
             f"Network: `scripts/fashion_cnn.py --width {args.width}` (the small CNN of `make demo`, "
             f"{n_params} parameters), Adam lr {LR}, batch {args.batch}, Fashion-MNIST.", ""]
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "cnn.onnx")
        onnx.save(model, model_path)
        if "speed" in sections:
            best = {}
            for rnd in range(2):
                for name, fn in (("kiln fp32", lambda: kiln_step_ms(args, model_path, tmp, "fp32")),
                                 ("kiln bf16", lambda: kiln_step_ms(args, model_path, tmp, "bf16")),
                                 ("kiln fp16", lambda: kiln_step_ms(args, model_path, tmp, "fp16")),
                                 ("PyTorch fp32", lambda: torch_step_ms(model, x, y, args.batch, args.steps, False)),
                                 ("PyTorch bf16 (autocast)",
                                  lambda: torch_step_ms(model, x, y, args.batch, args.steps, True))):
                    ms = fn()
                    best[name] = min(best.get(name, ms), ms)
                    print(f"[{time.time() - t0:6.0f} s] round {rnd + 1} {name}: {ms:.2f} ms/step",
                          file=sys.stderr, flush=True)
            pt = best["PyTorch fp32"]
            lines += ["## Step time", "",
                      f"Forward, backward and update of one batch of {args.batch}, the better of two runs of "
                      f"{args.steps} steps each (kiln: the second epoch of `kiln train --limit "
                      f"{args.steps * args.batch} --epochs 2`).", "",
                      "| runner | ms / step | images / s | vs PyTorch fp32 |", "|---|---|---|---|"]
            for name, ms in best.items():
                lines.append(f"| {name} | {ms:.2f} | {args.batch / ms * 1000:.0f} | {ms / pt:.2f}x |")
            kf, kb = best["kiln fp32"], best["kiln bf16"]
            lines += ["", "Targets (issue 4): kiln fp32 at most 1.0x PyTorch fp32: "
                      f"**{kf / pt:.2f}x, {'met' if kf <= pt else 'not met'}**; kiln bf16 at least 1.3x faster "
                      f"than kiln fp32: **{kf / kb:.2f}x, {'met' if kf / kb >= 1.3 else 'not met'}**.", ""]
        if "accuracy" in sections:
            acc = {}
            for p in ("fp32", "bf16", "fp16"):
                acc[f"kiln {p}"] = kiln_accuracy(args, model_path, tmp, p)
                print(f"[{time.time() - t0:6.0f} s] kiln {p}: {acc[f'kiln {p}']:.4f}", file=sys.stderr, flush=True)
            acc["PyTorch fp32"] = torch_accuracy(model, x, y, xt, yt, args.batch, args.epochs)
            print(f"[{time.time() - t0:6.0f} s] PyTorch fp32: {acc['PyTorch fp32']:.4f}", file=sys.stderr)
            lines += ["## Accuracy", "",
                      f"Test accuracy (10000 images) after {args.epochs} epochs over the 60000 training images.",
                      "", "| runner | test accuracy |", "|---|---|"]
            lines += [f"| {k} | {v:.4f} |" for k, v in acc.items()]
            f32 = acc["kiln fp32"]
            worst = max(abs(acc["kiln bf16"] - f32), abs(acc["kiln fp16"] - f32)) * 100
            lines += ["", f"Targets (issue 4): at least 91% in {args.epochs} epochs: **{f32 * 100:.2f}%, "
                      f"{'met' if f32 >= 0.91 else 'not met'}**; bf16 and fp16 within 0.3 points of fp32: "
                      f"**{worst:.2f} points, {'met' if worst <= 0.3 else 'not met'}**.", ""]
        if "torch-export" in sections:
            lines += ["## A network exported from PyTorch", "",
                      "`tests/train/torch/torch_fashion_resnet.onnx` (`scripts/export_torch_models.py`: a ResNet "
                      "with BatchNorm, residual connections and dropout, exported in training mode), trained by "
                      f"`kiln train` for {args.torch_epochs} epochs over the 60000 training images (Adam lr {LR}, "
                      f"batch {args.batch}); test accuracy (10000 images) of kiln and of onnxruntime running the "
                      "written `model.onnx`; and PyTorch training the module it was exported from, from the same "
                      "initial weights.", "", "| runner | test accuracy | onnxruntime on the export |",
                      "|---|---|---|"]
            for p in ("fp32", "bf16"):
                acc, oacc = torch_export_accuracy(args, tmp, p)
                print(f"[{time.time() - t0:6.0f} s] torch export {p}: kiln {acc:.4f}, onnxruntime {oacc:.4f}",
                      file=sys.stderr, flush=True)
                lines.append(f"| kiln {p} | {acc:.4f} | {oacc:.4f} |")
            pacc = torch_resnet_accuracy(x, y, xt, yt, args.batch, args.torch_epochs)
            print(f"[{time.time() - t0:6.0f} s] torch export, PyTorch fp32: {pacc:.4f}", file=sys.stderr, flush=True)
            lines += [f"| PyTorch fp32 | {pacc:.4f} | |", ""]
        if "char-lstm" in sections:
            lines += char_lstm_bench.section(args, tmp, t0)
    lines.append(f"Run time: {(time.time() - t0) / 60:.1f} minutes.")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
