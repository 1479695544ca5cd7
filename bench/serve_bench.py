#!/usr/bin/env python3
"""Issue 5's serving targets, measured: writes docs/BENCHMARKS_SERVE.md.

  .venv/bin/python bench/serve_bench.py [--kiln build/kiln] [--load build/serve_load]
        [-t 2] [--seconds 5] [--concurrency 1,2,4,8,16,32,64]
        [--sections overhead,batching,soak] [--soak-seconds 600]

Builds a model repository (two CNNs on 1x28x28 images, each served twice: with
dynamic batching off and on; and a one-op add model for the overhead),
starts `kiln serve` on it, and drives it with bench/serve_load (a closed-loop
load generator in C, Triton's perf_analyzer measurement: perf_analyzer itself
is not installable here):

  overhead   at concurrency 1, end-to-end p50 minus the same model's p50 run
             in-process (a kiln session with the same threads, same input)
  batching   two CNNs (LeNet-5, and the demo's shape of CNN) at each
             concurrency, batching off vs on: throughput and p50/p99 latency
  soak       (--sections soak) concurrency 64 for --soak-seconds (600): failed
             requests and the server's resident memory sampled every 10 s

Sections not run keep what the report already says (so the soak can be run on
its own).

The server and the in-process runs get the same thread count (-t). Needs numpy
and onnx (the test venv has them).
"""
import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _init(rng, name, shape, fan_in):
    a = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return numpy_helper.from_array(a, name)


def _save(path, name, nodes, inits, classes=10):
    g = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    onnx.save(m, path)


def cnn_model(path, width=32, classes=10, seed=0):
    """The demo's shape of network: conv3x3(1->w) relu maxpool2, conv3x3(w->2w) relu
    maxpool2, flatten, gemm -> classes (about 8 MFLOP per image at w=32)."""
    rng = np.random.default_rng(seed)
    w2 = 2 * width
    inits = [_init(rng, "w1", (width, 1, 3, 3), 9), _init(rng, "b1", (width,), 1e9),
             _init(rng, "w2", (w2, width, 3, 3), 9 * width), _init(rng, "b2", (w2,), 1e9),
             _init(rng, "w3", (w2 * 7 * 7, classes), w2 * 49), _init(rng, "b3", (classes,), 1e9)]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"]),
    ]
    _save(path, "cnn", nodes, inits, classes)


def lenet_model(path, classes=10, seed=0):
    """LeNet-5 on 28x28: conv5x5(1->6, pad 2) relu maxpool2, conv5x5(6->16) relu maxpool2,
    gemm 400->120 relu, 120->84 relu, 84->classes (about 0.8 MFLOP per image)."""
    rng = np.random.default_rng(seed)
    inits = [_init(rng, "w1", (6, 1, 5, 5), 25), _init(rng, "b1", (6,), 1e9),
             _init(rng, "w2", (16, 6, 5, 5), 150), _init(rng, "b2", (16,), 1e9),
             _init(rng, "w3", (400, 120), 400), _init(rng, "b3", (120,), 1e9),
             _init(rng, "w4", (120, 84), 120), _init(rng, "b4", (84,), 1e9),
             _init(rng, "w5", (84, classes), 84), _init(rng, "b5", (classes,), 1e9)]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["g3"]),
        helper.make_node("Relu", ["g3"], ["r3"]),
        helper.make_node("Gemm", ["r3", "w4", "b4"], ["g4"]),
        helper.make_node("Relu", ["g4"], ["r4"]),
        helper.make_node("Gemm", ["r4", "w5", "b5"], ["logits"]),
    ]
    _save(path, "lenet", nodes, inits, classes)


def add_model(path):
    """sum = a + 1: the least a model can do, so its time is the server's."""
    g = helper.make_graph(
        [helper.make_node("Add", ["a", "one"], ["sum"])], "add",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 16])],
        [numpy_helper.from_array(np.ones(16, np.float32), "one")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, path)


def write_model(repo, name, onnx_src, config):
    os.makedirs(os.path.join(repo, name, "1"))
    with open(onnx_src, "rb") as f, open(os.path.join(repo, name, "1", "model.onnx"), "wb") as g:
        g.write(f.read())
    with open(os.path.join(repo, name, "config.pbtxt"), "w") as f:
        f.write(config)


NETS = ("lenet", "cnn")  # the CNNs served with batching off and on


