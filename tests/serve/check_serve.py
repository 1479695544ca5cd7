"""`kiln serve` as a black box, driven by Triton's own client (tritonclient[http]).

Builds a fresh model repository (models written here with onnx.helper, opset
17, seeded weights: Triton's "simple" INT32 add/sub, a small CNN with labels,
dynamic batching and two instances, a model with no config.pbtxt, one whose
config is completed into a batching one, two versions of a model, FP16 in and
out, BYTES models batched and not), starts `kiln serve --http-port 0
--metrics-port 0 -t 2` on it and checks, one line per check:

  basics       live/ready, server metadata (name, extensions), model readiness
               per model and version, model metadata, the completed model
               configurations (a model with no config.pbtxt at all included:
               its configuration comes from the model), the repository index
  infer        JSON and binary tensors in and out (tritonclient's
               binary_data=True/False), INT32 / FP32 / FP16 / BYTES, NaN and
               infinities in JSON, request ids, subsets of outputs, gzip and
               deflate bodies both ways (and bad ones refused),
               async_infer, classification (class_count: shape, values,
               indices and labels of the top classes), model versions ("1",
               "2", the default), the statistics extension (counts move as the
               requests say); every result equals numpy's or onnxruntime's
  concurrency  64 requests from 16 threads on the batched CNN with two
               instances (batch sizes 1..4, JSON and binary): each answer
               equals `kiln run` on the same input; a burst of batch-1
               requests is batched (execution_count < requests) and stays
               right; BYTES requests batched together each get their strings
  metrics      the Prometheus page: Triton's nv_inference_* series agree with
               the statistics extension; `promtool check metrics` parses it,
               with no lint but those Triton's own metric names cause
  bad requests malformed JSON, short and extra binary data, shape / batch /
               datatype mismatches, missing and unknown inputs and outputs,
               out-of-range values, unknown model, version and route, FP16 in
               JSON, a body over --max-request-size (its own server, with and
               without Content-Length): the right status, a message naming the
               input / model, the failure counted, the server still live
  explicit     --model-control-mode explicit --load-model simple: only simple
               served; the client's load_model / unload_model (and their
               errors); a failed load leaves the server ready; load / unload
               refused in mode none; load_model with a config override (its
               own JSON reads back the same; a smaller max_batch_size takes
               effect until a load without one; bad values, unsupported
               fields and non-JSON refused); load_model with file overrides
               (a new model from its files alone, an existing one given other
               versions until a plain load; refused without a config, with
               bad base64 or a path out of the directory; the temporary
               directory gone after each load)
  shm          the system shared memory extension: refused (naming
               --allow-client-shm) unless the flag is given; with it, regions
               made by tritonclient's shm helpers are registered, inputs read
               from and outputs written to them (INT32 and BYTES, mixed with
               binary data), status, bad registrations and references (400,
               with the reason), unregister one and all, CUDA regions refused
  poll         --model-control-mode poll --repository-poll-secs 1 on a copy of
               the repository: a model directory added is served, an edited
               model reloaded while clients loop on it (none fails, none sees
               the old model after the new; the other version is kept, its
               statistics go on), a version added is served, a
               broken edit keeps what was served, a removed model unloaded
  queue        the dynamic batcher's default_queue_policy on a slow model with
               one instance: past max_queue_size a request is rejected at once
               (503, "queue ... full"); a request that waits in the queue past
               default_timeout_microseconds is answered 503 ("timeout") while
               the batch before it still runs; both counted as REJECTED failures;
               with priority_levels, a request of level 1 queued after one of
               the default level 2 runs first, and level 2's own
               max_queue_size rejects at level 2 only;
               with timeout_action DELAY, a request past its (per-request)
               timeout runs after a later one still within its own
  sigterm      SIGTERM with slow requests in flight: every one answered 200
               with the right output, new connections refused, exit 0 within
               seconds; idle, half-sent and stalled clients do not hold the exit

Servers are always stopped, ports are never fixed.

    .venv/bin/python tests/serve/check_serve.py --kiln build/kiln
"""
import argparse
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import onnxruntime as ort
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException, serialize_byte_tensor, serialized_byte_size

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
          "Ankle boot"]
MODELS = ["simple", "cnn", "noconfig", "autobatch", "versioned", "half", "strings", "words"]


# ---- results ------------------------------------------------------------------------------

class Checks:
    """Prints one line per check and counts the failures."""

    def __init__(self):
        self.passed = 0
        self.failed = []

    def ok(self, name, detail=""):
        self.passed += 1
        print(f"PASS {name}" + (f" ({detail})" if detail else ""), flush=True)

    def fail(self, name, why):
        self.failed.append(name)
        print(f"FAIL {name}: {why}", flush=True)

    def check(self, name, cond, why="", detail=""):
        if cond:
            self.ok(name, detail)
        else:
            self.fail(name, why or "condition not met")
        return bool(cond)

    def run(self, name, fn):
        """Runs fn() as check `name`: it returns a detail string (pass) or raises (fail)."""
        try:
            detail = fn()
        except Exception as e:  # noqa: BLE001 - any failure of a check is reported
            self.fail(name, one_line(e))
            return False
        self.ok(name, detail or "")
        return True

    def expect_error(self, name, fn, status, *must_contain):
        """fn() must raise InferenceServerException with HTTP status `status` and a message
        holding every string of must_contain (case-insensitive)."""
        try:
            fn()
        except InferenceServerException as e:
            msg = e.message() or ""
            missing = [s for s in must_contain if s.lower() not in msg.lower()]
            if str(e.status()) != str(status) or missing:
                return self.fail(name, f"got {e.status()} {msg!r}; expected {status}"
                                 + (f" naming {missing}" if missing else ""))
            return self.ok(name, f"{e.status()}: {msg}")
        except Exception as e:  # noqa: BLE001
            return self.fail(name, f"expected an InferenceServerException {status}, got {one_line(e)}")
        return self.fail(name, f"succeeded; expected an error {status}")

    def group(self, title, fn, *args):
        print(f"== {title}", flush=True)
        t0 = time.time()
        try:
            fn(self, *args)
        except Exception as e:  # noqa: BLE001 - one broken group must not stop the others
            tb = traceback.format_exc().strip().splitlines()
            self.fail(f"{title}: unexpected error", f"{one_line(e)} [{' | '.join(tb[-3:])}]")
        print(f"   ({title}: {time.time() - t0:.1f} s)", flush=True)


def one_line(e):
    s = f"{type(e).__name__}: {e}" if not isinstance(e, AssertionError) else str(e)
    return " ".join(s.split())[:600]


def ensure(cond, msg):
    if not cond:
        raise AssertionError(msg)


def norm_err(a, b):
    """max |a - b| / max |b|: the normalized error of a against the oracle b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-30)
    return float(np.max(np.abs(a - b))) / scale if a.size else 0.0


def close(a, b, tol=1e-5):
    err = norm_err(a, b)
    ensure(err <= tol, f"normalized error {err:.3g} > {tol:g} (shapes {np.shape(a)} vs {np.shape(b)})")
    return f"normalized error {err:.2g}"


def equal(a, b):
    ensure(np.shape(a) == np.shape(b) and np.array_equal(a, b),
           f"got {np.asarray(a).ravel()[:6]}.. shape {np.shape(a)}, expected {np.asarray(b).ravel()[:6]}.. "
           f"shape {np.shape(b)}")
    return "exact"


# ---- the model repository -------------------------------------------------------------------

def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    return m


def simple_model():
    """Triton's classic example: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (INT32)."""
    return make_model([helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
                       helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
                      [vi("INPUT0", TensorProto.INT32, ["N", 16]), vi("INPUT1", TensorProto.INT32, ["N", 16])],
                      [vi("OUTPUT0", TensorProto.INT32, ["N", 16]), vi("OUTPUT1", TensorProto.INT32, ["N", 16])])


def cnn_model(rng):
    """input [N,1,28,28] -> conv3x3(8) relu -> global average pool -> flatten -> gemm(10) = logits."""
    inits = [("w1", (rng.standard_normal((8, 1, 3, 3)) * 0.5).astype(np.float32)),
             ("b1", (rng.standard_normal(8) * 0.1).astype(np.float32)),
             ("wf", rng.standard_normal((10, 8)).astype(np.float32)),
             ("bf", (rng.standard_normal(10) * 0.1).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("GlobalAveragePool", ["r1"], ["p1"]),
             helper.make_node("Flatten", ["p1"], ["f"]),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1)]
    return make_model(nodes, [vi("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
                      [vi("logits", TensorProto.FLOAT, ["N", 10])], inits)


def noconfig_model(rng):
    """Y [2,4] = X [2,3] @ W [3,4] (fixed shapes: no batch dimension)."""
    return make_model([helper.make_node("MatMul", ["X", "W"], ["Y"])], [vi("X", TensorProto.FLOAT, [2, 3])],
                      [vi("Y", TensorProto.FLOAT, [2, 4])], [("W", rng.standard_normal((3, 4)).astype(np.float32))])


def autobatch_model():
    """Y = Relu(X), X [N,3]: no config; a variable first dimension makes it batchable."""
    return make_model([helper.make_node("Relu", ["X"], ["Y"])], [vi("X", TensorProto.FLOAT, ["N", 3])],
                      [vi("Y", TensorProto.FLOAT, ["N", 3])])


def versioned_model(offset):
    """Y = X + offset, X [N,4]: versions differ by the offset."""
    return make_model([helper.make_node("Add", ["X", "C"], ["Y"])], [vi("X", TensorProto.FLOAT, ["N", 4])],
                      [vi("Y", TensorProto.FLOAT, ["N", 4])], [("C", np.full(4, offset, np.float32))])


def half_model():
    """Y = Cast(X, FP32), H = X + X (FP16), X FP16 [N,8]."""
    return make_model([helper.make_node("Cast", ["X"], ["Y"], to=TensorProto.FLOAT),
                       helper.make_node("Add", ["X", "X"], ["H"])],
                      [vi("X", TensorProto.FLOAT16, ["N", 8])],
                      [vi("Y", TensorProto.FLOAT, ["N", 8]), vi("H", TensorProto.FLOAT16, ["N", 8])])


def strings_model():
    """UPPER = StringNormalizer(TEXT, UPPER), ECHO = Identity(TEXT), TEXT a [1,3] string tensor."""
    return make_model([helper.make_node("StringNormalizer", ["TEXT"], ["UPPER"], case_change_action="UPPER"),
                       helper.make_node("Identity", ["TEXT"], ["ECHO"])],
                      [vi("TEXT", TensorProto.STRING, [1, 3])],
                      [vi("UPPER", TensorProto.STRING, [1, 3]), vi("ECHO", TensorProto.STRING, [1, 3])])


def words_model():
    """OUT = Identity(IN), IN a [N,2] string tensor: BYTES through the dynamic batcher."""
    return make_model([helper.make_node("Identity", ["IN"], ["OUT"])], [vi("IN", TensorProto.STRING, ["N", 2])],
                      [vi("OUT", TensorProto.STRING, ["N", 2])])


def slow_model(rng, layers=12, k=1024):
    """Y = tanh(... tanh(X @ W) ... @ W), X [256,1024]: 0.54 GFLOP a layer (about 4 ms on
    two AVX2 cores)."""
    nodes, prev = [], "X"
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [prev, "W"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], ["Y" if i == layers - 1 else f"t{i}"]))
        prev = f"t{i}"
    return make_model(nodes, [vi("X", TensorProto.FLOAT, [256, k])], [vi("Y", TensorProto.FLOAT, [256, k])],
                      [("W", (rng.standard_normal((k, k)) / np.sqrt(k)).astype(np.float32))])


def io_config(name, dtype, dims):
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {", ".join(map(str, dims))} ] }}'


SIMPLE_CONFIG = "\n".join([
    'name: "simple"', 'platform: "onnxruntime_onnx"', "max_batch_size: 8", "input [",
    io_config("INPUT0", "TYPE_INT32", [16]) + ",", io_config("INPUT1", "TYPE_INT32", [16]),
    "]", "output [",
    io_config("OUTPUT0", "TYPE_INT32", [16]) + ",", io_config("OUTPUT1", "TYPE_INT32", [16]),
    "]", ""])

