"""PyTorch baselines for bench/run.sh; prints one JSON object.

  python torch_mlp.py mlp BATCH DIM LAYERS WARMUP REPS
  python torch_mlp.py parts BATCH DIM 1 WARMUP REPS   (one layer and its ops)
  python torch_mlp.py matmul M N K WARMUP REPS

`mlp` is the same math as bench/mlp4.loom: LAYERS x (RMSNorm -> linear
(no bias) -> SiLU), float32, inputs and weights uniform in [-1, 1) like
loom-bench's random values. Timing: WARMUP untimed calls, then the median of
REPS timed calls, all threads (torch.set_num_threads(os.cpu_count())),
torch.inference_mode().
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

from benchinfo import timed


def uniform(*shape):
    return torch.rand(*shape, dtype=torch.float32) * 2 - 1


def main():
    torch.manual_seed(0)
    # All cores, unless bench.py's single-thread pass asks for fewer.
    torch.set_num_threads(int(os.environ.get("LOOM_BENCH_TORCH_THREADS",
                                             os.cpu_count())))
    mode = sys.argv[1]
    info = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    with torch.inference_mode():
        if mode in ("mlp", "parts"):
            batch, dim, layers, warmup, reps = map(int, sys.argv[2:7])
            eps = 1e-6
            x = uniform(batch, dim)
            weights = [(uniform(dim), uniform(dim, dim)) for _ in range(layers)]
            has_rms = hasattr(F, "rms_norm")

            def rms_norm(h, w):
                if has_rms:
                    return F.rms_norm(h, (dim,), w, eps)
                return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps) * w

            def forward():
                h = x
                for norm, w in weights:
                    h = F.silu(F.linear(rms_norm(h, norm), w))
                return h

            info["rms_norm"] = "F.rms_norm" if has_rms else "composite"
            if mode == "mlp":
                info.update(timed(forward, warmup, reps))
            else:
                norm, w = weights[0]
                pieces = {
                    "one_layer": lambda: F.silu(F.linear(rms_norm(x, norm), w)),
                    "linear_only": lambda: F.linear(x, w),
                    "norm_only": lambda: rms_norm(x, norm),
                    "silu_only": lambda: F.silu(x),
                }
                for name, fn in pieces.items():
                    info[name + "_s"] = timed(fn, warmup, reps)["median_s"]
                info["median_s"] = info["one_layer_s"]
        elif mode == "matmul":
            m, n, k, warmup, reps = map(int, sys.argv[2:7])
            a, b = uniform(m, k), uniform(k, n)
            info.update(timed(lambda: torch.matmul(a, b), warmup, reps))
        else:
            raise SystemExit("unknown mode " + mode)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
