"""The character-LSTM section of bench/train_bench.py (issue 4's target: the
loss per character falls well below its start, and the exported model
reloads with identical output), beside PyTorch.

The model is scripts/char_lstm.py's (byte embedding, one LSTM layer, a linear
layer to 256 logits per position), built once as ONNX; PyTorch gets a twin
(nn.Embedding, nn.LSTM, nn.Linear) with the same initial weights. Data: Moby
Dick from Debian's golang-github-colinmarc-hdfs-dev, its first 90% for
training and the rest for testing, cut into windows of --seq-len bytes, each
position labelled with the byte after it (kiln train --train-text's rule).

  speed     one step (forward, backward, Adam) on a batch of --batch windows:
            kiln train's second epoch of --steps batches; PyTorch, --steps
            timed steps after 10 warm-up ones. Each twice, the better kept.
  learning  --lstm-epochs epochs over the whole training text, kiln and
            PyTorch from the same initial weights (each shuffling in its own
            way); the test loss per character before (the initial weights,
            computed by PyTorch) and after; then onnxruntime and `kiln run`
            on kiln's exported model.onnx: their test loss and their largest
            difference from each other.
"""
import os
import re
import sys
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import char_lstm  # noqa: E402
from bench_common import ms_per_step, run_checked  # noqa: E402

MOBY_DICK = "/usr/share/gocode/src/github.com/colinmarc/hdfs/testdata/mobydick.txt"
LR = 0.01


def windows(text, T):
    """(x, y): the non-overlapping windows of T bytes and their next bytes, int64."""
    b = np.frombuffer(text, np.uint8)
    n = (len(b) - 1) // T
    return (b[:n * T].reshape(n, T).astype(np.int64), b[1:n * T + 1].reshape(n, T).astype(np.int64))


class TorchCharLSTM(torch.nn.Module):
    """char_lstm.py's network with the ONNX model's weights (ONNX keeps the
    gates in the order i, o, f, c; PyTorch in i, f, c, o)."""

    def __init__(self, model):
        super().__init__()
        w = {i.name: torch.tensor(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
        E, H = w["embedding"].shape[1], w["lstm.R"].shape[2]
        self.emb = torch.nn.Embedding(256, E)
        self.lstm = torch.nn.LSTM(E, H)
        self.out = torch.nn.Linear(H, 256)

        def reorder(t):
            i, o, f, c = t.split(H)
            return torch.cat([i, f, c, o])
        with torch.no_grad():
            self.emb.weight.copy_(w["embedding"])
            self.lstm.weight_ih_l0.copy_(reorder(w["lstm.W"][0]))
            self.lstm.weight_hh_l0.copy_(reorder(w["lstm.R"][0]))
            self.lstm.bias_ih_l0.copy_(reorder(w["lstm.B"][0, :4 * H]))
            self.lstm.bias_hh_l0.copy_(reorder(w["lstm.B"][0, 4 * H:]))
            self.out.weight.copy_(w["out.weight"].T)
            self.out.bias.copy_(w["out.bias"])

    def forward(self, x):  # (N, T) -> logits (N, 256, T), as the ONNX model
        h, _ = self.lstm(self.emb(x).transpose(0, 1))
        return self.out(h).permute(1, 2, 0)


def torch_loss(net, x, y):
    """Mean cross-entropy per character over windows x, y."""
    with torch.no_grad():
        tot = sum(float(torch.nn.functional.cross_entropy(net(x[i:i + 500]), y[i:i + 500], reduction="sum"))
                  for i in range(0, len(x), 500))
    return tot / y.numel()


def torch_step_ms(model, x, y, batch, steps):
    net = TorchCharLSTM(model)
    opt = torch.optim.Adam(net.parameters(), lr=LR)

    def step(k):
        lo = (k * batch) % (len(x) - batch)
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x[lo:lo + batch]), y[lo:lo + batch]).backward()
        opt.step()

    return ms_per_step(step, steps)


def torch_train(model, x, y, batch, epochs):
    torch.manual_seed(0)
    net = TorchCharLSTM(model)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    for _ in range(epochs):
        for perm in torch.randperm(len(x)).split(batch):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x[perm]), y[perm]).backward()
            opt.step()
    return net


def kiln_train(args, model_path, train_txt, out, extra):
    cmd = [args.kiln, "train", model_path, "--train-text", train_txt, "--seq-len", str(args.seq_len),
           "--optimizer", "adam", "--lr", str(LR), "--batch", str(args.batch), "-t", str(args.threads),
           "--out", out] + extra
    return run_checked(cmd)


def kiln_run_logits(args, model_path, x, tmp):
    """`kiln run` of model_path on windows x, in chunks; logits (N, 256, T)."""
    outs = []
    for i in range(0, len(x), 500):
        np.save(os.path.join(tmp, "x.npy"), x[i:i + 500])
        run_checked([args.kiln, "run", model_path, "-i", f"x={tmp}/x.npy", "-o", f"{tmp}/run", "-t",
                     str(args.threads)])
        outs.append(np.load(os.path.join(tmp, "run", "logits.npy")))
    return np.concatenate(outs)


def mean_ce(logits, y):
    """Mean cross-entropy per character of numpy logits (N, C, T) against y (N, T)."""
    lg = torch.tensor(logits, dtype=torch.float64)
    return float(torch.nn.functional.cross_entropy(lg, torch.tensor(y)))