CNN_CONFIG = """name: "cnn"
platform: "onnxruntime_onnx"
max_batch_size: 16
input [
  { name: "input" data_type: TYPE_FP32 dims: [ 1, 28, 28 ] }
]
output [
  { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] label_filename: "labels.txt" }
]
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 2000
}
instance_group [ { count: 2 kind: KIND_CPU } ]
parameters { key: "threads" value: { string_value: "1" } }
"""

VERSIONED_CONFIG = """# inputs and outputs come from the model
name: "versioned"
max_batch_size: 4
version_policy: { all: {} }
"""

HALF_CONFIG = "\n".join([
    'name: "half"', 'backend: "onnxruntime"', "max_batch_size: 4",
    "input [", io_config("X", "TYPE_FP16", [8]), "]",
    "output [", io_config("Y", "TYPE_FP32", [8]) + ",", io_config("H", "TYPE_FP16", [8]), "]", ""])

STRINGS_CONFIG = "\n".join([
    'name: "strings"', "max_batch_size: 0",
    "input [", io_config("TEXT", "TYPE_STRING", [1, 3]), "]",
    "output [", io_config("UPPER", "TYPE_STRING", [1, 3]) + ",",
    io_config("ECHO", "TYPE_STRING", [1, 3]), "]", ""])


WORDS_CONFIG = """name: "words"
max_batch_size: 8
input [ { name: "IN" data_type: TYPE_STRING dims: [ 2 ] } ]
output [ { name: "OUT" data_type: TYPE_STRING dims: [ 2 ] } ]
dynamic_batching { max_queue_delay_microseconds: 20000 }
"""


def add_model(repo, name, versions, config=None, files=None):
    """repo/name/config.pbtxt (when config), repo/name/<v>/model.onnx for v, model in versions."""
    d = os.path.join(repo, name)
    os.makedirs(d, exist_ok=True)
    if config is not None:
        with open(os.path.join(d, "config.pbtxt"), "w") as f:
            f.write(config)
    for v, m in versions.items():
        os.makedirs(os.path.join(d, str(v)), exist_ok=True)
        onnx.save(m, os.path.join(d, str(v), "model.onnx"))
    for fname, text in (files or {}).items():
        with open(os.path.join(d, fname), "w") as f:
            f.write(text)


def build_repository(repo):
    rng = np.random.default_rng(2024)
    add_model(repo, "simple", {1: simple_model()}, SIMPLE_CONFIG)
    add_model(repo, "cnn", {1: cnn_model(rng)}, CNN_CONFIG, {"labels.txt": "\n".join(LABELS) + "\n"})
    add_model(repo, "noconfig", {1: noconfig_model(rng)})
    add_model(repo, "autobatch", {1: autobatch_model()})
    add_model(repo, "versioned", {1: versioned_model(100.0), 2: versioned_model(200.0)}, VERSIONED_CONFIG)
    add_model(repo, "half", {1: half_model()}, HALF_CONFIG)
    add_model(repo, "strings", {1: strings_model()}, STRINGS_CONFIG)
    add_model(repo, "words", {1: words_model()}, WORDS_CONFIG)


def model_path(repo, name, version=1):
    return os.path.join(repo, name, str(version), "model.onnx")


def ort_run(path, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, feeds)


# ---- the server -----------------------------------------------------------------------------

LISTEN = re.compile(r"kiln serve: listening on http://([0-9.:\[\]a-fA-F]+):(\d+)"
                    r"(?: \(metrics: http://[^:]+:(\d+)/metrics\))?")


