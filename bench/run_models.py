"""Runs the benchmarks side by side and writes docs/BENCHMARKS.md (issue 3,
point 8): the GEMM table (kiln against oneDNN), the benchmark model set on
kiln and onnxruntime, and models the benchmark set never saw.

    python bench/run_models.py --kiln build/kiln --models build/bench/models \
        [--out docs/BENCHMARKS.md] [--gemm-cmd "bench/build_gemm_bench.sh build"] \
        [--budget-s 10] [--rounds 3] [--only resnet50,...] [--threads 1,2] \
        [--precisions fp32,bf16] [--unseen-budget-s 1] [--sections gemm,models,unseen] \
        [--command "bench/run.sh"]

Sections, in this order (--sections picks):
  gemm    the --gemm-cmd command (bench/build_gemm_bench.sh): f32/bf16/u8s8
          GEMM of kiln against oneDNN at 256..4096 and the arithmetic peaks,
          with OMP_WAIT_POLICY=passive unless the caller set it (oneDNN's
          libgomp spins between calls otherwise, which on 2 shared cores
          steals the time of the next measurement; kiln's own oneDNN loader
          sets the same);
  models  every model of bench/models.py x batch (1 and a larger one) x
          threads: onnxruntime fp32 (intra_op_num_threads=N,
          inter_op_num_threads=1, ORT_SEQUENTIAL, ORT_ENABLE_ALL) timed in
          this process, and `kiln bench MODEL -i ... -t N --precision P
          --warmup W --iters K --json` per precision in its own process,
          interleaved in rounds (ORT, kiln fp32, kiln bf16, ORT, ...) so that
          noise from other work on the machine hits all of them. onnxruntime
          has no bf16 CPU path: kiln bf16 is compared with onnxruntime fp32
          and with kiln fp32;
  unseen  models the benchmark set never saw, fp32 only, the same way with a
          smaller budget: the PyTorch exports in tests/models/torch (inputs
          from the .inputs file next to each) and the light models of the
          ONNX backend suite in the onnx wheel (inputs arange(n)/n), both as
          tests/models/check_models.py feeds them.
Before timing, every model x batch is run once for accuracy (`kiln run -o
DIR`, the .npy outputs compared): kiln fp32 against onnxruntime, kiln bf16
against kiln fp32, as the normalized error ||a-b|| / ||b||, the largest over
the model's outputs.

Iterations: each runner gets about --budget-s seconds per configuration
(--unseen-budget-s in the unseen section), at least --min-iters and at most
--max-iters runs, from a first estimate, split over --rounds rounds. The
latency reported is the median: onnxruntime's over all its timed runs,
kiln's the median of its per-round p50. kiln bench's plan_ms (session
creation with the graph passes, and planning, without running) and
first_run_ms are the medians over the rounds. A kiln run that fails or
rejects a flag is recorded as n/a with its message. Progress and the time
per section go to stderr.
"""
import argparse
import collections
import datetime
import glob
import json
import math
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models as model_set  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
from check_models import feeds_for  # noqa: E402  (the inputs the model tests feed the unseen models)

BATCHES = {"resnet50": (1, 8), "mobilenetv2": (1, 8), "bert_base": (1, 8), "lstm": (1, 16)}
SECTIONS = ("gemm", "models", "unseen")
FP32_VS_ORT_TOL = 1e-4    # whole model, kiln fp32 against onnxruntime
BF16_VS_FP32_TOL = 1e-2   # issue 3: bf16 outputs within 1e-2 relative of fp32
UNSEEN_SEED = 7           # check_models.py's generator seed for the .inputs specs
SUB_MS = 1.0              # below this onnxruntime's Python call overhead is a visible part of its time
SUBPROCESS_TIMEOUT_S = 1800
T0 = time.time()

# Issue 3 targets.
TARGET_ORT_RATIO, GOAL_ORT_RATIO = 1.0, 0.8
TARGET_BF16_SPEEDUP = 1.3
BF16_TARGET_MODELS = ("resnet50", "mobilenetv2", "bert_base")   # the CNNs and the encoder
TARGET_PLAN_MS = 1000.0
GEMM_TARGET_SIZES = (1024, 2048, 4096)
TARGET_GEMM_VS_ONEDNN, TARGET_GEMM_PEAK_PCT = 1.0, 85.0
TARGET_GEMM_BF16, TARGET_GEMM_U8S8 = 1.8, 3.5

Budget = collections.namedtuple("Budget", "seconds min_iters max_iters rounds")


def log(msg):
    print(f"[{time.time() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


class Section:
    """Times a section of the run: logs its start and end, and stores its
    seconds in TIMES[NAME]."""

    def __init__(self, name, times):
        self.name, self.times = name, times

    def __enter__(self):
        self.t0 = time.time()
        log(f"== {self.name}")
        return self

    def __exit__(self, *exc):
        self.times[self.name] = time.time() - self.t0
        log(f"== {self.name}: done in {self.times[self.name]:.0f} s")
        return False


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


def output_file_name(name):
    """The file name `kiln run -o` gives output NAME, without .npy (its
    sanitize(): characters outside [A-Za-z0-9._-] become '_'; "", "." and
    ".." become "_", "_" and "__")."""
    out = "".join(chr(b) if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "._-") else "_"
                  for b in name.encode())
    return "_" * max(len(out), 1) if out in ("", ".", "..") else out


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

    def _argv(self, cmd, model, inputs, threads, precision, extra):
        pa = self.precision_args(precision)
        if pa is None:
            raise RuntimeError("kiln has no --precision option")
        argv = [self.path, cmd, model, "-t", str(threads)] + extra + pa
        for k, v in inputs.items():
            argv += ["-i", f"{k}={v}"]
        return argv

    def run(self, model, inputs, outdir, threads, precision):
        """`kiln run` writing outputs to OUTDIR: ({output file name: array},
        latency ms) or raises RuntimeError with kiln's message."""
        rc, out, err = run_cmd(self._argv("run", model, inputs, threads, precision, ["-o", outdir, "--repeat", "1"]))
        if rc != 0:
            raise RuntimeError(first_line(err))
        m = re.search(r"mean of \d+ runs ([0-9.]+) ms", out)
        outs = {f[:-4]: np.load(os.path.join(outdir, f)) for f in os.listdir(outdir) if f.endswith(".npy")}
        return outs, float(m.group(1)) if m else None

    def bench(self, model, inputs, threads, precision, warmup, iters):
        """`kiln bench --json`: the parsed object, or raises RuntimeError."""
        rc, out, err = run_cmd(self._argv("bench", model, inputs, threads, precision,
                                          ["--warmup", str(warmup), "--iters", str(iters), "--json"]))
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
    so.log_severity_level = 3   # errors only: the light models carry unused initializers
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def ort_reference(model, feeds, threads):
    """onnxruntime's outputs: {output name: array}."""
    sess = ort_session(model, threads)
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


