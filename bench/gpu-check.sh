#!/usr/bin/env bash
# The GPU check, in one call on a machine with an NVIDIA GPU: builds the
# runtime (runtime-only, no LLVM or MLIR needed there), runs every model of the pack made by bench/gpu-pack.sh on the GPU against
# its CPU or float64 reference, and benchmarks masked attention against
# PyTorch (SDPA, FlexAttention) and PyTorch's absorbed MLA decode against
# the card's copy bandwidth, on the same card in the same run.
#
#   bench/gpu-check.sh OUT_DIR [PACK_DIR]      (default PACK_DIR: bench/gpu-pack)
#
# Writes OUT_DIR/gpu-check.log (ending with bench/gpu_report.py's tables),
# OUT_DIR/build.log and OUT_DIR/gpu-check.json (with LOOM_GPU_NCU=1 also the
# Nsight Compute reports of bench/gpu_check.py).
# Exits 1 when a numerics case fails, 2 when the pack or the build is missing.
# Environment: LOOM_GPU_BUILD (default /tmp/loom-gpu-build), LOOM_GPU_ATTN_S
# (sequence length of the attention benchmark, default 4096).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: bench/gpu-check.sh OUT_DIR [PACK_DIR]}"
pack="${2:-$root/bench/gpu-pack}"
build="${LOOM_GPU_BUILD:-/tmp/loom-gpu-build}"
mkdir -p "$out"
exec > >(tee "$out/gpu-check.log") 2>&1

if [ ! -f "$pack/pack.json" ]; then
  echo "gpu-check: no pack in $pack: run bench/gpu-pack.sh where the compiler builds"
  exit 2
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm \
  --format=csv,noheader || true
echo "== build (runtime only, no tests: the mock tests run in CI) in $build"
if ! { cmake "${generator[@]}" -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
         -DLOOM_RUNTIME_ONLY=ON -DLOOM_ENABLE_DNNL=OFF -DLOOM_BUILD_TESTS=OFF \
         >"$out/build.log" 2>&1 &&
       cmake --build "$build" -j "$(nproc)" --target loom-run loom-bench \
         >>"$out/build.log" 2>&1; }; then
  tail -30 "$out/build.log"
  echo "gpu-check: the runtime did not build"
  exit 2
fi
# cuBLAS for the matrix products: the library path's, else the toolkit's,
# else the one in PyTorch's wheels.
if [ -z "${LOOM_CUBLAS:-}" ] && ! ldconfig -p 2>/dev/null | grep -q libcublas.so; then
  for f in /usr/local/cuda/lib64/libcublas.so.1[0-9] \
           $(python3 -c 'import glob, site; print(" ".join(sorted(glob.glob(site.getsitepackages()[0] + "/nvidia/**/libcublas.so.1[0-9]", recursive=True))))' 2>/dev/null); do
    if [ -f "$f" ]; then export LOOM_CUBLAS="$f"; break; fi
  done
fi
echo "cuBLAS: ${LOOM_CUBLAS:-from the library path}"
echo "== models on the GPU, then benchmarks"
status=0
PYTHONUNBUFFERED=1 python3 "$root/bench/gpu_check.py" "$pack" "$build/bin" "$out" ||
  status=$?
if [ -f "$out/gpu-check.json" ]; then
  echo "== summary"
  python3 "$root/bench/gpu_report.py" "$out/gpu-check.json" || true
fi
exit "$status"
