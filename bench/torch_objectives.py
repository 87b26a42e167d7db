"""PyTorch baseline of bench/objectives.sh: TRL's GRPO loss and its gradients
from the hidden states and the lm-head weight, with autograd.

  python torch_objectives.py make B T D V SEED INPUTS PARAMS
  python torch_objectives.py time CONFIG INPUTS PARAMS WARMUP REPS [accumulate]
  python torch_objectives.py outputs CONFIG INPUTS PARAMS OUT
  python torch_objectives.py compare A B ATOL RTOL [scaled]
  python torch_objectives.py --check

CONFIG is a JSON object of GRPO config values (docs/objectives.md;
loss_type grpo, bnpo, dr_grpo or dapo, token-level ratios, beta >= 0 with
the k3 estimator). The computation is TRL's GRPOTrainer: logits = hidden @
W^T, divided by the temperature, selective_log_softmax (the gathered logit
minus a logsumexp computed row by row, as TRL does for f32), group
advantages, clipped ratios, k3 KL, the loss_type's reduction; then
torch.autograd.grad of the loss with respect to hidden and W.

`make` writes seeded inputs (the names of models/grpo.loom's
grpo_loss_fused: hidden [B,T,D], completion_ids, completion_mask,
old_per_token_logps, ref_per_token_logps, rewards, num_items_in_batch) and
params (lm_head.weight [V,D]); old and ref log-probs are the policy's own
plus noise, so ratios sit around 1 and some are clipped.

`time` prints one JSON object: the timing of benchinfo.timed (median_s,
min_s, max_s, reps) and the memory as `loom-bench --rss` reports it:
rss_baseline_bytes (resident set once the inputs and the weight are loaded),
rss_peak_bytes (peak over the warm-up and timed calls, after resetting the
high-water mark through /proc/self/clear_refs) and their difference. With
`accumulate`, each call is `loss.backward()` into a `W.grad` that exists
before the baseline (gradient accumulation, as a training step with
gradient_accumulation_steps > 1 runs it; hidden's gradient is fresh).

`outputs` writes loss, advantages, per_token_kl, per_token_loss (0 where the
mask is 0), grad_hidden and grad_lm_head as F32 safetensors, and
grad_lm_head again as lm_head_grad (the name of the state that
grpo_loss_fused_accumulate sums it into); `compare`
prints the largest difference per common tensor and exits 1 when one is
outside ATOL + RTOL * |b| (with `scaled`: ATOL * max|b| of the tensor +
RTOL * |b|).

`--check` compares this code, in float64 and float32, with the float64
reference test/objectives/reference.py on its fused GRPO cases (a random one
and a hand one with an equal-reward group and an empty completion), for the
grpo and bnpo loss types and gradient accumulation; exits 1 on a mismatch.

Threads: all cores (torch.set_num_threads(os.cpu_count())).
"""
import json
import math
import os
import sys

import numpy as np
import torch

from benchinfo import timed
from torch_safetensors import read_safetensors, write_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULTS = {"temperature": 1.0, "num_generations": 2, "scale_rewards": "group",
            "epsilon_low": 0.2, "epsilon_high": 0.2, "beta": 0.0,
            "loss_type": "grpo", "max_completion_length": None,
            "gradient_accumulation_steps": 1, "num_processes": 1}
INPUT_NAMES = ["hidden", "completion_ids", "completion_mask",
               "old_per_token_logps", "ref_per_token_logps", "rewards",
               "num_items_in_batch"]


class BenchError(Exception):
    """A bad argument or file: a message and exit status 1."""


# -- TRL's GRPO loss --------------------------------------------------------------
def config_of(text_or_dict):
    cfg = dict(DEFAULTS)
    given = (json.loads(text_or_dict) if isinstance(text_or_dict, str)
             else dict(text_or_dict))
    unknown = set(given) - set(cfg)
    if unknown:
        raise BenchError("unknown config keys: %s" % ", ".join(sorted(unknown)))
    cfg.update(given)
    if cfg["loss_type"] not in ("grpo", "bnpo", "dr_grpo", "dapo"):
        raise BenchError("loss_type must be grpo, bnpo, dr_grpo or dapo, got %r"
                         % cfg["loss_type"])
    if cfg["scale_rewards"] not in ("group", "batch", "none"):
        raise BenchError("scale_rewards must be group, batch or none")
    return cfg


