#!/usr/bin/env python3
"""Runs the pack of bench/gpu_pack.py on a GPU: numerics, then benchmarks.

usage: gpu_check.py PACK_DIR BIN_DIR OUT_DIR

Environment: LOOM_GPU_CASES (a regular expression: only the numerics cases
whose name it matches), LOOM_GPU_ONLY=mla (the MLA decode only: its
numerics cases unless LOOM_GPU_CASES says otherwise, its steps, PyTorch's
copy bandwidth and MLA decode, and its profiles; a short second call),
LOOM_GPU_TORCH=0 (no PyTorch baselines), LOOM_GPU_CASE_TIMEOUT (seconds a
numerics case may run, default 90),
LOOM_GPU_NCU=1 (Nsight Compute sections of the flash kernel's launches and
of the MLA decode step's kernels; for the MLA partial kernels named by
LOOM_GPU_NCU_MLA, a comma-separated list of the pack's MLA artifacts
(default: default,cp_async_swizzled; the profiles come last,
after the PyTorch baselines), also the stall reasons, the memory
pipes, the tensor pipe's busy share and the stall samples of every SASS
instruction: the 30 hottest in the log, all of them in
OUT_DIR/ncu-mla-KERNEL-sass.csv, the report in OUT_DIR/ncu-mla-KERNEL.ncu-rep),
LOOM_GPU_MLA_STEPS (a comma-separated list of the pack's MLA artifacts:
only those steps are timed; default all).

BIN_DIR holds loom-run and loom-bench (the runtime-only build). For every
case of PACK_DIR/pack.json, runs the CUDA artifact with loom-run and checks
its outputs against the CPU artifact's (allclose) or the float64 reference of
the objectives. Then times the masked-attention entries, the matrix products
and the MLA decode step (loom-bench, kernels without copies) and runs
bench/torch_gpu.py (SDPA, FlexAttention, torch.mm, the absorbed MLA decode
with and without its projections, and the device-to-device copy bandwidth)
on the same card. Writes OUT_DIR/gpu-check.json and prints a summary; exits 1 when a
numerics case fails.

The MLA kernel variants are guarded: after a case of a variant times out,
the variant's other cases are skipped, and a variant whose numerics failed
is neither timed nor profiled.
"""

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "tools", "Inputs"))
sys.path.insert(0, os.path.join(ROOT, "test", "objectives"))
import run_model  # noqa: E402


def run(cmd, timeout=90):
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout
    except subprocess.TimeoutExpired:
        return 124, "timed out after %d s" % timeout
    except OSError as e:
        return 127, str(e)


def numerics(pack_dir, pack, bin_dir, work):
    results = []
    only = re.compile(os.environ.get("LOOM_GPU_CASES", ""))
    hung = set()  # the variants of which a case timed out
    case_timeout = int(os.environ.get("LOOM_GPU_CASE_TIMEOUT", "90"))
    for case in pack["cases"]:
        if not only.search(case["name"]):
            continue
        variant = case.get("variant")
        if variant in hung:
            print("numerics %-40s FAIL  skipped: a case of %s timed out" % (
                case["name"][:40], variant))
            results.append({"case": case["name"], "ok": False,
                            "variant": variant, "command": None,
                            "detail": "skipped after a timeout"})
            continue
        p = lambda f: os.path.join(pack_dir, f)  # noqa: E731
        outputs = os.path.join(work, case["name"][:60] + ".out.safetensors")
        cmd = [os.path.join(bin_dir, "loom-run"), p(case["artifact"])]
        if case["params"]:
            cmd += ["--params", p(case["params"])]
        for i in case["inputs"]:
            cmd += ["--inputs", p(i)]
        for c in case["calls"]:
            cmd += ["--call", c]
        rc, text = run(cmd + ["--outputs", outputs], timeout=case_timeout)
        check = case["check"]
        if rc == 0 and check["kind"] == "allclose":
            rc, text = run([sys.executable,
                            os.path.join(ROOT, "test", "tools", "Inputs",
                                         "allclose.py"),
                            outputs, p(check["ref"]), check["rtol"],
                            check["atol"]])
        elif rc == 0:
            rc, text = run([sys.executable, run_model.REFERENCE, "check",
                            check["case"], p(case["inputs"][0]), outputs,
                            check["atol"], check["rtol"]] + check["overrides"])
        if rc == 124 and variant:
            hung.add(variant)
        status = "ok" if rc == 0 else "FAIL"
        print("numerics %-40s %s  %s" % (case["name"][:40], status,
                                         text.strip().splitlines()[-1]
                                         if text.strip() else ""))
        results.append({"case": case["name"], "ok": rc == 0,
                        "variant": variant, "timed_out": rc == 124,
                        "detail": text.strip()[-2000:], "command": cmd})
    return results


