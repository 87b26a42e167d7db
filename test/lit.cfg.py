# Lit configuration of Loom's IR, driver and diagnostics tests.

import os
import shutil

import lit.formats
from lit.llvm import llvm_config

config.name = "LOOM"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".loom", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.loom_obj_root, "test")
# GoogleTest folders and inputs that other tests read.
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "Inputs"]

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.loom_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.loom_tools_dir, config.llvm_tools_dir]
llvm_config.add_tool_substitutions(
    ["loom-opt", "loom-compile", "loom-run", "loom-bench"], tool_dirs)
config.substitutions.append(("%mlir_lib_dir", config.mlir_lib_dir))
config.substitutions.append(
    ("%mlir_runner", os.path.join(config.llvm_tools_dir, "mlir-runner")))
config.substitutions.append(("%models", os.path.join(config.loom_src_root, "models")))
config.substitutions.append(("%python", "python3"))
config.substitutions.append(("%loom_tools_dir", config.loom_tools_dir))

# GPU tests run only where a CUDA device is usable (LOOM_TEST_CUDA=1 forces
# them, e.g. in a container without /dev/nvidia0 listed).
if os.path.exists("/dev/nvidia0") or os.environ.get("LOOM_TEST_CUDA") == "1":
    config.available_features.add("cuda-device")
ptxas = shutil.which("ptxas") or (
    "/usr/local/cuda/bin/ptxas"
    if os.path.exists("/usr/local/cuda/bin/ptxas") else None)
if ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))
# A CUDA driver on host memory (test/runtime/artifacts/mock_libcuda.c): with
# it, CUDA artifacts run their host code, load their modules and launch
# (recorded, not executed) on machines without a GPU.
config.substitutions.append(("%mock_libcuda", os.path.join(
    config.loom_obj_root, "test", "runtime", "libloom_test_mock_libcuda.so")))
# And cuBLAS on host memory (test/runtime/artifacts/mock_libcublas.c), which
# computes the products the artifacts hand to it.
config.substitutions.append(("%mock_libcublas", os.path.join(
    config.loom_obj_root, "test", "runtime", "libloom_test_mock_libcublas.so")))
for name in ("LOOM_CUDA_DRIVER", "LOOM_CUDA_DEVICE", "LOOM_CUBLAS",
             "MOCK_CUDA_CC", "MOCK_CUDA_RECORD"):
    if name in os.environ:
        config.environment[name] = os.environ[name]
