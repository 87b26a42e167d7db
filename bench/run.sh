#!/usr/bin/env bash
# Loom benchmarks, baselines side by side in the same run (docs/performance.md).
#
#   bench/run.sh [OUT_DIR]        (default OUT_DIR: bench/out)
#
# Builds loom-compile/loom-bench in LOOM_BENCH_BUILD_DIR (default ./build-bench,
# configured like loom.sh, Release) unless LOOM_BIN_DIR points at existing
# tools, builds the oneDNN sgemm baseline, then runs: 1024^3 matmul (Loom
# runtime GEMM, Loom generated loops, dnnl_sgemm, torch.matmul), the 4-layer
# MLP (Loom vs PyTorch), per-call overhead and compile time. Writes
# OUT_DIR/results.json and OUT_DIR/results.md and prints the markdown tables.
#
# Environment: LOOM_BENCH_ROUNDS (interleaved rounds, default 3),
# LOOM_BENCH_PYTHON (interpreter with torch; default bench/.venv/bin/python,
# then /usr/bin/python3), LOOM_BENCH_PEAK_GFLOPS (FMA peak shown as context),
# LOOM_BENCH_SINGLE_THREAD=1 (also compare matmul and MLP on one thread each),
# LOOM_JOBS (build jobs). Threads: everything uses all cores unless
# LOOM_NUM_THREADS / OMP_NUM_THREADS say otherwise.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/bench/out}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

if [ -n "${LOOM_BIN_DIR:-}" ]; then
  bin="$LOOM_BIN_DIR"
else
  build="${LOOM_BENCH_BUILD_DIR:-$root/build-bench}"
  if [ ! -f "$build/build.ninja" ]; then
    cmake -G Ninja -S "$root" -B "$build" \
      -DCMAKE_BUILD_TYPE=Release \
      -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
      -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
      -DLLVM_USE_LINKER=lld -DMLIR_LINK_MLIR_DYLIB=ON \
      -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
      -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >&2
  fi
  ninja -C "$build" -j "${LOOM_JOBS:-$(nproc)}" loom-compile loom-bench >&2
  bin="$build/bin"
fi
for t in loom-compile loom-bench; do
  [ -x "$bin/$t" ] || { echo "bench: $bin/$t not found" >&2; exit 1; }
done

# The oneDNN baseline: one file, built directly (not part of the Loom build).
sgemm="$out/sgemm_baseline"
if [ ! -x "$sgemm" ] || [ "$root/bench/sgemm_baseline.cpp" -nt "$sgemm" ]; then
  clang++-22 -O2 -std=c++17 "$root/bench/sgemm_baseline.cpp" -o "$sgemm" -ldnnl
fi

# PyTorch, if some interpreter has it.
torch_py=""
missing="not available"
for py in "${LOOM_BENCH_PYTHON:-}" "$root/bench/.venv/bin/python" /usr/bin/python3; do
  [ -n "$py" ] && [ -x "$py" ] || continue
  if "$py" -c "import torch" >/dev/null 2>&1; then torch_py="$py"; break; fi
done
[ -n "$torch_py" ] || echo "bench: torch not available (see docs/performance.md)" >&2

args=(--bin "$bin" --sgemm "$sgemm" --out "$out" --rounds "${LOOM_BENCH_ROUNDS:-3}"
      --torch-missing "$missing")
[ -n "$torch_py" ] && args+=(--torch-python "$torch_py")
[ "${LOOM_BENCH_SINGLE_THREAD:-0}" = 1 ] && args+=(--single-thread)
[ -n "${LOOM_BENCH_PEAK_GFLOPS:-}" ] && args+=(--peak-gflops "$LOOM_BENCH_PEAK_GFLOPS")
exec python3 "$root/bench/bench.py" "${args[@]}"