def warn_unknown(variable, names, artifacts):
    """Says which of the MLA kernels `names` (from `variable`) the pack
    does not have: they are skipped."""
    unknown = [n for n in names if n and n not in artifacts]
    if unknown:
        print("gpu_check: %s names kernels the pack does not have: %s "
              "(it has %s)" % (variable, ", ".join(unknown),
                               ", ".join(sorted(artifacts))))


def sanitize(results):
    """Reruns the first failing case under compute-sanitizer (memcheck),
    unless it timed out."""
    failed = [r for r in results
              if not r["ok"] and r["command"] and not r.get("timed_out")]
    if not failed or not shutil.which("compute-sanitizer"):
        return None
    rc, text = run(["compute-sanitizer", "--print-limit", "8"] +
                   failed[0]["command"] + ["--outputs", os.devnull],
                   timeout=120)
    print("compute-sanitizer on %s (rc %d):\n%s" % (
        failed[0]["case"], rc, text.strip()[-3000:]))
    return {"case": failed[0]["case"], "rc": rc, "log": text.strip()[-3000:]}


def attention_flop(b, h, s, d, causal):
    # Two products of [S, D] x [D, S] shape per head; causal halves them.
    # Other masks count the dense work, as bench/torch_gpu.py does.
    full = 4.0 * b * h * s * s * d
    return full / 2 if causal else full


def loom_attention(pack_dir, pack, bin_dir, b, h, s):
    """Times attend_causal and attend_tree of each benchmark artifact."""
    results = {}
    tree = os.path.join(pack_dir, pack["bench"]["tree"])
    for bench in pack["bench"]["attention"]:
        art = os.path.join(pack_dir, bench["artifact"])
        for entry in bench["entries"]:
            key = "%s_%s" % (entry, bench["name"])
            cmd = [os.path.join(bin_dir, "loom-bench"), art, "--call", entry,
                   "--dim", "B=%d" % b, "--dim", "H=%d" % h, "--dim",
                   "S=%d" % s, "--warmup", "2", "--reps", "10", "--json"]
            if entry == "attend_tree" and s == pack["bench"]["S"]:
                cmd += ["--inputs", tree]
            rc, text = run(cmd, timeout=120)
            if rc != 0:
                results[key] = {"error": text.strip()[-500:]}
                continue
            r = json.loads(text.strip().splitlines()[-1])
            flop = attention_flop(b, h, s, 128, entry == "attend_causal")
            r["tflops"] = flop / r["median_s"] / 1e12
            results[key] = r
    return results


def loom_matmul(pack_dir, pack, bin_dir):
    """Times the 4096^3 products: cuBLAS against the generated loops."""
    results = {}
    for bench in pack["bench"].get("matmul", []):
        cmd = [os.path.join(bin_dir, "loom-bench"),
               os.path.join(pack_dir, bench["artifact"]), "--call", "main",
               "--warmup", "2", "--reps", "10", "--json"]
        rc, text = run(cmd, timeout=120)
        if rc != 0:
            results[bench["name"]] = {"error": text.strip()[-500:]}
            continue
        r = json.loads(text.strip().splitlines()[-1])
        r["tflops"] = 2.0 * 4096 ** 3 / r["median_s"] / 1e12
        results[bench["name"]] = r
        print("loom %-26s %.3f ms, %.2f TFLOP/s" % (
            bench["name"], r["median_s"] * 1e3, r["tflops"]))
    return results


