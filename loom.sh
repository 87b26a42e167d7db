#!/usr/bin/env bash
# Sets up, builds and runs Loom on Debian 12.
#
#   ./loom.sh demo    install what is missing, build, compile a bundled model
#                     and run it (compiled and interpreted side by side)
#   ./loom.sh test    the same set-up, then the whole test suite (lit + ctest)
#   ./loom.sh build   set-up and build only
#
# Both are idempotent and incremental. Environment: LOOM_BUILD_DIR (default
# ./build), LOOM_CMAKE_ARGS (extra configure flags, e.g.
# -DLOOM_ENABLE_SANITIZERS=ON), LOOM_JOBS (default: all cores).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${LOOM_BUILD_DIR:-$root/build}"
jobs="${LOOM_JOBS:-$(nproc)}"

packages=(cmake ninja-build ccache python3 clang-22 lld-22 llvm-22-dev
          llvm-22-tools libmlir-22-dev mlir-22-tools libdnnl-dev libgtest-dev)

install_packages() {
  # The sanitizer runtimes of clang come in their own package.
  case "${LOOM_CMAKE_ARGS:-}" in
    *LOOM_ENABLE_SANITIZERS=ON*) packages+=(libclang-rt-22-dev) ;;
  esac
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "loom: missing packages. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "loom: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

configure_and_build() {
  if [ ! -f "$build/build.ninja" ]; then
    # shellcheck disable=SC2086
    cmake -G Ninja -S "$root" -B "$build" \
      -DCMAKE_BUILD_TYPE=Release \
      -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
      -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
      -DLLVM_USE_LINKER=lld -DMLIR_LINK_MLIR_DYLIB=ON \
      -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
      -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
      ${LOOM_CMAKE_ARGS:-}
  fi
  ninja -C "$build" -j "$jobs"
}

demo() {
  local out="$build/quickstart"
  mkdir -p "$out"
  python3 "$root/models/quickstart_data.py" "$out"
  "$build/bin/loom-compile" "$root/models/quickstart.loom" -o "$out/quickstart.so"
  echo "== compiled artifact"
  "$build/bin/loom-run" "$out/quickstart.so" --params "$out/params.safetensors" \
    --inputs "$out/inputs.safetensors" --call main --outputs "$out/compiled.safetensors" --print
  echo "== reference interpreter (float64)"
  "$build/bin/loom-run" "$root/models/quickstart.loom" --interpret \
    --params "$out/params.safetensors" --inputs "$out/inputs.safetensors" \
    --call main --outputs "$out/interpreted.safetensors" --print
}

# The runtime alone, without LLVM or MLIR: build it and run its tests.
runtime_only_tests() {
  local rt="$build/runtime-only"
  if [ ! -f "$rt/build.ninja" ]; then
    cmake -G Ninja -S "$root" -B "$rt" -DCMAKE_BUILD_TYPE=Release \
      -DLOOM_RUNTIME_ONLY=ON \
      -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
      -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld-22 \
      -DCMAKE_SHARED_LINKER_FLAGS=-fuse-ld=lld-22 \
      -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
  fi
  ninja -C "$rt" -j "$jobs"
  (cd "$rt" && ctest --output-on-failure)
}

cmd="${1:-demo}"
case "$cmd" in
  demo) install_packages; configure_and_build; demo ;;
  test) install_packages; configure_and_build
        ninja -C "$build" check-loom
        runtime_only_tests ;;
  build) install_packages; configure_and_build ;;
  *) echo "usage: $0 demo|test|build" >&2; exit 2 ;;
esac