def section(args, tmp, t0):
    """Runs both parts; returns the markdown lines."""
    def log(msg):
        print(f"[{time.time() - t0:6.0f} s] char-lstm: {msg}", file=sys.stderr, flush=True)

    text = open(MOBY_DICK, "rb").read()
    cut = len(text) * 9 // 10
    train_txt, test_txt = os.path.join(tmp, "book_train.txt"), os.path.join(tmp, "book_test.txt")
    open(train_txt, "wb").write(text[:cut])
    open(test_txt, "wb").write(text[cut:])
    model = char_lstm.build(hidden=args.lstm_hidden)
    model_path = os.path.join(tmp, "char_lstm.onnx")
    onnx.save(model, model_path)
    n_params = sum(int(np.prod(i.dims)) for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT)
    xn, yn = windows(text[:cut], args.seq_len)
    xtn, ytn = windows(text[cut:], args.seq_len)
    x, y, xt, yt = (torch.tensor(a) for a in (xn, yn, xtn, ytn))
    lines = ["## Character LSTM", "",
             f"`scripts/char_lstm.py --hidden {args.lstm_hidden}` (byte embedding 16, one LSTM layer of "
             f"{args.lstm_hidden}, a linear layer to 256 logits; {n_params} parameters) on Moby Dick (Debian "
             f"golang-github-colinmarc-hdfs-dev): the first 90% for training ({len(xn)} windows of "
             f"{args.seq_len} bytes), the rest for testing ({len(xtn)} windows); Adam lr {LR}, batch "
             f"{args.batch}. PyTorch runs the same network (nn.Embedding, nn.LSTM, nn.Linear) from the same "
             "initial weights.", ""]

    best = {}
    for rnd in range(2):
        out = kiln_train(args, model_path, train_txt, os.path.join(tmp, "lstm_speed"),
                         ["--limit", str(args.steps * args.batch), "--epochs", "2"])
        rate = [float(m.group(1)) for m in re.finditer(r"^epoch \d+/\d+: .* ([0-9.]+) samples/s", out, re.M)][-1]
        for name, ms in (("kiln fp32", args.batch / rate * 1000),
                         ("PyTorch fp32", torch_step_ms(model, x, y, args.batch, args.steps))):
            best[name] = min(best.get(name, ms), ms)
            log(f"round {rnd + 1} {name}: {ms:.2f} ms/step")
    pt = best["PyTorch fp32"]
    lines += ["Step time (forward, backward and Adam on one batch; the better of two runs of "
              f"{args.steps} steps):", "", "| runner | ms / step | characters / s | vs PyTorch fp32 |",
              "|---|---|---|---|"]
    for name, ms in best.items():
        lines.append(f"| {name} | {ms:.2f} | {args.batch * args.seq_len / ms * 1000:.0f} | {ms / pt:.2f}x |")
    lines.append("")

    start = torch_loss(TorchCharLSTM(model), xt, yt)
    out_dir = os.path.join(tmp, "lstm_out")
    t1 = time.time()
    log_text = kiln_train(args, model_path, train_txt, out_dir,
                          ["--epochs", str(args.lstm_epochs), "--test-text", test_txt])
    kiln_s = time.time() - t1
    kiln_test = float(re.findall(r"test loss ([0-9.]+)", log_text)[-1])
    log(f"kiln trained: test loss {kiln_test:.4f} ({kiln_s:.0f} s)")
    t1 = time.time()
    torch_test = torch_loss(torch_train(model, x, y, args.batch, args.lstm_epochs), xt, yt)
    torch_s = time.time() - t1
    log(f"PyTorch trained: test loss {torch_test:.4f} ({torch_s:.0f} s)")
    import onnxruntime as ort
    export = os.path.join(out_dir, "model.onnx")
    sess = ort.InferenceSession(export, providers=["CPUExecutionProvider"])
    ort_logits = np.concatenate([sess.run(None, {"x": xtn[i:i + 500]})[0] for i in range(0, len(xtn), 500)])
    run_logits = kiln_run_logits(args, export, xtn, tmp)
    ort_test, run_test = mean_ce(ort_logits, ytn), mean_ce(run_logits, ytn)
    diff = float(np.max(np.abs(ort_logits - run_logits)))
    log(f"export: onnxruntime {ort_test:.5f}, kiln run {run_test:.5f}, largest logit difference {diff:.2e}")

    ln2 = np.log(2)
    lines += [f"Test loss per character (nats; bits in brackets) before training and after {args.lstm_epochs} "
              "epochs over the training text:", "",
              "| runner | before | after | training time |", "|---|---|---|---|",
              f"| kiln fp32 | {start:.3f} ({start / ln2:.2f}) | {kiln_test:.3f} ({kiln_test / ln2:.2f}) | "
              f"{kiln_s:.0f} s |",
              f"| PyTorch fp32 | {start:.3f} ({start / ln2:.2f}) | {torch_test:.3f} ({torch_test / ln2:.2f}) | "
              f"{torch_s:.0f} s |", "",
              f"kiln's exported `model.onnx` reloaded: onnxruntime's test loss {ort_test:.5f}, `kiln run`'s "
              f"{run_test:.5f} (kiln train reported {kiln_test:.4f}); largest difference between the two "
              f"runtimes' logits {diff:.1e}.", "",
              f"Target (issue 4): the loss per character falls well below its start: **{start:.3f} -> "
              f"{kiln_test:.3f} nats, {'met' if kiln_test < 0.6 * start else 'not met'}**; the exported model "
              f"reloads with the same output: **{'met' if abs(ort_test - kiln_test) < 1e-3 and diff < 1e-3 else 'not met'}**.",
              ""]
    return lines
