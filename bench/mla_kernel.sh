#!/usr/bin/env bash
# The MLA decoding kernel against this machine's roofline (docs/performance.md).
#
#   bench/mla_kernel.sh [BUILD_DIR] [mla_kernel_bench arguments...]
#
# Builds the runtime library in BUILD_DIR (default ./build; a runtime-only
# build works), compiles bench/roofline.cc and bench/mla_kernel_bench.cc
# against it into BUILD_DIR/bench-mla/, runs roofline (FMA peak, memory read
# bandwidth) and then the kernel benchmark, which measures the FMA peak again
# in the same process. Prints the roofline JSON, the kernel's markdown table
# and its JSON. Threads: all cores unless LOOM_NUM_THREADS says otherwise.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
[ $# -gt 0 ] && shift
[ -f "$build/CMakeCache.txt" ] || { echo "mla_kernel: $build is not a configured build" >&2; exit 1; }
build="$(cd "$build" && pwd)"
ninja -C "$build" loom_runtime >&2

cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
cxx="$(cache_value CMAKE_CXX_COMPILER)"
libs=()
for var in LOOM_DNNL_LIBRARY LOOM_GOMP_LIBRARY; do
  lib="$(cache_value "$var")"
  case "$lib" in ""|*NOTFOUND) ;; *) libs+=("$lib") ;; esac
done
runtime_lib="$(find "$build" -name libloom_runtime.a -print -quit)"
[ -n "$runtime_lib" ] || { echo "mla_kernel: libloom_runtime.a not found in $build" >&2; exit 1; }

out="$build/bench-mla"
mkdir -p "$out"
flags=(-O2 -std=c++17 -pthread)
"$cxx" "${flags[@]}" "$root/bench/roofline.cc" -o "$out/roofline"
"$cxx" "${flags[@]}" -I"$root/runtime/include" -DLOOM_ROOFLINE_NO_MAIN \
  "$root/bench/mla_kernel_bench.cc" "$root/bench/roofline.cc" \
  "$runtime_lib" "${libs[@]}" -ldl -o "$out/mla_kernel_bench"

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1);" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg); commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$out/roofline"
"$out/mla_kernel_bench" "$@"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
