#!/usr/bin/env python3
"""Masked attention, Loom against PyTorch in the same run; driven by
bench/attention.sh.

  attention_bench.py --bin DIR --roofline EXE --out DIR

For S in {1024, 2048, 4096}, H = 8, B = 1, D in {64, 128}, f32, q/k/v
[B, H, S, D] uniform in [-1, 1) (bench/torch_attention.py case_inputs, the
same tensors for every contender) and the masks of bench/attention_masks.py:

  mask       Loom entry of models/masked_attention.loom
  none       attend_full
  causal     attend_causal
  window256  attend_window (window = 256)
  tree       attend_code: causal and (ancestor or scope or data flow), the
             code metadata of a real Python file (argparse.py of the
             interpreter running this script, frontend/python/loom_codemeta.py)
             cut to its first S tokens; PyTorch reads the same file
  sparse10   attend_blocks, blocks = the tile table of attention_masks
             (sparse_tiles: the same generator and seed as PyTorch's mask)

the contenders are

  loom-fused    loom-compile --attention=fused, timed by loom-bench --json
  loom-unfused  loom-compile --attention=unfused (the scores materialized);
                skipped where a call would take longer than
                LOOM_ATTN_UNFUSED_MAX_S (default 60) seconds, estimated from
                the last measured S (time x (S / S_last)^2), or where its
                scores would not fit in the available memory
  sdpa          torch scaled_dot_product_attention (is_causal for causal, no
                mask for none, a dense bool mask otherwise)
  flex          torch.compile(flex_attention) with a 64 x 64 block mask;
                compilation and block-mask creation are not timed
  composite     softmax(q k^T / sqrt(D) + M) v, eager

Every case (S, mask, D) runs its contenders in interleaved rounds: each round
runs every contender in turn. In the first round every output is checked:
Loom's outputs (loom-run --outputs with the inputs file of the case) and
PyTorch's are compared with the SDPA output (max abs difference, tolerance
LOOM_ATTN_TOL, default 1e-4). Loom's calls are subprocesses of loom-bench
(one untimed warm-up call in each, then the timed calls); PyTorch's run in
this process. A contender gets about LOOM_ATTN_SECONDS (default 5) timed
seconds per case over all rounds, at least one call and at most 10 a round,
sized from the untimed calls before the rounds (Loom: the wall time of the
loom-run check, start-up included; PyTorch: the check call, or a second
untimed call after it when the first compiled or took under a second). The
figure of a contender is the median over the rounds of
its per-round median. The FMA peak of the machine is measured with
bench/roofline.cc before the cases, after each S and after the cases (each
the best of 10 rounds of the roofline); the fraction of the peak uses the
highest of them, so that a moment of load from other processes, which lowers
a measurement, does not inflate the fractions.

Writes OUT/attention-DATE.json and OUT/attention-DATE.md and prints the
markdown. Needs torch and numpy (PyTorch is a contender and makes the
inputs).

Environment: LOOM_BENCH_QUICK=1 (S = 1024 only, one round),
LOOM_BENCH_ROUNDS (default 5), LOOM_ATTN_S, LOOM_ATTN_D, LOOM_ATTN_MASKS
(comma-separated lists), LOOM_ATTN_SECONDS, LOOM_ATTN_UNFUSED_MAX_S,
LOOM_ATTN_TOL, LOOM_ATTN_SOURCE (another Python source file for the tree
mask). Threads: all cores unless LOOM_NUM_THREADS / OMP_NUM_THREADS say
otherwise (both sides get the same number).
"""
import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
MODEL = os.path.join(ROOT, "models", "masked_attention.loom")
CODEMETA = os.path.join(ROOT, "frontend", "python", "loom_codemeta.py")
sys.path.insert(0, BENCH)
import attention_masks as am  # noqa: E402
import torch_attention as ta  # noqa: E402
from benchinfo import git_rev, log, meminfo, run_json

ENTRIES = {"none": "attend_full", "causal": "attend_causal",
           "window256": "attend_window", "tree": "attend_code",
           "sparse10": "attend_blocks"}
CONTENDERS = ("loom-fused", "loom-unfused", "sdpa", "flex", "composite")
LOOM_MODES = {"loom-fused": "fused", "loom-unfused": "unfused"}
TARGETS = {"causal_fused_vs_sdpa": 1.0, "causal_fused_vs_composite": 5.0,
           "tree_fused_vs_flex": 1.0, "none_fused_fraction_of_peak": 0.5,
           "sparse10_vs_causal_fused": 5.0}