def unchecked(mla, kernel, failed):
    """Why the MLA step `kernel` is not timed or profiled: a numerics
    variant that checks its kernels failed; or None."""
    bad = [v for v in mla.get("checked_by", {}).get(kernel, []) if v in failed]
    return ("not timed: its numerics (%s) failed" % ", ".join(bad)) if bad \
        else None


def loom_mla(pack_dir, pack, bin_dir, failed=()):
    """Times one decode step of MLA at DeepSeek-V3's dims per batch size;
    GB/s counts the cache read (latent and rope key of every position).
    Kernels whose numerics variants are in `failed` are not timed."""
    results = {}
    mla = pack["bench"].get("mla")
    if not mla:
        return results
    steps = [k for k in os.environ.get("LOOM_GPU_MLA_STEPS", "").split(",")
             if k]
    warn_unknown("LOOM_GPU_MLA_STEPS", steps, mla["artifacts"])
    for kernel, artifact in sorted(mla["artifacts"].items()):
        if steps and kernel not in steps:
            continue
        why = unchecked(mla, kernel, failed)
        if why:
            results[kernel] = {"error": why}
            print("loom mla decode step %s: %s" % (kernel, why))
            continue
        for batch in mla["batches"]:
            cmd = [os.path.join(bin_dir, "loom-bench"),
                   os.path.join(pack_dir, artifact), "--call", "step",
                   "--dim", "B=%d" % batch, "--dim", "S=1", "--inputs",
                   os.path.join(pack_dir, mla["inputs"]), "--warmup", "3",
                   "--reps", "20", "--json", "--kernels"]
            rc, text = run(cmd, timeout=300)
            key = "%s_B%d" % (kernel, batch)
            if rc != 0:
                results[key] = {"error": text.strip()[-500:]}
                print("loom mla decode step %s: %s" % (key, text.strip()[-300:]))
                continue
            r = json.loads(text.strip().splitlines()[-1])
            r["cache_bytes"] = (batch * mla["cache"] *
                                (mla["rank"] + mla["rope"]) * 2)
            r["gbps"] = r["cache_bytes"] / r["median_s"] / 1e9
            # The attention kernels alone (FlashMLA's measure), from the
            # calls with events around each launch.
            attention = sum(k["median_s"] for k in r.get("kernels", [])
                            if k["name"] in ("partial", "combine"))
            if attention > 0:
                r["attention_s"] = attention
                r["attention_gbps"] = r["cache_bytes"] / attention / 1e9
            results[key] = r
            print("loom mla decode step %s: %.3f ms, %.0f GB/s%s" % (
                key, r["median_s"] * 1e3, r["gbps"],
                "; attention kernels %.3f ms, %.0f GB/s; all kernels %.3f ms"
                % (attention * 1e3, r["attention_gbps"],
                   r["kernels_median_s"] * 1e3) if attention > 0 else ""))
            for k in r.get("kernels", []):
                print("    %-40s %g launches, %.1f us" % (
                    k["name"], k["launches"], k["median_s"] * 1e6))
    return results


# Nsight Compute's stall reasons (cycles a warp waits on each between two
# issued instructions) and the memory pipes, for the MLA partial kernel.
STALLS = ["barrier", "branch_resolving", "dispatch_stall", "drain",
          "imc_miss", "lg_throttle", "long_scoreboard", "math_pipe_throttle",
          "membar", "mio_throttle", "misc", "no_instruction", "not_selected",
          "selected", "short_scoreboard", "sleeping", "tex_throttle", "wait"]
STALL_METRICS = (["smsp__average_warps_issue_stalled_%s_per_issue_active.ratio"
                  % r for r in STALLS] +
                 ["smsp__average_warps_active_per_issue_active.ratio"])
MEMORY_METRICS = [
    "gpu__time_duration.sum",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed",
    "lts__throughput.avg.pct_of_peak_sustained_elapsed",
    "lts__t_sector_hit_rate.pct",
    "l1tex__throughput.avg.pct_of_peak_sustained_elapsed",
    "l1tex__data_pipe_lsu_wavefronts_mem_shared.sum",
    "l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum",
    "l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed"]
