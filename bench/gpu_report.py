#!/usr/bin/env python3
"""Summarizes a gpu-check.json (bench/gpu_check.py) as Markdown tables.

usage: gpu_report.py GPU_CHECK_JSON

Prints the card, the pack's commit and the device-to-device copy
bandwidth; the numerics cases (failures by name); the MLA decode steps,
fastest first at the first batch size, with the step's time, bandwidth and
share of the copy bandwidth, and where the steps were timed per kernel
(loom-bench --kernels) the attention kernels' (partial and combine) time,
bandwidth and share, and the time between kernels (the step's median less
the median of its kernels' sum); PyTorch's absorbed step and attention on
the same card; and the masked-attention entries against FlexAttention and
SDPA when the call timed them. Ratios are of medians from the same call.
"""

import json
import sys


def ms(seconds):
    return "%.3f" % (seconds * 1e3)


def mla_tables(report, copy):
    steps = report.get("loom_mla", {})
    batches = sorted({int(key.rsplit("_B", 1)[1]) for key in steps
                      if "_B" in key})
    kernels = sorted({key.rsplit("_B", 1)[0] for key in steps if "_B" in key})
    errors = ["- %s: %s" % (key, r["error"].strip().splitlines()[-1]
                            if r["error"].strip() else "error")
              for key, r in sorted(steps.items()) if "error" in r]
    if not batches:
        return ["", "MLA decode steps: none timed"] + errors if errors else []
    first = batches[0]

    def order(kernel):
        r = steps.get("%s_B%d" % (kernel, first), {})
        return r.get("median_s", float("inf"))

    lines = ["", "MLA decode step, ms (GB/s of the cache, share of the copy):",
             "", "| kernel | " + " | ".join("B = %d" % b for b in batches) +
             " |", "| --- |" + " --- |" * len(batches)]
    for kernel in sorted(kernels, key=order):
        cells = []
        for b in batches:
            r = steps.get("%s_B%d" % (kernel, b), {})
            if "median_s" not in r:
                cells.append("error" if "error" in r else "")
                continue
            cell = "%s (%.0f, %s)" % (
                ms(r["median_s"]), r["gbps"],
                "%.0f%%" % (100 * r["gbps"] / copy) if copy else "?")
            cells.append(cell)
        lines.append("| %s | %s |" % (kernel, " | ".join(cells)))
    torch = report.get("torch", {}).get("mla_decode", {})
    for label, field in (("PyTorch absorbed step", "step_median_s"),
                         ("PyTorch absorbed attention", "median_s")):
        cells = []
        for b in batches:
            t = torch.get("B%d" % b, {})
            cells.append(ms(t[field]) if field in t else "")
        if any(cells):
            lines.append("| %s | %s |" % (label, " | ".join(cells)))

    timed = [k for k in kernels
             if any("kernels" in steps.get("%s_B%d" % (k, b), {})
                    for b in batches)]
    if timed:
        lines += ["", "Per kernel (loom-bench --kernels): the attention "
                  "kernels' ms (GB/s, share of the copy); the step's ms "
                  "between kernels:", "",
                  "| kernel | " + " | ".join(
                      "B = %d attention | B = %d between" % (b, b)
                      for b in batches) + " |",
                  "| --- |" + " --- | --- |" * len(batches)]
        for kernel in sorted(timed, key=order):
            cells = []
            for b in batches:
                r = steps.get("%s_B%d" % (kernel, b), {})
                if "attention_s" not in r:
                    cells += ["", ""]
                    continue
                cells.append("%s (%.0f, %s)" % (
                    ms(r["attention_s"]), r["attention_gbps"],
                    "%.0f%%" % (100 * r["attention_gbps"] / copy)
                    if copy else "?"))
                cells.append(ms(r["median_s"] - r["kernels_median_s"]))
            lines.append("| %s | %s |" % (kernel, " | ".join(cells)))
    return lines + errors


def attention_table(report):
    loom = report.get("loom_attention", {})
    torch = report.get("torch", {})
    if not loom:
        return []
    lines = ["", "Masked attention, ms (TFLOP/s):", "",
             "| entry | Loom | FlexAttention | Loom's speed / Flex's | SDPA |",
             "| --- | --- | --- | --- | --- |"]
    for entry, r in sorted(loom.items()):
        if "median_s" not in r:
            lines.append("| %s | error | | | |" % entry)
            continue
        mask = "causal" if "causal" in entry else "tree"
        dtype = "f32" if "f32" in entry else "bf16"
        baselines = torch.get("attention", {})
        flex = baselines.get("flex_%s_%s" % (mask, dtype), {}).get("median_s")
        sdpa = baselines.get("sdpa_%s_%s" % (mask, dtype), {}).get("median_s")
        lines.append("| %s | %s%s | %s | %s | %s |" % (
            entry, ms(r["median_s"]),
            " (%.0f)" % r["tflops"] if "tflops" in r else "",
            ms(flex) if flex else "", "%.2f" % (flex / r["median_s"])
            if flex else "", ms(sdpa) if sdpa else ""))
    return lines


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1]) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        print("gpu_report: cannot read %s: %s" % (sys.argv[1], e),
              file=sys.stderr)
        return 1
    if not isinstance(report, dict) or "numerics" not in report:
        print("gpu_report: %s is not a gpu-check.json (no numerics)" %
              sys.argv[1], file=sys.stderr)
        return 1
    try:
        lines = summary(report)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        print("gpu_report: %s is not a gpu-check.json: %s: %s" % (
            sys.argv[1], type(e).__name__, e), file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def summary(report):
    copy = report.get("torch", {}).get("copy", {}).get("gbps")
    pack = report.get("pack", {})
    lines = ["GPU: %s; pack %s (%s); copy %s" % (
        report.get("gpu", "?"), pack.get("commit", "?"), pack.get("chip", "?"),
        "%.0f GB/s" % copy if copy else "not measured")]
    cases = report["numerics"]
    failed = [c["case"] for c in cases if not c.get("ok")]
    lines.append("Numerics: %d of %d cases ok%s" % (
        len(cases) - len(failed), len(cases),
        "; failed: " + ", ".join(failed) if failed else ""))
    return lines + mla_tables(report, copy) + attention_table(report)


if __name__ == "__main__":
    sys.exit(main())
