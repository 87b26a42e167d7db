#!/usr/bin/env python3
"""One DeepSeek-V3 MLA layer, Loom against its baselines; driven by bench/mla.sh.

  mla_bench.py --bin DIR --tools DIR --out DIR [--torch-python PY]

1. Cache bytes per token and layer at the DeepSeek-V3 671B config
   (bench/deepseek_v3_671b.json), read from the state buffers of sessions
   of the compiled artifacts (`loom-bench --describe`) for --mla=absorb and
   --mla=naive, divided by max_batch_size * max_seq_len.
2. One decode step (one new token per sequence, start_pos = cache length L,
   max_seq_len = L + 1) of the layer at that config, f32, per batch B and L:
   Loom --mla=absorb, Loom --mla=naive (where its cache fits in memory) and
   PyTorch running DeepSeek's attn_impl="absorb" code (bench/torch_mla.py),
   all with the same weights and inputs; before timing, one step of each is
   compared on the first configuration.
3. The attention part alone (L + 1 visible positions): the runtime kernel
   loom_rt_mla_decode_f32 (bench/mla_kernel_bench.cc, which also measures the
   FMA peak and the read bandwidth with bench/roofline.cc) and PyTorch's
   einsums + softmax.

Contenders run in interleaved rounds (Loom absorb, Loom naive, PyTorch, ...
per configuration, then the kernel benchmark) and the figures are medians of
the per-round medians. Writes OUT/mla-DATE.json and OUT/mla-DATE.md and prints
the markdown. Standard library only; PyTorch runs in its own interpreter.

Environment: LOOM_BENCH_QUICK=1 (configurations 1x1024,1x4096,8x1024, one
round), LOOM_BENCH_ROUNDS (default 5), LOOM_MLA_CONFIGS (BxL list, default
1x1024,1x4096,1x16384,8x1024,8x4096,8x16384), LOOM_MLA_SECONDS (timed
seconds per contender and round, default 1; at least 3 calls).
"""
import argparse
import array
import datetime
import json
import math
import os
import random
import statistics
import struct
import subprocess
import time
from benchinfo import cpu_model, git_rev, log, meminfo, run_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
MODEL = os.path.join(ROOT, "models", "mla.loom")
CONFIG = os.path.join(BENCH, "deepseek_v3_671b.json")
TARGETS = {"absorb_vs_naive_4k": 3.0, "loom_vs_torch": 2.0}
# The session of `--describe`: small, so that the naive cache stays small.
DESCRIBE_B, DESCRIBE_T = 2, 1024


def median(xs):
    return statistics.median(xs) if xs else None


# -- safetensors, standard library only ---------------------------------------
def write_safetensors(path, tensors):
    """tensors: [(name, dtype, shape, writer)], writer(f) writing the bytes;
    sizes are taken from dtype and shape."""
    sizes = {"F32": 4, "I64": 8}
    header, offset = {}, 0
    for name, dtype, shape, _ in tensors:
        n = sizes[dtype] * math.prod(shape)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, writer in tensors:
            writer(f)
    os.replace(tmp, path)


def read_f32(path, name):
    """The values of F32 tensor `name` of a safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        info = header[name]
        begin, end = info["data_offsets"]
        f.seek(8 + n + begin)
        values = array.array("f")
        values.frombytes(f.read(end - begin))
    return values


class Dims:
    """The layer's dimensions from the DeepSeek config (ModelArgs defaults)."""

    def __init__(self, path):
        with open(path) as f:
            c = json.load(f)
        self.dim = c.get("dim", 2048)
        self.heads = c.get("n_heads", 16)
        self.q_lora = c.get("q_lora_rank", 0)
        self.kv_lora = c.get("kv_lora_rank", 512)
        self.nope = c.get("qk_nope_head_dim", 128)
        self.rope = c.get("qk_rope_head_dim", 64)
        self.v = c.get("v_head_dim", 128)
        self.layers = c.get("n_layers", 27)

    def params(self):
        """(name, shape, fan_in) of the weights of models/mla.loom; fan_in 0
        for the norms' weights (ones)."""
        h, qk = self.heads, self.nope + self.rope
        p = []
        if self.q_lora:
            p += [("wq_a.weight", [self.q_lora, self.dim], self.dim),
                  ("q_norm.weight", [self.q_lora], 0),
                  ("wq_b.weight", [h * qk, self.q_lora], self.q_lora)]
        else:
            p += [("wq.weight", [h * qk, self.dim], self.dim)]
        p += [("wkv_a.weight", [self.kv_lora + self.rope, self.dim], self.dim),
              ("kv_norm.weight", [self.kv_lora], 0),
              ("wkv_b.weight", [h * (self.nope + self.v), self.kv_lora], self.kv_lora),
              ("wo.weight", [self.dim, h * self.v], h * self.v)]
        return p

    def params_bytes(self):
        return sum(4 * math.prod(s) for _, s, _ in self.params())

    def absorb_cache_bytes(self, b, t):
        return 4 * b * t * (self.kv_lora + self.rope)

    def naive_cache_bytes(self, b, t):
        return 4 * b * t * self.heads * (self.nope + self.rope + self.v)

    def attention_flops(self, b, t):
        """Scores (latent + rope) and the weighted sum of the latent cache."""
        c, r = self.kv_lora, self.rope
        return b * self.heads * t * (2 * (c + r) + 2 * c)