class OrtTimer:
    """Times onnxruntime runs of a session through an I/O binding: the inputs
    bound once, the outputs allocated by onnxruntime, so that the Python call
    around each run costs as little as the binding allows (a few
    microseconds less than sess.run, which converts its feeds every call)."""

    def __init__(self, sess, feeds):
        self.sess, self.binding = sess, sess.io_binding()
        for k, v in feeds.items():
            self.binding.bind_cpu_input(k, np.ascontiguousarray(v))
        for o in sess.get_outputs():
            self.binding.bind_output(o.name)

    def time(self, iters):
        """Milliseconds of each of ITERS runs."""
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            self.sess.run_with_iobinding(self.binding)
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
    """Largest normalized error of kiln's OUTS ({output file name: array})
    over the outputs of REFS ({output name: array}); inf if one is missing."""
    return max((norm_err(outs[f], v) if (f := output_file_name(k)) in outs else math.inf
                for k, v in refs.items()), default=math.inf)


# ---------------------------------------------------------------- the run

def save_inputs(workdir, tag, feeds):
    """Saves FEEDS as .npy files: {input name: path}."""
    paths = {}
    for i, (k, v) in enumerate(feeds.items()):
        paths[k] = os.path.join(workdir, f"{tag}_in{i}.npy")
        np.save(paths[k], v)
    return paths


def kiln_outputs(kiln, workdir, tag, model, paths, threads, precisions):
    """One `kiln run` per precision: ({precision: outputs}, {precision: ms},
    {precision: "n/a (message)"})."""
    outs, est, errs = {}, {}, {}
    for p in precisions:
        d = tempfile.mkdtemp(prefix=f"{tag}_{p}_", dir=workdir)
        try:
            outs[p], est[p] = kiln.run(model, paths, d, threads, p)
        except RuntimeError as e:
            errs[p] = f"n/a ({e})"
            log(f"  kiln run {tag} {p}: {e}")
    return outs, est, errs


def accuracy(kiln, args, workdir, name, model, batch):
    """kiln fp32 vs onnxruntime and kiln bf16 vs kiln fp32 at BATCH, at the
    largest thread count; also the kiln latencies of these single runs, used
    to size the timing: (result, input paths, feeds)."""
    feeds = model_set.sample_inputs(name, batch)
    paths = save_inputs(workdir, f"{name}_b{batch}", feeds)
    ref = ort_reference(model, feeds, max(args.threads))
    kouts, est, errs = kiln_outputs(kiln, workdir, f"{name}_b{batch}", model, paths, max(args.threads),
                                    args.precisions)
    res = {"est_ms": est, "err": errs}
    if "fp32" in kouts:
        res["fp32_vs_ort"] = max_err(kouts["fp32"], ref)
    if "bf16" in kouts and "fp32" in kouts:
        res["bf16_vs_fp32"] = max_err(kouts["bf16"], kouts["fp32"])   # file names: already sanitized
    return res, paths, feeds


def total_iters(est_ms, budget):
    """Timed runs that fill the budget at EST_MS per run, within its bounds."""
    return max(budget.min_iters, min(budget.max_iters, int(budget.seconds * 1e3 / max(est_ms, 1e-3))))


def plan_iters(est_ms, budget):
    """(rounds, iterations per round) for a runner of estimated latency."""
    total = total_iters(est_ms, budget)
    rounds = max(1, min(budget.rounds, total))
    return rounds, int(math.ceil(total / rounds))


