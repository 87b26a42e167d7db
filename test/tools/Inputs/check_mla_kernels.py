"""Checks bench/gpu_pack.py's MLA kernel table: names and suffixes are
unique, and loom-compile takes every variant's flags for the chip.

usage: check_mla_kernels.py BENCH_DIR MODELS_DIR SM
Prints "NAME SUFFIX ok" per variant; exits 1 at the first that fails."""

import os
import subprocess
import sys

bench, models, sm = sys.argv[1:4]
sys.path.insert(0, bench)
import gpu_pack  # noqa: E402

kernels = gpu_pack.mla_kernels(sm)
for i, field in ((0, "name"), (1, "suffix")):
    values = [k[i] for k in kernels]
    if len(set(values)) != len(values):
        sys.exit("duplicate %s in %s" % (field, values))
for name, suffix, flags, checked in kernels:
    # --emit=fuse stops before code generation, after the options' checks.
    r = subprocess.run(["loom-compile", os.path.join(models, "mla_core.loom"),
                        "--target=cuda", "--sm=" + sm, "--mla=absorb",
                        "--emit=fuse", "-o", os.devnull] + flags,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        sys.exit("%s (%s): %s" % (name, " ".join(flags), r.stdout.strip()))
    print("%s %s ok%s" % (name, suffix or "-", "" if checked else
                          " (checked by the default's cases)"))
