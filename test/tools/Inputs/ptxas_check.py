#!/usr/bin/env python3
"""Assembles every kernel module of `loom-compile --emit=ptx` with ptxas.

usage: ptxas_check.py PTXAS ARCH FILE.ptx [--info]
The file holds modules that each start with a line `// kernel module @NAME`.
Each is assembled alone (ptxas -arch=ARCH, no relocatable code, so a call of
an undefined function fails). Prints `ptxas ARCH: N modules ok` or the first
failure, and exits 1 on any failure or when there is no module. With
--info, ptxas runs with -v and its messages (registers, spills, notes) are
printed first, each line prefixed with the module's name.
"""

import os
import subprocess
import sys
import tempfile


def main():
    ptxas, arch, path = sys.argv[1:4]
    info = sys.argv[4:] == ["--info"]
    modules, name, lines = [], None, []
    for line in open(path):
        if line.startswith("// kernel module @"):
            if name:
                modules.append((name, "".join(lines)))
            name, lines = line.split("@", 1)[1].strip(), []
        elif name:
            lines.append(line)
    if name:
        modules.append((name, "".join(lines)))
    if not modules:
        print("no kernel module in", path)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in modules:
            src = os.path.join(tmp, name + ".ptx")
            with open(src, "w") as f:
                f.write(text)
            run = subprocess.run(
                [ptxas, "-arch=" + arch, src, "-o", os.path.join(tmp, "out.cubin")]
                + (["-v"] if info else []),
                capture_output=True, text=True)
            if run.returncode != 0:
                print("ptxas %s: module %s failed:\n%s" % (arch, name, run.stderr))
                return 1
            if info:
                for line in run.stderr.splitlines():
                    print("%s: %s" % (name, line.strip()))
    print("ptxas %s: %d modules ok" % (arch, len(modules)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
