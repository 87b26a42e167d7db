#!/usr/bin/env bash
# Masked attention of the whole model (models/masked_attention.loom): Loom
# fused, Loom unfused and PyTorch (SDPA, FlexAttention, composite) in the
# same run (docs/performance.md, "Masked attention").
#
#   bench/attention.sh [BUILD_DIR]        (default BUILD_DIR: ./build)
#
# Builds loom-compile, loom-run, loom-bench and the runtime library in
# BUILD_DIR (configured like loom.sh, Release, if it is not configured yet;
# LOOM_BENCH_NO_BUILD=1 uses the binaries as they are), compiles
# bench/roofline.cc into BUILD_DIR/bench-attention-model/, finds a Python
# with torch and numpy, then runs bench/attention_bench.py: S in {1024, 2048,
# 4096}, H = 8, B = 1, D in {64, 128}, f32, masks none, causal, window256,
# tree (the code metadata of a real Python file) and sparse10, in
# interleaved rounds, outputs checked against SDPA's, the FMA peak measured
# before and after. Prints a markdown report and writes
# bench/results/attention-DATE.json and .md (LOOM_BENCH_OUT changes the
# folder).
#
# Environment: LOOM_BENCH_QUICK=1 (S = 1024 only, one round: a few minutes),
# LOOM_BENCH_ROUNDS (default 5), LOOM_ATTN_S, LOOM_ATTN_D, LOOM_ATTN_MASKS,
# LOOM_ATTN_SECONDS, LOOM_ATTN_UNFUSED_MAX_S, LOOM_ATTN_TOL,
# LOOM_ATTN_SOURCE (see bench/attention_bench.py), LOOM_BENCH_PYTHON
# (interpreter with torch; default bench/.venv/bin/python, then
# /usr/bin/python3), LOOM_JOBS (build jobs). Threads: all cores unless
# LOOM_NUM_THREADS / OMP_NUM_THREADS say otherwise.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench_name=attention
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
bench_configure_build "${1:-$root/build}" loom-compile loom-run loom-bench loom_runtime

cxx="$(bench_cache_value CMAKE_CXX_COMPILER)"
tools="$build/bench-attention-model"
mkdir -p "$tools"
"$cxx" -O2 -std=c++17 -pthread "$root/bench/roofline.cc" -o "$tools/roofline"

bench_torch_python
[ -n "$torch_py" ] || {
  echo "attention: no Python with torch and numpy (set LOOM_BENCH_PYTHON); PyTorch is a contender and makes the inputs" >&2
  exit 1
}

exec "$torch_py" "$root/bench/attention_bench.py" --bin "$bin" \
  --roofline "$tools/roofline" --out "${LOOM_BENCH_OUT:-$root/bench/results}"
