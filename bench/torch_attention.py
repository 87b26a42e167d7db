#!/usr/bin/env python3
"""PyTorch baselines of the masked-attention benchmark; prints JSON.

  torch_attention.py [--s 1024,2048,4096] [--d 64,128]
                     [--masks none,causal,window256,tree,sparse10]
                     [--impls sdpa,flex,composite] [--reps N] [--warmup N]
                     [--rounds R] [--max-seconds T] [--tree-meta FILE[,FILE...]]
                     [--threads N] [--flex-block N] [--json OUT] [--md OUT]
                     [--dump-inputs DIR] [--quick]

Times PyTorch's attention on the CPU, f32, B = 1, H = 8, q/k/v [B, H, S, D]
uniform in [-1, 1) (seeded per S and D), scale 1/sqrt(D), for each S, mask
kind (bench/attention_masks.py) and D:

  sdpa       torch.nn.functional.scaled_dot_product_attention: is_causal=True
             for causal, no mask for none, a dense bool attn_mask [S, S]
             otherwise;
  flex       torch.compile(flex_attention) with the mask's mask_mod and a
             block mask from create_block_mask (--flex-block, default 64, the
             tile of the Loom kernel); the block mask creation and the first
             (compiling) call are timed apart and reported, not included in
             the kernel time; no block mask for none. A failure is recorded
             as "error" in the record and the run goes on;
  composite  softmax(q @ k^T * scale + M) @ v, M the additive mask (0/-inf,
             none adds nothing), eager.

Timing: the implementations of a case run in --rounds interleaved rounds
(default 3; each round runs every implementation in turn, so that a change of
the machine's load hits all alike); the first round starts with --warmup
untimed calls (at least one); an implementation gets --reps timed calls
(default 10, rounded up to a multiple of --rounds) over all rounds, fewer
(at least one a round) when they would take longer than --max-seconds
(default 6) together; median, min and max of all timed calls. Records
carry the 1-minute load average ("load1"), the result the load averages
before and after the run.

Threads: --threads, else LOOM_NUM_THREADS / OMP_NUM_THREADS, else all cores
(torch.set_num_threads(os.cpu_count())). torch.inference_mode.

GFLOP/s: dense-equivalent 4*B*H*S*S*D / t and visible-pairs-only
4*B*H*visible_pairs*D / t.

Correctness: every output is compared with sdpa's at the same S and inputs
(max_abs_diff_vs_sdpa), and at S <= --ref-max-s (default 1024) with a float64
composite reference (max_abs_diff_vs_f64); a difference above --tol (default
1e-4) marks the record "agree": false, and the exit status is 2 after the
JSON is written. Errors of one case never stop the run.

The tree mask reads code metadata (frontend/python/loom_codemeta.py output,
one file per S: the file's size picks the S it serves); without --tree-meta,
synthetic metadata of each S is used (attention_masks.synthetic_meta) and the
records say so ("tree_source").

--dump-inputs DIR writes, per S, mask and D,
DIR/attention-MASK-sS-dD.safetensors with q, k, v, the tensors the mask
reads (tiles for sparse10; tin, tout, scope_in, scope_out, df_indptr,
df_indices, df_bits, valid for tree) and `out`, the sdpa output: the inputs
and reference of another implementation
(bench/attention_masks.py read_safetensors reads them back).

Output: one JSON object {"torch", "threads", "cpu", "config", "masks",
"records"}; "masks" has the visible fractions of pairs and 64x64 tiles per
mask and S, "records" one entry per (S, mask, D, impl). --json writes it to a
file instead of stdout; --md writes a markdown table (markdown_report()).
"""
import argparse
import datetime
import json
import math
import os
import sys
import time
import traceback

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attention_masks as am  # noqa: E402
from benchinfo import cpu_model, log

IMPLS = ("sdpa", "flex", "composite")
B, H = 1, 8


def mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def short_error(e):
    """One line (the exception type and the first lines of its message)."""
    text = "%s: %s" % (type(e).__name__, str(e).strip())
    lines = [l for l in text.splitlines() if l.strip()]
    return " | ".join(lines[:4])[:600]


def timed_calls(fn, n):
    """Seconds of n calls of fn."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def uniform(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float32) * 2 - 1


def case_inputs(s, d):
    """q, k, v [B, H, S, D], the same for every mask and implementation."""
    base = 1000003 * s + 101 * d
    return tuple(uniform((B, H, s, d), base + i) for i in range(3))


def timing_fields(rec, stats, times):
    """The timing fields of a record from the seconds of its timed calls:
    median_ms, min_ms, max_ms, reps, gflops_dense (4*B*H*S*S*D / median) and
    gflops_visible (4*B*H*visible_pairs*D / median). rec gives b, h, s, d;
    stats is the mask's (attention_masks.Mask.stats()). Other
    implementations' records (a compiled Loom model, ...) are made the same
    way and appended to the result's "records" for markdown_report()."""
    t = sorted(times)
    n = len(t)
    med = t[n // 2] if n % 2 else 0.5 * (t[n // 2 - 1] + t[n // 2])
    flop = 4.0 * rec["b"] * rec["h"] * rec["d"]
    return {"median_ms": 1e3 * med, "min_ms": 1e3 * t[0], "max_ms": 1e3 * t[-1],
            "reps": n,
            "gflops_dense": flop * rec["s"] * rec["s"] / med / 1e9,
            "gflops_visible": flop * stats["visible_pairs"] / med / 1e9}


def composite(q, k, v, additive, scale):
    scores = q @ k.transpose(-1, -2) * scale
    if additive is not None:
        scores = scores + additive
    return torch.softmax(scores, dim=-1) @ v


class Runner:
    """Runs the cases of one configuration; collects records."""

    def __init__(self, a):
        self.a = a
        self.records = []
        self.masks = []
        self.failed_checks = 0
        self.flex = None
        self.flex_error = None

    # -- flex ------------------------------------------------------------------
    def flex_fn(self):
        if self.flex is None and self.flex_error is None:
            try:
                from torch.nn.attention.flex_attention import (
                    create_block_mask, flex_attention)
                # One compiled function; every mask, S and D recompiles it.
                torch._dynamo.config.cache_size_limit = 256
                if hasattr(torch._dynamo.config, "recompile_limit"):
                    torch._dynamo.config.recompile_limit = 256
                self.flex = (torch.compile(flex_attention, dynamic=False),
                             create_block_mask)
            except Exception as e:  # noqa: BLE001 - recorded, not fatal
                self.flex_error = short_error(e)
        return self.flex

    def run_flex(self, mask, q, k, v, scale, rec):
        fns = self.flex_fn()
        if fns is None:
            raise RuntimeError(self.flex_error)
        compiled, create_block_mask = fns
        block_mask = None
        if mask.kind != "none":
            start = time.perf_counter()
            block_mask = create_block_mask(
                mask.mask_mod, None, None, mask.s, mask.s, device="cpu",
                BLOCK_SIZE=self.a.flex_block)
            rec["block_mask_ms"] = 1e3 * (time.perf_counter() - start)
            rec["flex_block"] = list(block_mask.BLOCK_SIZE)
            rec["flex_sparsity"] = round(float(block_mask.sparsity()), 3)
        fn = lambda: compiled(q, k, v, block_mask=block_mask, scale=scale)
        start = time.perf_counter()
        out = fn()
        rec["compile_s"] = round(time.perf_counter() - start, 3)
        return fn, out

    # -- cases -----------------------------------------------------------------
    def mask_for(self, kind, s, metas):
        meta, source = None, None
        if kind == "tree":
            if metas is not None:
                meta = metas.get(s)
                if meta is None:
                    raise am.MaskError(
                        "no --tree-meta file has %d positions (have %s)"
                        % (s, sorted(metas) or "none"))
                source = meta.path
            else:
                meta = am.CodeMeta(am.synthetic_meta(s))
                source = "synthetic"
        return am.make_mask(kind, s, meta), source

    def run(self, metas):
        a = self.a
        for s in a.s:
            for kind in a.masks:
                try:
                    mask, source = self.mask_for(kind, s, metas)
                    stats = mask.stats()
                except am.MaskError as e:
                    log("attention: %s S=%d: %s" % (kind, s, e))
                    for d in a.d:
                        for impl in a.impls:
                            self.records.append(self.base(s, d, kind, impl) |
                                                {"error": str(e)})
                    continue
                if source:
                    stats["tree_source"] = source
                self.masks.append(stats)
                for d in a.d:
                    self.run_case(mask, stats, source, d)
                mask._dense = None

    def base(self, s, d, kind, impl):
        return {"s": s, "d": d, "b": B, "h": H, "mask": kind, "impl": impl}

    def run_case(self, mask, stats, source, d):
        """Prepares and checks every implementation, then times them in
        interleaved rounds (each round: every implementation in turn)."""
        a, s, kind = self.a, mask.s, mask.kind
        q, k, v = case_inputs(s, d)
        scale = 1.0 / math.sqrt(d)
        ref, additive = None, None
        ready = []
        for impl in a.impls:
            rec = self.base(s, d, kind, impl)
            rec["pair_fraction"] = round(stats["pair_fraction"], 4)
            rec["tile_fraction"] = round(stats["tile_fraction"], 4)
            if source:
                rec["tree_source"] = source
            self.records.append(rec)
            log("attention: S=%d D=%d %s %s" % (s, d, kind, impl))
            try:
                if impl == "composite":
                    need = 3 * B * H * s * s * 4
                    avail = mem_available()
                    if avail is not None and need > 0.6 * avail:
                        raise MemoryError("the composite needs about %.1f GiB, "
                                          "%.1f GiB available"
                                          % (need / 2**30, avail / 2**30))
                if impl == "sdpa":
                    if kind == "none":
                        fn = lambda: F.scaled_dot_product_attention(
                            q, k, v, scale=scale)
                    elif kind == "causal":
                        fn = lambda: F.scaled_dot_product_attention(
                            q, k, v, is_causal=True, scale=scale)
                    else:
                        bool_mask = mask.dense()
                        fn = lambda: F.scaled_dot_product_attention(
                            q, k, v, attn_mask=bool_mask, scale=scale)
                    out = fn()
                elif impl == "flex":
                    fn, out = self.run_flex(mask, q, k, v, scale, rec)
                else:
                    if kind != "none" and additive is None:
                        additive = mask.additive()
                    fn = lambda: composite(q, k, v, additive, scale)
                    out = fn()
                self.check(rec, out, ref, mask, q, k, v, scale)
                if impl == "sdpa":
                    ref = out
                    if a.dump_inputs:
                        self.dump(mask, d, q, k, v, out)
                del out
                ready.append((rec, fn))
            except Exception as e:  # noqa: BLE001 - one case, recorded
                self.fail(rec, e)
        times = {id(rec): [] for rec, _ in ready}
        reps = {}
        for r in range(a.rounds):
            for rec, fn in list(ready):
                try:
                    if r == 0:
                        last = timed_calls(fn, max(1, a.warmup))[-1]
                        budget = a.max_seconds / a.rounds
                        reps[id(rec)] = max(1, min(
                            -(-a.reps // a.rounds),
                            int(budget / last) if last > 0 else a.reps))
                    times[id(rec)] += timed_calls(fn, reps[id(rec)])
                except Exception as e:  # noqa: BLE001 - one case, recorded
                    self.fail(rec, e)
                    ready.remove((rec, fn))
        for rec, _ in ready:
            rec.update(timing_fields(rec, stats, times[id(rec)]))
            rec.update({"rounds": a.rounds, "warmup": max(1, a.warmup),
                        "load1": round(os.getloadavg()[0], 2)})

    def fail(self, rec, e):
        rec["error"] = short_error(e)
        log("attention: %s %s S=%d D=%d failed: %s"
            % (rec["impl"], rec["mask"], rec["s"], rec["d"], rec["error"]))
        if self.a.verbose:
            traceback.print_exc()

    def check(self, rec, out, ref, mask, q, k, v, scale):
        a = self.a
        finite = bool(torch.isfinite(out).all())
        rec["finite"] = finite
        agree = finite
        if ref is not None:
            diff = (out - ref).abs().max().item()
            rec["max_abs_diff_vs_sdpa"] = diff
            agree = agree and diff <= a.tol
        if mask.s <= a.ref_max_s:
            add = None if mask.kind == "none" else mask.additive(torch.float64)
            exact = composite(q.double(), k.double(), v.double(), add, scale)
            diff = (out.double() - exact).abs().max().item()
            rec["max_abs_diff_vs_f64"] = diff
            agree = agree and diff <= a.tol
        rec["agree"] = agree
        if not agree:
            self.failed_checks += 1
            log("attention: %s %s S=%d D=%d disagrees with the reference "
                "(tolerance %g): %s" % (rec["impl"], mask.kind, mask.s,
                                        rec["d"], a.tol,
                                        {k_: rec[k_] for k_ in rec
                                         if k_.startswith("max_abs")}))

    def dump(self, mask, d, q, k, v, out):
        os.makedirs(self.a.dump_inputs, exist_ok=True)
        name = "attention-%s-s%d-d%d.safetensors" % (mask.kind, mask.s, d)
        path = os.path.join(self.a.dump_inputs, name)
        tensors = {"q": q, "k": k, "v": v, "out": out}
        tensors.update(mask.inputs)
        am.write_safetensors(path, tensors, {"mask": mask.kind,
                                             "scale": 1.0 / math.sqrt(d)})


# -- report -------------------------------------------------------------------
def fmt(x, spec):
    return format(x, spec) if isinstance(x, (int, float)) else "n/a"


def markdown_report(result):
    """A markdown table of a result object (the JSON this script prints)."""
    lines = ["## Masked attention (B=%d, H=%d, f32, torch %s, %d threads)"
             % (B, H, result["torch"], result["threads"]), "",
             "CPU: %s. GFLOP/s: dense-equivalent 4*B*H*S*S*D/t and "
             "visible pairs only 4*B*H*pairs*D/t." % result["cpu"], "",
             "| mask | S | pairs | tiles | D | impl | median ms | min ms "
             "| reps | GFLOP/s dense | GFLOP/s visible | diff vs sdpa | note |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["records"]:
        note = r.get("error", "")
        if not note and r["impl"] == "flex":
            note = "compile %.1f s" % r.get("compile_s", float("nan"))
            if "block_mask_ms" in r:
                note += ", block mask %.1f ms" % r["block_mask_ms"]
        if r.get("agree") is False:
            note = "DISAGREES " + note
        note = note.replace("|", "/")
        diff = r.get("max_abs_diff_vs_sdpa")
        cells = [r["mask"], r["s"], fmt(r.get("pair_fraction"), ".3f"),
                 fmt(r.get("tile_fraction"), ".3f"), r["d"], r["impl"],
                 fmt(r.get("median_ms"), ".2f"), fmt(r.get("min_ms"), ".2f"),
                 r.get("reps", "n/a"), fmt(r.get("gflops_dense"), ".1f"),
                 fmt(r.get("gflops_visible"), ".1f"),
                 fmt(diff, ".1e") if diff is not None else "-", note]
        lines.append("| %s |" % " | ".join(str(c) for c in cells))
    return "\n".join(lines) + "\n"


# -- command line -------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(
        description="PyTorch baselines of the masked-attention benchmark")
    p.add_argument("--s", default="1024,2048,4096")
    p.add_argument("--d", default="64,128")
    p.add_argument("--masks", default=",".join(am.KINDS))
    p.add_argument("--impls", default=",".join(IMPLS))
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds of the implementations")
    p.add_argument("--max-seconds", type=float, default=6.0,
                   help="timed seconds an implementation gets per case, "
                        "all rounds together (at least one call a round)")
    p.add_argument("--tree-meta", default=None,
                   help="code metadata files (comma-separated), one per S")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--flex-block", type=int, default=64)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--ref-max-s", type=int, default=1024)
    p.add_argument("--json", default=None)
    p.add_argument("--md", default=None)
    p.add_argument("--dump-inputs", default=None)
    p.add_argument("--quick", action="store_true",
                   help="S = 1024 only, 1 warm-up, 3 reps")
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args(argv)
    try:
        a.s = am.parse_list(a.s, int)
        a.d = am.parse_list(a.d, int)
    except ValueError as e:
        p.error("--s and --d take comma-separated integers: %s" % e)
    a.masks = am.parse_list(a.masks)
    a.impls = am.parse_list(a.impls)
    if a.quick:
        a.s, a.warmup, a.reps, a.rounds = [1024], 1, 3, 1
    bad = [m for m in a.masks if m not in am.KINDS]
    if bad:
        p.error("unknown mask kinds %s (known: %s)"
                % (bad, ", ".join(am.KINDS)))
    bad = [i for i in a.impls if i not in IMPLS]
    if bad:
        p.error("unknown implementations %s (known: %s)"
                % (bad, ", ".join(IMPLS)))
    if not a.s or min(a.s) <= 0 or not a.d or min(a.d) <= 0:
        p.error("--s and --d need positive sizes")
    if a.reps < 1 or a.warmup < 0 or a.rounds < 1:
        p.error("--reps and --rounds must be >= 1, --warmup >= 0")
    if a.flex_block <= 0:
        p.error("--flex-block must be positive")
    return a


def load_metas(spec):
    """S -> CodeMeta of the comma-separated files; None when spec is None."""
    if not spec:
        return None
    metas = {}
    for path in am.parse_list(spec):
        meta = am.load_meta(path)
        if meta.s in metas:
            raise am.MaskError("%s and %s both have %d positions"
                               % (metas[meta.s].path, path, meta.s))
        metas[meta.s] = meta
    return metas


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    threads = a.threads or int(os.environ.get("LOOM_NUM_THREADS") or
                               os.environ.get("OMP_NUM_THREADS") or
                               os.cpu_count())
    torch.set_num_threads(threads)
    try:
        metas = load_metas(a.tree_meta)
    except am.MaskError as e:
        print("torch_attention: error: %s" % e, file=sys.stderr)
        return 1
    runner = Runner(a)
    started = time.time()
    load_before = os.getloadavg()
    with torch.inference_mode():
        runner.run(metas)
    result = {
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": cpu_model(), "cores": os.cpu_count(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "wall_s": round(time.time() - started, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "config": {"b": B, "h": H, "dtype": "f32", "s": a.s, "d": a.d,
                   "masks": a.masks, "impls": a.impls, "reps": a.reps,
                   "warmup": a.warmup, "rounds": a.rounds,
                   "max_seconds": a.max_seconds,
                   "flex_block": a.flex_block, "tol": a.tol,
                   "ref_max_s": a.ref_max_s},
        "masks": runner.masks, "records": runner.records,
        "failed_checks": runner.failed_checks}
    text = json.dumps(result, indent=1)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    if a.md:
        with open(a.md, "w") as f:
            f.write(markdown_report(result))
    return 2 if runner.failed_checks else 0


if __name__ == "__main__":
    sys.exit(main())