def time_side_by_side(kiln, model, paths, feeds, threads, est_ms, errs, budget, tag):
    """onnxruntime fp32 and kiln at every precision of EST_MS ({precision:
    estimated ms per run, or None}) at THREADS, interleaved in rounds;
    precisions in ERRS ({precision: message}) are not run. kiln's later
    rounds are sized from the p50 of its first (the estimate comes from
    another thread count, or from onnxruntime). Returns
    {"threads", "ort_ms", "ort_iters", "kiln": {precision: {"ms", "iters",
    "rounds", "plan_ms", "first_run_ms"} or {"error"}}}."""
    sess = ort_session(model, threads)
    ort = OrtTimer(sess, feeds)
    warm = ort.time(2)
    ort_rounds, ort_per = plan_iters(min(warm), budget)
    kplan = {}
    for p, est in est_ms.items():
        if p in errs:
            continue
        est = est or min(warm)
        kplan[p] = plan_iters(est, budget) + (2 if est < 500 else 1,)
    ort_ms, kiln_err, got = [], {}, {p: collections.defaultdict(list) for p in kplan}
    r = -1
    while (r := r + 1) < max([ort_rounds] + [kr for kr, _, _ in kplan.values()]):
        if r < ort_rounds:
            ort_ms += ort.time(ort_per)
        for p, (kr, kper, kwarm) in kplan.items():
            if r >= kr or p in kiln_err:
                continue
            try:
                j = kiln.bench(model, paths, threads, p, kwarm, kper)
                if j.get("precision", p) != p:
                    raise RuntimeError(f"kiln bench ran {j['precision']}, not {p}")
                got[p]["p50"].append(float(j["latency_ms"]["p50"]))
                got[p]["iters"].append(kper)
                if r == 0:   # the rest of the budget, from this round's p50
                    left = total_iters(got[p]["p50"][0], budget) - kper
                    more = min(budget.rounds - 1, max(left, 0))
                    kplan[p] = (1 + more, int(math.ceil(left / more)) if more else 0, kwarm)
                for key in ("plan_ms", "first_run_ms"):
                    if key in j:
                        got[p][key].append(float(j[key]))
            except (RuntimeError, KeyError, TypeError, ValueError) as e:
                kiln_err[p] = f"n/a ({e})"
                log(f"  kiln bench {tag} t{threads} {p}: {e}")
    del ort, sess
    row = {"threads": threads, "ort_ms": statistics.median(ort_ms), "ort_iters": len(ort_ms), "kiln": {}}
    for p in est_ms:
        g = got.get(p)
        if g and g["p50"]:
            k = {"ms": statistics.median(g["p50"]), "iters": sum(g["iters"]), "rounds": len(g["p50"])}
            for key in ("plan_ms", "first_run_ms"):
                if g[key]:
                    k[key] = statistics.median(g[key])
            row["kiln"][p] = k
        else:
            row["kiln"][p] = {"error": kiln_err.get(p) or errs.get(p, "n/a (not run)")}
    return row


def time_config(kiln, args, name, model, batch, threads, paths, feeds, acc):
    """One model x batch x threads of the benchmark set."""
    scale = max(args.threads) / threads   # the estimates come from runs at the largest thread count
    est = {p: acc["est_ms"][p] * scale if acc["est_ms"].get(p) else None for p in args.precisions}
    row = time_side_by_side(kiln, model, paths, feeds, threads, est, acc["err"], args.budget,
                            f"{name} b{batch}")
    return {"model": name, "batch": batch, **row}


def unseen_models(args):
    """[(name, source, path)] of the models the benchmark set never saw: the
    PyTorch exports in tests/models/torch and the ONNX suite's light models."""
    import onnx
    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    found = ([(p, "PyTorch export") for p in sorted(glob.glob(os.path.join(ROOT, "tests", "models", "torch", "*.onnx")))]
             + [(p, "ONNX suite, light") for p in sorted(glob.glob(os.path.join(light, "*.onnx")))])
    return [(os.path.basename(p)[:-5], src, p) for p, src in found if args.unseen_filter in os.path.basename(p)]


def run_unseen(kiln, args, workdir):
    """The unseen section: per model, accuracy against onnxruntime and one
    row per thread count, fp32."""
    rows = []
    models = unseen_models(args)
    if not models:
        log("unseen: no models found")
    for i, (name, source, path) in enumerate(models):
        t0 = time.time()
        feeds = feeds_for(path, path[:-5] + ".inputs", np.random.default_rng(UNSEEN_SEED))
        entry = {"model": name, "source": source, "path": os.path.relpath(path, ROOT),
                 "inputs": {k: list(v.shape) for k, v in feeds.items()}, "threads": {}}
        try:
            paths = save_inputs(workdir, name, feeds)
            ref = ort_reference(path, feeds, max(args.threads))
            outs, est, errs = kiln_outputs(kiln, workdir, name, path, paths, max(args.threads), ["fp32"])
            entry["err"] = errs.get("fp32")
            if "fp32" in outs:
                entry["fp32_vs_ort"] = max_err(outs["fp32"], ref)
            for t in args.threads:
                e = est.get("fp32") * max(args.threads) / t if est.get("fp32") else None
                entry["threads"][t] = time_side_by_side(kiln, path, paths, feeds, t, {"fp32": e}, errs,
                                                        args.unseen_budget, name)
        except Exception as e:  # noqa: BLE001 - onnxruntime rejecting a model is recorded, not fatal
            entry["err"] = f"n/a ({first_line(str(e)) if str(e) else repr(e)})"
        rows.append(entry)
        log(f"unseen {i + 1}/{len(models)} {name}: " + (entry.get("err") or ", ".join(
            f"t{t} ORT {fmt_ms(r['ort_ms'])} kiln {fmt_ms(r['kiln']['fp32'].get('ms'))}"
            for t, r in entry["threads"].items())) + f" ({time.time() - t0:.0f} s)")
    return rows


def run_gemm(cmd):
    """Runs the GEMM command, echoing its output as progress: {"cmd", "rc",
    "out", "err", "s", "omp_wait_policy"}. OMP_WAIT_POLICY is passive unless
    the caller set it."""
    env = dict(os.environ)
    user_policy = "OMP_WAIT_POLICY" in env
    env.setdefault("OMP_WAIT_POLICY", "passive")
    policy = f"{env['OMP_WAIT_POLICY']}, {'set by the caller' if user_policy else 'set by bench/run_models.py'}"
    log(f"GEMM: {cmd} (OMP_WAIT_POLICY={policy})")
    t0 = time.time()
    out = []
    with tempfile.TemporaryFile("w+") as errf:
        p = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=errf, text=True, cwd=ROOT, env=env,
                             start_new_session=True)
        timer = threading.Timer(SUBPROCESS_TIMEOUT_S, os.killpg, (p.pid, signal.SIGKILL))
        timer.start()
        for ln in p.stdout:
            out.append(ln)
            if ln.strip():
                log("  " + ln.rstrip())
        rc = p.wait()
        timed_out = not timer.is_alive()
        timer.cancel()
        errf.seek(0)
        err = errf.read()
    if timed_out:
        rc, err = None, f"timed out after {SUBPROCESS_TIMEOUT_S} s"
    return {"cmd": cmd, "rc": rc, "out": "".join(out), "err": err, "s": time.time() - t0,
            "omp_wait_policy": policy}