B, H = ta.B, ta.H


def env_list(name, default, conv=str):
    text = os.environ.get(name)
    return am.parse_list(text, conv) if text else default


# -- code metadata ------------------------------------------------------------
def truncate_meta(tensors, s):
    """The metadata of the first s tokens: tin, tout and the scopes as they
    are, the data-flow rows < s with their columns < s, df_bits rebuilt from
    those lists."""
    n = tensors["tin"].numel()
    if n < s:
        raise am.MaskError("the source has %d tokens, fewer than S = %d"
                           % (n, s))
    out = {k: tensors[k][:s].to(torch.int32).clone()
           for k in ("tin", "tout", "scope_in", "scope_out")}
    ptr = tensors["df_indptr"].to(torch.int64)
    ind = tensors["df_indices"].to(torch.int64)[:int(ptr[s])]
    rows = torch.repeat_interleave(torch.arange(s), ptr[1:s + 1] - ptr[:s])
    keep = ind < s
    rows, cols = rows[keep], ind[keep]
    counts = torch.bincount(rows, minlength=s)
    out["df_indptr"] = torch.cat([torch.zeros(1, dtype=torch.int64),
                                  torch.cumsum(counts, 0)]).to(torch.int32)
    out["df_indices"] = cols.to(torch.int32)
    bits = np.zeros((s, (s + 31) // 32), dtype=np.uint32)
    r, c = rows.numpy(), cols.numpy()
    np.bitwise_or.at(bits, (r, c // 32),
                     np.left_shift(np.uint32(1), (c % 32).astype(np.uint32)))
    out["df_bits"] = torch.from_numpy(bits.view(np.int32).copy())
    return out


def loom_code_mask(meta):
    """The mask of attend_code, evaluated as its .loom text says, from the CSR
    lists (not from df_bits): causal() and (ancestor(tin, tout) or
    scope(scope_in, scope_out) or csr(df_indptr, df_indices))."""
    s = meta.s
    tin, tout = meta.tin, meta.tout
    sin, sout = meta.scope_in, meta.scope_out
    i, j = torch.arange(s)[:, None], torch.arange(s)[None, :]
    anc = (tin[j] <= tin[i]) & (tout[i] <= tout[j])
    scope = (sin[j] <= sin[i]) & (sout[i] <= sout[j])
    flow = torch.zeros(s, s, dtype=torch.bool)
    rows = torch.repeat_interleave(torch.arange(s),
                                   meta.df_indptr[1:] - meta.df_indptr[:-1])
    flow[rows, meta.df_indices] = True
    return (j <= i) & (anc | scope | flow)


def loom_blocks_mask(tiles, s, block=am.TILE):
    """The mask of attend_blocks: blocks[i / block, j / block]."""
    idx = torch.arange(s) // block
    return tiles[idx[:, None], idx[None, :]]


# -- the benchmark ------------------------------------------------------------
class Bench:
    def __init__(self, a):
        self.a = a
        self.quick = os.environ.get("LOOM_BENCH_QUICK", "0") == "1"
        self.rounds = int(os.environ.get("LOOM_BENCH_ROUNDS",
                                         1 if self.quick else 5))
        self.s_list = env_list("LOOM_ATTN_S", [1024] if self.quick
                               else [1024, 2048, 4096], int)
        self.d_list = env_list("LOOM_ATTN_D", [64, 128], int)
        self.masks = env_list("LOOM_ATTN_MASKS", list(am.KINDS))
        bad = [m for m in self.masks if m not in ENTRIES]
        if bad:
            raise am.MaskError("unknown masks %s (known: %s)"
                               % (bad, ", ".join(ENTRIES)))
        self.seconds = float(os.environ.get("LOOM_ATTN_SECONDS", 5))
        self.unfused_max_s = float(os.environ.get("LOOM_ATTN_UNFUSED_MAX_S",
                                                  60))
        self.tol = float(os.environ.get("LOOM_ATTN_TOL", 1e-4))
        self.threads = int(os.environ.get("LOOM_NUM_THREADS") or
                           os.environ.get("OMP_NUM_THREADS") or
                           os.cpu_count())
        self.work = os.path.join(a.out, "attention-work")
        os.makedirs(self.work, exist_ok=True)
        self.records = []
        self.mask_stats = []
        self.errors = {}
        self.info = {"compile_s": {}}
        self.artifacts = {}         # (mode, d) -> .so
        self.unfused_last = {}      # (mask, d) -> (s, seconds a call)
        # torch_attention's flex helper (compiled once, recompiled per shape).
        self.flex = ta.Runner(argparse.Namespace(flex_block=am.TILE,
                                                 verbose=False))

    def tool(self, name):
        return os.path.join(self.a.bin, name)

    # -- preparation -----------------------------------------------------------
    def roofline(self, when):
        try:
            r = run_json([self.a.roofline, "--threads", str(self.threads),
                          "--rounds", "10", "--mib", "128"])
        except Exception as e:  # noqa: BLE001 - recorded
            self.errors["roofline_" + when] = str(e)
            log("attention: roofline: %s" % e)
            return None
        log("attention: FMA peak %s: %.1f GFLOP/s (%d threads)"
            % (when, r["fma_peak_gflops"], r["threads"]))
        r["when"] = when
        self.info.setdefault("rooflines", []).append(r)
        return r

    def compile_all(self):
        for mode in ("fused", "unfused"):
            for d in self.d_list:
                out = os.path.join(self.work, "attention-%s-d%d.so" % (mode, d))
                cmd = [self.tool("loom-compile"), MODEL, "--attention=" + mode,
                       "--define", "D=%d" % d, "-o", out]
                log("attention: compiling %s D=%d" % (mode, d))
                t0 = time.perf_counter()
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    msg = "loom-compile --attention=%s D=%d failed: %s" % (
                        mode, d, p.stderr.strip()[-600:])
                    self.errors["compile_%s_d%d" % (mode, d)] = msg
                    log("attention: " + msg)
                    continue
                self.info["compile_s"]["%s-d%d" % (mode, d)] = round(
                    time.perf_counter() - t0, 2)
                self.artifacts[(mode, d)] = out

    def source_meta(self):
        """S -> CodeMeta of the first S tokens of the source file."""
        src = os.environ.get("LOOM_ATTN_SOURCE") or argparse.__file__
        full = os.path.join(self.work, "meta-full.safetensors")
        p = subprocess.run([sys.executable, CODEMETA, src, "-o", full],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise am.MaskError("loom_codemeta.py %s failed: %s"
                               % (src, p.stderr.strip()[-600:]))
        tensors, _ = am.read_safetensors(full)
        self.info["tree_source"] = {
            "file": src, "bytes": os.path.getsize(src),
            "lines": sum(1 for _ in open(src, "rb")),
            "tokens": int(tensors["tin"].numel()),
            "python": platform.python_version()}
        log("attention: tree metadata of %s (%d bytes, %d tokens)"
            % (src, os.path.getsize(src), tensors["tin"].numel()))
        metas = {}
        for s in self.s_list:
            path = os.path.join(self.work, "meta-s%d.safetensors" % s)
            am.write_safetensors(path, truncate_meta(tensors, s),
                                 {"source": src, "tokens": s})
            metas[s] = am.load_meta(path)
        return metas

    def loom_inputs(self, mask, d, q, k, v):
        path = os.path.join(self.work, "inputs-%s-s%d-d%d.safetensors"
                            % (mask.kind, mask.s, d))
        tensors = {"q": q, "k": k, "v": v}
        if mask.kind == "sparse10":
            tensors["blocks"] = mask.inputs["tiles"].to(torch.bool)
        elif mask.kind == "tree":
            for name in ("tin", "tout", "scope_in", "scope_out", "df_indptr",
                         "df_indices"):
                tensors[name] = mask.inputs[name]
        am.write_safetensors(path, tensors)
        return path

    # -- contenders ------------------------------------------------------------
    def loom_check(self, so, entry, inputs, tag):
        out = os.path.join(self.work, "out-%s.safetensors" % tag)
        p = subprocess.run([self.tool("loom-run"), so, "--inputs", inputs,
                            "--call", entry, "--outputs", out],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("loom-run failed: %s" % p.stderr.strip()[-600:])
        tensors, _ = am.read_safetensors(out)
        os.remove(out)
        return tensors["out"]

    def loom_timer(self, so, entry, inputs):
        def run(reps):
            r = run_json([self.tool("loom-bench"), so, "--inputs", inputs,
                          "--call", entry, "--warmup", "1", "--reps",
                          str(reps), "--json"])
            return r["median_s"], r["min_s"]
        return run

    @staticmethod
    def torch_timer(fn):
        def run(reps):
            times = ta.timed_calls(fn, reps)
            return statistics.median(times), min(times)
        return run

    def unfused_skip(self, kind, s, d):
        """Why loom-unfused is skipped at (kind, s, d), or None."""
        need = 3 * B * H * s * s * 4
        avail = meminfo("MemAvailable")
        if avail is not None and need > 0.6 * avail:
            return ("its scores need about %.1f GiB, %.1f GiB available"
                    % (need / 2**30, avail / 2**30))
        last = self.unfused_last.get((kind, d))
        if last:
            est = last[1] * (s / last[0]) ** 2
            if est > self.unfused_max_s:
                return ("a call would take about %.0f s (%.1f s at S = %d), "
                        "more than %.0f s" % (est, last[1], last[0],
                                              self.unfused_max_s))
        return None

    def run_case(self, mask, stats, d):
        s, kind = mask.s, mask.kind
        q, k, v = ta.case_inputs(s, d)
        scale = 1.0 / math.sqrt(d)
        inputs = self.loom_inputs(mask, d, q, k, v)
        log("attention: S=%d D=%d %s (visible %.3f)"
            % (s, d, kind, stats["pair_fraction"]))
        # SDPA first: its output is the reference of the others.
        ready, ref, additive = [], None, None
        recs = {}
        for impl in ("sdpa", "loom-fused", "loom-unfused", "flex", "composite"):
            rec = {"s": s, "d": d, "b": B, "h": H, "mask": kind, "impl": impl,
                   "pair_fraction": round(stats["pair_fraction"], 4),
                   "tile_fraction": round(stats["tile_fraction"], 4)}
            recs[impl] = rec
            try:
                t0 = time.perf_counter()
                if impl in LOOM_MODES:
                    mode = LOOM_MODES[impl]
                    so = self.artifacts.get((mode, d))
                    if so is None:
                        raise RuntimeError("no artifact: " + self.errors.get(
                            "compile_%s_d%d" % (mode, d), "not compiled"))
                    if impl == "loom-unfused":
                        why = self.unfused_skip(kind, s, d)
                        if why:
                            rec["skipped"] = why
                            log("attention:   loom-unfused skipped: " + why)
                            continue
                    out = self.loom_check(so, ENTRIES[kind], inputs,
                                          "%s-%s-s%d-d%d" % (mode, kind, s, d))
                    timer = self.loom_timer(so, ENTRIES[kind], inputs)
                else:
                    if impl == "sdpa":
                        if kind == "none":
                            fn = lambda: torch.nn.functional.\
                                scaled_dot_product_attention(q, k, v,
                                                             scale=scale)
                        elif kind == "causal":
                            fn = lambda: torch.nn.functional.\
                                scaled_dot_product_attention(
                                    q, k, v, is_causal=True, scale=scale)
                        else:
                            dense = mask.dense()
                            fn = lambda: torch.nn.functional.\
                                scaled_dot_product_attention(
                                    q, k, v, attn_mask=dense, scale=scale)
                        out = fn()
                    elif impl == "flex":
                        fn, out = self.flex.run_flex(mask, q, k, v, scale, rec)
                    else:
                        need = 3 * B * H * s * s * 4
                        avail = meminfo("MemAvailable")
                        if avail is not None and need > 0.6 * avail:
                            raise MemoryError(
                                "the composite needs about %.1f GiB, %.1f GiB "
                                "available" % (need / 2**30, avail / 2**30))
                        if kind != "none" and additive is None:
                            additive = mask.additive()
                        fn = lambda: ta.composite(q, k, v, additive, scale)
                        out = fn()
                    timer = self.torch_timer(fn)
                first = time.perf_counter() - t0
                if impl == "flex" or (impl not in LOOM_MODES and first < 1):
                    # A second untimed call sizes the repetitions (the first
                    # one compiled, allocated or warmed the caches).
                    t0 = time.perf_counter()
                    fn()
                    first = time.perf_counter() - t0
                rec["finite"] = bool(torch.isfinite(out).all())
                if impl == "sdpa":
                    ref = out
                    rec["agree"] = rec["finite"]
                elif ref is not None:
                    diff = (out - ref).abs().max().item()
                    rec["max_abs_diff_vs_sdpa"] = diff
                    rec["agree"] = rec["finite"] and diff <= self.tol
                    log("attention:   %-12s max |out - sdpa| %.2e%s"
                        % (impl, diff, "" if rec["agree"] else
                           "  DISAGREES (tolerance %g)" % self.tol))
                del out
                ready.append((rec, timer, first))
            except Exception as e:  # noqa: BLE001 - one contender, recorded
                rec["error"] = ta.short_error(e)
                log("attention:   %s failed: %s" % (impl, rec["error"]))
        # Interleaved rounds; the first call (the check) sized the reps.
        per_round = {}
        for rec, _, first in ready:
            per_round[rec["impl"]] = max(1, min(
                10, int(self.seconds / self.rounds / max(first, 1e-4))))
        samples = {rec["impl"]: [] for rec, _, _ in ready}
        mins = {}
        for r in range(self.rounds):
            for rec, timer, _ in ready:
                if "error" in rec:
                    continue
                impl = rec["impl"]
                try:
                    med, best = timer(per_round[impl])
                    samples[impl].append(med)
                    mins[impl] = min(mins.get(impl, best), best)
                except Exception as e:  # noqa: BLE001 - recorded
                    rec["error"] = ta.short_error(e)
                    log("attention:   %s failed: %s" % (impl, rec["error"]))
        for rec, _, _ in ready:
            impl = rec["impl"]
            if "error" in rec or not samples[impl]:
                continue
            t = statistics.median(samples[impl])
            flop = 4.0 * B * H * d
            rec.update({
                "median_ms": 1e3 * t, "min_ms": 1e3 * mins[impl],
                "round_medians_ms": [round(1e3 * x, 3) for x in samples[impl]],
                "reps_per_round": per_round[impl],
                "gflops_dense": flop * s * s / t / 1e9,
                "gflops_visible": flop * stats["visible_pairs"] / t / 1e9})
            if impl == "loom-unfused":
                self.unfused_last[(kind, d)] = (s, t)
            log("attention:   %-12s %10.2f ms  %6.1f GFLOP/s visible"
                % (impl, 1e3 * t, rec["gflops_visible"]))
        self.records += [recs[i] for i in CONTENDERS]

    def run(self):
        t_start = time.time()
        self.info["loadavg_start"] = os.getloadavg()
        self.info["mem_available_bytes"] = meminfo("MemAvailable")
        torch.set_num_threads(self.threads)
        self.info["roofline_before"] = self.roofline("before")
        self.compile_all()
        metas = self.source_meta() if "tree" in self.masks else {}
        with torch.inference_mode():
            for s in self.s_list:
                for kind in self.masks:
                    mask = am.make_mask(kind, s, metas.get(s))
                    stats = mask.stats()
                    # The Loom entry's mask, built from its own definition,
                    # must be the torch mask.
                    if kind == "tree":
                        loom = loom_code_mask(metas[s])
                    elif kind == "sparse10":
                        loom = loom_blocks_mask(mask.inputs["tiles"] != 0, s)
                    else:
                        loom = None
                    if loom is not None:
                        bad = int((loom != mask.dense()).sum())
                        stats["loom_mask_mismatches"] = bad
                        if bad:
                            self.errors["mask_%s_s%d" % (kind, s)] = (
                                "the Loom mask differs from torch's in %d "
                                "pairs" % bad)
                            log("attention: %s S=%d: Loom's mask differs "
                                "from torch's in %d pairs" % (kind, s, bad))
                    self.mask_stats.append(stats)
                    for d in self.d_list:
                        self.run_case(mask, stats, d)
                    mask._dense = None
                if s != self.s_list[-1]:
                    self.roofline("after S=%d" % s)
        self.info["roofline_after"] = self.roofline("after")
        self.info["loadavg_end"] = os.getloadavg()
        self.info["wall_s"] = round(time.time() - t_start, 1)

    # -- report ----------------------------------------------------------------
    def find(self, kind, s, d, impl):
        for r in self.records:
            if (r["mask"], r["s"], r["d"], r["impl"]) == (kind, s, d, impl):
                return r
        return None

    def targets(self, peak):
        s = max(self.s_list)
        out = []

        def t(kind, impl, d):
            r = self.find(kind, s, d, impl)
            return r.get("median_ms") if r else None

        def ratio(num, den):
            return num / den if num and den else None

        for d in self.d_list:
            fused = t("causal", "loom-fused", d)
            out.append({"name": "causal_fused_vs_sdpa", "s": s, "d": d,
                        "what": "causal: SDPA ms / Loom fused ms",
                        "value": ratio(t("causal", "sdpa", d), fused)})
            out.append({"name": "causal_fused_vs_composite", "s": s, "d": d,
                        "what": "causal: composite ms / Loom fused ms",
                        "value": ratio(t("causal", "composite", d), fused)})
            tree = t("tree", "loom-fused", d)
            flex = t("tree", "flex", d)
            out.append({"name": "tree_fused_vs_flex", "s": s, "d": d,
                        "what": "tree: %s ms / Loom fused ms"
                                % ("FlexAttention" if flex else "SDPA (dense)"),
                        "value": ratio(flex or t("tree", "sdpa", d), tree)})
            r = self.find("none", s, d, "loom-fused")
            out.append({"name": "none_fused_fraction_of_peak", "s": s, "d": d,
                        "what": "no mask: Loom fused GFLOP/s / FMA peak",
                        "value": (r["gflops_visible"] / peak
                                  if r and "gflops_visible" in r and peak
                                  else None)})
            out.append({"name": "sparse10_vs_causal_fused", "s": s, "d": d,
                        "what": "Loom fused: causal ms / sparse10 ms",
                        "value": ratio(fused, t("sparse10", "loom-fused", d))})
        for o in out:
            o["target"] = TARGETS[o["name"]]
            o["met"] = (o["value"] >= o["target"]
                        if o["value"] is not None else None)
        return out

    def report(self):
        peaks = [r["fma_peak_gflops"] for r in self.info.get("rooflines", [])]
        peak = max(peaks) if peaks else None
        for r in self.records:
            if peak and "gflops_visible" in r:
                r["fraction_of_peak"] = r["gflops_visible"] / peak
        machine = {
            "date": datetime.datetime.now().astimezone().isoformat(
                timespec="seconds"),
            "cpu": ta.cpu_model(), "nproc": os.cpu_count(),
            "threads": self.threads, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "loom_commit": git_rev(), "loom_tools": self.a.bin,
            "rounds": self.rounds, "quick": self.quick,
            "loadavg_start": self.info.get("loadavg_start"),
            "loadavg_end": self.info.get("loadavg_end"),
            "mem_available_gb": (self.info.get("mem_available_bytes") or 0)
            / 1e9,
            "wall_s": self.info.get("wall_s")}
        res = {"machine": machine,
               "config": {"b": B, "h": H, "dtype": "f32", "s": self.s_list,
                          "d": self.d_list, "masks": self.masks,
                          "entries": ENTRIES, "seconds": self.seconds,
                          "unfused_max_s": self.unfused_max_s,
                          "tol": self.tol, "tile": am.TILE},
               "fma_peak_gflops": peak,
               "roofline_before": self.info.get("roofline_before"),
               "roofline_after": self.info.get("roofline_after"),
               "rooflines": self.info.get("rooflines"),
               "tree_source": self.info.get("tree_source"),
               "compile_s": self.info.get("compile_s"),
               "masks": self.mask_stats, "records": self.records,
               "targets": self.targets(peak), "errors": self.errors}
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = os.path.join(self.a.out, "attention-" + stamp)
        with open(base + ".json", "w") as f:
            json.dump(res, f, indent=1)
        md = markdown(res)
        with open(base + ".md", "w") as f:
            f.write(md)
        print(md)
        log("attention: wrote %s.json and .md" % base)
        bad = [r for r in self.records if r.get("agree") is False]
        return 2 if bad or any(k.startswith("mask_") for k in self.errors) \
            else 0


def markdown(res):
    m = res["machine"]

    def num(x, spec):
        return format(x, spec) if isinstance(x, (int, float)) else "n/a"

    load = lambda v: "/".join("%.1f" % a for a in v) if v else "?"
    rb, ra = res.get("roofline_before"), res.get("roofline_after")
    L = ["Measured %s on %s, %d cores; %d threads for Loom and PyTorch %s; "
         "Loom %s; median of %d interleaved round%s%s; load average %s at "
         "the start, %s at the end; %.0f s in all."
         % (m["date"][:16].replace("T", " "), m["cpu"], m["nproc"],
            m["threads"], m["torch"], m["loom_commit"], m["rounds"],
            "" if m["rounds"] == 1 else "s",
            " (quick mode)" if m["quick"] else "",
            load(m["loadavg_start"]), load(m["loadavg_end"]),
            m["wall_s"] or 0), "",
         "FMA peak (bench/roofline.cc, best of 10 rounds each): %s GFLOP/s "
         "before the cases, %s after%s; fractions use the highest, %s "
         "(load from other processes lowers a measurement)." % (
             num(rb and rb["fma_peak_gflops"], ".1f"),
             num(ra and ra["fma_peak_gflops"], ".1f"),
             "".join(", %.1f %s" % (r["fma_peak_gflops"], r["when"])
                     for r in res.get("rooflines") or []
                     if r["when"] not in ("before", "after")),
             num(res["fma_peak_gflops"], ".1f"))]
    src = res.get("tree_source")
    if src:
        L.append("")
        L.append("Tree mask: code metadata of `%s` (%d bytes, %d lines, %d "
                 "tokens; Python %s), the first S tokens."
                 % (src["file"], src["bytes"], src["lines"], src["tokens"],
                    src["python"]))
    L += ["", "B = 1, H = 8, f32. GFLOP/s: dense-equivalent 4·B·H·S²·D / t and "
          "visible pairs 4·B·H·pairs·D / t; peak = visible GFLOP/s / FMA peak; "
          "diff = max |out − SDPA out| in the first round; min ms: the fastest "
          "timed call.", "",
          "| mask | S | D | visible | contender | median ms | min ms "
          "| GFLOP/s dense | GFLOP/s visible | peak | diff vs SDPA | note |",
          "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["records"]:
        note = r.get("error") or r.get("skipped") or ""
        if r.get("skipped"):
            note = "skipped: " + note
        elif not note and r["impl"] == "flex" and "compile_s" in r:
            note = "compile %.1f s (not timed)" % r["compile_s"]
        if r.get("agree") is False:
            note = "DISAGREES " + note
        diff = r.get("max_abs_diff_vs_sdpa")
        cells = [r["mask"], r["s"], r["d"], num(r["pair_fraction"], ".3f"),
                 r["impl"], num(r.get("median_ms"), ".2f"),
                 num(r.get("min_ms"), ".2f"),
                 num(r.get("gflops_dense"), ".1f"),
                 num(r.get("gflops_visible"), ".1f"),
                 num(100 * r["fraction_of_peak"], ".0f") + "%"
                 if "fraction_of_peak" in r else "n/a",
                 num(diff, ".1e") if diff is not None else "-",
                 note.replace("|", "/")]
        L.append("| %s |" % " | ".join(str(c) for c in cells))
    L += ["", "Targets (largest S measured):", "",
          "| target | S | D | value | goal | met |",
          "|---|---:|---:|---:|---:|---|"]
    for t in res["targets"]:
        frac = t["name"].endswith("peak")
        val = (num(100 * t["value"], ".0f") + "%" if frac and t["value"]
               is not None else num(t["value"], ".2f") +
               ("×" if t["value"] is not None else ""))
        goal = ("≥ %.0f%%" % (100 * t["target"]) if frac
                else "≥ %.1f×" % t["target"])
        met = {True: "yes", False: "no", None: "n/a"}[t["met"]]
        L.append("| %s | %d | %d | %s | %s | %s |"
                 % (t["what"], t["s"], t["d"], val, goal, met))
    if res["errors"]:
        L += ["", "Errors:", ""]
        L += ["- %s: %s" % (k, str(v).replace("\n", " ")[:300])
              for k, v in res["errors"].items()]
    return "\n".join(L) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True,
                   help="folder of loom-compile, loom-run, loom-bench")
    p.add_argument("--roofline", required=True,
                   help="the bench/roofline.cc executable")
    p.add_argument("--out", required=True, help="folder of the results")
    a = p.parse_args()
    for t in ("loom-compile", "loom-run", "loom-bench"):
        if not os.access(os.path.join(a.bin, t), os.X_OK):
            p.error("%s not found in %s" % (t, a.bin))
    os.makedirs(a.out, exist_ok=True)
    try:
        bench = Bench(a)
        bench.run()
        return bench.report()
    except (am.MaskError, ValueError) as e:
        log("attention: error: %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
