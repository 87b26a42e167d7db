"""Checks bench/gpu_pack.py's MLA kernel table: names and suffixes are
unique, and loom-compile (from PATH) takes every variant's flags for the
chip.

usage: check_mla_kernels.py BENCH_DIR SM
Prints "NAME SUFFIX ok" per variant; exits 1 at the first that fails."""

import os
import subprocess
import sys

if len(sys.argv) != 3:
    sys.exit(__doc__.strip().splitlines()[-2])
bench, sm = sys.argv[1:3]
sys.path.insert(0, bench)
try:
    import gpu_pack  # noqa: E402
except ImportError as e:
    sys.exit("check_mla_kernels: no gpu_pack.py in %s: %s" % (bench, e))

kernels = gpu_pack.mla_kernels(sm)
for i, field in ((0, "name"), (1, "suffix")):
    values = [k[i] for k in kernels]
    if len(set(values)) != len(values):
        sys.exit("duplicate %s in %s" % (field, values))
for name, suffix, flags, checked in kernels:
    # --emit=fuse stops before code generation, after the options' checks.
    cmd = ["loom-compile", os.path.join(gpu_pack.MODELS, "mla_core.loom"),
           "--target=cuda", "--sm=" + sm, "--mla=absorb", "--emit=fuse",
           "-o", os.devnull] + flags
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    except OSError as e:
        sys.exit("check_mla_kernels: cannot run loom-compile: %s" % e)
    if r.returncode != 0:
        sys.exit("%s (%s): %s" % (name, " ".join(flags), r.stdout.strip()))
    print("%s %s ok%s" % (name, suffix or "-", "" if checked else
                          " (checked by the default's cases)"))
