# shellcheck shell=bash
# Steps the benchmark scripts share; sourced by them, never run. A script sets
# `root` (the repository) and `bench_name` (the prefix of its messages) before
# it sources this file.
#
#   bench_use_build [BUILD_DIR]
#       Sets `build` to BUILD_DIR (default $root/build), which must be a
#       configured build (a runtime-only one will do), made absolute, and
#       builds the runtime library there.
#   bench_configure_build BUILD_DIR TARGET...
#       Sets `build` to BUILD_DIR, configures it like loom.sh (Release) if it
#       is not configured yet, builds the targets (LOOM_JOBS jobs) and sets
#       `bin` to its bin folder, where every target but loom_runtime must be;
#       with LOOM_BENCH_NO_BUILD=1 it builds nothing and the build must exist.
#   bench_kernel_tools OUT_DIR SOURCE
#       Compiles bench/roofline.cc into OUT_DIR/roofline, and the kernel
#       benchmark bench/SOURCE with bench/roofline.cc (LOOM_ROOFLINE_NO_MAIN)
#       against the runtime library of `build`, and its oneDNN and libgomp
#       when that build uses them, into OUT_DIR/SOURCE without .cc.
#   bench_torch_python
#       Sets `torch_py` to the first Python that imports torch and numpy:
#       LOOM_BENCH_PYTHON, bench/.venv/bin/python, /usr/bin/python3; empty
#       when none does.
#   bench_machine
#       Prints the cores, the CPU model, the load average and the commit.
#   bench_kernel OUT_SUBDIR SOURCE [BUILD_DIR [ARGUMENTS...]]
#       What a kernel script does: bench_use_build BUILD_DIR, then
#       bench_kernel_tools into BUILD_DIR/OUT_SUBDIR, bench_machine, the
#       roofline and the kernel benchmark with ARGUMENTS.

bench_fail() {
  echo "${bench_name:-bench}: $*" >&2
  exit 1
}

bench_use_build() {
  build="${1:-$root/build}"
  [ -f "$build/CMakeCache.txt" ] || bench_fail "$build is not a configured build"
  build="$(cd "$build" && pwd)"
  ninja -C "$build" loom_runtime >&2
}

bench_configure_build() {
  build="$1"
  shift
  if [ ! -f "$build/build.ninja" ]; then
    [ "${LOOM_BENCH_NO_BUILD:-0}" = 1 ] && bench_fail "$build is not a configured build"
    cmake -G Ninja -S "$root" -B "$build" \
      -DCMAKE_BUILD_TYPE=Release \
      -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
      -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
      -DLLVM_USE_LINKER=lld -DMLIR_LINK_MLIR_DYLIB=ON \
      -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
      -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >&2
  fi
  build="$(cd "$build" && pwd)"
  if [ "${LOOM_BENCH_NO_BUILD:-0}" != 1 ]; then
    ninja -C "$build" -j "${LOOM_JOBS:-$(nproc)}" "$@" >&2
  fi
  bin="$build/bin"
  local t
  for t in "$@"; do
    [ "$t" = loom_runtime ] && continue
    [ -x "$bin/$t" ] || bench_fail "$bin/$t not found"
  done
}

bench_torch_python() {
  torch_py=""
  local py
  for py in "${LOOM_BENCH_PYTHON:-}" "$root/bench/.venv/bin/python" /usr/bin/python3; do
    [ -n "$py" ] && [ -x "$py" ] || continue
    if "$py" -c "import torch, numpy" >/dev/null 2>&1; then
      torch_py="$py"
      return 0
    fi
  done
}

bench_cache_value() {
  sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"
}

bench_kernel_tools() {
  local out="$1" source="$2"
  local cxx lib var runtime_lib
  cxx="$(bench_cache_value CMAKE_CXX_COMPILER)"
  local libs=()
  for var in LOOM_DNNL_LIBRARY LOOM_GOMP_LIBRARY; do
    lib="$(bench_cache_value "$var")"
    case "$lib" in "" | *NOTFOUND) ;; *) libs+=("$lib") ;; esac
  done
  runtime_lib="$(find "$build" -name libloom_runtime.a -print -quit)"
  [ -n "$runtime_lib" ] || bench_fail "libloom_runtime.a not found in $build"
  mkdir -p "$out"
  local flags=(-O2 -std=c++17 -pthread)
  "$cxx" "${flags[@]}" "$root/bench/roofline.cc" -o "$out/roofline"
  "$cxx" "${flags[@]}" -I"$root/runtime/include" -DLOOM_ROOFLINE_NO_MAIN \
    "$root/bench/$source" "$root/bench/roofline.cc" \
    "$runtime_lib" "${libs[@]}" -ldl -o "$out/${source%.cc}"
}

bench_kernel() {
  local sub="$1" source="$2"
  shift 2
  bench_use_build "${1:-}"
  [ $# -gt 0 ] && shift
  local out="$build/$sub"
  bench_kernel_tools "$out" "$source"
  bench_machine
  "$out/roofline"
  "$out/${source%.cc}" "$@"
}

bench_machine() {
  echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1);" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg); commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
}
