#!/usr/bin/env python3
"""Prepares what bench/gpu-check.sh runs on a GPU machine (stdlib only).

usage: gpu_pack.py BIN_DIR PACK_DIR [--sm 90a]

The GPU machines have no MLIR 22, so the compiler runs here: every model in
models/ is compiled with `loom-compile --target=cuda` (host code for
x86-64-v3, cubin when ptxas is found, else PTX), with inputs and the values
to check its outputs against:
  - the CPU artifact's outputs on the same inputs (allclose), or
  - for the GRPO, DPO and PPO cases, test/objectives/reference.py's float64
    reference, which runs on the GPU machine.
The benchmark artifacts (masked attention with D = 128, dense matrix
products, MLA decode at DeepSeek-V3's dims) are compiled too.
Writes PACK_DIR/pack.json, which lists every case with its files (relative
to PACK_DIR), calls and tolerances.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "models")
TOOL_INPUTS = os.path.join(ROOT, "test", "tools", "Inputs")
sys.path.insert(0, os.path.join(ROOT, "test", "objectives"))
import run_model  # noqa: E402

ATTENTION_ENTRIES = [
    "attend", "attend_full", "attend_causal", "attend_window",
    "attend_document", "attend_tree", "attend_scope", "attend_dataflow",
    "attend_dataflow_bits", "attend_code", "attend_blocks"]
# The objective cases: logits and lm-head entries of each model, and options.
OBJECTIVES = [
    ("grpo_random", []), ("grpo_hand_fused", []), ("dpo_random", []),
    ("dpo_hand_fused", []), ("ppo_random_fused", []),
    ("grpo_random_fused", ["loss_type=dapo", "num_items_in_batch=40",
                           "importance_sampling_level=sequence"]),
]


def run(cmd):
    result = subprocess.run(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        sys.exit("gpu_pack: %s failed:\n%s" % (" ".join(cmd), result.stdout))
    return result.stdout


class Pack:
    def __init__(self, bin_dir, out, sm):
        self.bin, self.out, self.sm = bin_dir, out, sm
        self.cases = []
        self.cuda_flags = ["--target=cuda", "--sm=" + sm, "--cpu=x86-64-v3"]

    def path(self, name):
        return os.path.join(self.out, name)

    def tool(self, name):
        return os.path.join(self.bin, name)

    def tensors(self, name, specs):
        run([sys.executable, os.path.join(TOOL_INPUTS, "make_tensors.py"),
             self.path(name)] + specs)
        return name

    def bf16(self, model, name):
        """A copy of `model` with its f32 tensors made bf16, as `name`."""
        with open(model) as f:
            text = f.read()
        with open(self.path(name), "w") as f:
            f.write(text.replace("f32[", "bf16["))
        return self.path(name)

    def model(self, name, text):
        """Writes a model given as text; returns its path."""
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def compile(self, name, model, flags):
        run([self.tool("loom-compile"), model, "-o", self.path(name)] + flags)
        return name

    def compared(self, name, model, flags, params, inputs, calls, rtol, atol,
                 interpret=None, cpu_flags=None, ref=None, variant=None):
        """A case checked against the CPU artifact's outputs (compiled with
        `cpu_flags`, by default `flags`), or with `interpret` (the configs:
        --define/--config flags) against the float64 interpreter's; or
        against `ref`, the reference of an earlier case of the same model,
        inputs and calls. `variant` names the kernel variant the case checks
        (gpu_check.py skips the rest of a variant after a timeout, and
        does not time a variant whose check failed)."""
        cuda = self.compile(name + ".cuda.so", model, flags + self.cuda_flags)
        if ref is not None:
            self.cases.append({"name": name, "artifact": cuda,
                               "params": params, "inputs": inputs,
                               "calls": calls, "variant": variant,
                               "check": {"kind": "allclose", "ref": ref,
                                         "rtol": rtol, "atol": atol}})
            return ref
        ref = name + ".ref.safetensors"
        if interpret is None:
            cpu = self.compile(name + ".cpu.so", model,
                               flags if cpu_flags is None else cpu_flags)
            cmd = [self.tool("loom-run"), self.path(cpu)]
        else:
            cmd = [self.tool("loom-run"), model, "--interpret"] + interpret
        if params:
            cmd += ["--params", self.path(params)]
        for i in inputs:
            cmd += ["--inputs", self.path(i)]
        for c in calls:
            cmd += ["--call", c]
        run(cmd + ["--outputs", self.path(ref)])
        if interpret is None:
            os.remove(self.path(cpu))  # only its outputs travel
        self.cases.append({"name": name, "artifact": cuda, "params": params,
                           "inputs": inputs, "calls": calls,
                           "variant": variant,
                           "check": {"kind": "allclose", "ref": ref,
                                     "rtol": rtol, "atol": atol}})
        return ref

    def objective(self, case, overrides, logprob="unfused"):
        """A GRPO, DPO or PPO case of test/objectives, with the token
        log-probs compiled `logprob` (fused: the vocabulary-chunked GPU
        code of the lm-head entries)."""
        work = os.path.join(self.out, "objectives_" + logprob)
        p = run_model.prepare(self.bin, work, case, "cuda", overrides,
                              compile_flags=self.cuda_flags[1:] +
                              ["--logprob=" + logprob])
        rel = lambda f: os.path.relpath(f, self.out)  # noqa: E731
        name = case + ("-" + "-".join(overrides) if overrides else "")
        if logprob == "fused":
            name += "-logprob_fused"
        self.cases.append({"name": name, "artifact": rel(p["artifact"]),
                           "params": rel(p["params"]),
                           "inputs": [rel(p["inputs"])], "calls": [p["entry"]],
                           "check": {"kind": "objective", "case": case,
                                     "overrides": overrides, "atol": "1e-5",
                                     "rtol": "1e-4"}})


def mla_kernels(sm):
    """The MLA decode kernels the pack checks and times: (name, suffix,
    loom-compile flags, whether numerics cases check it). On sm_90a the
    default is the split of FlashMLA with 128-byte swizzled bulk copies
    and no block barrier between tiles (the fastest in calls 17 to 19);
    the others are measured next to it. The copies' and the splits'
    variants change no kernel: the default's cases check them."""
    kernels = [("default", "", [], True),
               ("k32", "_k32", ["--mla-wgmma-keys=32"], True),
               ("mma", "_mma", ["--wgmma=off"], True),
               ("copies", "_copies", ["--fold-transposes=false"], False),
               ("blocks264", "_tb264", ["--mla-target-blocks=264"], False)]
    if sm != "90a":
        return kernels
    shared, cp_async = "--mla-wgmma-p=shared", "--mla-wgmma-loads=cp-async"
    return kernels + [
        # The default's parts: the overlap, the split, the loads.
        ("no_overlap", "_noov", ["--mla-wgmma-overlap=false"], True),
        ("k32s4", "_k32s4", ["--mla-wgmma-keys=32", "--mla-wgmma-stages=4"],
         True),
        ("tma", "_tma", ["--mla-wgmma-loads=tma"], True),
        ("tma_swizzled", "_tmas", [shared], True),
        ("registers", "_preg", ["--mla-wgmma-p=registers"], True),
        # cp.async: the default before call 17, P in registers, split.
        ("cp_async", "_cpasync", [shared, cp_async], True),
        ("cp_async_registers", "_cpreg",
         ["--mla-wgmma-p=registers", cp_async], True),
        ("split_cp_async", "_split", [cp_async], True),
        # cp.async of whole lines into the swizzled layout.
        ("cp_async_swizzled", "_cps",
         [shared, "--mla-wgmma-loads=cp-async-swizzled"], True),
        ("split_cp_async_swizzled", "_splitcps",
         ["--mla-wgmma-loads=cp-async-swizzled"], True)]