def make_repository(repo, max_batch, delay_us):
    """Each net of NETS as <net>_batching_off and <net>_batching_on, and "add"."""
    srcs = {}
    for net, make in (("lenet", lenet_model), ("cnn", cnn_model)):
        srcs[net] = os.path.join(repo, f"{net}.onnx.src")
        make(srcs[net])
    add = os.path.join(repo, "add.onnx.src")
    add_model(add)
    io = ('input [ { name: "input" data_type: TYPE_FP32 dims: [ 1, 28, 28 ] } ]\n'
          'output [ { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] } ]\n')
    for net in NETS:
        write_model(repo, f"{net}_batching_off", srcs[net],
                    f'name: "{net}_batching_off"\nplatform: "onnxruntime_onnx"\n'
                    f"max_batch_size: {max_batch}\n{io}")
        write_model(repo, f"{net}_batching_on", srcs[net],
                    f'name: "{net}_batching_on"\nplatform: "onnxruntime_onnx"\n'
                    f"max_batch_size: {max_batch}\n{io}"
                    f"dynamic_batching {{ max_queue_delay_microseconds: {delay_us} }}\n")
    write_model(repo, "add", add, 'name: "add"\nmax_batch_size: 8\n')
    return srcs, add


def start_server(kiln, repo, threads):
    proc = subprocess.Popen([kiln, "serve", "--model-repository", repo, "--http-port", "0",
                             "--metrics-port", "0", "-t", str(threads)],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    port = None
    lines = []
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        proc.kill()
        sys.exit("serve_bench: kiln serve did not start:\n" + "".join(lines))
    # keep draining stderr so the server never blocks on a full pipe
    import threading
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, port


def run_load(load, port, model, inp, shape, conc, seconds, warmup, onnx_path=None, threads=1,
             output=None):
    cmd = [load, "--port", str(port), "--model", model, "--input", inp, "--shape",
           ",".join(map(str, shape)), "--concurrency", ",".join(map(str, conc)),
           "--seconds", str(seconds), "--warmup-seconds", str(warmup), "--json"]
    if output:
        cmd += ["--output", output]
    if onnx_path:
        cmd += ["--onnx", onnx_path, "-t", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode not in (0, 1) or not out.stdout.strip():
        sys.exit(f"serve_bench: {' '.join(cmd)} failed:\n{out.stderr}")
    if out.stderr.strip():
        print(out.stderr.strip(), file=sys.stderr)
    return json.loads(out.stdout)


def in_process_ms(a, onnx_path, batch):
    """p50 ms of `kiln bench` on the model at this batch, same threads."""
    out = subprocess.run([a.kiln, "bench", onnx_path, "--shape", f"input={batch},1,28,28", "-t",
                          str(a.threads), "--iters", "200", "--warmup", "20", "--json"],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"serve_bench: kiln bench {onnx_path} failed:\n{out.stderr}")
    return json.loads(out.stdout)["latency_ms"]["p50"]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"Model name:\s*(.+)", out)
        return m.group(1).strip() if m else platform.processor()
    except OSError:
        return platform.processor()


SECTIONS = ("overhead", "batching", "soak")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build", "kiln"))
    ap.add_argument("--load", default=os.path.join(ROOT, "build", "serve_load"))
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--warmup-seconds", type=float, default=1)
    ap.add_argument("--concurrency", default="1,2,4,8,16,32,64")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--delay-us", type=int, default=0,
                    help="max_queue_delay_microseconds of the batching models (default 0, as Triton)")
    ap.add_argument("--sections", default="overhead,batching",
                    help="of overhead,batching,soak (default overhead,batching); sections not run "
                         "keep what the report already says")
    ap.add_argument("--soak-seconds", type=float, default=600)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS_SERVE.md"))
    a = ap.parse_args()
    sections = a.sections.split(",")
    bad = [x for x in sections if x not in SECTIONS]
    if bad:
        ap.error(f"--sections: unknown {bad}; expected some of {','.join(SECTIONS)}")
    conc = [int(c) for c in a.concurrency.split(",")]
    t_start = time.time()

    def progress(msg):
        print(f"[{time.time() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    done = {}
    with tempfile.TemporaryDirectory() as repo:
        srcs, add = make_repository(repo, a.max_batch, a.delay_us)
        proc, port = start_server(a.kiln, repo, a.threads)
        try:
            if "overhead" in sections:
                progress(f"kiln serve on port {port}; overhead at concurrency 1")
                overhead = {"add": run_load(a.load, port, "add", "a", [1, 16], [1], a.seconds,
                                            a.warmup_seconds, add, a.threads, output="sum")}
                for net in NETS:
                    overhead[net] = run_load(a.load, port, f"{net}_batching_off", "input",
                                             [1, 1, 28, 28], [1], a.seconds, a.warmup_seconds,
                                             srcs[net], a.threads, output="logits")
                done["overhead"] = overhead_report(a, overhead)
            if "batching" in sections:
                runs = {}
                for net in NETS:
                    for mode in ("off", "on"):
                        model = f"{net}_batching_{mode}"
                        progress(f"{model} at concurrency {a.concurrency}")
                        runs[model] = run_load(a.load, port, model, "input", [1, 1, 28, 28], conc,
                                               a.seconds, a.warmup_seconds, output="logits")["runs"]
                progress("the ceiling: in-process batch 1 and batch "
                         f"{a.max_batch}; the add model at concurrency 32")
                ceiling = {"add_rps": run_load(a.load, port, "add", "a", [1, 16], [32], a.seconds,
                                               a.warmup_seconds, output="sum")["runs"][0]["infer_s"]}
                for net in NETS:
                    ceiling[net] = {b: in_process_ms(a, srcs[net], b) for b in (1, a.max_batch)}
                done["batching"] = batching_report(a, conc, runs, ceiling)
            if "soak" in sections:
                progress(f"soak: concurrency 64 on cnn_batching_on for {a.soak_seconds:.0f} s")
                samples = [(0.0, rss_kib(proc.pid))]
                lp = subprocess.Popen(
                    [a.load, "--port", str(port), "--model", "cnn_batching_on", "--input",
                     "input", "--shape", "1,1,28,28", "--concurrency", "64", "--seconds",
                     str(a.soak_seconds), "--warmup-seconds", "0", "--output", "logits",
                     "--json"], stdout=subprocess.PIPE, text=True)
                t0 = time.time()
                while lp.poll() is None:
                    time.sleep(10)
                    samples.append((time.time() - t0, rss_kib(proc.pid)))
                soak = {"result": json.loads(lp.stdout.read())["runs"][0], "rss": samples}
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = "killed"
    progress(f"server exit status {rc}")
    if "soak" in sections:
        done["soak"] = soak_report(a, soak, rc)
    write_report(a, done)
    progress(f"wrote {a.out}")


def command(a):
    return f"`.venv/bin/python {' '.join(['bench/serve_bench.py'] + sys.argv[1:])}` " \
           f"({time.strftime('%Y-%m-%d')})"


def overhead_report(a, overhead):
    lines = ["## Server overhead at concurrency 1", "",
             "End-to-end p50 as the client sees it minus the model's p50 run in-process "
             "(a kiln session with the same options and input). Command: " + command(a) + ".",
             "", "| model | input | in-process p50 us | end-to-end p50 us | overhead us | "
             "end-to-end p99 us |", "|---|---|---|---|---|---|"]
    shapes = {"add": "FP32 [1,16]", "lenet": "FP32 [1,1,28,28]", "cnn": "FP32 [1,1,28,28]"}
    for name, r in overhead.items():
        run = r["runs"][0]
        ip = r["in_process_p50_us"]
        label = name if name == "add" else f"{name}_batching_off"
        lines.append(f"| {label} | {shapes[name]} | {ip:.1f} | {run['p50_us']:.1f} | "
                     f"{run['p50_us'] - ip:.1f} | {run['p99_us']:.1f} |")
    o = overhead["add"]["runs"][0]["p50_us"] - overhead["add"]["in_process_p50_us"]
    lines += ["", f"Target: overhead p50 at most 50 us: **{'met' if o <= 50 else 'not met'}** "
              f"({o:.1f} us on the add model).", ""]
    return lines


def batching_report(a, conc, runs, ceiling):
    lines = ["## Dynamic batching", "",
             f"max_batch_size {a.max_batch}; batching on: `dynamic_batching "
             f"{{ max_queue_delay_microseconds: {a.delay_us} }}`; one instance; {a.seconds:g} s "
             "per point; every request one image. lenet: LeNet-5 (about 0.8 MFLOP per image); "
             "cnn: two 3x3 convolutions of 32 and 64 channels (about 8 MFLOP per image). "
             "Command: " + command(a) + ".", ""]
    failed = 0
    for net in NETS:
        off = {r["concurrency"]: r for r in runs[f"{net}_batching_off"]}
        on = {r["concurrency"]: r for r in runs[f"{net}_batching_on"]}
        lines += [f"### {net}", "",
                  "| concurrency | off: infer/s | off: p50 us | off: p99 us | on: infer/s | "
                  "on: p50 us | on: p99 us | on / off |", "|---|---|---|---|---|---|---|---|"]
        for c in conc:
            f, n = off[c], on[c]
            ratio = n["infer_s"] / f["infer_s"] if f["infer_s"] else float("nan")
            lines.append(f"| {c} | {f['infer_s']:.0f} | {f['p50_us']:.0f} | {f['p99_us']:.0f} | "
                         f"{n['infer_s']:.0f} | {n['p50_us']:.0f} | {n['p99_us']:.0f} | "
                         f"{ratio:.2f}x |")
            failed += f["failed"] + n["failed"]
        if 32 in off and 32 in on:
            r32 = on[32]["infer_s"] / off[32]["infer_s"]
            lines += ["", f"{net}, target: batching on at concurrency 32 at least 3x the "
                      f"throughput of batching off: **{'met' if r32 >= 3 else 'not met'}** "
                      f"({r32:.2f}x; p99 {on[32]['p99_us']:.0f} us on, {off[32]['p99_us']:.0f} "
                      "us off).", ""]
    lines += [f"Failed requests over all points: {failed}.", ""]
    b = a.max_batch
    o_us = 1e6 / ceiling["add_rps"]
    lines += ["### Where the gain comes from", "",
              f"The model run in-process (`kiln bench -t {a.threads}`, p50) at batch 1 and at batch "
              f"{b} (per image): what batching saves in the model itself. For scale, the server's "
              "own cost: the add model (no model time) at concurrency 32 answers "
              f"{ceiling['add_rps']:.0f} requests/s ({o_us:.1f} us of the machine per request: "
              "HTTP, parsing, scheduling, and the load generator, which shares the two cores).", "",
              f"| model | batch 1 us | batch {b} us per image | model alone: batch 1 / batch {b} | "
              "server at concurrency 32: on / off |", "|---|---|---|---|---|"]
    for net in NETS:
        m1 = ceiling[net][1] * 1000
        mb = ceiling[net][b] * 1000 / b
        off = {r["concurrency"]: r for r in runs[f"{net}_batching_off"]}
        on = {r["concurrency"]: r for r in runs[f"{net}_batching_on"]}
        meas = (f"{on[32]['infer_s'] / off[32]['infer_s']:.2f}x" if 32 in off and 32 in on
                else "-")
        lines.append(f"| {net} | {m1:.0f} | {mb:.1f} | {m1 / mb:.2f}x | {meas} |")
    lines += ["", "The server gains more than the model alone: with batching off, each request's "
              "model run (on both threads) competes with the HTTP threads for the two cores; with "
              "batching on, one run serves many requests. A 3x gain at concurrency 32 needs a model "
              "whose batch-1 run costs several times its per-image cost in a batch (typical of a "
              "GPU), or cores for the load generator and the HTTP threads that the model does not "
              "need.", ""]
    return lines


def soak_report(a, soak, rc):
    res, rss = soak["result"], soak["rss"]
    # under load: from the first sample after the start to the largest one
    first = rss[1][1] if len(rss) > 1 else rss[0][1]
    peak = max(k for _, k in rss[1:]) if len(rss) > 1 else first
    flat = peak <= first * 1.1 + 1024
    return ["## Soak", "",
            f"Concurrency 64 on cnn_batching_on for {a.soak_seconds:.0f} s. Command: "
            + command(a) + ".", "",
            f"{res['requests']} requests, {res['failed']} failed, p50 {res['p50_us']:.0f} us, "
            f"p99 {res['p99_us']:.0f} us; the server exited with status {rc} after SIGTERM.", "",
            "Server resident memory (KiB) over time: " +
            ", ".join(f"{t:.0f} s: {k}" for t, k in rss) + ".", "",
            f"Target: zero failed requests and flat memory: "
            f"**{'met' if res['failed'] == 0 and flat else 'not met'}** (the first sample under "
            f"load {first} KiB, the largest {peak} KiB: {100 * (peak - first) / first:+.1f}%; "
            "flat means within 10%).", ""]


def write_report(a, done):
    """The report's sections in SECTIONS order: the ones run now, the others as the
    existing report has them."""
    old = {}
    if os.path.exists(a.out):
        text = open(a.out).read()
        for name, title in (("overhead", "## Server overhead"), ("batching", "## Dynamic batching"),
                            ("soak", "## Soak")):
            i = text.find(title)
            if i >= 0:
                j = text.find("\n## ", i + 1)
                old[name] = text[i:j if j >= 0 else len(text)].rstrip("\n").split("\n") + [""]
    lines = ["# Serving benchmarks (issue 5)", "",
             f"Machine: {cpu_model()}, {os.cpu_count()} cores. Server and in-process runs with "
             f"`-t {a.threads}`; the load generator (bench/serve_load.c, one keep-alive "
             "connection per concurrent client, binary tensor data) on the same machine. "
             "Each section says the command that produced it.", ""]
    for name in SECTIONS:
        lines += done.get(name) or old.get(name) or []
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(lines).rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
