#!/usr/bin/env bash
# GRPO loss + backward from the hidden states and the lm head
# (models/grpo.loom, entry grpo_loss_fused): Loom with --logprob=fused (one
# pass over blocks of tokens), --logprob=two-pass (vocabulary-chunked forward
# and backward kernels) and --logprob=unfused (materialized logits), and
# PyTorch autograd in the same run (docs/performance.md, "RL objectives");
# each also with the lm head's gradient accumulated into an existing buffer
# (entry grpo_loss_fused_accumulate; PyTorch's backward() into W.grad).
#
#   bench/objectives.sh [BUILD_DIR]        (default BUILD_DIR: ./build)
#
# Builds loom-compile, loom-run, loom-bench and the runtime library in
# BUILD_DIR (configured like loom.sh, Release, if it is not configured yet;
# LOOM_BENCH_NO_BUILD=1 uses the binaries as they are), finds a Python with
# torch and numpy, checks bench/torch_objectives.py against the float64
# reference (test/objectives/reference.py), then runs
# bench/objectives_bench.py: tokens = 1024 (B = 8, T = 128), D = 1024,
# V = 32768, f32, TRL's GRPO loss (bnpo, beta 0.04, k3); outputs of the three
# artifacts checked against PyTorch's; then in interleaved rounds the median
# time and the peak resident memory above the inputs (loom-bench --rss) of
# each contender. Prints a markdown report and writes
# bench/results/objectives-DATE.json and .md (LOOM_BENCH_OUT changes the
# folder).
#
# Environment: LOOM_BENCH_QUICK=1 (one round), LOOM_BENCH_ROUNDS (default 3),
# LOOM_OBJ_MODEL (default models/grpo.loom), LOOM_OBJ_FUSED_FLAGS,
# LOOM_OBJ_TWO_PASS_FLAGS and LOOM_OBJ_UNFUSED_FLAGS (loom-compile flags,
# defaults --logprob=fused, --logprob=two-pass and --logprob=unfused), LOOM_OBJ_SIZE, LOOM_OBJ_REPS, LOOM_OBJ_WARMUP,
# LOOM_OBJ_MASK (padded or full), LOOM_OBJ_CONFIG, LOOM_OBJ_ATOL, LOOM_OBJ_RTOL (see
# bench/objectives_bench.py), LOOM_BENCH_PYTHON (interpreter with torch;
# default bench/.venv/bin/python, then /usr/bin/python3), LOOM_JOBS (build
# jobs). Threads: all cores unless LOOM_NUM_THREADS / OMP_NUM_THREADS say
# otherwise.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench_name=objectives
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
bench_configure_build "${1:-$root/build}" loom-compile loom-run loom-bench loom_runtime

bench_torch_python
[ -n "$torch_py" ] || {
  echo "objectives: no Python with torch and numpy (set LOOM_BENCH_PYTHON); PyTorch is a contender and makes the inputs" >&2
  exit 1
}
bench_machine >&2
"$torch_py" "$root/bench/torch_objectives.py" --check >&2 ||
  bench_fail "bench/torch_objectives.py does not match the reference"

exec "$torch_py" "$root/bench/objectives_bench.py" --bin "$bin" \
  --torch-python "$torch_py" --out "${LOOM_BENCH_OUT:-$root/bench/results}"
