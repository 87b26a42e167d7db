#!/usr/bin/env python3
"""PyTorch baselines on the GPU for bench/gpu-check.sh.

usage: torch_gpu.py B H S [TREE.safetensors]

Times, with CUDA events (median of 10 after 3 warm-ups), on the current
card:
  - the device-to-device copy bandwidth (1 GiB, bytes read + written);
  - masked attention prefill [B, H, S, 128]: SDPA (causal) in bf16 and f32,
    FlexAttention (causal, and a syntax-tree mask from the Euler-tour
    intervals of TREE, by default a random tree of bench/make_tree.py) in
    bf16; TFLOP/s count 4 B H S^2 D (half when causal) for every mask;
  - torch.mm of 4096 x 4096 matrices in f32 and bf16 (cuBLAS);
  - the absorbed MLA decode of DeepSeek-V3 (128 heads, kv_lora 512, rope 64,
    one query token, cache 4096) in bf16 at batch 64 and 128, alone and
    with its projections (q_nope W_UK before, W_UV after: the scope of
    Loom's models/mla_core.loom step); GB/s count the cache bytes read
    (latent and rope key).
With LOOM_GPU_ONLY=mla, only the copy bandwidth and the MLA decode.
Prints one line per figure, then the whole as one JSON object on the last
line.
"""

import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tree  # noqa: E402

# LOOM_TORCH_DEVICE=cpu runs the same code on the CPU (small sizes), to check
# this script where there is no GPU.
DEVICE = os.environ.get("LOOM_TORCH_DEVICE", "cuda")


def timed(fn, reps=10, warmup=3):
    for _ in range(warmup):
        fn()
    if DEVICE != "cuda":
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    return times[len(times) // 2]


def copy_bandwidth():
    n = 1 << (28 if DEVICE == "cuda" else 22)  # 1 GiB of f32 on the GPU
    src = torch.empty(n, device=DEVICE)
    dst = torch.empty_like(src)
    t = timed(lambda: dst.copy_(src))
    return {"bytes": 2 * 4 * n, "median_s": t, "gbps": 2 * 4 * n / t / 1e9}


def attention(b, h, s, tree_file, d=128):
    from torch.nn.attention.flex_attention import (create_block_mask,
                                                   flex_attention)
    out = {}
    full = 4.0 * b * h * s * s * d
    for dtype, name in ((torch.bfloat16, "bf16"), (torch.float32, "f32")):
        q, k, v = (torch.randn(b, h, s, d, device=DEVICE, dtype=dtype)
                   for _ in range(3))
        t = timed(lambda: torch.nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=True))
        out["sdpa_causal_" + name] = {"median_s": t,
                                      "tflops": full / 2 / t / 1e12}
    q, k, v = (torch.randn(b, h, s, d, device=DEVICE, dtype=torch.bfloat16)
               for _ in range(3))
    flex = torch.compile(flex_attention) if DEVICE == "cuda" else flex_attention
    tin, tout = (make_tree.read(tree_file) if tree_file else
                 make_tree.tree_intervals(s, 0))
    tin = torch.tensor(tin, device=DEVICE)
    tout = torch.tensor(tout, device=DEVICE)

    def causal(b_, h_, i, j):
        return j <= i

    def tree(b_, h_, i, j):
        return (tin[j] <= tin[i]) & (tout[i] <= tout[j])

    for name, mod in (("causal", causal), ("tree", tree)):
        mask = create_block_mask(mod, None, None, s, s, device=DEVICE)
        sparsity = float(mask.sparsity()) if hasattr(mask, "sparsity") else None
        t = timed(lambda: flex(q, k, v, block_mask=mask))
        flop = full / 2 if name == "causal" else full
        out["flex_%s_bf16" % name] = {"median_s": t,
                                      "tflops": flop / t / 1e12,
                                      "block_sparsity_pct": sparsity}
    return out