# ---------------------------------------------------------------- report

def fmt_ms(v):
    return "n/a" if v is None else f"{v:.3g}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def fmt_ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def fmt_err(v):
    return "n/a" if v is None else "inf" if not math.isfinite(v) else f"{v:.1e}"


def fmt_near(v, bound, decimals=2, suffix=""):
    """V with DECIMALS decimals, or more where that rounding would put it on
    BOUND or the other side of it (so that a miss never reads as a pass)."""
    def side(x):
        return (x > bound) - (x < bound)
    while decimals < 6 and side(float(f"{v:.{decimals}f}")) != side(v):
        decimals += 1
    return f"{v:.{decimals}f}{suffix}"


def verdict(ok):
    return "**met**" if ok else "**NOT met**"


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


def gemm_rows(out):
    """The rows of the GEMM command's markdown tables as {column header:
    float or None} (None for '-'; '%' dropped)."""
    rows, header = [], None
    for ln in out.splitlines():
        ln = ln.strip()
        if not ln.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if header is None:
            header = cells
        elif not all(set(c) <= set("-:") for c in cells) and len(cells) == len(header):
            row = {}
            for h, c in zip(header, cells):
                try:
                    row[h] = float(c.rstrip("%"))
                except ValueError:
                    row[h] = None
            rows.append(row)
    return rows


def gemm_peaks(out):
    """{threads: GFLOP/s}: the highest f32 FMA peak the GEMM command measured
    at each thread count: bench/peak's zmm lines (median, and the best of its
    repetitions) and gemm_bench's own in-process peak. On a shared machine
    every one of them can be pulled down by other work; the highest is the
    closest to what the CPU can do."""
    peaks = collections.defaultdict(float)
    for m in re.finditer(r"peak fma zmm f32: (\d+) thread\(s\): ([\d.]+) GFLOP/s[^\n]*?(?:max ([\d.]+))?\)", out):
        peaks[int(m.group(1))] = max(peaks[int(m.group(1))], float(m.group(2)), float(m.group(3) or 0))
    for m in re.finditer(r"peak f32 FMA, (\d+) thread\(s\), measured in this run: ([\d.]+) GFLOP/s", out):
        peaks[int(m.group(1))] = max(peaks[int(m.group(1))], float(m.group(2)))
    return dict(peaks)


def gemm_targets(gemm):
    """Lines of the targets section for the GEMM."""
    if gemm is None or gemm["rc"] != 0:
        return ["- GEMM targets: not measured (the GEMM benchmark " +
                ("was not run" if gemm is None else "failed") + ")."]
    rows = gemm_rows(gemm["out"])
    sizes = "-".join(str(s) for s in (GEMM_TARGET_SIZES[0], GEMM_TARGET_SIZES[-1]))
    peaks = gemm_peaks(gemm["out"])
    def div(r, a, b, scale=1.0):
        return scale * r[a] / r[b] if r.get(a) and r.get(b) else None

    for r in rows:   # the ratios from the GFLOP/s columns (0.1 resolution), not the 2-decimal ones printed
        t = int(r.get("threads") or 0)
        r["vs_onednn"] = div(r, "f32 kiln", "f32 oneDNN")
        r["bf16_x"] = div(r, "bf16 kiln", "f32 kiln, B prepacked")
        r["u8s8_x"] = div(r, "u8s8 kiln (GOP/s)", "f32 kiln, B prepacked")
        # f32 kiln against the highest peak measured at its thread count
        r["pct_best_peak"] = 100.0 * r["f32 kiln"] / peaks[t] if r.get("f32 kiln") and peaks.get(t) else None

    def check(what, col, threads, bound, unit, decimals, note=""):
        vals = [(int(r["size"]), int(r["threads"]), r.get(col)) for r in rows
                if r.get("size") in GEMM_TARGET_SIZES and r.get("threads") in threads]
        if not vals:
            return f"- {what}: not measured (no '{col}' column at {sizes})."
        ok = all(v is not None and v >= bound for _, _, v in vals)
        listed = ", ".join(f"{s}{'' if len(threads) == 1 else f' t{t}'}: "
                           f"{'n/a' if v is None else fmt_near(v, bound, decimals, unit)}" for s, t, v in vals)
        return f"- {what}, at least {bound:.{decimals}f}{unit}: {verdict(ok)}. {listed}.{note}"

    return [
        check(f"GEMM f32 kiln/oneDNN (`dnnl_sgemm`) at {sizes}, 2 threads", "vs_onednn", (2,),
              TARGET_GEMM_VS_ONEDNN, "x", 2),
        check(f"GEMM f32 share of the FMA peak at {sizes}, 2 threads", "pct_best_peak", (2,), TARGET_GEMM_PEAK_PCT,
              "%", 0, f" (kiln f32 GFLOP/s over the highest f32 FMA peak measured in this run at 2 threads, "
              f"{peaks.get(2, 0):.1f} GFLOP/s; other work on the machine can pull that peak down, which shows as "
              "shares near or above 100%.)"),
        check(f"GEMM bf16 over kiln f32 (B prepacked) at {sizes}, 1 and 2 threads", "bf16_x", (1, 2),
              TARGET_GEMM_BF16, "x", 2),
        check(f"GEMM u8s8 over kiln f32 (B prepacked) at {sizes}, 1 and 2 threads", "u8s8_x", (1, 2),
              TARGET_GEMM_U8S8, "x", 2),
    ]


def ratio_list(items, bound):
    return ", ".join(f"{label} {fmt_near(v, bound, 2, 'x')}" for label, v in items)


