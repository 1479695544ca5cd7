"""Runs the benchmark model set on kiln and onnxruntime side by side and
writes docs/BENCHMARKS.md (issue 3, point 8).

    python bench/run_models.py --kiln build/kiln --models build/bench/models \
        [--out docs/BENCHMARKS.md] [--gemm-cmd "bench/build_gemm_bench.sh build"] \
        [--budget-s 8] [--rounds 3] [--only resnet50,...] [--threads 1,2] \
        [--precisions fp32,bf16] [--command "bench/run.sh"]

For every model x batch (1 and a larger one) x threads:
  - onnxruntime fp32 (intra_op_num_threads=N, inter_op_num_threads=1,
    ORT_SEQUENTIAL, ORT_ENABLE_ALL) timed in this process, per run;
  - `kiln bench MODEL -i ... -t N --precision P --warmup W --iters K --json`
    for each precision, in its own process;
  interleaved in rounds (ORT, kiln fp32, kiln bf16, ORT, ...) so that noise
  from other work on the machine hits all of them. onnxruntime has no bf16 CPU
  path: kiln bf16 is compared with onnxruntime fp32 and with kiln fp32.
Before timing, every model x batch is run once for accuracy: kiln fp32
against onnxruntime, kiln bf16 against kiln fp32 (`kiln run -o DIR`, the
.npy outputs compared), as the normalized error ||a-b|| / ||b||, the largest
over the model's outputs.

Iterations: each runner gets about --budget-s seconds per configuration
(at least --min-iters, at most --max-iters runs), split over --rounds rounds.
The latency reported is the median: onnxruntime's over all its timed runs,
kiln's the median of its per-round medians (kiln bench --json reports p50).
A kiln run that fails or rejects a flag is recorded as n/a with its message.
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models as model_set  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCHES = {"resnet50": (1, 8), "mobilenetv2": (1, 8), "bert_base": (1, 8), "lstm": (1, 16)}
FP32_VS_ORT_TOL = 1e-4    # whole model, kiln fp32 against onnxruntime
BF16_VS_FP32_TOL = 1e-2   # issue 3: bf16 outputs within 1e-2 relative of fp32
SUBPROCESS_TIMEOUT_S = 1800
T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def first_line(text):
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[0] if lines else "no message"


def run_cmd(argv, timeout=SUBPROCESS_TIMEOUT_S):
    """(returncode, stdout, stderr); a timeout is returncode None."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return None, "", f"timed out after {timeout} s"


# ---------------------------------------------------------------- machine

def machine_info(kiln):
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_start": os.getloadavg()[0]}
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(re.findall(r"^([^:\n]+):\s*(.*)$", lscpu, re.M))
    info["cpu"] = fields.get("Model name", platform.processor() or "unknown")
    info["cpus"] = fields.get("CPU(s)", str(os.cpu_count()))
    info["caches"] = ", ".join(f"{k} {fields[k]}" for k in ("L1d cache", "L2 cache", "L3 cache") if k in fields)
    flags = set(fields.get("Flags", "").split())
    info["isa"] = ", ".join(f"{f} {'yes' if f in flags else 'no'}"
                            for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16"))
    import onnx
    import onnxruntime
    info["onnxruntime"] = onnxruntime.__version__
    info["onnx"] = onnx.__version__
    info["numpy"] = np.__version__
    info["python"] = platform.python_version()
    rc, out, err = run_cmd([kiln, "--version"], timeout=60)
    info["kiln"] = out.strip() if rc == 0 else f"unknown ({first_line(err)})"
    rc, out, _ = run_cmd(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], timeout=60)
    git = out.strip() if rc == 0 else "unknown"
    rc, out, _ = run_cmd(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], timeout=60)
    if rc == 0 and out.strip():
        git += " (with uncommitted changes)"
    info["git"] = git
    return info


# ---------------------------------------------------------------- kiln