def selective_log_softmax(logits, index):
    """TRL trl/trainer/utils.py selective_log_softmax for f32 and f64: the
    gathered logit minus the logsumexp, one row of the batch at a time."""
    selected = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
    lse = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])
    return selected - lse


def advantages_of(rewards, cfg):
    """TRL GRPOTrainer._generate_and_score_completions."""
    g = cfg["num_generations"]
    grouped = rewards.view(-1, g)
    mean = grouped.mean(dim=1).repeat_interleave(g, dim=0)
    adv = rewards - mean
    if cfg["scale_rewards"] == "group":
        adv = adv / (grouped.std(dim=1).repeat_interleave(g, dim=0) + 1e-4)
    elif cfg["scale_rewards"] == "batch":
        adv = adv / (rewards.std() + 1e-4)
    return adv


def grpo_loss(hidden, weight, ids, mask, old, ref, rewards, num_items, cfg):
    """TRL GRPOTrainer._compute_loss (token-level ratios) on logits = hidden @
    weight^T. Returns (loss, advantages, per_token_kl, per_token_loss)."""
    logits = hidden @ weight.T
    logits = logits / cfg["temperature"]
    # Masked positions may hold any id (TRL's -100): gather a valid one, the
    # mask removes it below.
    logp = selective_log_softmax(logits, ids.clamp(min=0))
    adv = advantages_of(rewards, cfg)
    beta = cfg["beta"]
    if beta != 0.0:
        per_token_kl = torch.exp(ref - logp) - (ref - logp) - 1
    coef_1 = torch.exp(logp - old)
    coef_2 = torch.clamp(coef_1, 1 - cfg["epsilon_low"], 1 + cfg["epsilon_high"])
    l1 = coef_1 * adv.unsqueeze(1)
    l2 = coef_2 * adv.unsqueeze(1)
    per_token_loss = -torch.min(l1, l2)
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * per_token_kl
    else:
        per_token_kl = torch.zeros_like(per_token_loss)
    lt, ga = cfg["loss_type"], cfg["gradient_accumulation_steps"]
    if lt == "grpo":
        loss = ((per_token_loss * mask).sum(-1)
                / mask.sum(-1).clamp(min=1.0)).mean() / ga
    elif lt == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0) / ga
    elif lt == "dr_grpo":
        loss = ((per_token_loss * mask).sum()
                / (mask.size(0) * cfg["max_completion_length"]) / ga)
    else:
        loss = (per_token_loss * mask).sum() / (num_items / cfg["num_processes"])
    return loss, adv, per_token_kl, per_token_loss


def load(inputs_path, params_path, dtype=torch.float32):
    t = read_safetensors(inputs_path)
    t.update(read_safetensors(params_path))
    for name in INPUT_NAMES + ["lm_head.weight"]:
        if name not in t:
            raise BenchError("no tensor '%s' in %s or %s"
                             % (name, inputs_path, params_path))
    return prepare(t, dtype)


def prepare(t, dtype):
    """The arguments of grpo_loss from named tensors; hidden and the weight
    require gradients."""
    f = lambda name: t[name].to(dtype)
    hidden = f("hidden").requires_grad_(True)
    weight = f("lm_head.weight").requires_grad_(True)
    return (hidden, weight, t["completion_ids"].to(torch.int64),
            f("completion_mask"), f("old_per_token_logps"),
            f("ref_per_token_logps"), f("rewards"), f("num_items_in_batch"))


def step(args, cfg):
    """Loss and backward: (loss, advantages, per_token_kl, per_token_loss,
    grad_hidden, grad_lm_head)."""
    loss, adv, kl, ptl = grpo_loss(*args, cfg)
    gh, gw = torch.autograd.grad(loss, [args[0], args[1]])
    return loss, adv, kl, ptl, gh, gw