def model_targets(rows, accs, unseen):
    """Lines of the targets section for the models, planning and unseen models."""
    L = []
    cfg = lambda r: f"{r['model']} b{r['batch']} t{r['threads']}"  # noqa: E731
    fp32 = [(cfg(r), r["kiln"]["fp32"]["ms"] / r["ort_ms"]) for r in rows if "ms" in r["kiln"].get("fp32", {})]
    n_fp32 = sum(1 for r in rows if "fp32" in r["kiln"])
    if n_fp32:
        miss = [x for x in fp32 if x[1] > TARGET_ORT_RATIO]
        goal = sum(1 for _, v in fp32 if v <= GOAL_ORT_RATIO)
        failed = n_fp32 - len(fp32)
        L.append(f"- Every benchmark model at most {TARGET_ORT_RATIO:.1f}x onnxruntime's latency at 1 and 2 threads "
                 f"(kiln fp32 against onnxruntime fp32): {verdict(not miss and not failed)}. "
                 f"{len(fp32) - len(miss)} of {n_fp32} configurations within it"
                 + (f", {failed} not measured" if failed else "")
                 + (f"; over it: {ratio_list(miss, TARGET_ORT_RATIO)}" if miss else "")
                 + f". Goal {GOAL_ORT_RATIO}x: {goal} of {n_fp32}.")
        bf = [(cfg(r), r["kiln"]["bf16"]["ms"] / r["ort_ms"]) for r in rows if "ms" in r["kiln"].get("bf16", {})]
        if bf:
            over = [x for x in bf if x[1] > TARGET_ORT_RATIO]
            L.append(f"  (For information, kiln bf16 against onnxruntime fp32: {len(bf) - len(over)} of {len(bf)} "
                     f"within {TARGET_ORT_RATIO:.1f}x" + (f"; over it: {ratio_list(over, TARGET_ORT_RATIO)}" if over else "") + ".)")
    sp, n_sp = [], 0
    for r in rows:
        if r["model"] not in BF16_TARGET_MODELS or "bf16" not in r["kiln"]:
            continue
        n_sp += 1
        f, b = r["kiln"].get("fp32", {}).get("ms"), r["kiln"]["bf16"].get("ms")
        if f and b:
            sp.append((cfg(r), f / b))
    if n_sp:
        miss = [x for x in sp if x[1] < TARGET_BF16_SPEEDUP]
        L.append(f"- bf16 at least {TARGET_BF16_SPEEDUP}x faster than kiln fp32 on the CNNs and the encoder: "
                 f"{verdict(not miss and len(sp) == n_sp)}. {len(sp) - len(miss)} of {n_sp} configurations"
                 + (f"; below it: {ratio_list(miss, TARGET_BF16_SPEEDUP)}" if miss else "") + f"; lowest "
                 + (f"{fmt_near(min(v for _, v in sp), TARGET_BF16_SPEEDUP, 2, 'x')}." if sp else "n/a."))
    else:
        L.append("- bf16 speed-up: not measured (no bf16 runs of the CNNs or the encoder).")
    errs = [(f"{n} b{b}", a.get("bf16_vs_fp32")) for (n, b), a in accs.items() if "bf16" in a["est_ms"] or "bf16" in a["err"]]
    if errs:
        bad = [(c, e) for c, e in errs if e is None or e >= BF16_VS_FP32_TOL]
        L.append(f"- bf16 outputs within {BF16_VS_FP32_TOL:g} relative error of fp32: {verdict(not bad)}. "
                 f"Largest {fmt_err(max((e for _, e in errs if e is not None), default=None))}"
                 + (f"; over it or not measured: {', '.join(f'{c} {fmt_err(e)}' for c, e in bad)}" if bad else "")
                 + ".")
    plans = [(f"b{r['batch']} t{r['threads']} {p}", k["plan_ms"]) for r in rows if r["model"] == "resnet50"
             for p, k in r["kiln"].items() if "plan_ms" in k]
    plans32 = [x for x in plans if x[0].endswith("fp32")]
    if plans32:
        worst = max(v for _, v in plans32)
        L.append(f"- Planning ResNet-50 without --tune under {TARGET_PLAN_MS / 1000:g} s (kiln bench's plan_ms: "
                 f"session creation with the graph passes, and planning, without running; fp32): "
                 f"{verdict(worst < TARGET_PLAN_MS)}. Slowest {worst:.0f} ms; "
                 + ", ".join(f"{c} {v:.0f} ms" for c, v in plans) + ".")
    else:
        L.append("- Planning ResNet-50: not measured (no resnet50 row, or kiln bench printed no plan_ms).")
    if unseen is not None:
        cells = [(f"{u['model']} t{t}", r) for u in unseen for t, r in u["threads"].items()]
        timed = [(c, r["kiln"]["fp32"]["ms"] / r["ort_ms"]) for c, r in cells if "ms" in r["kiln"]["fp32"]]
        n_all = sum(len(u["threads"]) or 1 for u in unseen)
        miss = [x for x in timed if x[1] > TARGET_ORT_RATIO]
        bad_acc = [u["model"] for u in unseen if u.get("fp32_vs_ort") is None or u["fp32_vs_ort"] >= FP32_VS_ORT_TOL]
        L.append(f"- Acceptance, a model the benchmarks never saw at least as fast as onnxruntime (the "
                 f"{len(unseen)} unseen models below, fp32, 1 and 2 threads): {verdict(timed and not miss and len(timed) == n_all)}. "
                 f"{len(timed) - len(miss)} of {n_all} configurations within it"
                 + (f", {n_all - len(timed)} not measured" if n_all > len(timed) else "")
                 + (f"; slower: {ratio_list(miss, TARGET_ORT_RATIO)}" if miss else "")
                 + (f"; median kiln/ORT {statistics.median(v for _, v in timed):.2f}x" if timed else "")
                 + (f". Outputs off onnxruntime's by {FP32_VS_ORT_TOL:g} or more, or not compared: "
                    f"{', '.join(bad_acc)}." if bad_acc else f". All outputs within {FP32_VS_ORT_TOL:g} of onnxruntime's."))
    return L