class Kiln:
    def __init__(self, path):
        self.path = path
        rc, out, err = run_cmd([path, "bench", "--help"], timeout=60)
        if rc != 0:
            raise SystemExit(f"{path} bench --help failed: {first_line(err)}")
        self.has_precision = "--precision" in out

    def precision_args(self, precision):
        """[] for fp32 when kiln has no --precision; None when P is unavailable."""
        if self.has_precision:
            return ["--precision", precision]
        return [] if precision == "fp32" else None

    def run(self, model, inputs, outdir, threads, precision):
        """`kiln run` writing outputs to OUTDIR: ({name: array}, latency ms) or
        raises RuntimeError with kiln's message."""
        pa = self.precision_args(precision)
        if pa is None:
            raise RuntimeError("kiln has no --precision option")
        argv = [self.path, "run", model, "-o", outdir, "-t", str(threads), "--repeat", "1"] + pa
        for k, v in inputs.items():
            argv += ["-i", f"{k}={v}"]
        rc, out, err = run_cmd(argv)
        if rc != 0:
            raise RuntimeError(first_line(err))
        m = re.search(r"mean of \d+ runs ([0-9.]+) ms", out)
        outs = {f[:-4]: np.load(os.path.join(outdir, f)) for f in os.listdir(outdir) if f.endswith(".npy")}
        return outs, float(m.group(1)) if m else None

    def bench(self, model, inputs, threads, precision, warmup, iters):
        """`kiln bench --json`: the parsed object, or raises RuntimeError."""
        pa = self.precision_args(precision)
        if pa is None:
            raise RuntimeError("kiln has no --precision option")
        argv = [self.path, "bench", model, "-t", str(threads), "--warmup", str(warmup), "--iters", str(iters),
                "--json"] + pa
        for k, v in inputs.items():
            argv += ["-i", f"{k}={v}"]
        rc, out, err = run_cmd(argv)
        if rc != 0:
            raise RuntimeError(first_line(err))
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError) as e:
            raise RuntimeError(f"kiln bench --json printed no JSON object ({e})")


# ---------------------------------------------------------------- onnxruntime

