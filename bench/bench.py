#!/usr/bin/env python3
"""Loom benchmarks with same-run baselines; driven by bench/run.sh.

  bench.py --bin DIR --sgemm EXE --out DIR [--torch-python PY] [--rounds N]

Runs every contender in interleaved rounds (A, B, C, A, B, C, ...) and
reports the median of the per-round medians, so that load which comes and
goes on a shared machine hits every contender alike. Writes OUT/results.json
and OUT/results.md and prints the markdown. Needs only the standard library;
PyTorch runs in a separate interpreter (--torch-python) and is reported as
"not available" when missing.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import time
from benchinfo import cpu_model, git_rev, log
from benchinfo import run_json as benchinfo_run_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")

# Problem sizes and repetition counts.
MM = 1024                      # matmul M = N = K
MLP_BATCH, MLP_DIM, MLP_LAYERS = 256, 2048, 4
TARGETS = {"matmul_vs_onednn": 0.8, "mlp_vs_torch": 1.0, "overhead_us": 5.0,
           "compile_s": 1.0}
SLOW_S = 2.0   # seconds per call above which a contender is timed once


# Environment of the single-thread pass (--single-thread): oneDNN and torch
# (OpenMP), Loom's own pool, torch_mlp.py.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "LOOM_NUM_THREADS": "1",
              "LOOM_BENCH_TORCH_THREADS": "1"}
CURRENT_ENV = [None]


def run_json(cmd, timeout=900):
    """Runs cmd in the current pass's environment (see benchinfo.run_json)."""
    return benchinfo_run_json(cmd, timeout, env=CURRENT_ENV[0])


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "fma", "avx512f") if x in flags]
    except OSError:
        pass
    return []


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = args.bin
        self.out = args.out
        self.rounds = args.rounds
        self.results = {}
        self.errors = {}
        self.samples = {}      # name -> list of per-round medians (seconds)
        self.extra = {}        # name -> extra fields from the last run
        self.probed = set()
        self.slow = set()      # contenders timed by a single call

    def tool(self, name):
        return os.path.join(self.bin, name)

    # -- building the artifacts --------------------------------------------
    def compile(self, model, out, *flags):
        cmd = [self.tool("loom-compile"), model, "-o", out] + list(flags)
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("loom-compile %s failed: %s" % (
                os.path.basename(model), p.stderr.strip()[-500:]))
        return out

    def artifacts(self):
        arts = {}
        specs = {
            "mm_runtime": ("matmul.loom", ["--matmul=runtime"]),
            "mm_codegen": ("matmul.loom", ["--matmul=codegen"]),
            "mlp_runtime": ("mlp4.loom", ["--matmul=runtime"]),
            "mlp_codegen": ("mlp4.loom", ["--matmul=codegen"]),
            "tiny": ("tiny.loom", []),
        }
        for key, (model, flags) in specs.items():
            try:
                arts[key] = self.compile(os.path.join(BENCH, model),
                                         os.path.join(self.out, key + ".so"),
                                         *flags)
            except Exception as e:  # reported in the tables
                self.errors[key] = str(e)
                log("bench: " + str(e))
        return arts

    # -- contenders ------------------------------------------------------------
    def loom(self, so, entry, warmup, reps, dims=(), name=None):
        """loom-bench; a contender slower than SLOW_S per call (the generated
        loops can be) is timed by one call, once, instead of warmup + reps."""
        def bench(w, n):
            cmd = [self.tool("loom-bench"), so, "--call", entry, "--warmup",
                   str(w), "--reps", str(n), "--json"]
            for d in dims:
                cmd += ["--dim", d]
            return run_json(cmd)
        if name and name not in self.probed:
            self.probed.add(name)
            probe = bench(0, 1)
            if probe["median_s"] > SLOW_S:
                self.slow.add(name)
                probe["note"] = "one call (slower than %g s)" % SLOW_S
                return probe
        return bench(warmup, reps)

    def measure(self, name, fn):
        """One round of contender `name`: appends its median."""
        if name in self.errors or name in self.slow:
            return
        try:
            r = fn()
        except Exception as e:
            self.errors[name] = str(e)
            log("bench: %s: %s" % (name, e))
            return
        self.samples.setdefault(name, []).append(r["median_s"])
        for k, v in r.items():   # sub-timings (torch_mlp.py parts)
            if k.endswith("_s") and k not in ("median_s", "min_s", "max_s"):
                self.samples.setdefault(name + ":" + k, []).append(v)
        self.extra[name] = {k: v for k, v in r.items()
                            if k not in ("median_s", "min_s", "max_s")}
        log("bench:   %-22s %12.1f us" % (name, r["median_s"] * 1e6))

    def median(self, name):
        s = self.samples.get(name)
        return statistics.median(s) if s else None

    # -- the benchmarks --------------------------------------------------------
    def run(self):
        a = self.args
        arts = self.artifacts()
        torch_py = a.torch_python
        mlp_dims = ["B=%d" % MLP_BATCH]
        mm_args = [str(MM)] * 3

        for r in range(self.rounds):
            log("bench: round %d/%d" % (r + 1, self.rounds))
            # 1. matmul
            self.measure("mm_onednn", lambda: run_json(
                [a.sgemm] + mm_args + ["--warmup", "3", "--reps", "30", "--json"]))
            if "mm_runtime" in arts:
                self.measure("mm_runtime", lambda: self.loom(
                    arts["mm_runtime"], "main", 3, 30,
                    name="mm_runtime"))
            if "mm_codegen" in arts:
                self.measure("mm_codegen", lambda: self.loom(
                    arts["mm_codegen"], "main", 2, 10,
                    name="mm_codegen"))
            if torch_py:
                self.measure("mm_torch", lambda: run_json(
                    [torch_py, os.path.join(BENCH, "torch_mlp.py"), "matmul"]
                    + mm_args + ["3", "30"]))
            # 2. MLP
            if torch_py:
                self.measure("mlp_torch", lambda: run_json(
                    [torch_py, os.path.join(BENCH, "torch_mlp.py"), "mlp",
                     str(MLP_BATCH), str(MLP_DIM), str(MLP_LAYERS), "3", "20"]))
            if "mlp_runtime" in arts:
                self.measure("mlp_runtime", lambda: self.loom(
                    arts["mlp_runtime"], "main", 3, 20, mlp_dims,
                    name="mlp_runtime"))
            if "mlp_codegen" in arts:
                self.measure("mlp_codegen", lambda: self.loom(
                    arts["mlp_codegen"], "main", 1, 5, mlp_dims,
                    name="mlp_codegen"))
            # MLP breakdown: one layer and its ops (for the profile).
            if "mlp_runtime" in arts:
                for entry in ("one_layer", "linear_only", "norm_only", "silu_only"):
                    self.measure("mlp_part_" + entry, lambda: self.loom(
                        arts["mlp_runtime"], entry, 3, 20, mlp_dims))
            if torch_py:
                self.measure("mlp_part_torch", lambda: run_json(
                    [torch_py, os.path.join(BENCH, "torch_mlp.py"), "parts",
                     str(MLP_BATCH), str(MLP_DIM), "1", "3", "20"]))
            # 3. per-call overhead
            if "tiny" in arts:
                self.measure("tiny", lambda: self.loom(
                    arts["tiny"], "main", 1000, 20000))

        # Optional: the headline comparisons again on one thread each, less
        # exposed to other processes than two threads on two busy cores.
        if a.single_thread:
            CURRENT_ENV[0] = dict(os.environ, **ONE_THREAD)
            for r in range(self.rounds):
                log("bench: single-thread round %d/%d" % (r + 1, self.rounds))
                self.measure("mm_onednn_1t", lambda: run_json(
                    [a.sgemm] + mm_args + ["--warmup", "2", "--reps", "15", "--json"]))
                if "mm_runtime" in arts:
                    self.measure("mm_runtime_1t", lambda: self.loom(
                        arts["mm_runtime"], "main", 2, 15))
                if torch_py:
                    self.measure("mlp_torch_1t", lambda: run_json(
                        [torch_py, os.path.join(BENCH, "torch_mlp.py"), "mlp",
                         str(MLP_BATCH), str(MLP_DIM), str(MLP_LAYERS), "2", "10"]))
                if "mlp_runtime" in arts:
                    self.measure("mlp_runtime_1t", lambda: self.loom(
                        arts["mlp_runtime"], "main", 2, 10, mlp_dims))
            CURRENT_ENV[0] = None

        # 4. compile time of models/mlp.loom
        log("bench: compile time")
        times = []
        try:
            so = os.path.join(self.out, "compile_time_mlp.so")
            for _ in range(5):
                t0 = time.perf_counter()
                self.compile(os.path.join(ROOT, "models", "mlp.loom"), so)
                times.append(time.perf_counter() - t0)
            self.samples["compile_mlp"] = [statistics.median(times)]
            self.extra["compile_mlp"] = {"min_s": min(times),
                                         "max_s": max(times), "runs": 5}
        except Exception as e:
            self.errors["compile_mlp"] = str(e)

    # -- report ----------------------------------------------------------------
    def machine(self, torch_version):
        try:
            load = os.getloadavg()
        except OSError:
            load = None
        dnnl = self.extra.get("mm_onednn", {}).get("dnnl_version")
        return {
            "date": datetime.datetime.now().astimezone().isoformat(
                timespec="seconds"),
            "nproc": os.cpu_count(),
            "cpu": cpu_model(),
            "cpu_flags": cpu_flags(),
            "loadavg_end": load,
            "torch": torch_version,
            "onednn": dnnl,
            "loom_commit": git_rev(),
            "loom_tools": self.bin,
            "loom_num_threads": os.environ.get("LOOM_NUM_THREADS", "all cores"),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "all cores"),
            "rounds": self.rounds,
        }

    def report(self):
        m = self.median
        torch_info = self.extra.get("mlp_torch") or self.extra.get("mm_torch")
        torch_version = (torch_info or {}).get("torch") or self.args.torch_missing
        mach = self.machine(torch_version)
        peak = self.args.peak_gflops
        mm_flop = 2.0 * MM ** 3
        mlp_flop = 2.0 * MLP_BATCH * MLP_DIM * MLP_DIM * MLP_LAYERS

        def gf(t, flop):
            return flop / t * 1e-9 if t else None

        res = {"machine": mach, "targets": TARGETS, "errors": self.errors,
               "timed_by_one_call": sorted(self.slow),
               "fma_peak_gflops_estimate": peak}
        base = m("mm_onednn")
        mm = {}
        for k in ("mm_onednn", "mm_runtime", "mm_codegen", "mm_torch"):
            t = m(k)
            mm[k] = {"median_s": t, "gflops": gf(t, mm_flop),
                     "vs_onednn": base / t if base and t else None,
                     "round_medians_s": self.samples.get(k)}
        res["matmul_1024"] = mm
        tbase = m("mlp_torch")
        mlp = {}
        for k in ("mlp_torch", "mlp_runtime", "mlp_codegen"):
            t = m(k)
            mlp[k] = {"median_s": t, "gflops": gf(t, mlp_flop),
                      "vs_torch": tbase / t if tbase and t else None,
                      "round_medians_s": self.samples.get(k)}
        res["mlp"] = mlp
        if self.args.single_thread:
            b1, t1 = m("mm_onednn_1t"), m("mlp_torch_1t")
            res["single_thread"] = {
                k: {"median_s": m(k),
                    "ratio": ((b1 if k.startswith("mm") else t1) / m(k))
                    if m(k) and (b1 if k.startswith("mm") else t1) else None,
                    "round_medians_s": self.samples.get(k)}
                for k in ("mm_onednn_1t", "mm_runtime_1t", "mlp_torch_1t",
                          "mlp_runtime_1t")}
        parts = {k[len("mlp_part_"):]: m(k) for k in self.samples
                 if k.startswith("mlp_part_") and not k.startswith("mlp_part_torch")}
        res["mlp_parts_loom_s"] = parts
        res["mlp_parts_torch_s"] = {
            k.split(":", 1)[1]: m(k) for k in self.samples
            if k.startswith("mlp_part_torch:")}
        t = m("tiny")
        res["overhead"] = {"median_us": t * 1e6 if t else None,
                           "round_medians_s": self.samples.get("tiny")}
        t = m("compile_mlp")
        res["compile_mlp"] = dict({"median_s": t}, **self.extra.get("compile_mlp", {}))

        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(res, f, indent=2)
        md = self.markdown(res)
        with open(os.path.join(self.out, "results.md"), "w") as f:
            f.write(md)
        print(md)

    def markdown(self, res):
        mach = res["machine"]
        err = self.errors

        def ms(t):
            return "%.2f" % (t * 1e3) if t else "n/a"

        def num(x, fmt="%.1f"):
            return fmt % x if x is not None else "n/a"

        def ratio(x):
            return "%.2f×" % x if x is not None else "n/a"

        def flat(text, n):
            text = " ".join(text.split()).replace("|", "/")
            return text if len(text) <= n else text[:n - 1] + "…"

        def why(key):
            return " (%s)" % flat(err[key], 90) if key in err else ""

        L = []
        L.append("Measured %s on %s, %d cores (%s), torch %s, oneDNN %s, Loom %s; "
                 "median of %d interleaved rounds; load average at the end %s."
                 % (mach["date"][:10], mach["cpu"], mach["nproc"],
                    "+".join(mach["cpu_flags"]) or "?", mach["torch"],
                    mach["onednn"] or "?", mach["loom_commit"], mach["rounds"],
                    "/".join("%.1f" % x for x in mach["loadavg_end"])
                    if mach["loadavg_end"] else "?"))
        L.append("")
        L.append("**1. f32 matmul 1024×1024×1024** (target: Loom runtime ≥ %.1f× oneDNN; "
                 "FMA peak estimate %.0f GFLOP/s)" % (TARGETS["matmul_vs_onednn"],
                                                      res["fma_peak_gflops_estimate"]))
        L.append("")
        L.append("| contender | median ms | GFLOP/s | % of FMA peak | vs oneDNN |")
        L.append("|---|---:|---:|---:|---:|")
        names = {"mm_onednn": "oneDNN `dnnl_sgemm` (baseline)",
                 "mm_runtime": "Loom `--matmul=runtime`",
                 "mm_codegen": "Loom `--matmul=codegen`",
                 "mm_torch": "PyTorch `torch.matmul` (context)"}
        peak = res["fma_peak_gflops_estimate"]
        for k, label in names.items():
            r = res["matmul_1024"][k]
            if k in self.slow:
                label += " (timed by 1 call: > %g s/call)" % SLOW_S
            if r["median_s"] is None:
                reason = why(k) or (" (torch not available)" if k == "mm_torch" else "")
                L.append("| %s | n/a%s | | | |" % (label, reason))
                continue
            L.append("| %s | %s | %s | %s%% | %s |" % (
                label, ms(r["median_s"]), num(r["gflops"]),
                num(100 * r["gflops"] / peak, "%.0f") if peak else "n/a",
                ratio(r["vs_onednn"])))
        L.append("")
        L.append("**2. MLP, 4 × (RMSNorm → linear 2048→2048 → SiLU), batch 256, f32** "
                 "(target: Loom ≥ %.1f× PyTorch; speed ratio = torch time / Loom time)"
                 % TARGETS["mlp_vs_torch"])
        L.append("")
        L.append("| contender | median ms | GFLOP/s | vs PyTorch |")
        L.append("|---|---:|---:|---:|")
        rms = self.extra.get("mlp_torch", {}).get("rms_norm")
        names = {"mlp_torch": "PyTorch %s%s (baseline)" % (
                     mach["torch"], ", `%s`" % rms if rms else ""),
                 "mlp_runtime": "Loom `--matmul=runtime`",
                 "mlp_codegen": "Loom `--matmul=codegen`"}
        for k, label in names.items():
            r = res["mlp"][k]
            if k in self.slow:
                label += " (timed by 1 call: > %g s/call)" % SLOW_S
            if r["median_s"] is None:
                reason = why(k) or (" (torch not available)" if k == "mlp_torch" else "")
                L.append("| %s | n/a%s | | |" % (label, reason))
                continue
            L.append("| %s | %s | %s | %s |" % (label, ms(r["median_s"]),
                                                num(r["gflops"]),
                                                ratio(r["vs_torch"])))
        if "single_thread" in res:
            st = res["single_thread"]
            L.append("")
            L.append("Single thread each (`OMP_NUM_THREADS=1 LOOM_NUM_THREADS=1`, "
                     "`torch.set_num_threads(1)`):")
            L.append("")
            L.append("| benchmark | baseline ms | Loom ms | Loom vs baseline |")
            L.append("|---|---:|---:|---:|")
            for label, bk, lk in (("matmul 1024³ (oneDNN)", "mm_onednn_1t", "mm_runtime_1t"),
                                  ("MLP (PyTorch)", "mlp_torch_1t", "mlp_runtime_1t")):
                L.append("| %s | %s | %s | %s |" % (
                    label, ms(st[bk]["median_s"]), ms(st[lk]["median_s"]),
                    ratio(st[lk]["ratio"])))
        parts = res["mlp_parts_loom_s"]
        tparts = res["mlp_parts_torch_s"]
        if parts:
            L.append("")
            L.append("Breakdown of one layer (`--matmul=runtime`; medians over the rounds):")
            L.append("")
            L.append("| piece | Loom ms | PyTorch ms |")
            L.append("|---|---:|---:|")
            for k, label in (("one_layer", "whole layer"),
                             ("linear_only", "linear 256×2048 · 2048×2048ᵀ"),
                             ("norm_only", "rms_norm"), ("silu_only", "silu")):
                tk = tparts.get(k + "_s")
                L.append("| %s | %s | %s |" % (label, ms(parts.get(k)), ms(tk)))
        L.append("")
        L.append("**3. Per-call overhead** (`y = x + 1` on f32[4], loom-bench, "
                 "20000 reps; target ≤ %.0f µs)" % TARGETS["overhead_us"])
        L.append("")
        L.append("| metric | value |")
        L.append("|---|---:|")
        L.append("| median µs per call | %s%s |" % (
            num(res["overhead"]["median_us"], "%.2f"), why("tiny")))
        L.append("")
        L.append("**4. `loom-compile models/mlp.loom` wall time** (5 runs; target ≤ %.0f s)"
                 % TARGETS["compile_s"])
        L.append("")
        c = res["compile_mlp"]
        L.append("| median s | min s | max s |")
        L.append("|---:|---:|---:|")
        L.append("| %s%s | %s | %s |" % (num(c.get("median_s"), "%.3f"),
                                         why("compile_mlp"),
                                         num(c.get("min_s"), "%.3f"),
                                         num(c.get("max_s"), "%.3f")))
        if err:
            L.append("")
            L.append("Errors: " + "; ".join("%s: %s" % (k, flat(v, 300))
                                            for k, v in err.items()))
        return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sgemm", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--torch-python", default="")
    ap.add_argument("--torch-missing", default="not available")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peak-gflops", type=float, default=0.0)
    ap.add_argument("--single-thread", action="store_true",
                    help="also compare matmul and MLP on one thread each")
    args = ap.parse_args()
    if not args.peak_gflops:
        # TOOLCHAIN.md: ~87 GFLOP/s on 1 core, ~165 on 2 (AVX2 + FMA, f32).
        n = os.cpu_count() or 1
        args.peak_gflops = 165.0 if n == 2 else 82.5 * n
    os.makedirs(args.out, exist_ok=True)
    b = Bench(args)
    b.run()
    b.report()


if __name__ == "__main__":
    main()