class Server:
    """`kiln serve` on repo with any free ports; a context manager that always stops it."""

    def __init__(self, kiln, repo, *extra, threads=2, ready_timeout=30, wait_ready=True, env=None):
        self.args = [kiln, "serve", "--model-repository", repo, "--http-port", "0", "--metrics-port", "0",
                     "-t", str(threads), *extra]
        self.lines = []
        self.port = self.metrics_port = None
        self.client = None
        self._listening = threading.Event()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, errors="replace", env=env)
        try:
            threading.Thread(target=self._read, daemon=True).start()
            if not self._listening.wait(60) or self.port is None:
                raise RuntimeError(f"`{' '.join(self.args)}` printed no 'listening' line "
                                   f"(exit {self.proc.poll()}): {self.stderr()[-800:]}")
            self.url = f"127.0.0.1:{self.port}"
            self.client = httpclient.InferenceServerClient(self.url, network_timeout=120)
            self.ready = self.wait_ready(ready_timeout) if wait_ready else None
        except BaseException:
            self.stop()
            raise

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            m = LISTEN.search(line)
            if m and self.port is None:
                self.port = int(m.group(2))
                self.metrics_port = int(m.group(3)) if m.group(3) else None
                self._listening.set()
        self._listening.set()  # EOF: the process is gone

    def stderr(self):
        return "\n".join(self.lines)

    def wait_ready(self, timeout):
        end = time.time() + timeout
        while time.time() < end:
            try:
                if self.client.is_server_ready():
                    return True
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.05)
        return False

    def new_client(self, **kw):
        return httpclient.InferenceServerClient(self.url, network_timeout=120, **kw)

    def stop(self, timeout=15):
        """SIGTERM, then SIGKILL after timeout; returns the exit status."""
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001
                pass
            self.client = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def raw(port, method, path, body=b"", headers=None, timeout=60):
    """One HTTP request on a fresh connection: (status, headers, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def error_message(body):
    try:
        return json.loads(body)["error"]
    except Exception:  # noqa: BLE001
        return body.decode("utf-8", "replace")


def infer_json(port, model, inputs, version=None, extra=None, headers=None):
    """POST a JSON inference request: inputs = [(name, datatype, shape, data)]."""
    req = {"inputs": [{"name": n, "datatype": dt, "shape": list(s), "data": d} for n, dt, s, d in inputs]}
    req.update(extra or {})
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return raw(port, "POST", path, json.dumps(req).encode(), {"Content-Type": "application/json", **(headers or {})})


def get_stats(client, model, version=""):
    s = client.get_inference_statistics(model, version)["model_stats"]
    ensure(len(s) == 1, f"statistics of {model}: {len(s)} entries")
    return s[0]


def inp(name, x, dtype, binary):
    i = httpclient.InferInput(name, list(x.shape), dtype)
    i.set_data_from_numpy(x, binary_data=binary)
    return i


def simple_inputs(rng, batch, binary):
    a = rng.integers(-1000, 1000, (batch, 16)).astype(np.int32)
    b = rng.integers(-1000, 1000, (batch, 16)).astype(np.int32)
    return a, b, [inp("INPUT0", a, "INT32", binary), inp("INPUT1", b, "INT32", binary)]


# ---- 1. server, model metadata and configuration ------------------------------------------------

def group_basics(ck, srv):
    c = srv.client
    ck.check("server live", c.is_server_live())
    ck.check("server ready", srv.ready, f"not ready after 30 s: {srv.stderr()[-600:]}")
    md = c.get_server_metadata()
    want_ext = {"classification", "binary_tensor_data", "model_repository", "statistics", "model_configuration"}
    ck.check("server metadata", md.get("name") and md.get("version") and want_ext <= set(md.get("extensions", [])),
             f"{md}", f"{md.get('name')} {md.get('version')}, extensions {md.get('extensions')}")
    for m in MODELS:
        ck.check(f"model ready: {m}", c.is_model_ready(m), f"not ready; server says: {srv.stderr()[-400:]}")
    ck.check("versions ready: versioned 1 and 2", c.is_model_ready("versioned", "1") and c.is_model_ready("versioned", "2"))
    ck.check("not ready: versioned 3, unknown model", not c.is_model_ready("versioned", "3")
             and not c.is_model_ready("nosuch"))

    def io(entries):
        return [(e["name"], e["datatype"], [int(d) for d in e["shape"]]) for e in entries]

    expect = {
        "simple": ([("INPUT0", "INT32", [-1, 16]), ("INPUT1", "INT32", [-1, 16])],
                   [("OUTPUT0", "INT32", [-1, 16]), ("OUTPUT1", "INT32", [-1, 16])], ["1"]),
        "cnn": ([("input", "FP32", [-1, 1, 28, 28])], [("logits", "FP32", [-1, 10])], ["1"]),
        "noconfig": ([("X", "FP32", [2, 3])], [("Y", "FP32", [2, 4])], ["1"]),
        "versioned": ([("X", "FP32", [-1, 4])], [("Y", "FP32", [-1, 4])], ["1", "2"]),
        "half": ([("X", "FP16", [-1, 8])], [("Y", "FP32", [-1, 8]), ("H", "FP16", [-1, 8])], ["1"]),
        "strings": ([("TEXT", "BYTES", [1, 3])], [("UPPER", "BYTES", [1, 3]), ("ECHO", "BYTES", [1, 3])], ["1"]),
        "words": ([("IN", "BYTES", [-1, 2])], [("OUT", "BYTES", [-1, 2])], ["1"]),
    }
    for m, (ins, outs, versions) in expect.items():
        def meta(m=m, ins=ins, outs=outs, versions=versions):
            md = c.get_model_metadata(m)
            ensure(md["name"] == m, f"name {md['name']!r}")
            ensure(sorted(md.get("versions", [])) == versions, f"versions {md.get('versions')}, expected {versions}")
            ensure(io(md["inputs"]) == ins, f"inputs {io(md['inputs'])}, expected {ins}")
            ensure(io(md["outputs"]) == outs, f"outputs {io(md['outputs'])}, expected {outs}")
            ensure(md.get("platform") == "onnxruntime_onnx", f"platform {md.get('platform')!r}")
            return f"{len(ins)} inputs, {len(outs)} outputs, versions {versions}"
        ck.run(f"model metadata: {m}", meta)

    def meta_v1():
        md = c.get_model_metadata("versioned", "1")
        ensure(md["name"] == "versioned" and io(md["inputs"]) == expect["versioned"][0], f"{md}")
        return "GET /v2/models/versioned/versions/1"
    ck.run("model metadata: version 1 of versioned", meta_v1)

    def cfg_io(entries):
        return [(e["name"], e["data_type"], [int(d) for d in e["dims"]]) for e in entries]

    def config_simple():
        cfg = c.get_model_config("simple")
        ensure(cfg["name"] == "simple" and int(cfg["max_batch_size"]) == 8, f"{cfg}")
        ensure(cfg_io(cfg["input"]) == [("INPUT0", "TYPE_INT32", [16]), ("INPUT1", "TYPE_INT32", [16])],
               f"input {cfg['input']}")
        ensure(cfg_io(cfg["output"]) == [("OUTPUT0", "TYPE_INT32", [16]), ("OUTPUT1", "TYPE_INT32", [16])],
               f"output {cfg['output']}")
        return "name, max_batch_size 8, inputs, outputs"
    ck.run("model config: simple", config_simple)

    def config_cnn():
        cfg = c.get_model_config("cnn")
        ensure(int(cfg["max_batch_size"]) == 16, f"max_batch_size {cfg.get('max_batch_size')}")
        db = cfg.get("dynamic_batching")
        ensure(isinstance(db, dict), f"dynamic_batching {db}")
        ensure([int(v) for v in db.get("preferred_batch_size", [])] == [4, 8], f"dynamic_batching {db}")
        ensure(int(db.get("max_queue_delay_microseconds", 0)) == 2000, f"dynamic_batching {db}")
        ig = cfg.get("instance_group", [])
        ensure(len(ig) == 1 and int(ig[0]["count"]) == 2 and ig[0]["kind"] == "KIND_CPU", f"instance_group {ig}")
        ensure(cfg["output"][0].get("label_filename") == "labels.txt", f"output {cfg['output']}")
        ensure(cfg.get("parameters", {}).get("threads", {}).get("string_value") == "1",
               f"parameters {cfg.get('parameters')}")
        ensure(cfg_io(cfg["input"]) == [("input", "TYPE_FP32", [1, 28, 28])], f"input {cfg['input']}")
        return "dynamic_batching, instance_group, label_filename, parameters"
    ck.run("model config: cnn", config_cnn)

    def config_noconfig():
        cfg = c.get_model_config("noconfig")
        ensure(cfg.get("name") == "noconfig", f"name {cfg.get('name')!r}")
        ensure(int(cfg.get("max_batch_size", -1)) == 0, f"max_batch_size {cfg.get('max_batch_size')}")
        ensure(cfg_io(cfg.get("input", [])) == [("X", "TYPE_FP32", [2, 3])], f"input {cfg.get('input')}")
        ensure(cfg_io(cfg.get("output", [])) == [("Y", "TYPE_FP32", [2, 4])], f"output {cfg.get('output')}")
        ensure(cfg.get("platform") == "onnxruntime_onnx" or cfg.get("backend") == "onnxruntime",
               f"platform {cfg.get('platform')!r} backend {cfg.get('backend')!r}")
        return "completed from the model: name, max_batch_size 0, X [2,3], Y [2,4]"
    ck.run("model config: noconfig (no config.pbtxt)", config_noconfig)

    def config_autobatch():
        cfg = c.get_model_config("autobatch")
        ensure(int(cfg.get("max_batch_size", -1)) == 4, f"max_batch_size {cfg.get('max_batch_size')}, expected 4")
        ensure("dynamic_batching" in cfg, f"no dynamic_batching in {cfg}")
        ensure(cfg_io(cfg.get("input", [])) == [("X", "TYPE_FP32", [3])], f"input {cfg.get('input')}")
        return "variable first dimension: max_batch_size 4, dynamic batching, dims [3]"
    ck.run("model config: autobatch (no config.pbtxt, batchable)", config_autobatch)

    def config_versioned():
        cfg = c.get_model_config("versioned")
        ensure("all" in cfg.get("version_policy", {}), f"version_policy {cfg.get('version_policy')}")
        ensure(cfg_io(cfg.get("input", [])) == [("X", "TYPE_FP32", [4])], f"input {cfg.get('input')}")
        return "version_policy all; inputs completed from the model"
    ck.run("model config: versioned", config_versioned)

    def index():
        idx = c.get_model_repository_index()
        got = {(e["name"], e.get("version", "")): e.get("state") for e in idx}
        for m in MODELS:
            ensure((m, "1") in got and got[(m, "1")] == "READY", f"{m} version 1 not READY in {idx}")
        ensure(got.get(("versioned", "2")) == "READY", f"versioned 2 not READY in {idx}")
        return f"{len(idx)} entries, every model READY"
    ck.run("repository index", index)


# ---- 2. inference -----------------------------------------------------------------------------

def group_infer(ck, srv, repo):
    c = srv.client
    rng = np.random.default_rng(5)
    for in_bin, out_bin in ((False, False), (True, True), (False, True), (True, False)):
        def simple(in_bin=in_bin, out_bin=out_bin):
            a, b, ins = simple_inputs(rng, 3, in_bin)
            outs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=out_bin),
                    httpclient.InferRequestedOutput("OUTPUT1", binary_data=out_bin)]
            r = c.infer("simple", ins, outputs=outs, request_id="req-7")
            resp = r.get_response()
            ensure(resp.get("model_name") == "simple" and str(resp.get("model_version")) == "1",
                   f"model_name/version {resp.get('model_name')!r} {resp.get('model_version')!r}")
            ensure(resp.get("id") == "req-7", f"id {resp.get('id')!r}")
            equal(r.as_numpy("OUTPUT0"), a + b)
            return equal(r.as_numpy("OUTPUT1"), a - b)
        ck.run(f"infer simple: {'binary' if in_bin else 'JSON'} in, {'binary' if out_bin else 'JSON'} out", simple)

    def simple_defaults():  # no outputs named: every output, binary (the client's default)
        a, b, ins = simple_inputs(rng, 8, True)
        r = c.infer("simple", ins)
        equal(r.as_numpy("OUTPUT1"), a - b)
        return equal(r.as_numpy("OUTPUT0"), a + b)
    ck.run("infer simple: batch 8 (max_batch_size), no outputs named", simple_defaults)

    def simple_one_output():
        a, b, ins = simple_inputs(rng, 1, False)
        r = c.infer("simple", ins, outputs=[httpclient.InferRequestedOutput("OUTPUT1", binary_data=False)])
        names = [o["name"] for o in r.get_response()["outputs"]]
        ensure(names == ["OUTPUT1"], f"outputs {names}, expected only OUTPUT1")
        return equal(r.as_numpy("OUTPUT1"), a - b)
    ck.run("infer simple: one output of two", simple_one_output)

    def simple_extremes():
        a = np.zeros((1, 16), np.int32)
        b = np.zeros((1, 16), np.int32)
        a[0, :4] = [2147483647, -2147483648, 123456789, -1]
        b[0, 4:8] = [2147483647, -2147483647, 7, 1]
        r = c.infer("simple", [inp("INPUT0", a, "INT32", False), inp("INPUT1", b, "INT32", False)],
                    outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=False),
                             httpclient.InferRequestedOutput("OUTPUT1", binary_data=False)])
        equal(r.as_numpy("OUTPUT0"), a + b)
        return equal(r.as_numpy("OUTPUT1"), a - b)
    ck.run("infer simple: INT32 extremes in JSON", simple_extremes)

    cnn_path = model_path(repo, "cnn")
    for binary in (False, True):
        def cnn(binary=binary):
            x = rng.standard_normal((5, 1, 28, 28)).astype(np.float32)
            r = c.infer("cnn", [inp("input", x, "FP32", binary)],
                        outputs=[httpclient.InferRequestedOutput("logits", binary_data=binary)])
            return close(r.as_numpy("logits"), ort_run(cnn_path, {"input": x})[0]) + " vs onnxruntime"
        ck.run(f"infer cnn: batch 5, {'binary' if binary else 'JSON'}", cnn)

    def noconfig():
        x = rng.standard_normal((2, 3)).astype(np.float32)
        r = c.infer("noconfig", [inp("X", x, "FP32", False)],
                    outputs=[httpclient.InferRequestedOutput("Y", binary_data=False)])
        return close(r.as_numpy("Y"), ort_run(model_path(repo, "noconfig"), {"X": x})[0]) + " vs onnxruntime"
    ck.run("infer noconfig: fixed shapes, no batch dimension", noconfig)

    def autobatch():
        x = rng.standard_normal((3, 3)).astype(np.float32)
        r = c.infer("autobatch", [inp("X", x, "FP32", True)])
        return equal(r.as_numpy("Y"), np.maximum(x, 0))
    ck.run("infer autobatch: batch 3", autobatch)

    def half():
        x = (rng.standard_normal((2, 8)) * 100).astype(np.float16)
        x[0, :3] = [65504, -0.0, 6e-8]  # largest, negative zero, subnormal
        r = c.infer("half", [inp("X", x, "FP16", True)],
                    outputs=[httpclient.InferRequestedOutput("Y", binary_data=False),
                             httpclient.InferRequestedOutput("H", binary_data=True)])
        ensure(r.as_numpy("H").dtype == np.float16, f"H dtype {r.as_numpy('H').dtype}")
        with np.errstate(over="ignore"):
            equal(r.as_numpy("H"), x + x)  # 65504 + 65504 is inf in FP16
        return equal(r.as_numpy("Y"), x.astype(np.float32))
    ck.run("infer half: FP16 binary in, FP32 JSON and FP16 binary out", half)

    text = np.array([["hello world", "", "Mixed Case 42"]], dtype=np.object_)
    for in_bin, out_bin in ((False, False), (True, True)):
        def strings(in_bin=in_bin, out_bin=out_bin):
            r = c.infer("strings", [inp("TEXT", text, "BYTES", in_bin)],
                        outputs=[httpclient.InferRequestedOutput("UPPER", binary_data=out_bin),
                                 httpclient.InferRequestedOutput("ECHO", binary_data=out_bin)])
            up = [v.decode() if isinstance(v, bytes) else v for v in r.as_numpy("UPPER").ravel()]
            echo = [v.decode() if isinstance(v, bytes) else v for v in r.as_numpy("ECHO").ravel()]
            ensure(r.as_numpy("ECHO").shape == (1, 3), f"ECHO shape {r.as_numpy('ECHO').shape}")
            ensure(echo == list(text.ravel()), f"ECHO {echo}")
            ensure(up == [s.upper() for s in text.ravel()], f"UPPER {up}")
            return f"UPPER {up}"
        ck.run(f"infer strings (BYTES): {'binary' if in_bin else 'JSON'}", strings)

    def strings_utf8():
        t = np.array([["grüße", 'quote " and \\ back', "日本"]], dtype=np.object_)
        r = c.infer("strings", [inp("TEXT", t, "BYTES", False)],
                    outputs=[httpclient.InferRequestedOutput("ECHO", binary_data=False)])
        echo = [v.decode() if isinstance(v, bytes) else v for v in r.as_numpy("ECHO").ravel()]
        ensure(echo == list(t.ravel()), f"ECHO {echo}")
        return "UTF-8, quotes and backslashes round trip"
    ck.run("infer strings (BYTES): UTF-8 in JSON", strings_utf8)

    def async_infer():
        ac = srv.new_client(concurrency=4)
        try:
            jobs = []
            for i in range(8):
                x = rng.standard_normal((1 + i % 3, 1, 28, 28)).astype(np.float32)
                jobs.append((x, ac.async_infer("cnn", [inp("input", x, "FP32", i % 2 == 0)])))
            errs = [norm_err(h.get_result(timeout=60).as_numpy("logits"), ort_run(cnn_path, {"input": x})[0])
                    for x, h in jobs]
            ensure(max(errs) <= 1e-5, f"normalized errors {errs}")
            return f"8 requests, max normalized error {max(errs):.2g}"
        finally:
            ac.close()
    ck.run("async_infer: 8 requests in flight on cnn", async_infer)

    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    logits = c.infer("cnn", [inp("input", x, "FP32", True)]).as_numpy("logits")
    for binary in (True, False):
        def classify(binary=binary):
            r = c.infer("cnn", [inp("input", x, "FP32", True)],
                        outputs=[httpclient.InferRequestedOutput("logits", binary_data=binary, class_count=3)])
            got = r.as_numpy("logits")
            ensure(got is not None and got.shape == (2, 3), f"shape {None if got is None else got.shape}, "
                   f"expected (2, 3): {got}")
            for b in range(2):
                top = np.argsort(-logits[b], kind="stable")[:3]
                for k in range(3):
                    s = got[b, k].decode() if isinstance(got[b, k], bytes) else str(got[b, k])
                    value, index, label = s.split(":", 2)
                    ensure(int(index) == top[k], f"item {b} rank {k}: {s!r}, expected index {top[k]}")
                    ensure(abs(float(value) - logits[b, top[k]]) <= 1e-6 + 1e-6 * abs(logits[b, top[k]]),
                           f"item {b} rank {k}: {s!r}, expected value {logits[b, top[k]]:f}")
                    ensure(label == LABELS[top[k]], f"item {b} rank {k}: {s!r}, expected label {LABELS[top[k]]}")
            return f"{got[0].tolist()}"
        ck.run(f"classification: top 3 of cnn, {'binary' if binary else 'JSON'}", classify)

    for algo in ("gzip", "deflate"):
        def compressed(algo=algo):  # Content-Encoding and Accept-Encoding, as tritonclient sends them
            got = []
            for binary in (True, False):
                a, b, ins = simple_inputs(rng, 3, binary)
                r = c.infer("simple", ins, request_compression_algorithm=algo,
                            response_compression_algorithm=algo)
                equal(r.as_numpy("OUTPUT0"), a + b)
                equal(r.as_numpy("OUTPUT1"), a - b)
                got.append("binary" if binary else "JSON")
            return ", ".join(got)
        ck.run(f"infer simple: {algo} request and response bodies (binary and JSON tensors)", compressed)

    def compressed_raw():  # the answer is really compressed, and only when the client takes it
        text = json.dumps({"inputs": [{"name": n, "shape": [1, 16], "datatype": "INT32", "data": list(range(16))}
                                      for n in ("INPUT0", "INPUT1")]}).encode()
        seen = []
        for accept, want in (("gzip", "gzip"), ("deflate;q=1, gzip;q=0", "deflate"), ("*", "gzip"),
                             ("br", None), (None, None)):
            hdrs = {"Content-Type": "application/json"}
            if accept:
                hdrs["Accept-Encoding"] = accept
            st, h, body = raw(srv.port, "POST", "/v2/models/simple/infer", text, hdrs)
            ensure(st == 200, f"Accept-Encoding {accept!r}: {st} {error_message(body)}")
            ensure(h.get("content-encoding") == want,
                   f"Accept-Encoding {accept!r}: Content-Encoding {h.get('content-encoding')!r}, expected {want!r}")
            plain = gzip.decompress(body) if want == "gzip" else zlib.decompress(body) if want else body
            out = {o["name"]: o["data"] for o in json.loads(plain)["outputs"]}
            ensure(out["OUTPUT0"] == [2 * i for i in range(16)], f"Accept-Encoding {accept!r}: {out}")
            seen.append(f"{accept}->{want or 'identity'}")
        return ", ".join(seen)
    ck.run("infer simple: responses compressed as Accept-Encoding asks", compressed_raw)

    def compressed_bad():  # not gzip at all, cut short, trailing bytes, an unknown coding: 400, named
        text = json.dumps({"inputs": [{"name": n, "shape": [1, 16], "datatype": "INT32", "data": [1] * 16}
                                      for n in ("INPUT0", "INPUT1")]}).encode()
        z = gzip.compress(text)
        seen = []
        for enc, body, words in (("gzip", text, "not valid gzip"), ("gzip", z[:len(z) // 2], "not valid gzip"),
                                 ("deflate", zlib.compress(text) + b"xx", "after the end"),
                                 ("br", text, "content-encoding 'br'")):
            st, _, rb = raw(srv.port, "POST", "/v2/models/simple/infer", body,
                            {"Content-Type": "application/json", "Content-Encoding": enc})
            msg = error_message(rb)
            ensure(st == 400 and words in msg.lower(), f"{enc}: {st} {msg!r}, expected 400 naming {words!r}")
            seen.append(msg)
        ensure(c.is_server_live(), "server not live after them")
        return " | ".join(seen)
    ck.run("infer simple: bad compressed bodies refused (400) with the reason", compressed_bad)

    def nonfinite():  # JSON NaN / Infinity, as Triton reads and writes them
        st, _, body = infer_json(srv.port, "versioned", [("X", "FP32", [1, 4], [1.5, 2.5, 3.5, 4.5])],
                                 extra={"outputs": [{"name": "Y", "parameters": {"binary_data": False}}]})
        ensure(st == 200, f"{st} {error_message(body)}")
        text = json.dumps({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
                                       "data": [float("nan"), float("inf"), float("-inf"), 1.5]}],
                           "outputs": [{"name": "Y", "parameters": {"binary_data": False}}]})
        st, _, body = raw(srv.port, "POST", "/v2/models/versioned/infer", text.encode())
        ensure(st == 200, f"{st} {error_message(body)}")
        y = np.array(json.loads(body)["outputs"][0]["data"], np.float32)
        ensure(np.isnan(y[0]) and y[1] == np.inf and y[2] == -np.inf and y[3] == 201.5, f"Y {y}")
        return "NaN, Infinity, -Infinity in and out"
    ck.run("infer versioned: NaN and infinities in JSON", nonfinite)

    def classify_one():
        x1 = x[:1]
        r = c.infer("cnn", [inp("input", x1, "FP32", True)],
                    outputs=[httpclient.InferRequestedOutput("logits", class_count=2)])
        got = r.as_numpy("logits")
        ensure(got.shape == (1, 2), f"shape {got.shape}, expected (1, 2) (batch 1, 2 classes): {got}")
        return f"{got.tolist()}"
    ck.run("classification: batch 1 keeps its batch dimension", classify_one)

    def versions():
        x = rng.standard_normal((2, 4)).astype(np.float32)
        got = {}
        for v in ("1", "2", ""):
            r = c.infer("versioned", [inp("X", x, "FP32", False)], model_version=v,
                        outputs=[httpclient.InferRequestedOutput("Y", binary_data=False)])
            got[v] = r.as_numpy("Y")
            ensure(str(r.get_response().get("model_version")) == (v or "2"),
                   f"version {v!r}: response model_version {r.get_response().get('model_version')!r}")
        equal(got["1"], x + np.float32(100))
        equal(got["2"], x + np.float32(200))
        equal(got[""], x + np.float32(200))
        return "version 1 adds 100, version 2 adds 200, no version: the highest"
    ck.run("versions: versioned 1, 2 and the default", versions)

    def statistics():
        before = get_stats(c, "simple")
        sizes = [1, 2, 3, 1, 5]
        for n in sizes:
            c.infer("simple", simple_inputs(rng, n, True)[2])
        after = get_stats(c, "simple")
        ds = after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
        di = after["inference_count"] - before["inference_count"]
        de = after["execution_count"] - before["execution_count"]
        ensure(ds == len(sizes) and di == sum(sizes) and de == len(sizes),
               f"success +{ds}, inference_count +{di}, execution_count +{de}; expected +{len(sizes)}, "
               f"+{sum(sizes)}, +{len(sizes)}")
        ensure(after["name"] == "simple" and str(after["version"]) == "1", f"name/version {after['name']} "
               f"{after['version']}")
        ensure(after["last_inference"] > 0, f"last_inference {after['last_inference']}")
        bsizes = {int(b["batch_size"]) for b in after.get("batch_stats", [])}
        ensure({1, 2, 3, 5} <= bsizes, f"batch_stats sizes {sorted(bsizes)}")
        for k in ("queue", "compute_input", "compute_infer", "compute_output"):
            ensure(after["inference_stats"][k]["count"] >= len(sizes), f"{k} count {after['inference_stats'][k]}")
        every = c.get_inference_statistics()["model_stats"]
        names = {(s["name"], str(s["version"])) for s in every}
        ensure({("versioned", "1"), ("versioned", "2"), ("cnn", "1")} <= names, f"all-model stats: {sorted(names)}")
        return f"success +{ds}, inference_count +{di}, execution_count +{de}, batch sizes {sorted(bsizes)}"
    ck.run("statistics: counts move with 5 requests", statistics)


# ---- 3. concurrency and dynamic batching --------------------------------------------------------

def kiln_run(kiln, model, x, tmp, tag):
    xp = os.path.join(tmp, f"{tag}.npy")
    od = os.path.join(tmp, f"{tag}_out")
    np.save(xp, x)
    r = subprocess.run([kiln, "run", model, "-i", f"input={xp}", "-o", od, "-t", "1"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"kiln run: exit {r.returncode}: {r.stderr.strip()}")
    return np.load(os.path.join(od, "logits.npy"))


def run_threads(url, n, fn, args):
    """fn(client, arg) for every arg on n threads, each with its own client; results in order
    (an exception is returned in its place)."""
    clients, lock = [], threading.Lock()
    local = threading.local()

    def one(arg):
        if not hasattr(local, "c"):
            local.c = httpclient.InferenceServerClient(url, network_timeout=120)
            with lock:
                clients.append(local.c)
        try:
            return fn(local.c, arg)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            return e
    try:
        with ThreadPoolExecutor(n) as ex:
            return list(ex.map(one, args))
    finally:
        for cl in clients:
            cl.close()


def group_concurrency(ck, srv, repo, kiln, tmp):
    model = model_path(repo, "cnn")
    rng = np.random.default_rng(11)
    xs = [rng.standard_normal((int(rng.integers(1, 5)), 1, 28, 28)).astype(np.float32) for _ in range(64)]

    def one(client, i):
        r = client.infer("cnn", [inp("input", xs[i], "FP32", i % 2 == 0)],
                         outputs=[httpclient.InferRequestedOutput("logits", binary_data=i % 3 != 0)])
        return r.as_numpy("logits")
    t0 = time.time()
    got = run_threads(srv.url, 16, one, range(64))
    wall = time.time() - t0
    errors = [(i, g) for i, g in enumerate(got) if isinstance(g, Exception)]
    ck.check("64 requests from 16 threads: all answered", not errors,
             f"{len(errors)} failed, first: request {errors[0][0]}: {one_line(errors[0][1])}" if errors else "",
             f"{sum(len(x) for x in xs)} images in {wall:.2f} s")
    with ThreadPoolExecutor(2) as ex:
        ref = list(ex.map(lambda i: kiln_run(kiln, model, xs[i], tmp, f"cc{i}"), range(64)))
    errs = [norm_err(g, r) if not isinstance(g, Exception) else float("inf") for g, r in zip(got, ref)]
    worst = int(np.argmax(errs))
    ck.check("64 requests from 16 threads: each equals `kiln run` on its input", max(errs) <= 1e-5,
             f"request {worst} (batch {len(xs[worst])}): normalized error {errs[worst]:.3g}",
             f"max normalized error {max(errs):.2g}")

    # a burst of batch-1 requests, all released at once: the batcher must combine them
    n = 48
    burst = rng.standard_normal((n, 1, 1, 28, 28)).astype(np.float32)
    barrier = threading.Barrier(16)

    def one_burst(client, i):
        ins = [inp("input", burst[i], "FP32", True)]
        if i < 16:
            barrier.wait(30)
        return client.infer("cnn", ins).as_numpy("logits")
    before = get_stats(srv.client, "cnn")
    got = run_threads(srv.url, 16, one_burst, range(n))
    after = get_stats(srv.client, "cnn")
    ds = after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
    de = after["execution_count"] - before["execution_count"]
    di = after["inference_count"] - before["inference_count"]
    bad = [g for g in got if isinstance(g, Exception)]
    sizes = sorted(int(b["batch_size"]) for b in after.get("batch_stats", []))
    ck.check("burst of 48 batch-1 requests: batched", not bad and ds == n and di == n and de < n,
             f"{len(bad)} failed ({one_line(bad[0]) if bad else ''}); success +{ds}, inference_count +{di}, "
             f"execution_count +{de} (expected < {n})",
             f"{n} requests in {de} executions; batch sizes seen {sizes}")
    if not bad:
        ref = kiln_run(kiln, model, burst[:, 0], tmp, "burst")
        err = max(norm_err(g, ref[i:i + 1]) for i, g in enumerate(got))
        ck.check("burst of 48 batch-1 requests: each equals `kiln run`", err <= 1e-5,
                 f"max normalized error {err:.3g}", f"max normalized error {err:.2g}")

    # BYTES through the batcher: 16 requests of 1..2 rows, stacked and split again
    words = [np.array([[f"w{i}-{k}" + "é" * (i % 3), "" if i % 4 == 0 else "x" * i] for k in range(1 + i % 2)],
                      dtype=np.object_) for i in range(16)]
    barrier16 = threading.Barrier(16)

    def one_words(client, i):
        ins = [inp("IN", words[i], "BYTES", i % 2 == 0)]
        barrier16.wait(30)
        out = client.infer("words", ins, outputs=[httpclient.InferRequestedOutput("OUT", binary_data=i % 3 == 0)])
        return out.as_numpy("OUT")
    before = get_stats(srv.client, "words")
    got = run_threads(srv.url, 16, one_words, range(16))
    after = get_stats(srv.client, "words")
    de = after["execution_count"] - before["execution_count"]

    def same(g, w):
        return not isinstance(g, Exception) and g.shape == w.shape and all(
            (a.decode() if isinstance(a, bytes) else a) == b for a, b in zip(g.ravel(), w.ravel()))
    wrong = [i for i in range(16) if not same(got[i], words[i])]
    ck.check("BYTES batched: 16 concurrent requests each get their own strings back", not wrong and de < 16,
             f"requests {wrong} wrong (first: {got[wrong[0]] if wrong else ''}); {de} executions",
             f"16 requests in {de} executions")


# ---- 4. metrics ----------------------------------------------------------------------------------

METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} (\S+)$')


def parse_metrics(text):
    """{(name, frozenset of label items): value} of the sample lines."""
    out = {}
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def group_metrics(ck, srv):
    stats = get_stats(srv.client, "cnn")
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=30) as r:
        ctype = r.headers.get("Content-Type", "")
        page = r.read().decode()
    ck.check("metrics page: text/plain", ctype.startswith("text/plain"), f"Content-Type {ctype!r}", ctype)
    metrics = parse_metrics(page)
    cnn = frozenset({("model", "cnn"), ("version", "1")})
    want = {"nv_inference_request_success": stats["inference_stats"]["success"]["count"],
            "nv_inference_count": stats["inference_count"],
            "nv_inference_exec_count": stats["execution_count"]}
    for name, v in want.items():
        got = metrics.get((name, cnn))
        ck.check(f'metrics: {name}{{model="cnn",version="1"}}', got == v,
                 f"{got}, statistics say {v}" if got is not None else "missing", f"{got:g}" if got else "")
    fails = {k: v for k, v in metrics.items() if k[0] == "nv_inference_request_failure" and ("model", "cnn") in k[1]}
    ck.check("metrics: nv_inference_request_failure of cnn, by reason", len(fails) >= 1,
             "missing", ", ".join(sorted(dict(k[1]).get("reason", "?") for k in fails)))
    for name in ("nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us",
                 "nv_inference_request_duration_us"):
        got = metrics.get((name, cnn))
        ck.check(f"metrics: {name} of cnn > 0", got is not None and got > 0, f"{got}", f"{got:g}" if got else "")
    versions = {dict(k[1]).get("version") for k in metrics
                if k[0] == "nv_inference_request_success" and ("model", "versioned") in k[1]}
    ck.check("metrics: a series per version of versioned", versions == {"1", "2"}, f"versions {versions}")
    promtool = shutil.which("promtool")
    if not promtool:
        ck.fail("promtool check metrics", "promtool not found (Debian package prometheus)")
        return
    r = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True, text=True)
    problems = [s for s in (r.stdout + r.stderr).splitlines() if s.strip()]
    # exit 1: the page does not parse; exit 3: lints. Triton's own metric names (nv_inference_count,
    # nv_inference_compute_infer_duration_us, ...) break three of promtool's naming rules; kiln keeps
    # them for Triton's dashboards, so only those lints on nv_* series are let through
    triton_lints = ('counter metrics should have "_total" suffix', "should not contain abbreviated units",
                    'non-histogram and non-summary metrics should not have "_count" suffix')
    other = [p for p in problems if not (p.startswith("nv_") and any(t in p for t in triton_lints))]
    ck.check("promtool check metrics", r.returncode in (0, 3) and not other,
             f"exit {r.returncode}: {other[:5]}",
             "parses; " + (f"{len(problems)} lints, all on Triton's metric names" if problems else "no lint"))


# ---- 5. bad requests ----------------------------------------------------------------------------

def group_bad_requests(ck, srv, kiln, repo):
    c, port = srv.client, srv.port
    ones = [1] * 16

    def bad(name, resp, status, *must_contain):
        st, _, body = resp
        msg = error_message(body)
        missing = [s for s in must_contain if s.lower() not in msg.lower()]
        live = c.is_server_live()
        ck.check(name, st == status and not missing and live,
                 f"got {st} {msg!r}, expected {status}" + (f" naming {missing}" if missing else "")
                 + ("" if live else "; the server is not live after it"), f"{st}: {msg}")

    before = get_stats(c, "simple")["inference_stats"]["fail"]["count"]
    simple_bad = 0
    hdr = {"Content-Type": "application/json"}
    bad("malformed JSON body", raw(port, "POST", "/v2/models/simple/infer", b'{"inputs": [{"name": "INPUT0",', hdr),
        400, "JSON")
    simple_bad += 1
    head = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": 64}},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": 64}}]}).encode()
    bad("binary_data_size larger than the bytes sent",
        raw(port, "POST", "/v2/models/simple/infer", head + b"\0" * 96,
            {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}),
        400, "INPUT1")
    simple_bad += 1
    bad("shape mismatch (names the input, expected and received shape)",
        infer_json(port, "simple", [("INPUT0", "INT32", [1, 15], ones[:15]), ("INPUT1", "INT32", [1, 16], ones)]),
        400, "INPUT0", "15", "16")
    simple_bad += 1
    bad("batch over max_batch_size (says batch)",
        infer_json(port, "simple", [("INPUT0", "INT32", [9, 16], ones * 9), ("INPUT1", "INT32", [9, 16], ones * 9)]),
        400, "INPUT0", "batch", "8")
    simple_bad += 1
    bad("wrong datatype (names both)",
        infer_json(port, "simple", [("INPUT0", "FP32", [1, 16], [1.5] * 16), ("INPUT1", "INT32", [1, 16], ones)]),
        400, "INPUT0", "FP32", "INT32")
    simple_bad += 1
    bad("missing input", infer_json(port, "simple", [("INPUT0", "INT32", [1, 16], ones)]), 400, "INPUT1")
    simple_bad += 1
    bad("unknown input", infer_json(port, "simple", [("INPUT0", "INT32", [1, 16], ones),
                                                     ("INPUT1", "INT32", [1, 16], ones),
                                                     ("INPUT9", "INT32", [1, 16], ones)]), 400, "INPUT9")
    simple_bad += 1
    bad("data count does not match the shape",
        infer_json(port, "simple", [("INPUT0", "INT32", [1, 16], ones[:10]), ("INPUT1", "INT32", [1, 16], ones)]),
        400, "INPUT0")
    simple_bad += 1
    bad("unknown output requested",
        infer_json(port, "simple", [("INPUT0", "INT32", [1, 16], ones), ("INPUT1", "INT32", [1, 16], ones)],
                   extra={"outputs": [{"name": "OUTPUT7"}]}), 400, "OUTPUT7")
    simple_bad += 1
    bad("Inference-Header-Content-Length beyond the body",
        raw(port, "POST", "/v2/models/simple/infer", b'{"inputs": []}', {"Inference-Header-Content-Length": "100"}),
        400, "Inference-Header-Content-Length")
    simple_bad += 1
    bad("binary data beyond the declared sizes",
        raw(port, "POST", "/v2/models/simple/infer", head + b"\0" * 130,
            {"Inference-Header-Content-Length": str(len(head))}), 400, "bytes")
    simple_bad += 1
    bad("empty body", raw(port, "POST", "/v2/models/simple/infer", b""), 400, "empty")
    simple_bad += 1
    bad("inputs disagree on the batch dimension",
        infer_json(port, "simple", [("INPUT0", "INT32", [1, 16], ones), ("INPUT1", "INT32", [2, 16], ones * 2)]),
        400, "batch")
    simple_bad += 1
    bad("INT32 value out of range",
        infer_json(port, "simple", [("INPUT0", "INT32", [1, 16], [2 ** 31] * 16), ("INPUT1", "INT32", [1, 16], ones)]),
        400, "INPUT0", "range")
    simple_bad += 1
    bad("a number for a BYTES element", infer_json(port, "strings", [("TEXT", "BYTES", [1, 3], ["a", 1, "b"])]),
        400, "TEXT")
    bad("unknown model (404)", infer_json(port, "nosuch", [("INPUT0", "INT32", [1, 16], ones)]), 404, "nosuch")
    bad("unknown version (404)",
        infer_json(port, "simple", [("INPUT0", "INT32", [1, 16], ones), ("INPUT1", "INT32", [1, 16], ones)],
                   version="7"), 404, "simple", "7")
    bad("unknown route (404)", raw(port, "GET", "/v2/nothing/here"), 404)
    bad("GET on infer (405)", raw(port, "GET", "/v2/models/simple/infer"), 405)

    x = np.ones((1, 8), np.float16)
    ck.expect_error("FP16 data in JSON (client, 400)", lambda: c.infer("half", [inp("X", x, "FP16", False)]),
                    400, "X")
    ck.expect_error("FP16 output asked for in JSON (400)",
                    lambda: c.infer("half", [inp("X", x, "FP16", True)],
                                    outputs=[httpclient.InferRequestedOutput("H", binary_data=False)]), 400, "H")
    ck.expect_error("unknown model through the client (404)",
                    lambda: c.infer("nosuch", [inp("X", x, "FP16", True)]), 404, "nosuch")
    ck.expect_error("unknown version through the client (404)",
                    lambda: c.infer("versioned", [inp("X", np.ones((1, 4), np.float32), "FP32", True)],
                                    model_version="3"), 404, "versioned")
    after = get_stats(c, "simple")["inference_stats"]["fail"]["count"]
    ck.check("failed requests counted in the statistics", after - before == simple_bad,
             f"fail count +{after - before}, expected +{simple_bad}", f"fail count +{after - before}")
    ck.check("server live after the bad requests", c.is_server_live() and c.is_model_ready("simple"))

    with Server(kiln, repo, "--max-request-size", "4096") as small:
        small_req = infer_json(small.port, "simple", [("INPUT0", "INT32", [1, 16], ones),
                                                      ("INPUT1", "INT32", [1, 16], ones)])
        ck.check("--max-request-size 4096: a small request passes", small_req[0] == 200,
                 f"{small_req[0]} {error_message(small_req[2])}")
        big = infer_json(small.port, "simple", [("INPUT0", "INT32", [1, 16], ones), ("INPUT1", "INT32", [1, 16], ones)],
                         extra={"id": "x" * 6000})
        st, msg = big[0], error_message(big[2])
        ck.check("--max-request-size 4096: an 8 kB body is refused (400)",
                 st == 400 and ("4096" in msg or "limit" in msg.lower()) and small.client.is_server_live(),
                 f"{st} {msg!r}", f"{st}: {msg}")

        def chunked():  # no Content-Length: the limit applies while the body comes in
            conn = http.client.HTTPConnection("127.0.0.1", small.port, timeout=60)
            try:
                body = json.dumps({"id": "y" * 9000, "inputs": []}).encode()
                conn.request("POST", "/v2/models/simple/infer", body=iter([body[i:i + 1000]
                                                                             for i in range(0, len(body), 1000)]),
                             headers={"Content-Type": "application/json"}, encode_chunked=True)
                r = conn.getresponse()
                msg = error_message(r.read())
                ensure(r.status == 400, f"{r.status} {msg!r}")
                ensure(small.client.is_server_live(), "server not live after it")
                return f"{r.status}: {msg}"
            finally:
                conn.close()
        ck.run("--max-request-size 4096: a 9 kB chunked body is refused (400)", chunked)

        def bomb():  # a small gzip body that inflates past the limit
            body = json.dumps({"id": " " * 100000, "inputs": []}).encode()
            z = gzip.compress(body)
            st, _, rb = raw(small.port, "POST", "/v2/models/simple/infer", z,
                            {"Content-Type": "application/json", "Content-Encoding": "gzip"})
            msg = error_message(rb)
            ensure(len(z) < 4096 and st == 400 and "4096" in msg, f"{len(z)} bytes: {st} {msg!r}")
            ensure(small.client.is_server_live(), "server not live after it")
            return f"{len(z)} bytes inflating to {len(body)}: {msg}"
        ck.run("--max-request-size 4096: a gzip body inflating past it is refused (400)", bomb)
        rc = small.stop()
        ck.check("--max-request-size 4096: exit 0 on SIGTERM", rc == 0, f"exit {rc}: {small.stderr()[-300:]}")


# ---- 6. explicit model control ----------------------------------------------------------------------

def group_explicit(ck, kiln, repo, main_client):
    ck.expect_error("mode none: load_model answers an error", lambda: main_client.load_model("cnn"), 400, "explicit")
    ck.expect_error("mode none: unload_model answers an error", lambda: main_client.unload_model("cnn"), 400,
                    "explicit")
    ck.check("mode none: cnn still ready after the refused unload", main_client.is_model_ready("cnn"))
    tmp = tempfile.mkdtemp(prefix="kiln-check-tmp-")  # the server's TMPDIR: file overrides go there
    with Server(kiln, repo, "--model-control-mode", "explicit", "--load-model", "simple",
                env=dict(os.environ, TMPDIR=tmp)) as srv:
        c = srv.client
        ck.check("explicit: server ready", srv.ready, srv.stderr()[-400:])
        ready = {m: c.is_model_ready(m) for m in MODELS}
        ck.check("explicit: only simple ready at start", ready["simple"] and not any(
            v for m, v in ready.items() if m != "simple"), f"{ready}")
        idx = c.get_model_repository_index()
        names = {e["name"] for e in idx}
        ck.check("explicit: the index lists every model directory", set(MODELS) <= names, f"{idx}")
        x = np.zeros((1, 1, 28, 28), np.float32)
        ck.expect_error("explicit: infer on cnn before its load (404)", lambda: c.infer("cnn", [inp("input", x, "FP32", True)]),
                        404, "cnn")

        def load():
            c.load_model("cnn")
            ensure(c.is_model_ready("cnn"), "cnn not ready after load_model")
            r = c.infer("cnn", [inp("input", x, "FP32", True)]).as_numpy("logits")
            ensure(r.shape == (1, 10), f"logits shape {r.shape}")
            return "ready, answers"
        ck.run("explicit: load_model('cnn')", load)

        def reload():
            c.load_model("simple")
            ensure(c.is_model_ready("simple"), "simple not ready after its reload")
            return "still ready"
        ck.run("explicit: load_model('simple') again (reload)", reload)
        ck.expect_error("explicit: load_model of a missing directory", lambda: c.load_model("nosuch"), 400, "nosuch")
        ck.check("explicit: a failed load of a missing directory leaves the server ready", c.is_server_ready(),
                 "GET /v2/health/ready answers 503; the index says "
                 f"{[e for e in c.get_model_repository_index() if e['name'] == 'nosuch']}")

        def unload():
            c.unload_model("cnn")
            ensure(not c.is_model_ready("cnn"), "cnn still ready after unload_model")
            ensure(c.is_model_ready("simple"), "simple no longer ready")
            st = {e["name"]: e.get("state") for e in c.get_model_repository_index()}
            ensure(st.get("cnn") != "READY", f"index says cnn {st.get('cnn')}")
            return f"index says cnn {st.get('cnn')}"
        ck.run("explicit: unload_model('cnn')", unload)
        ck.expect_error("explicit: infer on cnn after its unload (404)",
                        lambda: c.infer("cnn", [inp("input", x, "FP32", True)]), 404, "cnn")
        ck.expect_error("explicit: unload_model of an unknown model", lambda: c.unload_model("neverseen"), 400,
                        "neverseen")

        def override():  # the load request's "config" replaces config.pbtxt until a load without one
            base = c.get_model_config("simple")
            ensure(base["max_batch_size"] > 2, f"simple's max_batch_size {base['max_batch_size']}")
            c.load_model("simple", config=json.dumps(base))  # its own JSON form reads back the same
            same = c.get_model_config("simple")
            ensure(same == base, f"after loading its own JSON: {same} != {base}")
            small = dict(base, max_batch_size=2, dynamic_batching={"max_queue_delay_microseconds": "100"})
            c.load_model("simple", config=json.dumps(small))
            got = c.get_model_config("simple")
            ensure(got["max_batch_size"] == 2 and int(got["dynamic_batching"]["max_queue_delay_microseconds"]) == 100,
                   f"after the override: {got}")
            a, b, ins = simple_inputs(np.random.default_rng(3), 3, True)
            try:
                c.infer("simple", ins)
                raise AssertionError("a batch of 3 answered with max_batch_size 2")
            except InferenceServerException as e:
                ensure(str(e.status()) == "400" and "batch" in e.message(), f"{e.status()} {e.message()}")
            a, b, ins = simple_inputs(np.random.default_rng(3), 2, True)
            equal(c.infer("simple", ins).as_numpy("OUTPUT0"), a + b)
            c.load_model("simple")
            back = c.get_model_config("simple")
            ensure(back["max_batch_size"] == base["max_batch_size"], f"after a load without config: {back}")
            return f"max_batch_size {base['max_batch_size']} -> 2 -> {back['max_batch_size']}"
        ck.run("explicit: load_model with a config override (Triton's JSON form)", override)
        ck.expect_error("explicit: a config override with a bad value is refused, naming the field",
                        lambda: c.load_model("simple", config=json.dumps({"max_batch_size": "many"})), 400,
                        "max_batch_size")
        ck.expect_error("explicit: a config override with a field kiln does not implement is refused",
                        lambda: c.load_model("simple", config=json.dumps(
                            {"sequence_batching": {"max_sequence_idle_microseconds": "1000"}})), 400,
                        "sequence_batching")
        ck.expect_error("explicit: a config override that is not JSON is refused",
                        lambda: c.load_model("simple", config="max_batch_size: 2"), 400, "JSON")
        with open(os.path.join(repo, "simple", "1", "model.onnx"), "rb") as f:
            simple_onnx = f.read()

        def new_model():  # a model the repository does not have, from its files alone
            c.load_model("sum_override", config=json.dumps({"backend": "onnxruntime", "max_batch_size": 8}),
                         files={"file:3/model.onnx": simple_onnx})
            ensure(c.is_model_ready("sum_override", "3"), "sum_override version 3 not ready")
            a, b, ins = simple_inputs(np.random.default_rng(5), 2, True)
            equal(c.infer("sum_override", ins).as_numpy("OUTPUT0"), a + b)
            idx = {(e["name"], e.get("version")) for e in c.get_model_repository_index()}
            ensure(("sum_override", "3") in idx, f"index: {idx}")
            ensure(os.listdir(tmp) == [], f"left in TMPDIR: {os.listdir(tmp)}")
            c.unload_model("sum_override")
            ensure(not c.is_model_ready("sum_override"), "sum_override ready after its unload")
            return "version 3 served, answers a + b; TMPDIR empty after the load"
        ck.run("explicit: load_model with file overrides, a new model", new_model)

        def other_versions():  # an existing model from the files: its versions are theirs until a plain load
            cfg = c.get_model_config("simple")
            c.load_model("simple", config=json.dumps(cfg), files={"file:7/model.onnx": simple_onnx})
            ensure(c.is_model_ready("simple", "7") and not c.is_model_ready("simple", "1"),
                   "simple not served as version 7 alone")
            a, b, ins = simple_inputs(np.random.default_rng(6), 2, True)
            equal(c.infer("simple", ins, model_version="7").as_numpy("OUTPUT0"), a + b)
            c.load_model("simple")
            ensure(c.is_model_ready("simple", "1") and not c.is_model_ready("simple", "7"),
                   "simple not back to version 1 after a plain load")
            ensure(os.listdir(tmp) == [], f"left in TMPDIR: {os.listdir(tmp)}")
            return "versions 1 -> 7 -> 1"
        ck.run("explicit: load_model with file overrides, an existing model", other_versions)
        ck.expect_error("explicit: file overrides without a config are refused, naming 'config'",
                        lambda: c.load_model("simple", files={"file:1/model.onnx": simple_onnx}), 400, "config")
        st, _, body = raw(srv.port, "POST", "/v2/repository/models/simple/load",
                          json.dumps({"parameters": {"config": "{}", "file:1/model.onnx": "AAA*"}}).encode())
        ck.check("explicit: a file override that is not base64 is refused (400), naming it", st == 400 and
                 "file:1/model.onnx" in error_message(body), f"{st} {error_message(body)}")
        ck.expect_error("explicit: a file override out of the model's directory is refused, naming it",
                        lambda: c.load_model("simple", config="{}", files={"file:../1/model.onnx": simple_onnx}),
                        400, "file:../1/model.onnx")
        ck.expect_error("explicit: file overrides of a model that does not load are refused",
                        lambda: c.load_model("simple", config="{}", files={"file:1/model.onnx": b"not onnx"}),
                        400, "simple")
        ck.check("explicit: simple still served after the refused overrides, TMPDIR empty",
                 c.is_model_ready("simple") and c.get_model_config("simple")["max_batch_size"] > 2 and
                 os.listdir(tmp) == [], f"TMPDIR: {os.listdir(tmp)}")
        ck.check("explicit: server live, simple ready at the end", c.is_server_live() and c.is_model_ready("simple"))
        rc = srv.stop()
        ck.check("explicit: exit 0 on SIGTERM", rc == 0, f"exit {rc}: {srv.stderr()[-300:]}")
    shutil.rmtree(tmp, ignore_errors=True)


# ---- 7. poll mode ---------------------------------------------------------------------------------------

def wait_for(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return True
        except Exception:  # noqa: BLE001 - not yet
            pass
        time.sleep(0.1)
    return False


def group_poll(ck, kiln, repo, tmp):
    prepo = os.path.join(tmp, "poll_repo")
    os.makedirs(prepo)
    for m in ("simple", "versioned"):
        shutil.copytree(os.path.join(repo, m), os.path.join(prepo, m))
    with Server(kiln, prepo, "--model-control-mode", "poll", "--repository-poll-secs", "1") as srv:
        c = srv.client
        ck.check("poll: simple and versioned ready, noconfig not", srv.ready and c.is_model_ready("simple")
                 and c.is_model_ready("versioned") and not c.is_model_ready("noconfig"), srv.stderr()[-400:])

        staged = os.path.join(prepo, ".staging")
        shutil.copytree(os.path.join(repo, "noconfig"), staged)
        t0 = time.time()
        os.rename(staged, os.path.join(prepo, "noconfig"))
        added = wait_for(lambda: c.is_model_ready("noconfig"), 15)
        ck.check("poll: a model directory added is served", added, "noconfig not ready after 15 s",
                 f"ready after {time.time() - t0:.1f} s")
        if added:
            xx = np.ones((2, 3), np.float32)
            ck.run("poll: the added model answers",
                   lambda: close(c.infer("noconfig", [inp("X", xx, "FP32", True)]).as_numpy("Y"),
                                 ort_run(model_path(repo, "noconfig"), {"X": xx})[0]))

        # reload under load: two clients loop on versioned while version 2 changes from +200 to +250
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        for _ in range(3):
            c.infer("versioned", [inp("X", x, "FP32", True)], model_version="1")

        def v1_count():  # a version reloaded starts its statistics again
            return get_stats(c, "versioned", "1")["inference_stats"]["success"]["count"]
        v1_before = v1_count()
        stop = threading.Event()
        logs = [[], []]

        def loop(k):
            cl = srv.new_client()
            try:
                while not stop.is_set():
                    try:
                        y = cl.infer("versioned", [inp("X", x, "FP32", k == 0)]).as_numpy("Y")
                        logs[k].append(float(y[0, 0] - x[0, 0]) if np.array_equal(y - y[0, 0], x - x[0, 0]) else "bad")
                    except Exception as e:  # noqa: BLE001 - counted
                        logs[k].append(one_line(e))
            finally:
                cl.close()
        threads = [threading.Thread(target=loop, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            tmpfile = os.path.join(prepo, "versioned", "2", ".model.onnx.tmp")
            onnx.save(versioned_model(250.0), tmpfile)
            t0 = time.time()
            os.replace(tmpfile, os.path.join(prepo, "versioned", "2", "model.onnx"))
            reloaded = wait_for(lambda: any(v == 250.0 for log in logs for v in log[-3:]), 15)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        ck.check("poll: an edited model is reloaded", reloaded, "version 2 still adds 200 after 15 s",
                 f"new outputs after {time.time() - t0 - 0.5:.1f} s")
        failures = [v for log in logs for v in log if v not in (200.0, 250.0)]
        backwards = [k for k, log in enumerate(logs)
                     if 250.0 in log and 200.0 in log[log.index(250.0):]]
        ck.check("poll: clients looping through the reload see no failure", not failures and not backwards
                 and all(logs), f"{len(failures)} failures (first: {failures[:1]}); old outputs after new in "
                 f"client {backwards}", f"{sum(map(len, logs))} requests, all answered, old then new")
        v1_after = v1_count()
        ck.check("poll: version 1 kept (not reloaded) through the edit of version 2", v1_after >= v1_before >= 3,
                 f"its success count went from {v1_before} to {v1_after}",
                 f"success count {v1_before} -> {v1_after}")
        ck.check("poll: version 1 untouched by the edit of version 2",
                 wait_for(lambda: np.array_equal(
                     c.infer("versioned", [inp("X", x, "FP32", True)], model_version="1").as_numpy("Y"), x + 100), 2))

        # a new version directory (version_policy all): served, and the default from then on
        staged = os.path.join(prepo, "versioned", ".v3")
        os.makedirs(staged)
        onnx.save(versioned_model(300.0), os.path.join(staged, "model.onnx"))
        t0 = time.time()
        os.rename(staged, os.path.join(prepo, "versioned", "3"))
        v3 = wait_for(lambda: c.is_model_ready("versioned", "3"), 15)
        ck.check("poll: a version directory added is served", v3 and np.array_equal(
            c.infer("versioned", [inp("X", x, "FP32", True)]).as_numpy("Y"), x + 300),
            "version 3 not ready, or not the default, after 15 s", f"ready after {time.time() - t0:.1f} s")
        ck.check("poll: versions 1 and 2 kept when version 3 is added", v1_count() >= v1_after + 1,
                 f"version 1's success count {v1_count()}, was {v1_after} + 1")

        # a broken edit: the reload fails, the versions already served stay
        broken = os.path.join(prepo, "versioned", "2", ".broken.tmp")
        with open(broken, "wb") as f:
            f.write(b"this is not an ONNX model")
        os.replace(broken, os.path.join(prepo, "versioned", "2", "model.onnx"))
        time.sleep(2.5)

        def kept():
            equal(c.infer("versioned", [inp("X", x, "FP32", True)], model_version="2").as_numpy("Y"), x + 250)
            ensure(c.is_model_ready("versioned") and c.is_server_ready(), "versioned or the server not ready")
            return "still answers +250, server ready"
        ck.run("poll: a broken edit keeps the served version", kept)

        gone = os.path.join(tmp, "noconfig_removed")
        t0 = time.time()
        os.rename(os.path.join(prepo, "noconfig"), gone)
        removed = wait_for(lambda: not c.is_model_ready("noconfig"), 15)
        ck.check("poll: a model directory removed is unloaded", removed, "noconfig still ready after 15 s",
                 f"unloaded after {time.time() - t0:.1f} s")
        ck.expect_error("poll: the removed model answers 404",
                        lambda: c.infer("noconfig", [inp("X", np.ones((2, 3), np.float32), "FP32", True)]), 404,
                        "noconfig")
        ck.check("poll: server live, other models ready", c.is_server_live() and c.is_model_ready("simple")
                 and c.is_model_ready("versioned"))
        rc = srv.stop()
        ck.check("poll: exit 0 on SIGTERM", rc == 0, f"exit {rc}: {srv.stderr()[-300:]}")


# ---- 8. SIGTERM with requests in flight -------------------------------------------------------------------

def pending(metrics_port, model):
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        m = parse_metrics(r.read().decode())
    return m.get(("nv_inference_pending_request_count", frozenset({("model", model), ("version", "1")})), 0)


def slow_batched_model(rng, layers=12, k=1024):
    """slow_model with a batch dimension: X [N,256,1024] (about 0.25 s a request on two cores)."""
    m = slow_model(rng, layers, k)
    for v in (m.graph.input[0], m.graph.output[0]):
        dims = v.type.tensor_type.shape.dim
        dims.insert(0, onnx.TensorShapeProto.Dimension(dim_param="N"))
    return m


def group_queue(ck, kiln, tmp):
    qrepo = os.path.join(tmp, "queue_repo")
    rng = np.random.default_rng(4)
    model = slow_batched_model(rng)
    add_model(qrepo, "full", {1: model},
              "max_batch_size: 1\ndynamic_batching { default_queue_policy { max_queue_size: 1 } }\n")
    add_model(qrepo, "timeout", {1: model}, "max_batch_size: 1\n"
              "dynamic_batching { default_queue_policy { default_timeout_microseconds: 50000 } }\n")
    add_model(qrepo, "delay", {1: slow_batched_model(rng, layers=48)}, "max_batch_size: 1\n"
              "dynamic_batching { default_queue_policy { timeout_action: DELAY allow_timeout_override: true } }\n")
    add_model(qrepo, "priority", {1: slow_batched_model(rng, layers=48)}, "max_batch_size: 1\n"
              "dynamic_batching { priority_levels: 2 default_priority_level: 2\n"
              "  priority_queue_policy { key: 2 value { max_queue_size: 1 } } }\n")
    srv = Server(kiln, qrepo)
    try:
        ck.check("queue: server ready", srv.ready, srv.stderr()[-400:])
        x = rng.standard_normal((1, 256, 1024)).astype(np.float32)

        def burst(model_name, n):
            """n requests at once; the HTTP status of each (200 or the error's)."""
            out = [None] * n
            gate = threading.Barrier(n)

            def one(k):
                cl = srv.new_client()
                try:
                    gate.wait()
                    cl.infer(model_name, [inp("X", x, "FP32", True)])
                    out[k] = ("200", "")
                except InferenceServerException as e:
                    out[k] = (str(e.status()), e.message() or "")
                except Exception as e:  # noqa: BLE001
                    out[k] = ("?", one_line(e))
                finally:
                    cl.close()
            threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            return out

        # one runs, one waits in the queue (max_queue_size 1), two find the queue full
        r = burst("full", 4)
        ok = sum(1 for st, _ in r if st == "200")
        full = sum(1 for st, msg in r if st == "503" and "queue" in msg and "full" in msg)
        ck.check("queue: past max_queue_size, requests are rejected with 503", ok == 2 and full == 2,
                 f"answers {r}", f"2 answered, 2 rejected: {next(m for s_, m in r if s_ == '503')!r}")
        # one runs (about 0.25 s); the two queued behind it time out after 50 ms
        t0 = time.time()
        r = burst("timeout", 3)
        took = time.time() - t0
        ok = sum(1 for st, _ in r if st == "200")
        late = sum(1 for st, msg in r if st == "503" and "timeout" in msg)
        ck.check("queue: a request queued past its timeout is answered 503", ok == 1 and late == 2,
                 f"answers {r}", f"1 answered, 2 timed out ({took:.2f} s for the burst)")
        # DELAY: a queued request past its timeout yields to one still within its own. The times
        # are fractions of one request's run (a sanitizer build runs ten times slower).
        t0 = time.time()
        srv.client.infer("delay", [inp("X", x, "FP32", True)])
        run = time.time() - t0

        def timed(model_name, plan):
            """Sends plan's requests [(tag, when (in runs), infer() options)], each at its time on
            a thread of its own; returns {tag: finish time, or the error}, {tag: send time}."""
            done, sent = {}, {}

            def send(tag, opts):
                cl = srv.new_client()
                try:
                    cl.infer(model_name, [inp("X", x, "FP32", True)], **opts)
                    done[tag] = time.time()
                except Exception as e:  # noqa: BLE001
                    done[tag] = one_line(e)
                finally:
                    cl.close()
            threads = []
            start = time.time()
            for tag, at, opts in plan:
                time.sleep(max(0.0, start + at * run - time.time()))
                sent[tag] = time.time()
                th = threading.Thread(target=send, args=(tag, opts))
                th.start()
                threads.append(th)
            for th in threads:
                th.join(120)
            return done, sent
        # A runs; B queues behind it at 0.1 run with a timeout of 0.2 run; once that has passed,
        # at 0.45 run, D queues with a long one; A must still be running then (else the check
        # says it could not tell). Times only, no polling: polls take as long as a run.
        finished, sent = timed("delay", [("A", 0.0, {}), ("B", 0.1, {"timeout": int(run * 0.2e6)}),
                                         ("D", 0.45, {"timeout": int(run * 10e6)})])
        t_d = sent["D"]
        times_ok = all(isinstance(finished.get(t), float) for t in "ABD")
        reordered = times_ok and finished["D"] < finished["B"]
        told = reordered or (times_ok and finished["A"] > t_d)
        ck.check("queue: DELAY: a request past its timeout runs after one within it", reordered,
                 f"{'' if told else 'could not tell (A ended before D was sent): '}{finished}",
                 f"one run {run:.2f} s; B (timeout 0.2 run) answered after D (sent 0.35 run later)")
        # priority_levels 2, default 2: A runs; B (no priority: level 2) queues at 0.1 run; D (level 2)
        # at 0.25 run finds level 2's queue full (max_queue_size 1 there); C (priority 1) queues at
        # 0.4 run and must run before B. As above, A must still run when C is sent.
        pcfg = srv.client.get_model_config("priority")["dynamic_batching"]
        ck.check("queue: priority levels in the model configuration",
                 pcfg.get("priority_levels") == 2 and pcfg.get("default_priority_level") == 2, f"{pcfg}")
        srv.client.infer("priority", [inp("X", x, "FP32", True)])
        done, sent = timed("priority", [("A", 0.0, {}), ("B", 0.1, {}), ("D", 0.25, {"priority": 2}),
                                        ("C", 0.4, {"priority": 1})])
        t_c = sent["C"]
        times_ok = all(isinstance(done.get(t), float) for t in "ABC")
        first = times_ok and done["C"] < done["B"]
        told = first or (times_ok and done["A"] > t_c)
        ck.check("queue: a priority-1 request queued later runs before a default-level (2) one", first,
                 f"{'' if told else 'could not tell (A ended before C was sent): '}{done}",
                 "C (priority 1, sent 0.3 run after B) answered before B")
        ck.check("queue: a level's own max_queue_size (priority_queue_policy) rejects at that level only",
                 isinstance(done.get("D"), str) and "503" in done["D"] and "priority level 2" in done["D"]
                 and isinstance(done.get("C"), float), f"{done}", f"D: {done.get('D')}")
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=10) as resp:
            page = resp.read().decode()
        rejected = {m: re.search(rf'nv_inference_request_failure{{model="{m}",reason="REJECTED",'
                                 rf'version="1"}} (\d+)', page) for m in ("full", "timeout")}
        counts = {m: int(g.group(1)) if g else None for m, g in rejected.items()}
        ck.check("queue: rejections counted as REJECTED failures", counts == {"full": 2, "timeout": 2},
                 f"{counts}", f"{counts}")
    finally:
        srv.stop()


