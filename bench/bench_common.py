"""What the training benchmarks (train_bench.py, char_lstm_bench.py) share:
timing PyTorch steps and running kiln."""
import subprocess
import time


def ms_per_step(step, steps, warmup=10):
    """Milliseconds per call of step(k), k = 0, 1, ...: warmup calls, then
    the mean over steps timed ones."""
    for k in range(warmup):
        step(k)
    t0 = time.perf_counter()
    for k in range(steps):
        step(k)
    return (time.perf_counter() - t0) * 1000 / steps


def run_checked(cmd):
    """Runs cmd; its stdout, or RuntimeError with the command and its stderr."""
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout
