#!/usr/bin/env bash
# The masked attention kernel (loom_rt_attention_f32) against this machine's
# roofline and PyTorch's fused CPU attention.
#
#   bench/attention_kernel.sh [BUILD_DIR] [attention_kernel_bench arguments...]
#
# Builds the runtime library in BUILD_DIR (default ./build; a runtime-only
# build works), compiles bench/roofline.cc and bench/attention_kernel_bench.cc
# against it into BUILD_DIR/bench-attention/, runs roofline (FMA peak, memory
# read bandwidth) and then the kernel benchmark, which measures the FMA peak
# again in the same process: S in {1024, 2048, 4096}, H = 8, D in {64, 128},
# B = 1, masks none / causal / sliding window 256 / 10% of 64 x 64 blocks.
# Prints the roofline JSON, the kernel's markdown table and its JSON. Then,
# when a Python with torch is found (LOOM_BENCH_PYTHON, else
# bench/.venv/bin/python, else python3), the same sizes without a mask and
# causal through torch.nn.functional.scaled_dot_product_attention, float32,
# median of timed calls, as a second table and JSON line. Threads: all cores
# unless LOOM_NUM_THREADS (and OMP_NUM_THREADS for torch) say otherwise.
# The kernel uses AVX2+FMA; on a CPU with AVX-512, torch uses it too unless
# ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
# restrict it to the same vector width.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench_name=attention_kernel
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
bench_kernel bench-attention attention_kernel_bench.cc "$@"

python="${LOOM_BENCH_PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in "$root/bench/.venv/bin/python" python3; do
    if "$candidate" -c "import torch" 2>/dev/null; then
      python="$candidate"
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "attention_kernel: no Python with torch; PyTorch comparison skipped" >&2
else
  "$python" - <<'PY'
import json, os, statistics, time
import torch
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
rows = []
print("| S | H | D | mask | torch median ms | dense-equiv GFLOP/s |", flush=True)
print("|---:|---:|---:|---|---:|---:|", flush=True)
with torch.inference_mode():
    for d in (64, 128):
        for s in (1024, 2048, 4096):
            g = torch.Generator().manual_seed(1)
            q, k, v = (torch.rand(1, 8, s, d, generator=g) * 2 - 1
                       for _ in range(3))
            for causal in (False, True):
                call = lambda: F.scaled_dot_product_attention(
                    q, k, v, is_causal=causal)
                call()
                start = time.perf_counter()
                call()
                once = time.perf_counter() - start
                reps = max(3, min(100, int(0.5 / max(once, 1e-6))))
                times = []
                for _ in range(reps):
                    start = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - start)
                t = statistics.median(times)
                gf = 4.0 * 8 * s * s * d / t / 1e9
                mask = "causal" if causal else "none"
                print(f"| {s} | 8 | {d} | {mask} | {t * 1e3:.2f} | {gf:.1f} |",
                      flush=True)
                rows.append({"S": s, "H": 8, "D": d, "mask": mask,
                             "median_ms": round(t * 1e3, 4),
                             "dense_gflops": round(gf, 2)})
print(json.dumps({"torch": torch.__version__,
                  "threads": torch.get_num_threads(), "configs": rows}))
PY
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