def mla_decode(batch, cache=4096, heads=128, kv_lora=512, rope=64, nope=128):
    if DEVICE != "cuda":
        cache = 256
    dt = torch.bfloat16
    q_lat = torch.randn(batch, heads, kv_lora, device=DEVICE, dtype=dt)
    q_pe = torch.randn(batch, heads, rope, device=DEVICE, dtype=dt)
    kv = torch.randn(batch, cache, kv_lora, device=DEVICE, dtype=dt)
    pe = torch.randn(batch, cache, rope, device=DEVICE, dtype=dt)
    scale = 1.0 / math.sqrt(128 + rope)

    def attend(q_lat):
        scores = (torch.bmm(q_lat, kv.transpose(1, 2)) +
                  torch.bmm(q_pe, pe.transpose(1, 2))) * scale
        p = torch.softmax(scores.float(), dim=-1).to(dt)
        return torch.bmm(p, kv)

    # The whole step as Loom's models/mla_core.loom runs it: q_nope times
    # W_UK per head, the attention, the latent output times W_UV.
    q_nope = torch.randn(batch, heads, nope, device=DEVICE, dtype=dt)
    w_uk = torch.randn(heads, nope, kv_lora, device=DEVICE, dtype=dt) * 0.05
    w_uv = torch.randn(heads, nope, kv_lora, device=DEVICE, dtype=dt) * 0.05

    def step():
        q = torch.bmm(q_nope.transpose(0, 1), w_uk).transpose(0, 1)
        o = attend(q.contiguous())
        return torch.bmm(o.transpose(0, 1), w_uv.transpose(1, 2))

    t = timed(lambda: attend(q_lat))
    t_step = timed(step)
    nbytes = batch * cache * (kv_lora + rope) * 2
    return {"median_s": t, "cache_bytes": nbytes, "gbps": nbytes / t / 1e9,
            "step_median_s": t_step, "step_gbps": nbytes / t_step / 1e9}


def matmul(n=4096):
    if DEVICE != "cuda":
        n = 256
    out = {}
    for dtype, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        a = torch.randn(n, n, device=DEVICE, dtype=dtype)
        b = torch.randn(n, n, device=DEVICE, dtype=dtype)
        t = timed(lambda: torch.mm(a, b))
        out[name] = {"n": n, "median_s": t, "tflops": 2.0 * n ** 3 / t / 1e12}
    return out


def main():
    b, h, s = (int(x) for x in sys.argv[1:4])
    tree_file = sys.argv[4] if len(sys.argv) > 4 else None
    torch.manual_seed(0)
    report = {"torch": torch.__version__,
              "device": torch.cuda.get_device_name() if DEVICE == "cuda"
              else DEVICE}
    report["copy"] = copy_bandwidth()
    print("copy: %.0f GB/s" % report["copy"]["gbps"])
    if os.environ.get("LOOM_GPU_ONLY") != "mla":
        report["attention"] = attention(b, h, s, tree_file)
        for k, r in report["attention"].items():
            print("torch %-18s %.3f ms, %.1f TFLOP/s" % (
                k, r["median_s"] * 1e3, r["tflops"]))
        report["matmul"] = matmul()
        for k, r in report["matmul"].items():
            print("torch mm %d^3 %-4s %.3f ms, %.1f TFLOP/s" % (
                r["n"], k, r["median_s"] * 1e3, r["tflops"]))
    report["mla_decode"] = {}
    for batch in (64, 128):
        r = mla_decode(batch)
        r["fraction_of_copy"] = r["gbps"] / report["copy"]["gbps"]
        report["mla_decode"]["B%d" % batch] = r
        print("torch mla decode B=%d: %.3f ms, %.0f GB/s (%.0f%% of copy); "
              "with the projections %.3f ms, %.0f GB/s" % (
                  batch, r["median_s"] * 1e3, r["gbps"],
                  100 * r["fraction_of_copy"], r["step_median_s"] * 1e3,
                  r["step_gbps"]))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
