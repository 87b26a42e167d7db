#!/usr/bin/env bash
# One DeepSeek-V3 MLA layer: cache size and decode step, Loom against its
# baselines in the same run (docs/performance.md, "MLA layer").
#
#   bench/mla.sh [BUILD_DIR]        (default BUILD_DIR: ./build)
#
# Builds loom-compile, loom-run, loom-bench and the runtime library in
# BUILD_DIR (configured like loom.sh, Release, if it is not configured yet;
# LOOM_BENCH_NO_BUILD=1 uses the binaries as they are), compiles
# bench/roofline.cc and bench/mla_kernel_bench.cc against the runtime into
# BUILD_DIR/bench-mla-layer/, finds a Python with torch, then runs
# bench/mla_bench.py: the cache bytes per token of both cache layouts at the
# DeepSeek-V3 671B config (bench/deepseek_v3_671b.json), one decode step of
# the layer (Loom --mla=absorb, Loom --mla=naive, PyTorch) and the attention
# part alone (loom_rt_mla_decode_f32 against its roofline, PyTorch), in
# interleaved rounds. Prints a markdown report and writes
# bench/results/mla-DATE.json and .md (LOOM_BENCH_OUT changes the folder).
#
# Environment: LOOM_BENCH_QUICK=1 (about 2 minutes: fewer sizes, 1 round),
# LOOM_BENCH_ROUNDS (default 5), LOOM_MLA_CONFIGS (batch x cache length,
# default 1x1024,1x4096,1x16384,8x1024,8x4096,8x16384), LOOM_MLA_SECONDS
# (timed seconds a contender gets per round, default 1),
# LOOM_BENCH_PYTHON (interpreter with torch; default bench/.venv/bin/python,
# then /usr/bin/python3), LOOM_JOBS (build jobs). Threads: all cores unless
# LOOM_NUM_THREADS / OMP_NUM_THREADS say otherwise.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench_name=mla
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
bench_configure_build "${1:-$root/build}" loom-compile loom-run loom-bench loom_runtime

# The roofline and the kernel benchmark, built as bench/mla_kernel.sh does,
# in their own folder.
tools="$build/bench-mla-layer"
bench_kernel_tools "$tools" mla_kernel_bench.cc

bench_torch_python
[ -n "$torch_py" ] || echo "mla: no Python with torch and numpy; the PyTorch rows read n/a (see docs/performance.md)" >&2

args=(--bin "$bin" --tools "$tools" --out "${LOOM_BENCH_OUT:-$root/bench/results}")
[ -n "$torch_py" ] && args+=(--torch-python "$torch_py")
exec python3 "$root/bench/mla_bench.py" "${args[@]}"