def accumulating_step(args, cfg):
    """Loss and backward() into the weight's existing .grad: (loss,
    advantages, per_token_kl, per_token_loss, grad_hidden)."""
    args[0].grad = None
    loss, adv, kl, ptl = grpo_loss(*args, cfg)
    loss.backward()
    return loss, adv, kl, ptl, args[0].grad


# -- memory, as loom-bench --rss measures it -------------------------------------
def proc_status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise BenchError("no %s in /proc/self/status" % key)


def reset_peak():
    """Resets VmHWM to the current resident set; False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# -- commands -----------------------------------------------------------------------
def cmd_make(b, t, d, v, seed, inputs_path, params_path, full=False):
    """Seeded inputs; the old and ref log-probs are the policy's own (computed
    here in float64 blocks) plus uniform noise. Completion lengths are
    uniform in [T/2, T] with one empty completion (padding, as in a TRL
    batch), or all T with `full`."""
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((b, t, d), dtype=np.float32)
    weight = (rng.standard_normal((v, d), dtype=np.float32)
              * np.float32(2.0 / math.sqrt(d)))
    ids = rng.integers(0, v, size=(b, t), dtype=np.int64)
    lengths = rng.integers(t // 2, t + 1, size=b)
    lengths[b // 2] = 0 if b > 2 else lengths[b // 2]  # one empty completion
    if full:
        lengths[:] = t
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
    with torch.no_grad():
        h = torch.from_numpy(hidden)
        w = torch.from_numpy(weight)
        logp = selective_log_softmax(h @ w.T, torch.from_numpy(ids)).numpy()
    old = (logp + rng.uniform(-0.2, 0.2, size=(b, t))).astype(np.float32)
    ref = (logp + rng.uniform(-0.3, 0.3, size=(b, t))).astype(np.float32)
    rewards = rng.uniform(-1, 2, size=b).astype(np.float32)
    num_items = np.array(mask.sum(), dtype=np.float32)
    write_safetensors(inputs_path, [
        ("hidden", hidden), ("completion_ids", ids), ("completion_mask", mask),
        ("old_per_token_logps", old), ("ref_per_token_logps", ref),
        ("rewards", rewards), ("num_items_in_batch", num_items)])
    write_safetensors(params_path, [("lm_head.weight", weight)])
    print(json.dumps({"inputs": inputs_path, "params": params_path,
                      "tokens": int(mask.sum())}))


def cmd_time(config, inputs_path, params_path, warmup, reps,
             accumulate=False):
    cfg = config_of(config)
    args = load(inputs_path, params_path)
    if accumulate:
        args[1].grad = torch.zeros_like(args[1])
    baseline = proc_status_bytes("VmRSS")
    reset = reset_peak()
    fn = accumulating_step if accumulate else step
    r = timed(lambda: fn(args, cfg), warmup, reps)
    if reset:
        peak = max(proc_status_bytes("VmHWM"), baseline)
    else:
        import resource
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                   baseline)
    r.update(rss_baseline_bytes=baseline, rss_peak_bytes=peak,
             rss_peak_above_baseline_bytes=peak - baseline,
             rss_peak_since_start=reset, torch=torch.__version__,
             threads=torch.get_num_threads())
    print(json.dumps(r))


def cmd_outputs(config, inputs_path, params_path, out_path):
    cfg = config_of(config)
    args = load(inputs_path, params_path)
    loss, adv, kl, ptl, gh, gw = step(args, cfg)
    mask = args[3]
    f = lambda x: x.detach().to(torch.float32).numpy()
    write_safetensors(out_path, [
        ("loss", f(loss)), ("advantages", f(adv)),
        ("per_token_kl", f(kl * mask)), ("per_token_loss", f(ptl * mask)),
        ("grad_hidden", f(gh)), ("grad_lm_head", f(gw)),
        ("lm_head_grad", f(gw))])


def compare(a, b, atol, rtol, scaled=False):
    """Per tensor of both: (name, max |a - b|, count outside atol + rtol|b|,
    size); a NaN counts as outside. `scaled` multiplies atol by the
    tensor's largest |b|."""
    rows = []
    for name in sorted(set(a) & set(b)):
        x, y = a[name].to(torch.float64), b[name].to(torch.float64)
        if x.shape != y.shape:
            raise BenchError("%s: shape %s against %s"
                             % (name, list(x.shape), list(y.shape)))
        diff = (x - y).abs()
        scale = float(y.abs().max()) if scaled and y.numel() else 1.0
        bad = ~(diff <= atol * scale + rtol * y.abs())
        worst = float(diff[~diff.isnan()].max()) if diff.numel() else 0.0
        rows.append((name, worst, int(bad.sum()), x.numel()))
    if not rows:
        raise BenchError("no tensor in common")
    return rows