def ort_session(model, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def ort_time(sess, feeds, iters):
    """Milliseconds of each of ITERS runs."""
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def norm_err(a, ref):
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    if a.shape != ref.shape:
        return math.inf
    den = np.linalg.norm(ref)
    num = np.linalg.norm(a - ref)
    if not np.isfinite(num):
        return math.inf
    return float(num / den) if den > 0 else float(num)


def max_err(outs, refs):
    """Largest normalized error over the outputs of refs; inf if one is missing."""
    return max(norm_err(outs[k], v) if k in outs else math.inf for k, v in refs.items())


# ---------------------------------------------------------------- the run

def write_inputs(workdir, name, batch):
    """Saves the seeded inputs of NAME at BATCH as .npy: ({name: path}, {name: array})."""
    feeds = model_set.sample_inputs(name, batch)
    paths = {}
    for k, v in feeds.items():
        paths[k] = os.path.join(workdir, f"{name}_b{batch}_{k}.npy")
        np.save(paths[k], v)
    return paths, feeds


def accuracy(kiln, args, workdir, name, model, batch, precisions):
    """kiln fp32 vs onnxruntime and kiln bf16 vs kiln fp32 at BATCH; also the
    kiln latencies of these single runs (2 threads), used to size the timing."""
    paths, feeds = write_inputs(workdir, name, batch)
    sess = ort_session(model, max(args.threads))
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    del sess
    res = {"est_ms": {}, "err": {}}
    kouts = {}
    for p in precisions:
        d = tempfile.mkdtemp(prefix=f"{name}_b{batch}_{p}_", dir=workdir)
        try:
            kouts[p], res["est_ms"][p] = kiln.run(model, paths, d, max(args.threads), p)
        except RuntimeError as e:
            res["err"][p] = f"n/a ({e})"
            log(f"  kiln run {name} b{batch} {p}: {e}")
    if "fp32" in kouts:
        res["fp32_vs_ort"] = max_err(kouts["fp32"], ref)
    if "bf16" in kouts and "fp32" in kouts:
        res["bf16_vs_fp32"] = max_err(kouts["bf16"], kouts["fp32"])
    return res, paths, feeds


def plan_iters(est_ms, args):
    """(total iterations, per round, rounds) for a runner of estimated latency."""
    total = int(args.budget_s * 1e3 / max(est_ms, 1e-3))
    total = max(args.min_iters, min(args.max_iters, total))
    rounds = max(1, min(args.rounds, total))
    return rounds, int(math.ceil(total / rounds))


def time_config(kiln, args, name, model, batch, threads, paths, feeds, acc, precisions):
    """One model x batch x threads: ORT fp32 and kiln per precision, in rounds."""
    sess = ort_session(model, threads)
    warm = ort_time(sess, feeds, 2)
    ort_rounds, ort_per = plan_iters(min(warm), args)
    kplan = {}
    for p in precisions:
        if p in acc["err"]:
            continue
        est = acc["est_ms"].get(p) or min(warm)
        est *= max(args.threads) / threads
        kplan[p] = plan_iters(est, args) + (2 if est < 500 else 1,)
    rounds = max([ort_rounds] + [r for r, _, _ in kplan.values()])
    ort_ms, kiln_p50, kiln_first, kiln_err, kiln_iters = [], {p: [] for p in kplan}, {p: [] for p in kplan}, {}, {}
    for r in range(rounds):
        if r < ort_rounds:
            ort_ms += ort_time(sess, feeds, ort_per)
        for p, (kr, kper, kwarm) in kplan.items():
            if r >= kr or p in kiln_err:
                continue
            try:
                j = kiln.bench(model, paths, threads, p, kwarm, kper)
                if j.get("precision", p) != p:
                    raise RuntimeError(f"kiln bench ran {j['precision']}, not {p}")
                kiln_p50[p].append(float(j["latency_ms"]["p50"]))
                if "plan_ms" in j:
                    kiln_first[p].append(float(j["plan_ms"]))
                kiln_iters[p] = kiln_iters.get(p, 0) + kper
            except (RuntimeError, KeyError, TypeError, ValueError) as e:
                kiln_err[p] = f"n/a ({e})"
                log(f"  kiln bench {name} b{batch} t{threads} {p}: {e}")
    del sess
    row = {"model": name, "batch": batch, "threads": threads, "ort_ms": statistics.median(ort_ms),
           "ort_iters": len(ort_ms), "kiln": {}}
    for p in precisions:
        if p in kiln_p50 and kiln_p50[p]:
            k = {"ms": statistics.median(kiln_p50[p]), "iters": kiln_iters[p], "rounds": len(kiln_p50[p])}
            if kiln_first[p]:
                k["first_ms"] = min(kiln_first[p])
            row["kiln"][p] = k
        else:
            row["kiln"][p] = {"error": kiln_err.get(p) or acc["err"].get(p, "n/a (not run)")}
    return row


def run_gemm(cmd):
    if not cmd:
        return None
    log(f"GEMM: {cmd}")
    t0 = time.time()
    try:
        p = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT, timeout=SUBPROCESS_TIMEOUT_S)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = None, "", f"timed out after {SUBPROCESS_TIMEOUT_S} s"
    return {"cmd": cmd, "rc": rc, "out": out, "err": err, "s": time.time() - t0}


# ---------------------------------------------------------------- report

def fmt_ms(v):
    return "n/a" if v is None else f"{v:.3g}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def fmt_ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def fmt_err(v):
    return "n/a" if v is None else "inf" if not math.isfinite(v) else f"{v:.1e}"


def gemm_markdown(out):
    """The GEMM command's output as markdown: its markdown tables (lines that
    start with '|') as they are, every other run of lines in a code block."""
    blocks, cur, cur_table = [], [], None
    for ln in out.rstrip().splitlines():
        is_table = ln.lstrip().startswith("|")
        if cur and is_table != cur_table:
            blocks.append((cur_table, cur))
            cur = []
        cur_table = is_table
        cur.append(ln.strip() if is_table else ln)
    if cur:
        blocks.append((cur_table, cur))
    md = []
    for table, b in blocks:
        text = "\n".join(b).strip("\n")
        if text:
            md.append(text + "\n" if table else "```\n" + text + "\n```\n")
    return md