def mla_core_steps(steps, heads, nope, rope, rank, batch=2):
    """Inputs of models/mla_core.loom's `step` for (tokens, start_pos) steps,
    as make_tensors.py specs named step0., step1., ..."""
    specs = []
    for i, (tokens, start) in enumerate(steps):
        n = "step%d." % i
        specs += [n + "q_nope:bf16:%dx%dx%dx%d:wave" % (batch, tokens, heads,
                                                        nope),
                  n + "q_pe:bf16:%dx%dx%dx%d:wave" % (batch, tokens, heads, rope),
                  n + "kv:bf16:%dx%dx%d:wave" % (batch, tokens, rank),
                  n + "k_pe:bf16:%dx%dx%d:wave" % (batch, tokens, rope),
                  n + "start_pos:i64::%d" % start]
    return specs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bin_dir")
    ap.add_argument("pack_dir")
    ap.add_argument("--sm", default="90a")
    a = ap.parse_args()
    os.makedirs(a.pack_dir, exist_ok=True)
    p = Pack(a.bin_dir, a.pack_dir, a.sm)

    quick = os.path.join(MODELS, "quickstart.loom")
    p.tensors("quick.safetensors", [
        "block.fc1.weight:f32:16x8:wave", "block.fc1.bias:f32:16:wave",
        "block.fc2.weight:f32:8x16:wave", "x:f32:1000x8:wave"])
    p.compared("quickstart", quick, [], "quick.safetensors",
               ["quick.safetensors"], ["main"], "1e-4", "1e-6")

    p.tensors("mlp.safetensors", [
        "norm.weight:f32:64:wave", "w1.weight:f32:256x64:wave",
        "w2.weight:f32:64x256:wave", "x:f32:33x64:wave"])
    p.compared("mlp", os.path.join(MODELS, "mlp.loom"), [],
               "mlp.safetensors", ["mlp.safetensors"], ["main"], "1e-4",
               "1e-5")

    meta = p.path("attention.meta.safetensors")
    run([sys.executable, os.path.join(ROOT, "frontend", "python",
                                      "loom_codemeta.py"),
         os.path.join(ROOT, "test", "frontend", "python", "Inputs",
                      "unicode_stats.py"), "-o", meta])
    run([sys.executable, os.path.join(TOOL_INPUTS, "attention_model_inputs.py"),
         meta, p.path("attention.in.safetensors"), "2", "3", "16", "7", "32"])
    p.compared("masked_attention", os.path.join(MODELS, "masked_attention.loom"),
               ["--define", "D=16", "--define", "window=16", "--define",
                "block=32"], None, ["attention.in.safetensors"],
               ["%s:%s" % (e, e) for e in ATTENTION_ENTRIES], "1e-4", "1e-5")

    p.tensors("mla.w.safetensors", [
        "wq_a.weight:f32:8x32:wave", "q_norm.weight:f32:8:1",
        "wq_b.weight:f32:24x8:wave", "wkv_a.weight:f32:20x32:wave",
        "kv_norm.weight:f32:16:1", "wkv_b.weight:f32:32x16:wave",
        "wo.weight:f32:32x16:wave"])
    p.tensors("mla.io.safetensors", [
        "step0.x:f32:2x3x32:wave", "step0.start_pos:i64::0",
        "step1.x:f32:2x1x32:0.25", "step1.start_pos:i64::3",
        "step2.x:f32:2x2x32:wave", "step2.start_pos:i64::4",
        "step3.x:f32:2x1x32:-0.5", "step3.start_pos:i64::6"])
    p.compared("mla", os.path.join(MODELS, "mla.loom"),
               ["--config", os.path.join(TOOL_INPUTS, "mla_tiny.json")],
               "mla.w.safetensors", ["mla.io.safetensors"],
               ["prefill:step0", "decode:step1", "decode:step2",
                "decode:step3"], "1e-4", "1e-5")

    # The GPU MLA decode kernel: models/mla_core.loom in bf16 with
    # --mla=absorb against the float64 interpreter (the CPU's bf16 artifact
    # is naive, and rounds the up-projected keys and values: it is further
    # from the exact result than the absorbed form). The tiny config over a
    # prefill and decode steps (a few keys: one too many or too few shows);
    # DeepSeek-V3's rank and rope dims with 16 heads over a short cache
    # (two tiles, two splits of the decode steps) and over a 400-token
    # prefill (6400 rows of queries) whose decode steps split the cache
    # 13 ways (long enough for many splits, small enough to keep the pack
    # near 50 MB). Tolerances: q_lat, P, the latent output and the result
    # are rounded to bf16; a float64 emulation of those roundings stays
    # within 0.4 of them (outputs of order 5, up to 64). Each case with
    # every kernel of mla_kernels() that changes the kernel (the tiny case,
    # rope 16, takes the unswizzled layouts where a variant asks for the
    # swizzled one).
    core = os.path.join(MODELS, "mla_core.loom")
    tiny = ["--config", os.path.join(TOOL_INPUTS, "mla_core_tiny.json")]
    kernels = [(suffix, flags)
               for _, suffix, flags, checked in mla_kernels(p.sm) if checked]
    p.tensors("mla_core_tiny.w.safetensors", ["wkv_b.weight:bf16:64x32:wave"])
    p.tensors("mla_core_tiny.io.safetensors", mla_core_steps(
        [(3, 0), (1, 3), (2, 4)], heads=2, nope=16, rope=16, rank=32))
    ref = None
    for suffix, flags in kernels:
        ref = p.compared("mla_core_tiny_bf16_absorb" + suffix, core,
                         tiny + ["--mla=absorb"] + flags,
                         "mla_core_tiny.w.safetensors",
                         ["mla_core_tiny.io.safetensors"],
                         ["step:step0", "step:step1", "step:step2"], "2e-2",
                         "2e-2", interpret=tiny, ref=ref,
                         variant="mla" + suffix)
    v3 = ["--define", "max_seq_len=1024"]
    p.tensors("mla_core.w.safetensors", ["wkv_b.weight:bf16:4096x512:wave"])
    for name, steps in (("short", [(40, 0), (1, 40), (3, 41)]),
                        ("long", [(400, 0), (1, 400), (2, 401), (1, 403)])):
        io = "mla_core_%s.io.safetensors" % name
        p.tensors(io, mla_core_steps(steps, heads=16, nope=128, rope=64,
                                     rank=512))
        ref = None
        for suffix, flags in kernels:
            ref = p.compared("mla_core_%s_bf16_absorb%s" % (name, suffix),
                             core, v3 + ["--mla=absorb"] + flags,
                             "mla_core.w.safetensors", [io],
                             ["step:step%d" % i for i in range(len(steps))],
                             "1.5e-2", "0.15", interpret=v3, ref=ref,
                             variant="mla" + suffix)

    tree_meta = p.path("tree.meta.safetensors")
    run([sys.executable, os.path.join(ROOT, "frontend", "python",
                                      "loom_codemeta.py"),
         os.path.join(ROOT, "test", "frontend", "python", "Inputs", "flow.py"),
         "--pad-to", "120", "-o", tree_meta])
    p.tensors("tree.w.safetensors", [
        "wq.weight:f32:32x32:wave", "wk.weight:f32:32x32:0.05",
        "wv.weight:f32:32x32:wave", "wo.weight:f32:32x32:wave"])
    p.tensors("tree.x.safetensors", ["x:f32:2x120x32:wave"])
    p.compared("tree_attention", os.path.join(MODELS, "tree_attention.loom"),
               ["--define", "dim=32", "--define", "n_heads=4"],
               "tree.w.safetensors",
               ["tree.meta.safetensors", "tree.x.safetensors"],
               ["block"], "1e-4", "1e-5")

    # The GPU flash-attention kernel (bf16, --attention=fused) on every
    # mask, against the CPU artifact of the same model (which computes in
    # f32 from the same bf16 inputs).
    bf16_model = p.bf16(os.path.join(MODELS, "masked_attention.loom"),
                        "masked_attention_bf16.loom")
    run([sys.executable, os.path.join(TOOL_INPUTS, "attention_model_inputs.py"),
         meta, p.path("attention_bf16.in.safetensors"), "2", "3", "16", "7",
         "32", "BF16"])
    p.compared("masked_attention_bf16_fused", bf16_model,
               ["--define", "D=16", "--define", "window=16", "--define",
                "block=32", "--attention=fused"], None,
               ["attention_bf16.in.safetensors"],
               ["%s:%s" % (e, e) for e in ATTENTION_ENTRIES], "2e-2", "2e-2")
    run([sys.executable, os.path.join(TOOL_INPUTS, "attention_model_inputs.py"),
         meta, p.path("attention_bf16_d64.in.safetensors"), "1", "2", "64",
         "8", "64", "BF16"])
    p.compared("masked_attention_bf16_d64_fused", bf16_model,
               ["--define", "D=64", "--attention=fused"], None,
               ["attention_bf16_d64.in.safetensors"],
               ["%s:%s" % (e, e) for e in ("attend_causal", "attend_tree",
                                           "attend_full")], "2e-2", "2e-2")
    # The same with q k^T through Hopper's wgmma (--wgmma, sm_90a only).
    if p.sm == "90a":
        for case, defines, inputs, entries in (
                ("masked_attention_bf16_fused_wgmma",
                 ["--define", "D=16", "--define", "window=16", "--define",
                  "block=32"], "attention_bf16.in.safetensors",
                 ATTENTION_ENTRIES),
                ("masked_attention_bf16_d64_fused_wgmma",
                 ["--define", "D=64"], "attention_bf16_d64.in.safetensors",
                 ("attend_causal", "attend_tree", "attend_full"))):
            p.compared(case, bf16_model,
                       defines + ["--attention=fused", "--wgmma"], None,
                       [inputs], ["%s:%s" % (e, e) for e in entries], "2e-2",
                       "2e-2", cpu_flags=defines + ["--attention=fused"])

    # The kernel inside a model: bf16 tree attention (projections, heads
    # split by transposes, the combined and the per-head masks), and
    # grouped heads with more keys than queries and Dv != D.
    tree16 = p.bf16(os.path.join(MODELS, "tree_attention.loom"),
                    "tree_attention_bf16.loom")
    p.tensors("tree16.w.safetensors", [
        "wq.weight:bf16:32x32:wave", "wk.weight:bf16:32x32:0.05",
        "wv.weight:bf16:32x32:wave", "wo.weight:bf16:32x32:wave"])
    p.tensors("tree16.x.safetensors", ["x:bf16:2x120x32:wave"])
    for entry in ("block", "block_grouped"):
        p.compared("tree_attention_bf16_%s_fused" % entry, tree16,
                   ["--define", "dim=32", "--define", "n_heads=2",
                    "--attention=fused"],
                   "tree16.w.safetensors",
                   ["tree.meta.safetensors", "tree16.x.safetensors"],
                   [entry], "3e-2", "3e-2")
    gqa = p.model("gqa_bf16.loom",
                  "graph gqa(q: bf16[B, 4, S, 32], k: bf16[B, 2, T, 32],\n"
                  "          v: bf16[B, 2, T, 64])\n"
                  "    -> (out: bf16[B, 4, S, 64], lse: bf16[B, 4, S]) {\n"
                  "  out, lse = attention(q, k, v, mask=causal)\n"
                  "}\n")
    p.tensors("gqa.in.safetensors", [
        "q:bf16:2x4x100x32:wave", "k:bf16:2x2x150x32:0.25",
        "v:bf16:2x2x150x64:wave"])
    p.compared("gqa_bf16_fused", gqa, ["--attention=fused"], None,
               ["gqa.in.safetensors"], ["gqa"], "2e-2", "2e-2")
    # q, k and v as slices of one tensor at element offsets 4, 20 and 36:
    # rows that are not 16-byte aligned, which the kernel copies to shared
    # memory without cp.async (its synchronous path).
    views = p.model("views_bf16.loom",
                    "graph attend_views(x: bf16[B, H, S, 56])\n"
                    "    -> (out: bf16[B, H, S, 16]) {\n"
                    "  q = slice(x, axis=3, start=4, end=20)\n"
                    "  k = slice(x, axis=3, start=20, end=36)\n"
                    "  v = slice(x, axis=3, start=36, end=52)\n"
                    "  out, lse = attention(q, k, v, mask=causal)\n"
                    "}\n")
    p.tensors("views.in.safetensors", ["x:bf16:2x3x100x56:wave"])
    p.compared("unaligned_views_bf16_fused", views, ["--attention=fused"],
               None, ["views.in.safetensors"], ["attend_views"], "2e-2",
               "2e-2")

    # Score regions in the kernel: FlexAttention-style modifiers (a
    # position boost, an additive bias read at [h, i, j], ALiBi slopes and
    # a soft cap) under the causal mask, and a bias alone without a mask
    # (every tile visited). The region computes in bf16 as written, on the
    # GPU as on the CPU, whose flash kernel reads f32 only: the reference
    # is its unfused form.
    mods = p.model("score_mods_bf16.loom",
                   "config cap = 5.0\n"
                   "graph modifiers(q: bf16[B, H, S, 32], k: bf16[B, H, S, 32],\n"
                   "                v: bf16[B, H, S, 32], bias: bf16[H, S, S],\n"
                   "                slopes: bf16[H])\n"
                   "    -> (out: bf16[B, H, S, 32], lse: bf16[B, H, S]) {\n"
                   "  score boost(b, h, i, j, s) = s * 2.0 + "
                   "select(j == 0, 0.5, 0.0) - (i - j) / 4.0\n"
                   "  out, lse = attention(q, k, v, mask=causal, score=boost,\n"
                   "                       bias=bias, alibi=slopes, "
                   "softcap=cap, scale=0.4)\n"
                   "}\n"
                   "graph biased(q: bf16[B, H, S, 32], k: bf16[B, H, S, 32],\n"
                   "             v: bf16[B, H, S, 32], bias: bf16[H, S, S])\n"
                   "    -> (out: bf16[B, H, S, 32], lse: bf16[B, H, S]) {\n"
                   "  out, lse = attention(q, k, v, bias=bias)\n"
                   "}\n")
    p.tensors("mods.in.safetensors", [
        "%s.%s:bf16:%s:wave" % (prefix, name, shape)
        for prefix in ("m", "b")
        for name, shape in (("q", "2x3x100x32"), ("k", "2x3x100x32"),
                            ("v", "2x3x100x32"), ("bias", "3x100x100"))] +
        ["m.slopes:bf16:3:0.125"])
    p.compared("score_mods_bf16_fused", mods, ["--attention=fused"], None,
               ["mods.in.safetensors"], ["modifiers:m", "biased:b"], "3e-2",
               "3e-2", cpu_flags=["--attention=unfused"])

    # Long sequences: more than 128 key tiles (the kernel classifies them
    # 128 at a time) and a partial last tile, two heads, the causal and
    # the tree mask.
    p.tensors("long.qkv.safetensors", [
        "%s%s:bf16:1x2x8300x16:wave" % (prefix, name)
        for prefix in ("", "c.") for name in ("q", "k", "v")])
    run([sys.executable, os.path.join(ROOT, "bench", "make_tree.py"),
         p.path("long.tree.safetensors"), "8300", "1"])
    p.compared("masked_attention_bf16_long_fused", bf16_model,
               ["--define", "D=16", "--attention=fused"], None,
               ["long.qkv.safetensors", "long.tree.safetensors"],
               ["attend_tree", "attend_causal:c"], "2e-2", "2e-2")

    for case, overrides in OBJECTIVES:
        p.objective(case, overrides)
        if case.endswith("_fused"):
            p.objective(case, overrides, logprob="fused")

    # The GPU token log-probs over three chunks of the vocabulary (9000
    # entries: 4096, 4096 and 808), forward and gradients, against the
    # CPU's vocabulary-chunked kernel; the ids reach every chunk.
    lm_head = p.model(
        "lm_head.loom",
        "graph lm(h: f32[N, 32], ids: i64[N], g: f32[N], w: f32[V, 32])\n"
        "    -> (lp: f32[N], dh: f32[N, 32], dw: f32[V, 32]) {\n"
        "  lp = token_logprob(linear(h, w), ids, temperature=0.7)\n"
        "  dh, dw = grad(sum(token_logprob(linear(h, w), ids,\n"
        "                                  temperature=0.7) * g), h, w)\n"
        "}\n")
    p.tensors("lm_head.in.safetensors",
              ["h:f32:50x32:wave", "g:f32:50:wave", "w:f32:9000x32:wave"])
    run_model.safetensors_io.write(
        p.path("lm_head.ids.safetensors"),
        [("ids", "I64", [50], [(i * 181) % 9000 for i in range(49)] + [8999])])
    p.compared("lm_head_logprob_fused", lm_head,
               ["--logprob=fused"], None,
               ["lm_head.in.safetensors", "lm_head.ids.safetensors"], ["lm"],
               "1e-4", "1e-5")

    # Benchmarks: masked attention prefill at D = 128, the generic f32
    # path and the bf16 flash kernel (random q, k, v of the declared shapes,
    # made by loom-bench on the GPU machine; the tree of attend_tree is
    # tree.safetensors, which PyTorch's FlexAttention reads too).
    bench = [
        {"name": "f32_unfused", "entries": ["attend_causal", "attend_tree"],
         "artifact": p.compile("attention128.cuda.so",
                               os.path.join(MODELS, "masked_attention.loom"),
                               ["--define", "D=128"] + p.cuda_flags)},
        {"name": "bf16_fused", "entries": ["attend_causal", "attend_tree"],
         "artifact": p.compile("attention128_bf16.cuda.so", bf16_model,
                               ["--define", "D=128", "--attention=fused"] +
                               p.cuda_flags)},
    ]
    if p.sm == "90a":
        bench.append(
            {"name": "bf16_fused_wgmma",
             "entries": ["attend_causal", "attend_tree"],
             "artifact": p.compile("attention128_bf16_wgmma.cuda.so",
                                   bf16_model,
                                   ["--define", "D=128", "--attention=fused",
                                    "--wgmma"] + p.cuda_flags)})
    # Dense matrix products, 4096^3: cuBLAS (--matmul=runtime) against the
    # generated loops (--matmul=codegen), f32 and bf16.
    mm_bf16 = p.bf16(os.path.join(ROOT, "bench", "matmul.loom"),
                     "matmul_bf16.loom")
    matmul = []
    for dtype, model in (("f32", os.path.join(ROOT, "bench", "matmul.loom")),
                         ("bf16", mm_bf16)):
        for how in ("runtime", "codegen"):
            name = "matmul_%s_%s" % (dtype, how)
            matmul.append({"name": name, "artifact": p.compile(
                name + ".cuda.so", model,
                ["--define", "m=4096", "--define", "n=4096", "--define",
                 "k=4096", "--matmul=" + how] + p.cuda_flags)})
    # MLA decode at DeepSeek-V3's dims (128 heads, rank 512, rope 64), bf16,
    # one new token after 4095 cached positions: the whole step (the
    # absorbed projections, the cache update and the split-K kernels).
    p.tensors("mla_bench.pos.safetensors", ["start_pos:i64::4095"])
    # Every kernel of mla_kernels(), among them the default with the
    # projections on transposed copies (--fold-transposes=false, the step
    # before the transposes became strided GEMM operands) and with splits
    # for 264 blocks, the default before call 16 (128: one split at B = 64
    # and 128, whose partial results, f32, 17 MB a split at B = 64, the
    # combine reads once).
    variants = mla_kernels(p.sm)
    mla = {"artifacts": {
        name: p.compile(
            "mla_core_v3%s.cuda.so" % suffix, core,
            ["--define", "n_heads=128", "--define", "max_batch_size=128",
             "--mla=absorb"] + flags + p.cuda_flags)
        for name, suffix, flags, _ in variants},
        "checked_by": {name: ["mla" + (suffix if checked else "")]
                       for name, suffix, _, checked in variants},
        "inputs": "mla_bench.pos.safetensors", "batches": [64, 128],
        "cache": 4096, "rank": 512, "rope": 64}
    run([sys.executable, os.path.join(ROOT, "bench", "make_tree.py"),
         p.path("tree.safetensors"), "4096", "0"])
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True).stdout.strip()
    with open(p.path("pack.json"), "w") as f:
        json.dump({"chip": "sm_" + a.sm,
                   "commit": commit,
                   "cases": p.cases,
                   "bench": {"attention": bench, "matmul": matmul,
                             "mla": mla,
                             "S": 4096,
                             "tree": "tree.safetensors"}},
                  f, indent=1)
    print("gpu_pack: %d cases and the benchmark artifact in %s"
          % (len(p.cases), a.pack_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