# What bounds the kernel: the tensor pipe's busy share, the instructions
# issued and the cycles (instructions a tile), and L2's read requests
# against its sectors (sectors a request: 4 for whole 128-byte lines).
# A separate run, so that a name this ncu lacks costs only these.
PIPE_METRICS = [
    "sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_elapsed",
    "smsp__inst_executed.sum",
    "sm__cycles_elapsed.avg",
    "lts__t_requests_srcunit_tex_op_read.sum",
    "lts__t_sectors_srcunit_tex_op_read.sum"]


def metric_lines(text):
    """The `name unit value` lines of an ncu --metrics report."""
    return "\n".join(line.rstrip() for line in text.splitlines()
                     if re.match(r"^\s+[a-z0-9]+__\S+\s", line))


def hot_instructions(csv_text, count=30):
    """The `count` SASS instructions of ncu's source page (CSV) with the
    most warp-stall samples, as lines of text; the CSV's tail when its
    columns are not the expected ones."""
    rows = list(csv.reader(io.StringIO(csv_text)))
    for i, row in enumerate(rows):
        names = [c.strip() for c in row]
        if "Source" in names and any(c.startswith("Warp Stall Sampling (All")
                                     for c in names):
            break
    else:
        return "no source table:\n" + csv_text.strip()[-2000:]
    src = names.index("Source")
    col = next(j for j, c in enumerate(names)
               if c.startswith("Warp Stall Sampling (All"))
    addr = names.index("Address") if "Address" in names else None

    def number(text):
        try:
            return float(text.replace(",", ""))
        except ValueError:
            return 0.0
    body = [r for r in rows[i + 1:] if len(r) > max(src, col)]
    total = sum(number(r[col]) for r in body) or 1.0
    body.sort(key=lambda r: -number(r[col]))
    return "\n".join("%6.2f%%  %s  %s" % (100 * number(r[col]) / total,
                                         r[addr] if addr is not None else "",
                                         r[src].strip())
                     for r in body[:count])


def profile_mla_partial(app, kernel, out):
    """The MLA partial kernel of `app` (a loom-bench command line) under
    Nsight Compute: its stall reasons and memory pipes in the log, and
    its SASS with stall samples per instruction (Nsight Compute's source
    page) in OUT/ncu-mla-KERNEL-sass.csv, the 30 hottest in the log."""
    logs = {}
    ncu = ["ncu", "-k", "regex:partial", "-c", "1"]
    for name, metrics in (("stalls", STALL_METRICS),
                          ("memory", MEMORY_METRICS),
                          ("pipes", PIPE_METRICS)):
        rc, text = run(ncu + ["--metrics", ",".join(metrics)] + app,
                       timeout=180)
        logs[name] = metric_lines(text) if rc == 0 else text.strip()[-2000:]
        print("ncu mla %s partial %s (rc %d):\n%s" % (kernel, name, rc,
                                                     logs[name]))
    report = os.path.join(out, "ncu-mla-%s" % kernel)
    rc, text = run(ncu + ["--section", "SourceCounters", "--section",
                          "WarpStateStats", "-f", "-o", report] + app,
                   timeout=240)
    if rc != 0:
        logs["sass"] = text.strip()[-2000:]
    else:
        rc, csv_text = run(["ncu", "-i", report + ".ncu-rep", "--page",
                            "source", "--csv", "--print-source", "sass"],
                           timeout=120)
        with open(report + "-sass.csv", "w") as f:
            f.write(csv_text)
        try:
            logs["sass"] = hot_instructions(csv_text) if rc == 0 else \
                csv_text.strip()[-2000:]
        except (ValueError, StopIteration, IndexError) as e:
            logs["sass"] = "unreadable source page (%s)" % e
    print("ncu mla %s partial, hottest SASS (%% of stall samples):\n%s" % (
        kernel, logs["sass"]))
    return logs