def write_report(path, args, info, rows, accs, gemm, elapsed_s):
    L = []
    L.append("# kiln benchmarks\n")
    L.append("Reproduce from a fresh clone (Debian, root or sudo), at the repository root:\n")
    L.append("```sh\n" + args.command + "\n```\n")
    L.append("This file is written by `bench/run_models.py` (called by `bench/run.sh`); do not edit it by hand. "
             "These machines are shared and noisy: trust the ratios, which come from kiln and onnxruntime runs "
             "interleaved in one run, more than the absolute times.\n")
    L.append("## Machine and versions\n")
    L.append(f"- date: {info['date']}; whole run {elapsed_s / 60:.1f} min; 1-minute load average "
             f"{info['load_start']:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (above the CPU count, "
             "other work shared the machine)")
    L.append(f"- CPU: {info['cpu']}, {info['cpus']} CPUs; {info['caches']}")
    L.append(f"- ISA: {info['isa']}")
    L.append(f"- kiln: {info['kiln']}, git {info['git']}; binary `{args.kiln}`"
             f"{'' if args.kiln_has_precision else ' (no --precision option: bf16 rows n/a)'}")
    L.append(f"- anchor: onnxruntime {info['onnxruntime']} (CPUExecutionProvider, intra_op_num_threads=N, "
             f"inter_op_num_threads=1, ORT_SEQUENTIAL, ORT_ENABLE_ALL); onnx {info['onnx']}, numpy {info['numpy']}, "
             f"Python {info['python']}\n")
    L.append("## Models\n")
    L.append("Generated by `bench/models.py` with seeded random weights, opset 17, symbolic batch, in the op "
             "patterns PyTorch's exporter writes (BatchNormalization nodes, decomposed LayerNorm, erf GELU, "
             "shape subgraphs):\n")
    L.append("| model | input | what |\n|---|---|---|")
    L.append("| resnet50 | input (N,3,224,224) f32 | ResNet-50 v1.5, 25.6 M parameters |")
    L.append("| mobilenetv2 | input (N,3,224,224) f32 | MobileNetV2 1.0, depthwise convs, Clip(0,6) |")
    L.append("| bert_base | input_ids, attention_mask (N,128) i64 | BERT-base encoder: 12 layers, hidden 768, "
             "12 heads, FFN 3072, + pooler |")
    L.append("| lstm | input (N,64,256) f32 | 2 stacked LSTM layers, hidden 512, then Linear 512->256 per step |\n")

    L.append("## Latency\n")
    L.append("Median milliseconds per run. `kiln/ORT` is kiln's latency over onnxruntime fp32's at the same "
             "threads (below 1 is faster; the issue 3 target is at most 1.0, goal 0.8). onnxruntime has no bf16 "
             "CPU path, so bf16 rows compare kiln bf16 with onnxruntime fp32, and `bf16 speed-up` is kiln fp32 "
             "over kiln bf16 (target at least 1.3 on the CNNs and the encoder). `first run` is kiln bench's "
             "`plan_ms`: the first run, which plans and then runs; `plan` is that minus the median run. "
             "`runs` is kiln / onnxruntime timed runs.\n")
    L.append("| model | batch | threads | precision | kiln ms | ORT fp32 ms | kiln/ORT | bf16 speed-up | "
             "first run ms | plan ms | runs |")
    L.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        for p, k in r["kiln"].items():
            ms = k.get("ms")
            speed = ""
            if p == "bf16":
                f32 = r["kiln"].get("fp32", {}).get("ms")
                speed = fmt_ratio(f32, ms) if ms is not None else "n/a"
            first = k.get("first_ms")
            plan = fmt_ms(max(first - ms, 0.0)) if first is not None and ms is not None else "n/a"
            runs = f"{k['iters']} / {r['ort_iters']}" if "iters" in k else f"- / {r['ort_iters']}"
            kiln_ms = fmt_ms(ms) if ms is not None else k.get("error", "n/a")
            L.append(f"| {r['model']} | {r['batch']} | {r['threads']} | {p} | {kiln_ms} | {fmt_ms(r['ort_ms'])} | "
                     f"{fmt_ratio(ms, r['ort_ms'])} | {speed} | {fmt_ms(first)} | {plan} | {runs} |")
    L.append("")

    L.append("## Accuracy\n")
    L.append("Normalized error `||a-b|| / ||b||`, the largest over the model's outputs, on the same seeded inputs "
             f"as the timings (`kiln run -t {max(args.threads)}`, outputs read back from .npy). kiln fp32 against "
             f"onnxruntime fp32 (ok under {FP32_VS_ORT_TOL:g}), kiln bf16 against kiln fp32 (ok under "
             f"{BF16_VS_FP32_TOL:g}, the issue 3 bound).\n")
    L.append("| model | batch | kiln fp32 vs ORT | ok | kiln bf16 vs kiln fp32 | ok |")
    L.append("|---|---:|---:|---|---:|---|")
    for (name, batch), a in accs.items():
        e32, e16 = a.get("fp32_vs_ort"), a.get("bf16_vs_fp32")
        c32 = a["err"].get("fp32", fmt_err(e32))
        c16 = a["err"].get("bf16", fmt_err(e16))
        ok32 = "n/a" if e32 is None else "yes" if e32 < FP32_VS_ORT_TOL else "**NO**"
        ok16 = "n/a" if e16 is None else "yes" if e16 < BF16_VS_FP32_TOL else "**NO**"
        L.append(f"| {name} | {batch} | {c32} | {ok32} | {c16} | {ok16} |")
    L.append("")

    L.append("## Targets (issue 3)\n")
    fp32_rows = [(r, r["kiln"]["fp32"]["ms"]) for r in rows if "ms" in r["kiln"].get("fp32", {})]
    if fp32_rows:
        met = sum(1 for r, ms in fp32_rows if ms <= r["ort_ms"])
        worst = max(fp32_rows, key=lambda x: x[1] / x[0]["ort_ms"])
        L.append(f"- kiln fp32 at most 1.0x onnxruntime: {met} of {len(fp32_rows)} configurations; worst "
                 f"{worst[1] / worst[0]['ort_ms']:.2f}x ({worst[0]['model']}, batch {worst[0]['batch']}, "
                 f"threads {worst[0]['threads']}).")
    sp = [(r, r["kiln"]["fp32"]["ms"] / r["kiln"]["bf16"]["ms"]) for r in rows
          if r["model"] != "lstm" and "ms" in r["kiln"].get("fp32", {}) and "ms" in r["kiln"].get("bf16", {})]
    if sp:
        met = sum(1 for _, s in sp if s >= 1.3)
        L.append(f"- bf16 at least 1.3x faster than kiln fp32 on the CNNs and the encoder: {met} of {len(sp)}; "
                 f"lowest {min(s for _, s in sp):.2f}x.")
    else:
        L.append("- bf16 speed-up: no bf16 measurements (see the n/a entries above).")
    plans = [r["kiln"]["fp32"] for r in rows if r["model"] == "resnet50" and "first_ms" in r["kiln"].get("fp32", {})]
    if plans:
        pl = min(max(k["first_ms"] - k["ms"], 0.0) for k in plans)
        L.append(f"- planning ResNet-50 under a second: first run minus median run, lowest over its "
                 f"configurations: {pl:.0f} ms.")
    L.append("")

    L.append("## GEMM\n")
    if gemm is None:
        L.append("Not run (no --gemm-cmd).\n")
    else:
        L.append(f"`{gemm['cmd']}` ({gemm['s']:.0f} s): the f32 GEMM benchmark, kiln against oneDNN's "
                 "`dnnl_sgemm` at the same threads, and the FMA peak.\n")
        if gemm["rc"] != 0:
            L.append(f"**It failed** (exit {gemm['rc']}): {first_line(gemm['err'])}\n")
        L += gemm_markdown(gemm["out"])
        notes = [ln for ln in gemm["err"].splitlines() if ln.strip()]
        if gemm["rc"] == 0 and notes:
            L.append("Its messages: " + "; ".join(notes[-5:]) + "\n")

    L.append("## Method\n")
    batches = sorted({(r["model"], r["batch"]) for r in rows}, key=lambda x: (args.models.index(x[0]), x[1]))
    L.append(f"- Batches: {', '.join(f'{m} {b}' for m, b in batches)}; threads "
             f"{', '.join(map(str, args.threads))}; precisions {', '.join(args.precisions)}.")
    L.append(f"- Each runner gets about {args.budget_s:g} s per configuration ({args.min_iters} to {args.max_iters} "
             f"timed runs, from a first estimate), split over up to {args.rounds} rounds; within a round "
             "onnxruntime runs, then `kiln bench` once per precision, each in its own process with 2 warm-up runs "
             "(1 above 500 ms; the first plans).")
    L.append("- onnxruntime: one session per model and thread count, `sess.run` timed with `time.perf_counter` "
             "after 2 warm-up runs; the median over all its runs.")
    L.append("- kiln: `kiln bench MODEL -i NAME=FILE.npy ... -t N --precision P --warmup W --iters K --json`; "
             "the median of the per-round `p50`.")
    L.append("- Inputs: seeded, the same .npy files for both (`bench/models.py: sample_inputs`): N(0,1) images "
             "and sequences; BERT token ids over the whole vocabulary, every other sequence padded over its "
             "last quarter in the attention mask.")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build", "kiln"), help="the kiln binary")
    ap.add_argument("--models", dest="models_dir", default=os.path.join(ROOT, "build", "bench", "models"),
                    help="directory of bench/models.py's output (missing models are generated)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--json-out", help="also write the raw results as JSON here")
    ap.add_argument("--gemm-cmd", help="shell command printing the GEMM table, run from the repository root")
    ap.add_argument("--only", default=",".join(BATCHES), help="comma-separated models")
    ap.add_argument("--batches", help="override the batches, e.g. 1 or 1,4")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--budget-s", type=float, default=8.0, help="seconds per runner per configuration")
    ap.add_argument("--min-iters", type=int, default=5)
    ap.add_argument("--max-iters", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--command", help="the command to print at the top of the report")
    args = ap.parse_args(argv)
    args.models_list = args.only.split(",")
    for m in args.models_list:
        if m not in BATCHES:
            ap.error(f"unknown model '{m}' (have {', '.join(BATCHES)})")
    args.threads = [int(t) for t in args.threads.split(",")]
    args.precisions = args.precisions.split(",")
    if "fp32" not in args.precisions:
        ap.error("--precisions must include fp32 (bf16 is compared with it)")
    if args.min_iters < 1 or args.max_iters < args.min_iters or args.rounds < 1:
        ap.error("need 1 <= --min-iters <= --max-iters and --rounds >= 1")
    if not args.command:
        args.command = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    models_dir = os.path.abspath(args.models_dir)
    os.makedirs(models_dir, exist_ok=True)

    kiln = Kiln(os.path.abspath(args.kiln))
    args.kiln_has_precision = kiln.has_precision
    args.models = args.models_list   # write_report's name for the list
    if not kiln.has_precision:
        log("kiln bench has no --precision option: fp32 only, bf16 is n/a")
    info = machine_info(kiln.path)
    gemm = run_gemm(args.gemm_cmd)

    rows, accs = [], {}
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as workdir:
        for name in args.models_list:
            model = os.path.join(models_dir, name + ".onnx")
            if not os.path.exists(model):
                log(f"generating {model}")
                model_set.main([models_dir, "--only", name])
            batches = [int(b) for b in args.batches.split(",")] if args.batches else BATCHES[name]
            for batch in batches:
                log(f"{name} batch {batch}: accuracy")
                acc, paths, feeds = accuracy(kiln, args, workdir, name, model, batch, args.precisions)
                accs[(name, batch)] = acc
                log(f"  fp32 vs ORT {fmt_err(acc.get('fp32_vs_ort'))}, bf16 vs fp32 {fmt_err(acc.get('bf16_vs_fp32'))}")
                for t in args.threads:
                    log(f"{name} batch {batch} threads {t}: timing")
                    row = time_config(kiln, args, name, model, batch, t, paths, feeds, acc, args.precisions)
                    rows.append(row)
                    log("  ORT {} ms; kiln {}".format(fmt_ms(row["ort_ms"]), ", ".join(
                        f"{p} {fmt_ms(k['ms']) if 'ms' in k else k['error']}" for p, k in row["kiln"].items())))
    elapsed = time.time() - T0
    write_report(args.out, args, info, rows, accs, gemm, elapsed)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"info": info, "rows": rows, "gemm": gemm,
                       "accuracy": [{"model": n, "batch": b, **a} for (n, b), a in accs.items()]}, f, indent=1)
    log(f"wrote {args.out} ({elapsed / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
