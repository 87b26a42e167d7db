#!/usr/bin/env bash
# Prepares bench/gpu-pack/ for bench/gpu-check.sh: the CUDA artifacts of
# every model, their inputs and the values to check them against (see
# bench/gpu_pack.py). Runs here, where the compiler builds; the GPU machine
# only needs the runtime, which gpu-check.sh builds there.
#
#   bench/gpu-pack.sh [BUILD_DIR] [PACK_DIR]   (defaults: ./build, bench/gpu-pack)
#
# Environment: LOOM_GPU_SM (default 90a: H100, H200).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
pack="${2:-$root/bench/gpu-pack}"
if [ ! -x "$build/bin/loom-compile" ]; then
  LOOM_BUILD_DIR="$build" "$root/loom.sh" build
fi
rm -rf "$pack"
python3 "$root/bench/gpu_pack.py" "$build/bin" "$pack" --sm "${LOOM_GPU_SM:-90a}"