def profile(pack_dir, pack, bin_dir, b, h, s, out, attention=True,
            failed=()):
    """Nsight Compute's summary of one launch of each attention kernel of
    the last benchmark artifact (the flash kernel; with `attention`), and
    of the kernels of the MLA decode step."""
    bench = pack["bench"]["attention"][-1]
    logs = {}
    for entry in bench["entries"] if attention else []:
        cmd = ["ncu", "--section", "SpeedOfLight", "--section", "Occupancy",
               "--section", "WarpStateStats", "--section", "LaunchStats",
               "--section", "MemoryWorkloadAnalysis", "-k", "regex:kernel",
               "-c", "1", os.path.join(bin_dir, "loom-bench"),
               os.path.join(pack_dir, bench["artifact"]), "--call", entry,
               "--dim", "B=%d" % b, "--dim", "H=%d" % h, "--dim", "S=%d" % s,
               "--warmup", "0", "--reps", "1"]
        if entry == "attend_tree":
            cmd += ["--inputs", os.path.join(pack_dir, pack["bench"]["tree"])]
        rc, text = run(cmd, timeout=120)
        # The metric tables, without the advice paragraphs.
        table = "\n".join(
            line for line in text.splitlines()
            if "Section:" in line or re.match(r"^ {4}\S.*\s[\d.,]+$", line))
        print("ncu %s (rc %d):\n%s" % (entry, rc, table[-6000:] if rc == 0
                                        else text.strip()[-3000:]))
        logs[entry] = table[-6000:] if rc == 0 else text.strip()[-3000:]
    # The MLA decode step's kernels at batch 64: the split-K kernels and
    # the elementwise and cuBLAS ones around them.
    mla = pack["bench"].get("mla")
    # The variants LOOM_GPU_NCU_MLA names are profiled; the others are only
    # timed.
    chosen = os.environ.get("LOOM_GPU_NCU_MLA",
                            "default,cp_async_swizzled").split(",")
    warn_unknown("LOOM_GPU_NCU_MLA", chosen,
                 (mla or {}).get("artifacts", {}))
    for kernel, artifact in sorted((mla or {}).get("artifacts", {}).items()):
        if kernel not in chosen or unchecked(mla, kernel, failed):
            continue
        cmd = ["ncu", "--section", "SpeedOfLight", "--section", "Occupancy",
               "--section", "WarpStateStats",
               os.path.join(bin_dir, "loom-bench"),
               os.path.join(pack_dir, artifact), "--call", "step",
               "--dim", "B=64", "--dim", "S=1", "--inputs",
               os.path.join(pack_dir, mla["inputs"]), "--warmup", "0",
               "--reps", "1"]
        rc, text = run(cmd, timeout=180)
        table = "\n".join(
            line for line in text.splitlines()
            if re.match(r"^  \S+.*\(\d+, \d+, \d+\)x", line) or
            re.match(r"^ {4}(Duration|DRAM Throughput|Memory Throughput|"
                     r"Compute \(SM\) Throughput|Registers Per Thread|"
                     r"Achieved Occupancy|Warp Cycles Per Issued)", line))
        print("ncu mla %s (rc %d):\n%s" % (kernel, rc, table[-6000:] if rc == 0
                                            else text.strip()[-3000:]))
        logs["mla_" + kernel] = table[-6000:] if rc == 0 else text.strip()[-3000:]
        # The split-K kernel in detail: stall reasons and shared memory.
        rc, text = run(cmd[:1] + ["-k", "regex:partial", "-c", "1",
                                  "--section", "WarpStateStats",
                                  "--section", "MemoryWorkloadAnalysis_Tables",
                                  "--section", "ComputeWorkloadAnalysis"] +
                       cmd[7:], timeout=180)
        detail = "\n".join(line for line in text.splitlines()
                           if re.search(r"\d", line) and "==PROF==" not in line)
        print("ncu mla %s partial:\n%s" % (kernel, detail[-5000:]))
        logs["mla_%s_partial" % kernel] = detail[-5000:]
        # Where the two wgmma kernels wait, in detail.
        logs["mla_%s_partial_detail" % kernel] = profile_mla_partial(
            cmd[7:], kernel, out)
    return logs


