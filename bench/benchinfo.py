"""What the benchmark drivers share: logging, running a tool that prints
JSON, and the machine and commit a result was measured on (stdlib only)."""

import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_json(cmd, timeout=900, env=None):
    """Runs cmd; returns the JSON object on the last line of its stdout."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=env)
    if p.returncode != 0:
        raise RuntimeError("%s failed (rc %d): %s" % (
            os.path.basename(cmd[0]), p.returncode,
            (p.stderr or p.stdout).strip()[-600:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def meminfo(key):
    """The /proc/meminfo field `key` in bytes, or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def git_rev():
    """The short commit of the checkout, with +dirty for local changes."""
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def timed(fn, warmup, reps):
    """Calls fn `warmup` times, then times `reps` calls: {"median_s",
    "min_s", "max_s", "reps"} (the JSON of `loom-bench --json`)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    n = len(times)
    median = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    return {"median_s": median, "min_s": times[0], "max_s": times[-1], "reps": reps}
