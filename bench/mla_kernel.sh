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
bench_name=mla_kernel
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
bench_kernel bench-mla mla_kernel_bench.cc "$@"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