class MlaBench:
    def __init__(self, args):
        self.a = args
        self.bin = args.bin
        self.dims = Dims(CONFIG)
        quick = os.environ.get("LOOM_BENCH_QUICK", "0") == "1"
        self.quick = quick
        self.rounds = int(os.environ.get("LOOM_BENCH_ROUNDS", 1 if quick else 5))
        self.seconds = float(os.environ.get("LOOM_MLA_SECONDS", 1))
        spec = os.environ.get("LOOM_MLA_CONFIGS", "1x1024,1x4096,8x1024" if quick else
                              "1x1024,1x4096,1x16384,8x1024,8x4096,8x16384")
        self.configs = [tuple(int(v) for v in c.split("x"))
                        for c in spec.replace(" ", "").split(",") if c]
        self.work = os.path.join(args.out, "mla-work")
        os.makedirs(self.work, exist_ok=True)
        self.samples = {}      # key -> per-round medians (seconds)
        self.extra = {}        # key -> last JSON of the contender
        self.errors = {}       # key -> message
        self.skipped = {}      # key -> reason
        self.reps = {}         # key -> repetitions of the next round
        self.info = {}

    def tool(self, name):
        return os.path.join(self.bin, name)

    # -- inputs ----------------------------------------------------------------
    def params_file(self):
        """The weights, uniform in [-s, s) with s = sqrt(3 / fan_in) (unit
        variance through every projection, so scores stay O(1) and softmax
        neither saturates nor underflows to subnormals) and ones for the
        norms. Each weight repeats a block of 1000003 seeded values (a prime
        period, so rows do not line up): fast to write with the standard
        library, and the same file feeds Loom and PyTorch."""
        path = os.path.join(self.work, "params.safetensors")
        spec = json.dumps(self.dims.params())
        if os.path.exists(path) and os.path.exists(path + ".spec"):
            with open(path + ".spec") as f:
                if f.read() == spec:
                    return path
        period = 1000003
        tensors = []
        for i, (name, shape, fan_in) in enumerate(self.dims.params()):
            n = math.prod(shape)

            def writer(f, n=n, fan_in=fan_in, seed=i + 1):
                if fan_in == 0:
                    f.write(array.array("f", [1.0]).tobytes() * n)
                    return
                s = math.sqrt(3.0 / fan_in)
                rnd = random.Random(seed)
                block = array.array("f", (rnd.uniform(-s, s)
                                          for _ in range(min(n, period)))).tobytes()
                for _ in range(n // period):
                    f.write(block)
                f.write(block[:4 * (n % period)])
            tensors.append((name, "F32", shape, writer))
        log("mla: writing %s (%.0f MB)" % (path, self.dims.params_bytes() / 1e6))
        write_safetensors(path, tensors)
        with open(path + ".spec", "w") as f:
            f.write(spec)
        return path

    def inputs_file(self, b, length, prefill=0):
        """x [B, 1, dim] uniform in [-1, 1) and start_pos = length; with
        `prefill`, also pre.x [B, prefill, dim] and pre.start_pos = length -
        prefill for a prefill call before the step."""
        name = "inputs-b%d-l%d%s.safetensors" % (b, length,
                                                 "-pre%d" % prefill if prefill else "")
        path = os.path.join(self.work, name)
        rnd = random.Random(1000 + b)

        def tensors(prefix, s, start):
            x = array.array("f", (rnd.uniform(-1, 1) for _ in range(b * s * self.dims.dim)))
            return [(prefix + "x", "F32", [b, s, self.dims.dim],
                     lambda f: f.write(x.tobytes())),
                    (prefix + "start_pos", "I64", [],
                     lambda f: f.write(struct.pack("<q", start)))]
        t = tensors("", 1, length)
        if prefill:
            t += tensors("pre.", prefill, length - prefill)
        write_safetensors(path, t)
        return path

    def compile(self, mode, b, max_seq_len):
        out = os.path.join(self.work, "mla-%s-b%d-t%d.so" % (mode, b, max_seq_len))
        cmd = [self.tool("loom-compile"), MODEL, "--config", CONFIG,
               "--mla=" + mode, "--define", "max_batch_size=%d" % b,
               "--define", "max_seq_len=%d" % max_seq_len, "-o", out]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("loom-compile --mla=%s failed: %s"
                               % (mode, p.stderr.strip()[-600:]))
        self.info.setdefault("compile_s", {})[os.path.basename(out)] = (
            time.perf_counter() - t0)
        return out

    # -- 1. cache bytes -------------------------------------------------------
    def cache_sizes(self):
        res = {}
        for mode in ("absorb", "naive"):
            try:
                so = self.compile(mode, DESCRIBE_B, DESCRIBE_T)
                d = run_json([self.tool("loom-bench"), so, "--describe"])
            except Exception as e:
                self.errors["cache_" + mode] = str(e)
                log("mla: " + str(e))
                continue
            tokens = DESCRIBE_B * DESCRIBE_T
            res[mode] = {
                "max_batch_size": DESCRIBE_B, "max_seq_len": DESCRIBE_T,
                "states": d["states"],
                "bytes_per_token_layer": d["state_bytes"] / tokens,
                "bytes_per_token_model": d["state_bytes"] / tokens * self.dims.layers}
            log("mla: %s cache %.0f bytes per token and layer (%s)" % (
                mode, d["state_bytes"] / tokens,
                ", ".join("%s %s" % (s["name"], s["shape"]) for s in d["states"])))
        if "absorb" in res and "naive" in res:
            res["naive_over_absorb"] = (res["naive"]["bytes_per_token_layer"]
                                        / res["absorb"]["bytes_per_token_layer"])
        return res

    # -- contenders -----------------------------------------------------------
    def measure(self, key, fn):
        """One round of `key`: fn(warmup, reps) returns a JSON with median_s;
        the repetitions of later rounds fill about self.seconds."""
        if key in self.errors or key in self.skipped:
            return
        reps = self.reps.get(key, 3 if self.quick else 5)
        try:
            r = fn(1, reps)
        except Exception as e:
            self.errors[key] = str(e)
            log("mla: %s: %s" % (key, e))
            return
        t = r["median_s"]
        self.samples.setdefault(key, []).append(t)
        self.extra[key] = r
        self.reps[key] = max(3, min(100, int(self.seconds / max(t, 1e-6))))
        log("mla:   %-26s %10.3f ms  (%d reps)" % (key, t * 1e3, reps))

    def loom_layer(self, so, inputs, params):
        return lambda w, n: run_json([
            self.tool("loom-bench"), so, "--params", params, "--inputs", inputs,
            "--call", "decode", "--warmup", str(w), "--reps", str(n), "--json"])

    def torch_layer(self, b, msl, inputs, params):
        return lambda w, n: run_json([
            self.a.torch_python, os.path.join(BENCH, "torch_mla.py"), "layer",
            CONFIG, str(b), str(msl), params, inputs, str(w), str(n)])

    def torch_attention(self, b, t):
        return lambda w, n: run_json([
            self.a.torch_python, os.path.join(BENCH, "torch_mla.py"), "attention",
            str(b), str(t), str(w), str(n)])

    def kernel_round(self):
        """One round of bench/mla_kernel_bench.cc over every configuration:
        per-configuration medians, the FMA peak and the read bandwidth."""
        cmd = [os.path.join(self.a.tools, "mla_kernel_bench"), "--rounds", "1",
               "--seconds", str(self.seconds / 4)]
        for b, length in self.configs:
            cmd += ["--config", "%d,1,%d,%d" % (b, self.dims.heads, length + 1)]
        try:
            r = run_json(cmd)
        except Exception as e:
            self.errors["kernel"] = str(e)
            log("mla: kernel: %s" % e)
            return
        self.samples.setdefault("fma_peak_gflops", []).append(r["fma_peak_gflops"])
        self.samples.setdefault("read_bw_gbs", []).append(r["read_bw_gbs"])
        self.extra["kernel"] = {"threads": r["threads"]}
        for c in r["configs"]:
            key = "kernel/b%d/l%d" % (c["B"], c["T"] - 1)
            self.samples.setdefault(key, []).append(c["median_ms"] / 1e3)
        log("mla:   kernel round: peak %.1f GFLOP/s, read %.1f GB/s"
            % (r["fma_peak_gflops"], r["read_bw_gbs"]))

    # -- the benchmark --------------------------------------------------------
    def check(self, arts, params, b, msl, prefill=16):
        """A prefill call of `prefill` tokens that ends at the cache length,
        then the decode step, from fresh (zero) caches, by each contender:
        the step's outputs must be finite and agree with PyTorch's."""
        outs = []
        inputs = self.inputs_file(b, msl - 1, prefill)
        res = {"batch": b, "cache_len": msl - 1, "prefill": prefill}
        for mode, so in arts.items():
            out = os.path.join(self.work, "check-%s.safetensors" % mode)
            p = subprocess.run([self.tool("loom-run"), so, "--params", params,
                                "--inputs", inputs, "--call", "prefill:pre",
                                "--call", "decode", "--outputs", out],
                               capture_output=True, text=True)
            if p.returncode != 0:
                self.errors["check_" + mode] = p.stderr.strip()[-600:]
                continue
            values = read_f32(out, "out")
            res[mode + "_finite"] = all(math.isfinite(v) for v in values)
            res[mode + "_max_abs"] = max(abs(v) for v in values)
            outs.append(out)
        if self.a.torch_python and outs:
            try:
                r = run_json([self.a.torch_python, os.path.join(BENCH, "torch_mla.py"),
                              "check", CONFIG, str(b), str(msl), params, inputs] + outs)
                res["torch_max_abs"] = r["max_abs_ref"]
                res["torch_finite"] = r["finite"]
                for name, diff in r["max_abs_diff"].items():
                    res["max_abs_diff_vs_torch_" + name.split("-")[1].split(".")[0]] = diff
            except Exception as e:
                self.errors["check_torch"] = str(e)
        log("mla: check " + json.dumps(res))
        return res

    def run(self):
        d = self.dims
        t_start = time.time()
        self.info["loadavg_start"] = os.getloadavg()
        mem_avail = meminfo("MemAvailable") or 0
        self.info["mem_available_bytes"] = mem_avail
        self.info["cache"] = self.cache_sizes()
        params = self.params_file()

        # Artifacts and inputs of every configuration.
        plan = []
        for b, length in self.configs:
            msl = length + 1
            entry = {"b": b, "len": length, "msl": msl,
                     "inputs": self.inputs_file(b, length), "arts": {}}
            for mode in ("absorb", "naive"):
                key = "%s/b%d/l%d" % (mode, b, length)
                if mode == "naive":
                    # The state, the transposed copy of it the naive lowering
                    # makes every step, and the weights.
                    cache = d.naive_cache_bytes(b, msl)
                    if 2 * cache + d.params_bytes() > 0.9 * mem_avail:
                        self.skipped[key] = (
                            "the naive cache is %.1f GB, and a step holds it twice "
                            "(state + transposed copy) next to %.2f GB of weights: "
                            "more than the %.1f GB of memory available"
                            % (cache / 1e9, d.params_bytes() / 1e9, mem_avail / 1e9))
                        log("mla: skipping %s: %s" % (key, self.skipped[key]))
                        continue
                try:
                    log("mla: compiling %s" % key)
                    entry["arts"][mode] = self.compile(mode, b, msl)
                except Exception as e:
                    self.errors[key] = str(e)
                    log("mla: " + str(e))
            plan.append(entry)

        if plan and plan[0]["arts"]:
            p = plan[0]
            self.info["check"] = self.check(p["arts"], params, p["b"], p["msl"])

        torch_py = self.a.torch_python
        for r in range(self.rounds):
            log("mla: round %d/%d" % (r + 1, self.rounds))
            for p in plan:
                b, length, msl = p["b"], p["len"], p["msl"]
                tag = "b%d/l%d" % (b, length)
                for mode in ("absorb", "naive"):
                    if mode in p["arts"]:
                        self.measure("%s/%s" % (mode, tag),
                                     self.loom_layer(p["arts"][mode], p["inputs"], params))
                if torch_py:
                    self.measure("torch/" + tag,
                                 self.torch_layer(b, msl, p["inputs"], params))
                    self.measure("torch_attn/" + tag, self.torch_attention(b, msl))
            self.kernel_round()
        self.info["loadavg_end"] = os.getloadavg()
        self.info["wall_s"] = time.time() - t_start

    # -- report ---------------------------------------------------------------
    def report(self):
        d = self.dims
        m = lambda k: median(self.samples.get(k))
        torch_version = next((v.get("torch") for k, v in self.extra.items()
                              if k.startswith("torch") and v.get("torch")), None)
        torch_threads = next((v.get("threads") for k, v in self.extra.items()
                              if k.startswith("torch") and v.get("threads")), None)
        peak, bw = m("fma_peak_gflops"), m("read_bw_gbs")
        machine = {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "cpu": cpu_model(), "nproc": os.cpu_count(),
            "loom_threads": self.extra.get("kernel", {}).get("threads"),
            "torch": torch_version or ("not available" if not self.a.torch_python
                                       else "failed"),
            "torch_threads": torch_threads,
            "loom_commit": git_rev(), "loom_tools": self.bin,
            "rounds": self.rounds, "quick": self.quick,
            "loadavg_start": self.info.get("loadavg_start"),
            "loadavg_end": self.info.get("loadavg_end"),
            "mem_available_gb": self.info.get("mem_available_bytes", 0) / 1e9,
            "wall_s": self.info.get("wall_s"),
        }
        layer, attn = [], []
        for b, length in self.configs:
            tag = "b%d/l%d" % (b, length)
            t = length + 1
            ab, nv, tl = m("absorb/" + tag), m("naive/" + tag), m("torch/" + tag)
            # What a step must read at least: the weights and the cache.
            absorb_bytes = d.params_bytes() + d.absorb_cache_bytes(b, t)
            naive_bytes = d.params_bytes() + d.naive_cache_bytes(b, t)
            layer.append({
                "batch": b, "cache_len": length,
                "absorb_s": ab, "naive_s": nv, "torch_s": tl,
                "naive_over_absorb": nv / ab if nv and ab else None,
                "torch_over_absorb": tl / ab if tl and ab else None,
                "absorb_bytes": absorb_bytes, "naive_bytes": naive_bytes,
                "absorb_floor_s": absorb_bytes / bw / 1e9 if bw else None,
                "naive_floor_s": naive_bytes / bw / 1e9 if bw else None,
                "naive_skipped": self.skipped.get("naive/" + tag),
                "round_medians_s": {k: self.samples.get(k + "/" + tag)
                                    for k in ("absorb", "naive", "torch")}})
            kt, tt = m("kernel/" + tag), m("torch_attn/" + tag)
            flops = d.attention_flops(b, t)
            cache = d.absorb_cache_bytes(b, t)
            roof = min(peak, flops / cache * bw) if peak and bw else None
            attn.append({
                "batch": b, "cache_len": length, "positions": t,
                "flops": flops, "cache_bytes": cache,
                "arithmetic_intensity": flops / cache, "roofline_gflops": roof,
                "kernel_s": kt, "torch_s": tt,
                "kernel_gflops": flops / kt / 1e9 if kt else None,
                "torch_gflops": flops / tt / 1e9 if tt else None,
                "kernel_of_roofline": flops / kt / 1e9 / roof if kt and roof else None,
                "torch_of_roofline": flops / tt / 1e9 / roof if tt and roof else None,
                "torch_over_kernel": tt / kt if tt and kt else None,
                "kernel_share_of_absorb_step": kt / ab if kt and ab else None,
                "round_medians_s": {"kernel": self.samples.get("kernel/" + tag),
                                    "torch": self.samples.get("torch_attn/" + tag)}})
        res = {"machine": machine, "targets": TARGETS,
               "config": {"file": os.path.relpath(CONFIG, ROOT), "dim": d.dim,
                          "n_heads": d.heads, "q_lora_rank": d.q_lora,
                          "kv_lora_rank": d.kv_lora, "qk_nope_head_dim": d.nope,
                          "qk_rope_head_dim": d.rope, "v_head_dim": d.v,
                          "n_layers": d.layers, "weights_bytes": d.params_bytes()},
               "cache": self.info.get("cache"), "check": self.info.get("check"),
               "fma_peak_gflops": peak, "read_bw_gbs": bw,
               "fma_peak_round_values": self.samples.get("fma_peak_gflops"),
               "read_bw_round_values": self.samples.get("read_bw_gbs"),
               "layer": layer, "attention": attn,
               "compile_s": self.info.get("compile_s"),
               "skipped": self.skipped, "errors": self.errors}
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = os.path.join(self.a.out, "mla-" + stamp)
        with open(base + ".json", "w") as f:
            json.dump(res, f, indent=2)
        md = self.markdown(res)
        with open(base + ".md", "w") as f:
            f.write(md)
        print(md)
        log("mla: wrote %s.json and .md" % base)

    def markdown(self, res):
        mach, d = res["machine"], self.dims

        def ms(t):
            return "%.2f" % (t * 1e3) if t else "n/a"

        def x(r):
            return "%.2f×" % r if r else "n/a"

        def pct(f):
            return "%.0f%%" % (100 * f) if f else "n/a"

        def whole(n):
            return "%.0f" % n

        L = []
        load = lambda v: "/".join("%.1f" % a for a in v) if v else "?"
        L.append("Measured %s on %s, %d cores; Loom %s threads, PyTorch %s with %s "
                 "threads; Loom %s; median of %d interleaved round%s%s; load average "
                 "%s at the start, %s at the end; %.0f s in all."
                 % (mach["date"][:16].replace("T", " "), mach["cpu"], mach["nproc"],
                    mach["loom_threads"] or "?", mach["torch"],
                    mach["torch_threads"] or "?", mach["loom_commit"], mach["rounds"],
                    "" if mach["rounds"] == 1 else "s",
                    " (quick mode)" if mach["quick"] else "",
                    load(mach["loadavg_start"]), load(mach["loadavg_end"]),
                    mach["wall_s"] or 0))
        L.append("")
        cache = res.get("cache") or {}
        L.append("**1. Cache bytes per token and layer** (DeepSeek-V3 671B config, f32 "
                 "state; from the session's state buffers at max_batch_size = %d, "
                 "max_seq_len = %d)" % (DESCRIBE_B, DESCRIBE_T))
        L.append("")
        L.append("| `--mla=` | states | bytes / token / layer | × %d layers | vs absorb |"
                 % d.layers)
        L.append("|---|---|---:|---:|---:|")
        for mode in ("absorb", "naive"):
            c = cache.get(mode)
            if not c:
                L.append("| %s | n/a | | | |" % mode)
                continue
            states = ", ".join("`%s` %s" % (s["name"], "×".join(map(str, s["shape"])))
                               for s in c["states"])
            ratio = (c["bytes_per_token_layer"] / cache["absorb"]["bytes_per_token_layer"]
                     if "absorb" in cache else None)
            L.append("| %s | %s | %s | %.2f MB | %s |" % (
                mode, states, whole(c["bytes_per_token_layer"]),
                c["bytes_per_token_model"] / 1e6, x(ratio)))
        L.append("")
        chk = res.get("check")
        if chk:
            parts = []
            for mode in ("absorb", "naive"):
                if mode + "_finite" in chk:
                    diff = chk.get("max_abs_diff_vs_torch_" + mode)
                    parts.append("%s: finite %s, max |out| %.3g%s" % (
                        mode, "yes" if chk[mode + "_finite"] else "NO",
                        chk[mode + "_max_abs"],
                        ", max |Loom − PyTorch| %.2g" % diff if diff is not None else ""))
            L.append("Check before timing (B = %d, L = %d: a %d-token prefill ending at "
                     "L, then the step, from empty caches, same weights and inputs): "
                     "%s." % (chk["batch"], chk["cache_len"], chk["prefill"],
                              "; ".join(parts)))
            L.append("")
        L.append("**2. One decode step of the layer** (dim %d, %d heads, q_lora %d, "
                 "kv_lora %d, rope %d, nope %d, v %d; f32; one new token per sequence, "
                 "start_pos = L, max_seq_len = L + 1; weights %.0f MB). Ratios are "
                 "time / Loom absorb time. Floor: the bytes a step must read (weights "
                 "and cache) at the read bandwidth of section 3."
                 % (d.dim, d.heads, d.q_lora, d.kv_lora, d.rope, d.nope, d.v,
                    d.params_bytes() / 1e6))
        L.append("")
        L.append("| B | L | Loom absorb ms | its floor | Loom naive ms | its floor "
                 "| naive / absorb | PyTorch ms | PyTorch / Loom |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in res["layer"]:
            naive = ms(r["naive_s"]) if not r["naive_skipped"] else "skipped¹"
            L.append("| %d | %d | %s | %s | %s | %s | %s | %s | %s |" % (
                r["batch"], r["cache_len"], ms(r["absorb_s"]), ms(r["absorb_floor_s"]),
                naive, ms(r["naive_floor_s"]), x(r["naive_over_absorb"]),
                ms(r["torch_s"]), x(r["torch_over_absorb"])))
        skipped = [r for r in res["layer"] if r["naive_skipped"]]
        if skipped:
            L.append("")
            L.append("¹ " + "; ".join("B = %d, L = %d: %s" % (
                r["batch"], r["cache_len"], r["naive_skipped"]) for r in skipped) + ".")
        L.append("")
        L.append("**3. The attention part alone** (L + 1 visible positions, %d heads; "
                 "Loom: `loom_rt_mla_decode_f32` via `bench/mla_kernel_bench.cc`; "
                 "PyTorch: the two scores einsums, softmax, the einsum with kv_cache). "
                 "Roofline = min(FMA peak %s GFLOP/s, intensity × read bandwidth %s GB/s), "
                 "both measured in this run."
                 % (d.heads, "%.1f" % res["fma_peak_gflops"] if res["fma_peak_gflops"]
                    else "n/a", "%.1f" % res["read_bw_gbs"] if res["read_bw_gbs"]
                    else "n/a"))
        L.append("")
        L.append("| B | L | cache MB | flop/byte | Loom ms | GFLOP/s | % of roofline "
                 "| share of the Loom step | PyTorch ms | GFLOP/s | % of roofline "
                 "| PyTorch / Loom |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in res["attention"]:
            g = lambda v: "%.1f" % v if v else "n/a"
            L.append("| %d | %d | %.1f | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["batch"], r["cache_len"], r["cache_bytes"] / 1e6,
                r["arithmetic_intensity"], ms(r["kernel_s"]), g(r["kernel_gflops"]),
                pct(r["kernel_of_roofline"]), pct(r["kernel_share_of_absorb_step"]),
                ms(r["torch_s"]), g(r["torch_gflops"]),
                pct(r["torch_of_roofline"]), x(r["torch_over_kernel"])))
        L.append("")
        L.append("**Targets**")
        L.append("")
        L.append("| target | this run | met? |")
        L.append("|---|---|---|")
        at4k = [r for r in res["layer"] if r["cache_len"] == 4096 and r["naive_over_absorb"]]
        if at4k:
            ok = all(r["naive_over_absorb"] >= TARGETS["absorb_vs_naive_4k"] for r in at4k)
            L.append("| Loom absorb ≥ %.0f× faster than naive at L = 4096 | %s | %s |" % (
                TARGETS["absorb_vs_naive_4k"],
                ", ".join("B = %d: %s" % (r["batch"], x(r["naive_over_absorb"]))
                          for r in at4k), "yes" if ok else "no"))
        for label, rows, k in (("whole step", res["layer"], "torch_over_absorb"),
                               ("attention part", res["attention"], "torch_over_kernel")):
            vals = [r for r in rows if r[k]]
            if not vals:
                continue
            met = sum(r[k] >= TARGETS["loom_vs_torch"] for r in vals)
            L.append("| Loom ≥ %.0f× faster than PyTorch, %s | %s | %s |" % (
                TARGETS["loom_vs_torch"], label,
                ", ".join("B%d/L%d: %s" % (r["batch"], r["cache_len"], x(r[k]))
                          for r in vals),
                "yes" if met == len(vals) else ("no" if met == 0 else
                                                "%d of %d" % (met, len(vals)))))
        if res["errors"]:
            L.append("")
            L.append("Errors: " + "; ".join(
                "%s: %s" % (k, " ".join(v.split())[:300]) for k, v in res["errors"].items()))
        return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="loom-compile, loom-run, loom-bench")
    ap.add_argument("--tools", required=True, help="mla_kernel_bench")
    ap.add_argument("--out", required=True)
    ap.add_argument("--torch-python", default="")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    # Results are not sources: the folder ignores itself.
    ignore = os.path.join(args.out, ".gitignore")
    if not os.path.exists(ignore):
        with open(ignore, "w") as f:
            f.write("*\n")
    b = MlaBench(args)
    b.run()
    b.report()


if __name__ == "__main__":
    main()