def group_sigterm(ck, kiln, tmp):
    srepo = os.path.join(tmp, "slow_repo")
    rng = np.random.default_rng(3)
    # 36 layers (about 0.15 s a request): the first request must still run when
    # the fourth arrives, or the pending count never reaches 4
    add_model(srepo, "slow", {1: slow_model(rng, layers=36)})
    srv = Server(kiln, srepo)
    try:
        ck.check("sigterm: server ready", srv.ready, srv.stderr()[-400:])
        xs = [rng.standard_normal((256, 1024)).astype(np.float32) for _ in range(4)]
        results = [None] * 4

        def one(k):
            cl = srv.new_client()
            try:
                t = time.time()
                y = cl.infer("slow", [inp("X", xs[k], "FP32", True)]).as_numpy("Y")
                results[k] = (y, time.time() - t, time.time())
            except Exception as e:  # noqa: BLE001
                results[k] = e
            finally:
                cl.close()
        threads = [threading.Thread(target=one, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        in_flight = wait_for(lambda: pending(srv.metrics_port, "slow") >= 4, 3)
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        try:
            refused = raw(srv.port, "GET", "/v2/health/live", timeout=5)
            refused = f"answered {refused[0]}"
        except OSError as e:
            refused = e
        for t in threads:
            t.join(60)
        try:
            rc = srv.proc.wait(15)
        except subprocess.TimeoutExpired:
            rc = None
        t_exit = time.time()
        exit_s = t_exit - t0
        # the exit follows the last answer (the work in flight sets how long that takes: a
        # sanitizer build runs the slow model ten times slower)
        answered = [r[2] for r in results if isinstance(r, tuple)]
        after_last = t_exit - max(answered) if answered else exit_s
        ck.check("sigterm: 4 slow requests were in flight", in_flight, "pending count never reached 4")
        bad = [(k, r) for k, r in enumerate(results) if not isinstance(r, tuple)]
        ck.check("sigterm: every request in flight answered 200", not bad,
                 f"{len(bad)} failed, first: {one_line(bad[0][1]) if bad else ''}",
                 "latencies " + ", ".join(f"{r[1]:.2f} s" for r in results if isinstance(r, tuple)))
        if not bad:
            path = model_path(srepo, "slow")
            err = max(norm_err(results[k][0], ort_run(path, {"X": xs[k]})[0]) for k in range(4))
            ck.check("sigterm: the answers are right", err <= 1e-4, f"normalized error {err:.3g} vs onnxruntime",
                     f"normalized error {err:.2g} vs onnxruntime")
        ck.check("sigterm: a new connection is refused while finishing", isinstance(refused, OSError),
                 f"{refused}", f"{type(refused).__name__}")
        ck.check("sigterm: exit 0 within seconds of the last answer", rc == 0 and after_last < 5,
                 f"exit {rc} {after_last:.1f} s after the last answer: {srv.stderr()[-300:]}",
                 f"exit 0 after {exit_s:.2f} s, {after_last:.2f} s after the last answer")
        ck.check("sigterm: says it finishes the requests in flight", "finishing the requests in flight" in srv.stderr()
                 and "stopped" in srv.stderr(), srv.stderr()[-300:])
    finally:
        srv.stop()

    # clients that hold connections open: an idle keep-alive one, one whose request headers are
    # incomplete, one that sent its headers but stalls in the body; none may hold the exit long
    srv = Server(kiln, srepo)
    socks = []
    try:
        idle = socket.create_connection(("127.0.0.1", srv.port))
        idle.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: kiln\r\n\r\n")
        idle.recv(4096)
        partial = socket.create_connection(("127.0.0.1", srv.port))
        partial.sendall(b"POST /v2/models/slow/in")
        stalled = socket.create_connection(("127.0.0.1", srv.port))
        stalled.sendall(b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: kiln\r\nContent-Length: 1000\r\n\r\n"
                        b'{"inputs"')
        socks = [idle, partial, stalled]
        time.sleep(0.2)
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            rc = srv.proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        ck.check("sigterm: idle, half-sent and stalled clients do not hold the exit", rc == 0,
                 f"exit {rc}: still running {time.time() - t0:.0f} s after SIGTERM (a client stalled in its "
                 "request body is waited for)" if rc is None else f"exit {rc}", f"exit 0 after {time.time() - t0:.2f} s")
    finally:
        for so in socks:
            so.close()
        srv.stop(timeout=2)


# ---- main -----------------------------------------------------------------------------------------------------

# ---- shared memory ------------------------------------------------------------------------------

def group_shm(ck, kiln, repo, tmp, main_client):
    """Triton's system shared memory extension, with tritonclient's own shm helpers."""
    tag = f"kiln{os.getpid()}"
    handles = []

    def region(name, size):
        h = shm.create_shared_memory_region(name, f"/{tag}_{name}", size)
        handles.append(h)
        return h

    # a server started without --allow-client-shm refuses it, naming the flag
    def off():
        ensure("system_shared_memory" not in main_client.get_server_metadata()["extensions"],
               "listed as an extension while off")
        region("off", 64)
        try:
            main_client.register_system_shared_memory("off", f"/{tag}_off", 64)
        except InferenceServerException as e:
            ensure(str(e.status()) == "400" and "--allow-client-shm" in e.message(), f"{e.status()} {e.message()}")
            return e.message()
        raise AssertionError("registered while off")
    ck.run("shm: off unless --allow-client-shm (register refused, naming the flag)", off)

    try:
        with Server(kiln, repo, "--allow-client-shm") as srv:
            c = srv.client
            ck.check("shm: system_shared_memory listed in the server metadata",
                     "system_shared_memory" in c.get_server_metadata()["extensions"])
            rng = np.random.default_rng(7)
            a = rng.integers(-1000, 1000, (2, 16)).astype(np.int32)
            b = rng.integers(-1000, 1000, (2, 16)).astype(np.int32)
            nb = a.nbytes
            h_in = region("in", 2 * nb)          # INPUT0 at 0, INPUT1 at nb
            h_out = region("out", 2 * nb + 128)  # OUTPUT0 at 0, OUTPUT1 at nb + 64
            shm.set_shared_memory_region(h_in, [a])
            shm.set_shared_memory_region(h_in, [b], offset=nb)
            c.register_system_shared_memory("in", f"/{tag}_in", 2 * nb)
            c.register_system_shared_memory("out", f"/{tag}_out", 2 * nb + 128)

            def infer_shm():
                i0 = httpclient.InferInput("INPUT0", [2, 16], "INT32")
                i0.set_shared_memory("in", nb)
                i1 = httpclient.InferInput("INPUT1", [2, 16], "INT32")
                i1.set_shared_memory("in", nb, offset=nb)
                o0 = httpclient.InferRequestedOutput("OUTPUT0")
                o0.set_shared_memory("out", nb)
                o1 = httpclient.InferRequestedOutput("OUTPUT1")
                o1.set_shared_memory("out", nb + 64, offset=nb + 64)  # room to spare
                r = c.infer("simple", [i0, i1], outputs=[o0, o1])
                for name, off, want in (("OUTPUT0", 0, a + b), ("OUTPUT1", nb + 64, a - b)):
                    got = r.get_output(name)
                    ensure("data" not in got, f"{name}: data in the response {got}")
                    p = got.get("parameters", {})
                    ensure(p.get("shared_memory_region") == "out" and p.get("shared_memory_byte_size") == nb,
                           f"{name}: parameters {p}")
                    equal(shm.get_contents_as_numpy(h_out, np.int32, [2, 16], offset=off), want)
                return "INPUT0/1 read from region 'in', OUTPUT0/1 written to region 'out'"
            ck.run("shm: infer simple with inputs and outputs in shared memory", infer_shm)

            def mixed():  # one input in shared memory, one in the body; one output each way
                i0 = httpclient.InferInput("INPUT0", [2, 16], "INT32")
                i0.set_shared_memory("in", nb)
                i1 = inp("INPUT1", b, "INT32", True)
                o0 = httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)
                o1 = httpclient.InferRequestedOutput("OUTPUT1")
                o1.set_shared_memory("out", nb)
                r = c.infer("simple", [i0, i1], outputs=[o0, o1])
                equal(r.as_numpy("OUTPUT0"), a + b)
                equal(shm.get_contents_as_numpy(h_out, np.int32, [2, 16]), a - b)
                return "OK"
            ck.run("shm: shared memory and binary data in one request", mixed)

            def strings():  # BYTES: length-prefixed elements, both ways
                text = np.array([["shared", "", "Memory 42"]], dtype=np.object_)
                ser = serialize_byte_tensor(text)
                size = serialized_byte_size(ser)
                h_s = region("sin", size)
                h_so = region("sout", 256)
                shm.set_shared_memory_region(h_s, [ser])
                c.register_system_shared_memory("sin", f"/{tag}_sin", size)
                c.register_system_shared_memory("sout", f"/{tag}_sout", 256)
                t = httpclient.InferInput("TEXT", [1, 3], "BYTES")
                t.set_shared_memory("sin", size)
                o = httpclient.InferRequestedOutput("UPPER")
                o.set_shared_memory("sout", 256)
                r = c.infer("strings", [t], outputs=[o])
                n = r.get_output("UPPER")["parameters"]["shared_memory_byte_size"]
                got = shm.get_contents_as_numpy(h_so, np.object_, [1, 3])
                got = [v.decode() if isinstance(v, bytes) else v for v in got.ravel()]
                ensure(got == [s.upper() for s in text.ravel()], f"UPPER {got}")
                ensure(n == size, f"shared_memory_byte_size {n}, expected {size}")
                return f"UPPER {got}"
            ck.run("shm: BYTES input and output in shared memory", strings)

            def status():
                st = c.get_system_shared_memory_status()
                names = sorted(x["name"] for x in st)
                ensure(names == ["in", "out", "sin", "sout"], f"regions {names}")
                one = c.get_system_shared_memory_status("in")
                ensure(len(one) == 1 and one[0]["key"] == f"/{tag}_in" and one[0]["byte_size"] == 2 * nb
                       and one[0]["offset"] == 0, f"{one}")
                return f"{names}"
            ck.run("shm: status of every region and of one", status)

            def refusals():  # each a 400 naming the cause; the server keeps serving
                seen = []

                def expect(fn, words):
                    try:
                        fn()
                    except InferenceServerException as e:
                        ensure(str(e.status()) == "400" and words in e.message(),
                               f"{e.status()} {e.message()!r}, expected 400 naming {words!r}")
                        seen.append(e.message())
                        return
                    raise AssertionError(f"accepted; expected 400 naming {words!r}")

                def infer_with(in_size=nb, in_off=0, out_size=nb, out_region="out", in_region="in"):
                    i0 = httpclient.InferInput("INPUT0", [2, 16], "INT32")
                    i0.set_shared_memory(in_region, in_size, offset=in_off)
                    i1 = inp("INPUT1", b, "INT32", True)
                    o = httpclient.InferRequestedOutput("OUTPUT0")
                    o.set_shared_memory(out_region, out_size)
                    c.infer("simple", [i0, i1], outputs=[o])
                expect(lambda: c.register_system_shared_memory("in", f"/{tag}_in", 8), "already registered")
                expect(lambda: c.register_system_shared_memory("x", f"/{tag}_nosuch", 8), f"/{tag}_nosuch")
                expect(lambda: c.register_system_shared_memory("x", f"/{tag}_in", 2 * nb + 1), "fewer than")
                expect(lambda: c.get_system_shared_memory_status("nosuch"), "nosuch")
                expect(lambda: infer_with(in_size=nb - 4), "shared_memory_byte_size is")
                expect(lambda: infer_with(in_off=nb + 4), "outside shared memory region 'in'")
                expect(lambda: infer_with(out_size=nb - 4), "takes 128 bytes")
                expect(lambda: infer_with(in_region="nosuch"), "nosuch")
                expect(lambda: infer_with(out_region="nosuch"), "nosuch")
                expect(lambda: c.register_cuda_shared_memory("g", "AAAA", 0, 64), "CUDA")
                ensure(c.is_server_live() and c.is_model_ready("simple"), "server not live after them")
                return " | ".join(seen)
            ck.run("shm: bad registrations and references refused (400) with the reason", refusals)

            def unregister():
                c.unregister_system_shared_memory("in")
                names = sorted(x["name"] for x in c.get_system_shared_memory_status())
                ensure(names == ["out", "sin", "sout"], f"after unregistering 'in': {names}")
                i0 = httpclient.InferInput("INPUT0", [2, 16], "INT32")
                i0.set_shared_memory("in", nb)
                try:
                    c.infer("simple", [i0, inp("INPUT1", b, "INT32", True)])
                    raise AssertionError("a request naming the unregistered region was answered")
                except InferenceServerException as e:
                    ensure(str(e.status()) == "400" and "'in'" in e.message(), f"{e.status()} {e.message()}")
                c.unregister_system_shared_memory()
                ensure(c.get_system_shared_memory_status() == [], "regions left after unregistering all")
                return "one, then all"
            ck.run("shm: unregister one region, then all", unregister)
            rc = srv.stop()
            ck.check("shm: exit 0 on SIGTERM", rc == 0, f"exit {rc}: {srv.stderr()[-400:]}")
    finally:
        for h in handles:
            try:
                shm.destroy_shared_memory_region(h)
            except Exception:  # noqa: BLE001
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default="build/kiln")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (printed)")
    args = ap.parse_args()
    kiln = os.path.abspath(args.kiln)
    if not os.access(kiln, os.X_OK):
        print(f"check_serve: {kiln} is not an executable")
        return 1
    ck = Checks()
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="kiln_serve_")
    try:
        repo = os.path.join(tmp, "repo")
        build_repository(repo)
        try:
            with Server(kiln, repo) as srv:
                print(f"kiln serve on {srv.url}, metrics on {srv.metrics_port}", flush=True)
                ck.group("basics", group_basics, srv)
                ck.group("infer", group_infer, srv, repo)
                ck.group("concurrency", group_concurrency, srv, repo, kiln, tmp)
                ck.group("metrics", group_metrics, srv)
                ck.group("bad requests", group_bad_requests, srv, kiln, repo)
                ck.group("explicit", group_explicit, kiln, repo, srv.client)
                ck.group("shm", group_shm, kiln, repo, tmp, srv.client)
                rc = srv.stop()
                ck.check("main server: exit 0 on SIGTERM", rc == 0, f"exit {rc}: {srv.stderr()[-400:]}")
        except Exception as e:  # noqa: BLE001 - it did not start: the other servers still run
            ck.fail("main server", one_line(e))
        ck.group("poll", group_poll, kiln, repo, tmp)
        ck.group("queue", group_queue, kiln, tmp)
        ck.group("sigterm", group_sigterm, kiln, tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    n = ck.passed + len(ck.failed)
    print(f"check_serve: {ck.passed}/{n} checks passed in {time.time() - t0:.0f} s"
          + (f"; failed: {', '.join(ck.failed)}" if ck.failed else ""))
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