def main():
    pack_dir, bin_dir, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    only = os.environ.get("LOOM_GPU_ONLY", "")
    if only not in ("", "mla"):
        print("gpu_check: LOOM_GPU_ONLY must be mla or empty, got %r" % only)
        return 2
    if only == "mla":
        os.environ.setdefault("LOOM_GPU_CASES", "mla")
    with open(os.path.join(pack_dir, "pack.json")) as f:
        pack = json.load(f)
    report = {"pack": {"chip": pack["chip"], "commit": pack.get("commit")}}

    def save():
        with open(os.path.join(out, "gpu-check.json"), "w") as f:
            json.dump(report, f, indent=1)
    rc, smi = run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                   "--format=csv,noheader"])
    report["gpu"] = smi.strip() if rc == 0 else "nvidia-smi failed: " + smi
    print("gpu:", report["gpu"])

    # Outputs stay out of OUT_DIR, which holds the log and the report only.
    with tempfile.TemporaryDirectory() as work:
        report["numerics"] = numerics(pack_dir, pack, bin_dir, work)
    report["sanitizer"] = sanitize(report["numerics"])
    failed = [r["case"] for r in report["numerics"] if not r["ok"]]

    b, h, s = 1, 16, int(os.environ.get("LOOM_GPU_ATTN_S", "4096"))
    if only != "mla":
        report["attention_shape"] = {"B": b, "H": h, "S": s, "D": 128}
        report["loom_attention"] = loom_attention(pack_dir, pack, bin_dir,
                                                  b, h, s)
        for entry, r in report["loom_attention"].items():
            print("loom %-26s %s" % (entry, "%.3f ms, %.2f TFLOP/s" % (
                r["median_s"] * 1e3, r["tflops"]) if "tflops" in r else r))
        report["loom_matmul"] = loom_matmul(pack_dir, pack, bin_dir)
    failed_variants = {r["variant"] for r in report["numerics"]
                       if not r["ok"] and r.get("variant")}
    report["loom_mla"] = loom_mla(pack_dir, pack, bin_dir, failed_variants)
    torch_cmd = [sys.executable, os.path.join(ROOT, "bench", "torch_gpu.py"),
                 str(b), str(h), str(s)]
    if s == pack["bench"]["S"]:
        torch_cmd.append(os.path.join(pack_dir, pack["bench"]["tree"]))
    if os.environ.get("LOOM_GPU_TORCH", "1") != "0":
        rc, text = run(torch_cmd, timeout=300)
        print(text.strip()[-4000:])
        try:
            report["torch"] = json.loads(text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            report["torch"] = {"error": text.strip()[-2000:]}
    copy = report.get("torch", {}).get("copy", {}).get("gbps")
    for batch, r in report["loom_mla"].items():
        if copy and "gbps" in r:
            r["fraction_of_copy"] = r["gbps"] / copy
            if "attention_gbps" in r:
                r["attention_fraction_of_copy"] = r["attention_gbps"] / copy
            print("loom mla decode step %s: %.0f%% of copy%s" % (
                batch, 100 * r["fraction_of_copy"],
                ", attention kernels %.0f%%" % (
                    100 * r["attention_fraction_of_copy"])
                if "attention_gbps" in r else ""))
    # The report so far, in case the profiles take the rest of the time.
    save()
    if os.environ.get("LOOM_GPU_NCU") and shutil.which("ncu"):
        # A profiler failure must not cost the baselines and the report.
        try:
            report["ncu"] = profile(pack_dir, pack, bin_dir, b, h, s, out,
                                    attention=only != "mla",
                                    failed=failed_variants)
        except Exception as e:  # noqa: BLE001
            report["ncu"] = {"error": repr(e)}
            print("ncu: profiling failed: %r" % e)
    save()
    print("numerics: %d of %d cases ok%s" % (
        len(report["numerics"]) - len(failed), len(report["numerics"]),
        (": failed " + ", ".join(failed)) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