def cmd_compare(a_path, b_path, atol, rtol, scaled=False):
    rows = compare(read_safetensors(a_path), read_safetensors(b_path),
                   atol, rtol, scaled)
    ok = True
    for name, worst, bad, n in rows:
        print("%s: max abs diff %.3g, %d of %d outside tolerance"
              % (name, worst, bad, n))
        ok = ok and bad == 0
    print("ok" if ok else "mismatch")
    return 0 if ok else 1


def cmd_check():
    """This code against the float64 reference on its fused GRPO cases."""
    sys.path.insert(0, os.path.join(ROOT, "test", "objectives"))
    import reference
    ok = True
    for case in ("grpo_random_fused", "grpo_hand_fused"):
        for over in ({}, {"loss_type": "bnpo"},
                     {"gradient_accumulation_steps": 2},
                     {"loss_type": "bnpo", "beta": 0.3, "temperature": 1.3}):
            kind, config, inputs = reference.load_case(case, dict(over), True)
            want = reference.evaluate(kind, config, inputs)
            cfg = config_of({k: v for k, v in config.items()
                             if k in DEFAULTS})
            tensors = {k: torch.tensor(inputs[k]) for k in inputs}
            for dtype, atol, rtol in ((torch.float64, 1e-12, 1e-10),
                                      (torch.float32, 2e-6, 1e-4)):
                loss, adv, kl, ptl, gh, gw = step(prepare(tensors, dtype), cfg)
                mask = tensors["completion_mask"].to(dtype)
                got = {"loss": loss, "advantages": adv,
                       "per_token_kl": kl * mask, "per_token_loss": ptl * mask,
                       "grad_hidden": gh, "grad_lm_head": gw}
                ref = {k: torch.tensor(want[k], dtype=torch.float64)
                       for k in got}
                rows = compare({k: v.detach() for k, v in got.items()}, ref,
                               atol, rtol)
                bad = [r for r in rows if r[2]]
                print("%s %s %s: %s" % (
                    case, json.dumps(over, sort_keys=True),
                    str(dtype).replace("torch.", ""),
                    "ok, max abs diff %.3g" % max(r[1] for r in rows)
                    if not bad else "MISMATCH " + ", ".join(
                        "%s %d of %d (max %.3g)" % (r[0], r[2], r[3], r[1])
                        for r in bad)))
                ok = ok and not bad
    print("ok" if ok else "mismatch")
    return 0 if ok else 1


def main(argv):
    torch.set_num_threads(os.cpu_count())
    if argv == ["--check"]:
        return cmd_check()
    if not argv:
        raise BenchError(__doc__.strip())
    cmd, a = argv[0], argv[1:]
    try:
        if cmd == "make" and (len(a) == 7 or a[7:] == ["full"]):
            cmd_make(*(int(x) for x in a[:5]), a[5], a[6], len(a) == 8)
        elif cmd == "time" and (len(a) == 5 or a[5:] == ["accumulate"]):
            cmd_time(a[0], a[1], a[2], int(a[3]), int(a[4]), len(a) == 6)
        elif cmd == "outputs" and len(a) == 4:
            cmd_outputs(*a)
        elif cmd == "compare" and (len(a) == 4 or a[4:] == ["scaled"]):
            return cmd_compare(a[0], a[1], float(a[2]), float(a[3]),
                               len(a) == 5)
        else:
            raise BenchError("bad command line; usage:\n" +
                             __doc__.split("\n\n")[1])
    except ValueError as e:
        raise BenchError(str(e))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print("torch_objectives: error: %s" % e, file=sys.stderr)
        sys.exit(1)
