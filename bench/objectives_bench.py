#!/usr/bin/env python3
"""GRPO loss + backward from the hidden states and the lm head: Loom fused,
Loom two-pass, Loom unfused and PyTorch in the same run, each also with the
lm head's gradient accumulated into an existing buffer; driven by
bench/objectives.sh.

  objectives_bench.py --bin DIR --out DIR --torch-python PY [--model FILE]

1. Inputs: bench/torch_objectives.py `make` writes seeded inputs (hidden
   [B,T,D], completion ids, mask with one empty completion, old and ref
   log-probs near the policy's, rewards) and lm_head.weight [V,D], f32; both
   Loom and PyTorch read the same files.
2. The model's entry `grpo_loss_fused` is compiled three times, with
   LOOM_OBJ_FUSED_FLAGS (default --logprob=fused: the single-pass loop over
   blocks of tokens), LOOM_OBJ_TWO_PASS_FLAGS (default --logprob=two-pass:
   the vocabulary-chunked forward and backward kernels) and
   LOOM_OBJ_UNFUSED_FLAGS (default --logprob=unfused), with the GRPO config
   below and the sizes in a --config JSON file (keys that are not configs
   of the model are ignored).
3. Check: one call of each artifact (loom-run) against PyTorch's outputs on
   the same inputs (torch_objectives.py `outputs`, then `compare`).
4. Rounds: loom-bench --rss of each artifact and torch_objectives.py `time`,
   interleaved, each in its own process; the figures are medians over the
   rounds of each round's median time and of its peak resident memory above
   the inputs (the resident set once params and inputs are loaded).
5. Gradient accumulation (`_acc` contenders): the entry
   `grpo_loss_fused_accumulate` of the same artifacts, which adds the lm
   head's gradient to the state `lm_head_grad` (allocated with the session,
   before the baseline) instead of returning it, and PyTorch's
   `loss.backward()` into an existing `W.grad`. The check compares the state
   after one call with PyTorch's grad_lm_head.

Targets (the issue's): fused peak RSS above the inputs at least 4x lower
than unfused, fused time at least 1.0x unfused (unfused / fused >= 1), and
faster than PyTorch; the memory and time targets are also reported for the
accumulating entries (single pass and two-pass).

Writes OUT/objectives-DATE.json and .md and prints the markdown. Standard
library only; PyTorch runs in its own interpreter.

Environment: LOOM_BENCH_QUICK=1 (one round, 2 repetitions),
LOOM_BENCH_ROUNDS (default 3), LOOM_OBJ_REPS (timed calls per contender and
round, default 3), LOOM_OBJ_WARMUP (default 1), LOOM_OBJ_SIZE (B,T,D,V,
default 8,128,1024,32768), LOOM_OBJ_MODEL (default models/grpo.loom),
LOOM_OBJ_FUSED_FLAGS, LOOM_OBJ_TWO_PASS_FLAGS, LOOM_OBJ_UNFUSED_FLAGS
(space-separated loom-compile flags), LOOM_OBJ_MASK (padded: completion lengths uniform in [T/2, T] with
one empty completion, as a TRL batch is padded; full: every position is a
completion token), LOOM_OBJ_CONFIG (JSON merged into the GRPO config), LOOM_OBJ_ATOL
and LOOM_OBJ_RTOL (the check: |loom - torch| <= ATOL * max|torch| + RTOL *
|torch| per tensor, defaults 1e-4 and 1e-3).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import time

from benchinfo import cpu_model, git_rev, log, meminfo, run_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
ENTRY = "grpo_loss_fused"
ACC_ENTRY = "grpo_loss_fused_accumulate"
# Loom's contenders, by their flags below (an `_acc` one calls ACC_ENTRY of
# the same artifact).
MODES = ("fused", "two_pass", "unfused", "fused_acc", "two_pass_acc",
         "unfused_acc")
TARGETS = {"rss_unfused_over_fused": 4.0, "time_unfused_over_fused": 1.0,
           "time_torch_over_fused": 1.0,
           # The same targets with the gradient accumulated into a state.
           "rss_unfused_acc_over_fused_acc": 4.0,
           "time_unfused_acc_over_fused_acc": 1.0,
           "rss_unfused_acc_over_two_pass_acc": 4.0,
           "time_unfused_acc_over_two_pass_acc": 1.0}


def flags_of(mode):
    """The compilation a contender uses (its artifact)."""
    return mode[:-4] if mode.endswith("_acc") else mode


def entry_of(mode):
    return ACC_ENTRY if mode.endswith("_acc") else ENTRY
# TRL GRPOConfig values of the run (docs/objectives.md); num_generations
# must divide B.
CONFIG = {"loss_type": "bnpo", "beta": 0.04, "num_generations": 4,
          "temperature": 1.0, "epsilon_low": 0.2, "epsilon_high": 0.2,
          "scale_rewards": "group", "importance_sampling_level": "token"}
# The torch script's keys (it implements token-level ratios only).
TORCH_KEYS = ("loss_type", "beta", "num_generations", "temperature",
              "epsilon_low", "epsilon_high", "scale_rewards",
              "max_completion_length", "gradient_accumulation_steps",
              "num_processes")


def median(xs):
    return statistics.median(xs) if xs else None


class Bench:
    def __init__(self, a):
        self.a = a
        quick = os.environ.get("LOOM_BENCH_QUICK", "0") == "1"
        self.quick = quick
        self.rounds = int(os.environ.get("LOOM_BENCH_ROUNDS",
                                         1 if quick else 3))
        self.reps = int(os.environ.get("LOOM_OBJ_REPS", 2 if quick else 3))
        self.warmup = int(os.environ.get("LOOM_OBJ_WARMUP", 1))
        self.mask = os.environ.get("LOOM_OBJ_MASK", "padded")
        if self.mask not in ("padded", "full"):
            raise SystemExit("objectives: LOOM_OBJ_MASK must be padded or "
                             "full, got %r" % self.mask)
        size = os.environ.get("LOOM_OBJ_SIZE", "8,128,1024,32768")
        self.b, self.t, self.d, self.v = (int(x) for x in size.split(","))
        self.model = a.model
        self.flags = {
            "fused": os.environ.get("LOOM_OBJ_FUSED_FLAGS",
                                    "--logprob=fused").split(),
            "two_pass": os.environ.get("LOOM_OBJ_TWO_PASS_FLAGS",
                                       "--logprob=two-pass").split(),
            "unfused": os.environ.get("LOOM_OBJ_UNFUSED_FLAGS",
                                      "--logprob=unfused").split()}
        self.config = dict(CONFIG)
        self.config.update(json.loads(os.environ.get("LOOM_OBJ_CONFIG", "{}")))
        self.atol = float(os.environ.get("LOOM_OBJ_ATOL", 1e-4))
        self.rtol = float(os.environ.get("LOOM_OBJ_RTOL", 1e-3))
        self.work = os.path.join(a.out, "objectives-work")
        os.makedirs(self.work, exist_ok=True)
        self.samples = {}   # contender -> {"time": [...], "rss": [...]}
        self.last = {}      # contender -> last JSON
        self.errors = {}
        self.info = {}

    def tool(self, name):
        return os.path.join(self.a.bin, name)

    def torch(self, *args):
        return [self.a.torch_python, os.path.join(BENCH, "torch_objectives.py")
                ] + [str(x) for x in args]

    def torch_config(self):
        return json.dumps({k: v for k, v in self.config.items()
                           if k in TORCH_KEYS})

    # -- set-up ------------------------------------------------------------------
    def inputs(self):
        """The inputs and params files of the size and mask (written again
        every run, which also counts the completion tokens)."""
        tag = "b%d-t%d-d%d-v%d-%s" % (self.b, self.t, self.d, self.v,
                                      self.mask)
        inputs = os.path.join(self.work, "inputs-%s.safetensors" % tag)
        params = os.path.join(self.work, "params-%s.safetensors" % tag)
        log("objectives: writing inputs %s" % tag)
        extra = ["full"] if self.mask == "full" else []
        r = run_json(self.torch("make", self.b, self.t, self.d, self.v, 1,
                                inputs, params, *extra))
        self.info["tokens"] = r["tokens"]
        return inputs, params

    def compile(self, mode):
        cfg = dict(self.config)
        # Sizes under the names a model may give them; keys that are not
        # configs of the model are ignored by --config.
        for k in ("vocab", "vocab_size", "V"):
            cfg[k] = self.v
        for k in ("dim", "hidden_size", "d"):
            cfg[k] = self.d
        path = os.path.join(self.work, "config-%s.json" % mode)
        with open(path, "w") as f:
            json.dump(cfg, f)
        so = os.path.join(self.work, "grpo-%s.so" % mode)
        cmd = [self.tool("loom-compile"), self.model, "--config", path,
               "-o", so] + self.flags[mode]
        log("objectives: " + " ".join(cmd))
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("loom-compile (%s) failed: %s"
                               % (mode, (p.stderr or p.stdout).strip()[-800:]))
        return so

    def check(self, arts, inputs, params):
        """One call of each artifact against PyTorch on the same inputs."""
        ref = os.path.join(self.work, "torch-out.safetensors")
        subprocess.run(self.torch("outputs", self.torch_config(), inputs,
                                  params, ref), check=True)
        result = {}
        for mode in MODES:
            so = arts.get(flags_of(mode))
            if not so:
                continue
            out = os.path.join(self.work, "loom-%s-out.safetensors" % mode)
            states = os.path.join(self.work,
                                  "loom-%s-states.safetensors" % mode)
            acc = mode.endswith("_acc")
            p = subprocess.run([self.tool("loom-run"), so, "--params", params,
                                "--inputs", inputs, "--call", entry_of(mode),
                                "--outputs", out] +
                               (["--states", states] if acc else []),
                               capture_output=True, text=True)
            if p.returncode != 0:
                result[mode] = {"ok": False, "error": p.stderr.strip()[-600:]}
                continue
            # The outputs; for an accumulating entry also its state (one
            # call from zero: the gradient).
            ok, lines = True, []
            for got in [out] + ([states] if acc else []):
                p = subprocess.run(self.torch("compare", got, ref, self.atol,
                                              self.rtol, "scaled"),
                                   capture_output=True, text=True)
                ok = ok and p.returncode == 0
                lines += p.stdout.strip().splitlines()
                os.remove(got)
            result[mode] = {"ok": ok, "lines": lines}
            for line in lines:
                log("objectives: check %s: %s" % (mode, line))
        os.remove(ref)
        return result

    # -- rounds ------------------------------------------------------------------
    def measure(self, name, cmd):
        try:
            r = run_json(cmd, timeout=3600)
        except Exception as e:
            self.errors[name] = str(e)
            log("objectives: %s: %s" % (name, e))
            return
        s = self.samples.setdefault(name, {"time": [], "rss": [], "base": []})
        s["time"].append(r["median_s"])
        s["rss"].append(r["rss_peak_above_baseline_bytes"])
        s["base"].append(r["rss_baseline_bytes"])
        self.last[name] = r
        log("objectives: %s: median %.4g s, peak +%.1f MiB above the inputs"
            % (name, r["median_s"], r["rss_peak_above_baseline_bytes"] / 2**20))

    def run(self):
        t0 = time.time()
        self.info["loadavg_start"] = os.getloadavg()
        self.info["mem_available_bytes"] = meminfo("MemAvailable")
        inputs, params = self.inputs()
        arts = {}
        for mode in MODES:
            if mode != flags_of(mode):
                continue
            try:
                arts[mode] = self.compile(mode)
            except RuntimeError as e:
                self.errors["loom_" + mode] = str(e)
                log("objectives: " + str(e))
        self.info["check"] = self.check(arts, inputs, params)
        loom = lambda so, entry: [
            self.tool("loom-bench"), so, "--params", params, "--inputs",
            inputs, "--call", entry, "--warmup", str(self.warmup), "--reps",
            str(self.reps), "--json", "--rss"]
        for r in range(self.rounds):
            log("objectives: round %d/%d" % (r + 1, self.rounds))
            for mode in MODES:
                if flags_of(mode) in arts:
                    self.measure("loom_" + mode,
                                 loom(arts[flags_of(mode)], entry_of(mode)))
            for name, extra in (("torch", ()), ("torch_acc", ("accumulate",))):
                self.measure(name, self.torch(
                    "time", self.torch_config(), inputs, params, self.warmup,
                    self.reps, *extra))
        self.info["loadavg_end"] = os.getloadavg()
        self.info["wall_s"] = time.time() - t0

    # -- report ------------------------------------------------------------------
    def report(self):
        m = {k: {"time_s": median(v["time"]), "rss_above_bytes":
                 median(v["rss"]), "round_times_s": v["time"],
                 "round_rss_above_bytes": v["rss"],
                 "round_rss_baseline_bytes": v["base"]}
             for k, v in self.samples.items()}

        def ratio(num, den, key):
            a, b = m.get(num, {}).get(key), m.get(den, {}).get(key)
            return a / b if a and b else None

        # The outputs every contender must hold: grad_hidden, grad_lm_head,
        # per_token_kl, per_token_loss, advantages, loss (f32); the
        # accumulating ones return all but grad_lm_head.
        out_bytes = 4 * (self.b * self.t * self.d + self.v * self.d +
                         2 * self.b * self.t + self.b + 1)
        acc_out_bytes = out_bytes - 4 * self.v * self.d
        for k, v in m.items():
            v["work_above_bytes"] = v["rss_above_bytes"] - (
                acc_out_bytes if k.endswith("_acc") else out_bytes)
        ratios = {
            "rss_unfused_over_fused": ratio("loom_unfused", "loom_fused",
                                            "rss_above_bytes"),
            "work_unfused_over_fused": ratio("loom_unfused", "loom_fused",
                                             "work_above_bytes"),
            "time_unfused_over_fused": ratio("loom_unfused", "loom_fused",
                                             "time_s"),
            "time_torch_over_fused": ratio("torch", "loom_fused", "time_s"),
            "time_two_pass_over_fused": ratio("loom_two_pass", "loom_fused",
                                              "time_s"),
            "rss_two_pass_over_fused": ratio("loom_two_pass", "loom_fused",
                                             "rss_above_bytes"),
            "rss_torch_over_fused": ratio("torch", "loom_fused",
                                          "rss_above_bytes"),
            "rss_unfused_acc_over_fused_acc": ratio(
                "loom_unfused_acc", "loom_fused_acc", "rss_above_bytes"),
            "rss_unfused_over_fused_acc": ratio(
                "loom_unfused", "loom_fused_acc", "rss_above_bytes"),
            "rss_torch_acc_over_fused_acc": ratio(
                "torch_acc", "loom_fused_acc", "rss_above_bytes"),
            "time_unfused_acc_over_fused_acc": ratio(
                "loom_unfused_acc", "loom_fused_acc", "time_s"),
            "time_torch_acc_over_fused_acc": ratio(
                "torch_acc", "loom_fused_acc", "time_s"),
            "time_fused_over_fused_acc": ratio(
                "loom_fused", "loom_fused_acc", "time_s"),
            "rss_unfused_acc_over_two_pass_acc": ratio(
                "loom_unfused_acc", "loom_two_pass_acc", "rss_above_bytes"),
            "time_unfused_acc_over_two_pass_acc": ratio(
                "loom_unfused_acc", "loom_two_pass_acc", "time_s"),
        }
        met = {k: (ratios[k] >= v if ratios[k] is not None else None)
               for k, v in TARGETS.items()}
        torch_last = self.last.get("torch", {})
        machine = {
            "date": datetime.datetime.now().astimezone().isoformat(
                timespec="seconds"),
            "cpu": cpu_model(), "nproc": os.cpu_count(),
            "torch": torch_last.get("torch"),
            "torch_threads": torch_last.get("threads"),
            "loom_commit": git_rev(), "loom_tools": self.a.bin,
            "rounds": self.rounds, "reps": self.reps, "warmup": self.warmup,
            "quick": self.quick,
            "loadavg_start": self.info.get("loadavg_start"),
            "loadavg_end": self.info.get("loadavg_end"),
            "mem_available_gb": (self.info.get("mem_available_bytes") or 0)
            / 1e9,
            "wall_s": self.info.get("wall_s"),
        }
        return {"machine": machine, "model": os.path.relpath(self.model, ROOT),
                "entry": ENTRY, "accumulate_entry": ACC_ENTRY,
                "flags": self.flags,
                "outputs_bytes": out_bytes, "mask": self.mask,
                "valid_tokens": self.info.get("tokens"),
                "size": {"B": self.b, "T": self.t, "tokens": self.b * self.t,
                         "D": self.d, "V": self.v, "dtype": "f32"},
                "config": self.config, "check": self.info.get("check"),
                "results": m, "ratios": ratios, "targets": TARGETS,
                "targets_met": met, "errors": self.errors}


def markdown(res):
    def num(x, spec):
        return format(x, spec) if x is not None else "—"
    s = res["size"]
    lines = [
        "# GRPO loss + backward, fused lm head (%s, %s)" % (
            res["model"], res["machine"]["date"]),
        "",
        "B = %d, T = %d (%d tokens, %s completion tokens: mask %s), D = %d, "
        "V = %d, f32; config %s; "
        "%d round(s) of %d timed call(s) after %d warm-up; %s, %d cores, "
        "load %s -> %s; torch %s, %s threads; commit %s." % (
            s["B"], s["T"], s["tokens"], res.get("valid_tokens") or "?",
            res.get("mask"), s["D"], s["V"],
            json.dumps(res["config"], sort_keys=True),
            res["machine"]["rounds"], res["machine"]["reps"],
            res["machine"]["warmup"], res["machine"]["cpu"],
            res["machine"]["nproc"], res["machine"]["loadavg_start"],
            res["machine"]["loadavg_end"], res["machine"]["torch"],
            res["machine"]["torch_threads"], res["machine"]["loom_commit"]),
        "",
        "| contender | median time (s) | peak RSS above inputs (MiB) | "
        "above inputs and outputs (MiB) |",
        "|---|---|---|---|",
    ]
    for k in ["loom_" + mode for mode in MODES] + ["torch", "torch_acc"]:
        r = res["results"].get(k)
        lines.append("| %s | %s | %s | %s |" % (
            k, num(r and r["time_s"], ".4g"),
            num(r and r["rss_above_bytes"] and r["rss_above_bytes"] / 2**20,
                ".1f"),
            num(r and r["work_above_bytes"] / 2**20, ".1f")) if r
            else "| %s | %s | | |" % (
            k, "error: " + res["errors"].get(k, "not run")[:200]))
    lines += ["", "| ratio | value | target |", "|---|---|---|"]
    for k, v in res["ratios"].items():
        t = res["targets"].get(k)
        lines.append("| %s | %s | %s |" % (
            k, num(v, ".2f"), ("≥ %.1f: %s" % (t, {True: "met", False:
                                                    "NOT met", None: "—"}[
                res["targets_met"][k]])) if t else ""))
    lines.append("")
    for mode, c in (res["check"] or {}).items():
        lines.append("check %s against PyTorch: %s" % (
            mode, "ok" if c.get("ok") else "FAILED " + c.get("error", "")))
    for k, e in res["errors"].items():
        lines.append("error %s: %s" % (k, e[:400]))
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True,
                   help="folder of loom-compile, loom-run and loom-bench")
    p.add_argument("--out", required=True, help="folder of the results")
    p.add_argument("--torch-python", required=True,
                   help="a Python with torch and numpy")
    p.add_argument("--model", default=os.environ.get(
        "LOOM_OBJ_MODEL", os.path.join(ROOT, "models", "grpo.loom")))
    a = p.parse_args()
    a.model = os.path.abspath(a.model)
    if not os.path.exists(a.model):
        p.error("no model %s (LOOM_OBJ_MODEL chooses another)" % a.model)
    b = Bench(a)
    b.run()
    res = b.report()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.makedirs(a.out, exist_ok=True)
    base = os.path.join(a.out, "objectives-%s" % stamp)
    with open(base + ".json", "w") as f:
        json.dump(res, f, indent=1)
    md = markdown(res)
    with open(base + ".md", "w") as f:
        f.write(md)
    print(md)
    log("objectives: wrote %s.json and .md" % base)
    checks_ok = all(c.get("ok") for c in (res["check"] or {}).values())
    return 0 if checks_ok and not res["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