def write_report(path, args, info, rows, accs, unseen, gemm, times, elapsed_s):
    L = []
    L.append("# kiln benchmarks\n")
    L.append("Reproduce from a fresh clone (Debian, root or sudo), at the repository root:\n")
    L.append("```sh\n" + args.command + "\n```\n")
    L.append("This file is written by `bench/run_models.py` (called by `bench/run.sh`); do not edit it by hand. "
             "These machines are shared and noisy: trust the ratios, which come from kiln and onnxruntime runs "
             "interleaved in one run, more than the absolute times.\n")
    L.append("## Machine and versions\n")
    sect = "; ".join(f"{k} {v / 60:.1f} min" for k, v in times.items())
    L.append(f"- date: {info['date']}; whole run {elapsed_s / 60:.1f} min ({sect}); 1-minute load average "
             f"{info['load_start']:.1f} at the start, {info.get('load_end', os.getloadavg()[0]):.1f} at the end (above the CPU count, "
             "other work shared the machine)")
    L.append(f"- CPU: {info['cpu']}, {info['cpus']} CPUs; {info['caches']}")
    L.append(f"- ISA: {info['isa']}")
    L.append(f"- kiln: {info['kiln']}, git {info['git']}; binary `{os.path.relpath(args.kiln, ROOT)}`"
             f"{'' if args.kiln_has_precision else ' (no --precision option: bf16 rows n/a)'}")
    L.append(f"- anchor: onnxruntime {info['onnxruntime']} (CPUExecutionProvider, intra_op_num_threads=N, "
             f"inter_op_num_threads=1, ORT_SEQUENTIAL, ORT_ENABLE_ALL); onnx {info['onnx']}, numpy {info['numpy']}, "
             f"Python {info['python']}\n")

    L.append("## Targets (issue 3)\n")
    L.append("Each target of issue 3 against this run's numbers; a target is met only if every configuration "
             "it covers meets it.\n")
    if "gemm" in args.sections:
        L += gemm_targets(gemm)
    if "models" in args.sections or unseen is not None:
        L += model_targets(rows, accs, unseen)
    L.append("")

    if "models" in args.sections:
        L += models_markdown(args, rows, accs)
    if unseen is not None:
        L += unseen_markdown(args, unseen)
    if "gemm" in args.sections:
        L.append("## GEMM\n")
        if gemm is None:
            L.append("Not run (no --gemm-cmd).\n")
        else:
            L.append(f"`{gemm['cmd']}` ({gemm['s']:.0f} s; OMP_WAIT_POLICY={gemm['omp_wait_policy']}): kiln "
                     "against oneDNN at the same threads (f32 `dnnl_sgemm`; bf16 and u8s8 the matmul primitive), "
                     "GFLOP/s (GOP/s for u8s8), and the arithmetic peaks. `% of peak` is against the f32 FMA peak "
                     "measured in the same process; the targets above use the highest peak measured in the run.\n")
            if gemm["rc"] != 0:
                L.append(f"**It failed** (exit {gemm['rc']}): {first_line(gemm['err'])}\n")
            L += gemm_markdown(gemm["out"])
            notes = [ln for ln in gemm["err"].splitlines() if ln.strip()]
            if gemm["rc"] == 0 and notes:
                L.append("Its messages: " + "; ".join(notes[-5:]) + "\n")
    L += method_markdown(args, rows, gemm)
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def models_markdown(args, rows, accs):
    L = ["## Models\n",
         "Generated by `bench/models.py` with seeded random weights, opset 17, symbolic batch, in the op "
         "patterns PyTorch's exporter writes (BatchNormalization nodes, decomposed LayerNorm, erf GELU, "
         "shape subgraphs):\n",
         "| model | input | what |\n|---|---|---|",
         "| resnet50 | input (N,3,224,224) f32 | ResNet-50 v1.5, 25.6 M parameters |",
         "| mobilenetv2 | input (N,3,224,224) f32 | MobileNetV2 1.0, depthwise convs, Clip(0,6) |",
         "| bert_base | input_ids, attention_mask (N,128) i64 | BERT-base encoder: 12 layers, hidden 768, "
         "12 heads, FFN 3072, + pooler |",
         "| lstm | input (N,64,256) f32 | 2 stacked LSTM layers, hidden 512, then Linear 512->256 per step |\n",
         "## Latency\n",
         "Median milliseconds per run. `kiln/ORT` is kiln's latency over onnxruntime fp32's at the same "
         "threads (below 1 is faster; the issue 3 target is at most 1.0, goal 0.8). onnxruntime has no bf16 "
         "CPU path, so bf16 rows compare kiln bf16 with onnxruntime fp32, and `bf16 speed-up` is kiln fp32 "
         "over kiln bf16 (target at least 1.3 on the CNNs and the encoder). `plan ms` is kiln bench's `plan_ms`: "
         "session creation (graph passes) and planning (shapes, folding, algorithm choice, memory), without "
         "running; `first run ms` its `first_run_ms`, the first run after planning; both the median over the "
         "rounds. `runs` is kiln / onnxruntime timed runs.\n",
         "| model | batch | threads | precision | kiln ms | ORT fp32 ms | kiln/ORT | bf16 speed-up | "
         "plan ms | first run ms | runs |",
         "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        for p, k in r["kiln"].items():
            ms = k.get("ms")
            speed = ""
            if p == "bf16":
                f32 = r["kiln"].get("fp32", {}).get("ms")
                speed = fmt_ratio(f32, ms) if ms is not None else "n/a"
            runs = f"{k['iters']} / {r['ort_iters']}" if "iters" in k else f"- / {r['ort_iters']}"
            kiln_ms = fmt_ms(ms) if ms is not None else k.get("error", "n/a")
            L.append(f"| {r['model']} | {r['batch']} | {r['threads']} | {p} | {kiln_ms} | {fmt_ms(r['ort_ms'])} | "
                     f"{fmt_ratio(ms, r['ort_ms'])} | {speed} | {fmt_ms(k.get('plan_ms'))} | "
                     f"{fmt_ms(k.get('first_run_ms'))} | {runs} |")
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
    return L


def unseen_markdown(args, unseen):
    L = ["## Models the benchmarks never saw\n",
         "The acceptance test of issue 3: models outside the benchmark set, as they are, fp32. The PyTorch "
         "exports committed in `tests/models/torch/` (seeded random inputs of the shapes in the `.inputs` file "
         "next to each) and the light models of the ONNX backend suite in the `onnx` wheel (real architectures "
         "whose weights are ConstantOfShape fills, so their outputs are nearly uniform and the error column "
         "says little for them; input `arange(n)/n`), fed as `tests/models/check_models.py` feeds them. "
         f"Timed like the benchmark set, with about {args.unseen_budget.seconds:g} s per runner and "
         f"configuration. `err` is kiln fp32 against onnxruntime, the normalized error (ok under "
         f"{FP32_VS_ORT_TOL:g}). Times marked † are under {SUB_MS:g} ms: there onnxruntime's time includes its "
         "Python call around each run (a few microseconds, through an I/O binding) which kiln bench's in-process "
         "timer does not have, so their ratios favour kiln slightly.\n",
         "| model | source | inputs |" + "".join(f" t{t} kiln ms | t{t} ORT ms | t{t} kiln/ORT |" for t in args.threads)
         + " err | ok |",
         "|---|---|---|" + "---:|---:|---:|" * len(args.threads) + "---:|---|"]
    dag = lambda v: fmt_ms(v) + (" †" if v is not None and v < SUB_MS else "")  # noqa: E731
    for u in unseen:
        cells = []
        for t in args.threads:
            r = u["threads"].get(t)
            if r is None:
                cells += ["n/a", "n/a", "n/a"]
                continue
            k = r["kiln"]["fp32"]
            cells += [dag(k["ms"]) if "ms" in k else k.get("error", "n/a"), dag(r["ort_ms"]),
                      fmt_ratio(k.get("ms"), r["ort_ms"])]
        e = u.get("fp32_vs_ort")
        ok = "n/a" if e is None else "yes" if e < FP32_VS_ORT_TOL else "**NO**"
        shapes = ", ".join("x".join(map(str, s)) for s in u["inputs"].values())
        L.append(f"| {u['model']} | {u['source']} | {shapes} | " + " | ".join(cells)
                 + f" | {u.get('err') or fmt_err(e)} | {ok} |")
    L.append("")
    return L


def method_markdown(args, rows, gemm):
    L = ["## Method\n"]
    if "models" in args.sections:
        batches = sorted({(r["model"], r["batch"]) for r in rows}, key=lambda x: (args.models.index(x[0]), x[1]))
        L.append(f"- Benchmark set: {', '.join(f'{m} batch {b}' for m, b in batches)}; threads "
                 f"{', '.join(map(str, args.threads))}; precisions {', '.join(args.precisions)}.")
    b, u = args.budget, args.unseen_budget
    L.append(f"- Each runner gets about {b.seconds:g} s per configuration ({b.min_iters} to {b.max_iters} timed runs, "
             f"from a first estimate; kiln's later rounds from its first round's p50), split over up to "
             f"{b.rounds} rounds; the unseen models {u.seconds:g} s "
             f"({u.min_iters} to {u.max_iters} runs, up to {u.rounds} rounds). Within a round onnxruntime runs, "
             "then `kiln bench` once per precision, each in its own process with 2 warm-up runs (1 above 500 ms).")
    L.append("- onnxruntime: one session per model and thread count, `sess.run_with_iobinding` (inputs bound once, "
             "outputs allocated by onnxruntime) timed with `time.perf_counter` after 2 warm-up runs; the median over "
             "all its runs.")
    L.append("- kiln: `kiln bench MODEL -i NAME=FILE.npy ... -t N --precision P --warmup W --iters K --json`; "
             "the median of the per-round `p50`; `plan_ms` and `first_run_ms` from the same JSON.")
    L.append("- Inputs: seeded, the same .npy files for both (`bench/models.py: sample_inputs`): N(0,1) images "
             "and sequences; BERT token ids over the whole vocabulary, every other sequence padded over its "
             "last quarter in the attention mask.")
    if gemm is not None:
        L.append(f"- GEMM: `{gemm['cmd']}` with OMP_WAIT_POLICY={gemm['omp_wait_policy']}. The GEMM benchmark "
                 "links oneDNN directly, and oneDNN (Debian) threads with libgomp, whose default policy spins "
                 "waiting for work between calls; on 2 shared cores that spinning takes the time of the next "
                 "measurement. Passive waiting is what kiln's own oneDNN loader sets (src/dnnl/dnnl_load.c). "
                 "OMP_NUM_THREADS is the thread count of each table.")
    L.append("")
    return L


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build", "kiln"), help="the kiln binary")
    ap.add_argument("--models", dest="models_dir", default=os.path.join(ROOT, "build", "bench", "models"),
                    help="directory of bench/models.py's output (missing models are generated)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--json-out", help="also write the raw results as JSON here")
    ap.add_argument("--gemm-cmd", help="shell command printing the GEMM table, run from the repository root")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ",".join(SECTIONS))
    ap.add_argument("--only", default=",".join(BATCHES), help="comma-separated models of the benchmark set")
    ap.add_argument("--batches", help="override the batches, e.g. 1 or 1,4")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--budget-s", type=float, default=10.0, help="seconds per runner per configuration")
    ap.add_argument("--min-iters", type=int, default=3)
    ap.add_argument("--max-iters", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--unseen-budget-s", type=float, default=1.0,
                    help="seconds per runner per configuration in the unseen section")
    ap.add_argument("--unseen-filter", default="", help="only the unseen models whose file name contains this")
    ap.add_argument("--started-at", type=float, help="epoch seconds when the whole run started (bench/run.sh "
                    "passes it, so that the report's run time includes set-up, build and model generation)")
    ap.add_argument("--command", help="the command to print at the top of the report")
    ap.add_argument("--report-from", metavar="JSON", help="measure nothing: write the report again from the "
                    "--json-out file of an earlier run (give the options that run had)")
    args = ap.parse_args(argv)
    args.sections = args.sections.split(",")
    for s in args.sections:
        if s not in SECTIONS:
            ap.error(f"unknown section '{s}' (have {', '.join(SECTIONS)})")
    args.models = args.only.split(",")
    for m in args.models:
        if m not in BATCHES:
            ap.error(f"unknown model '{m}' (have {', '.join(BATCHES)})")
    args.threads = [int(t) for t in args.threads.split(",")]
    args.precisions = args.precisions.split(",")
    if "fp32" not in args.precisions:
        ap.error("--precisions must include fp32 (bf16 is compared with it)")
    if args.min_iters < 1 or args.max_iters < args.min_iters or args.rounds < 1:
        ap.error("need 1 <= --min-iters <= --max-iters and --rounds >= 1")
    args.budget = Budget(args.budget_s, args.min_iters, args.max_iters, args.rounds)
    # the unseen models run from microseconds (the PyTorch exports) to half a second (VGG-19): the run
    # count is capped high so that the small ones get their budget too
    args.unseen_budget = Budget(args.unseen_budget_s, args.min_iters, 2000, args.rounds)
    if not args.command:
        args.command = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    if args.report_from:
        return report_again(args)
    models_dir = os.path.abspath(args.models_dir)
    os.makedirs(models_dir, exist_ok=True)

    kiln = Kiln(os.path.abspath(args.kiln))
    args.kiln = kiln.path
    args.kiln_has_precision = kiln.has_precision
    if not kiln.has_precision:
        log("kiln bench has no --precision option: fp32 only, bf16 is n/a")
    info = machine_info(kiln.path)
    times = {}
    if args.started_at and args.started_at < T0:
        times["set-up, build, models generated"] = T0 - args.started_at
    gemm, rows, accs, unseen = None, [], {}, None
    if "gemm" in args.sections and args.gemm_cmd:
        with Section("GEMM", times):
            gemm = run_gemm(args.gemm_cmd)
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as workdir:
        if "models" in args.sections:
            with Section("benchmark models", times):
                for name in args.models:
                    t_model = time.time()
                    model = os.path.join(models_dir, name + ".onnx")
                    if not os.path.exists(model):
                        log(f"generating {model}")
                        model_set.main([models_dir, "--only", name])
                    batches = [int(b) for b in args.batches.split(",")] if args.batches else BATCHES[name]
                    for batch in batches:
                        log(f"{name} batch {batch}: accuracy")
                        acc, paths, feeds = accuracy(kiln, args, workdir, name, model, batch)
                        accs[(name, batch)] = acc
                        log(f"  fp32 vs ORT {fmt_err(acc.get('fp32_vs_ort'))}, "
                            f"bf16 vs fp32 {fmt_err(acc.get('bf16_vs_fp32'))}")
                        for t in args.threads:
                            log(f"{name} batch {batch} threads {t}: timing")
                            row = time_config(kiln, args, name, model, batch, t, paths, feeds, acc)
                            rows.append(row)
                            log("  ORT {} ms; kiln {}".format(fmt_ms(row["ort_ms"]), ", ".join(
                                f"{p} {fmt_ms(k['ms']) if 'ms' in k else k['error']}"
                                for p, k in row["kiln"].items())))
                    log(f"{name}: {time.time() - t_model:.0f} s")
        if "unseen" in args.sections:
            with Section("unseen models", times):
                unseen = run_unseen(kiln, args, workdir)
    elapsed = time.time() - (args.started_at if args.started_at and args.started_at < T0 else T0)
    info["load_end"] = os.getloadavg()[0]
    write_report(args.out, args, info, rows, accs, unseen, gemm, times, elapsed)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"info": info, "rows": rows, "gemm": gemm, "unseen": unseen, "section_s": times,
                       "elapsed_s": elapsed, "command": args.command, "kiln": args.kiln,
                       "kiln_has_precision": args.kiln_has_precision, "sections": args.sections,
                       "accuracy": [{"model": n, "batch": b, **a} for (n, b), a in accs.items()]}, f, indent=1)
    log(f"wrote {args.out} ({elapsed / 60:.1f} min)")
    return 0


def report_again(args):
    """--report-from: the report from an earlier run's JSON results."""
    with open(args.report_from) as f:
        j = json.load(f)
    args.kiln = j.get("kiln", os.path.abspath(args.kiln))
    args.kiln_has_precision = j.get("kiln_has_precision", True)
    args.sections = j.get("sections", args.sections)
    args.command = j.get("command", args.command)
    rows = j["rows"]
    accs = {(a["model"], a["batch"]): a for a in j["accuracy"]}
    unseen = j.get("unseen")
    for u in unseen or []:   # JSON object keys are strings
        u["threads"] = {int(t): r for t, r in u["threads"].items()}
    times = j.get("section_s", {})
    write_report(args.out, args, j["info"], rows, accs, unseen, j.get("gemm"), times,
                 j.get("elapsed_s", sum(times.values())))
    log(f"wrote {args.out} from {args.report_from}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
