"""Float64 reference of Loom's RL objectives (GRPO, DPO, PPO), written with
the Python standard library only. docs/objectives.md gives every formula and
its source in TRL / ReFT; this file implements exactly that text.

Every case CASE has a fused form CASE_fused whose inputs hold hidden [B,T,d]
and lm_head.weight [V,d] (logits = hidden . lm_head.weight^T) instead of
logits, and whose outputs hold grad_hidden and grad_lm_head instead of
grad_logits.

Tensors are nested lists: logits[b][t][v], ids[b][t], mask[b][t], and so on.
A position whose mask is 0 is not read (its id may be -100) and every
per-token output there is 0.

Command line (see docs/objectives.md):
  reference.py cases                        the named cases and their kind
  reference.py config CASE                  the case's config as JSON
  reference.py inputs CASE IN [K=V...]     write the case's inputs
  reference.py outputs CASE IN OUT [DTYPE] [K=V...]
                                            write the reference outputs
  reference.py check CASE IN OUT ATOL RTOL  compare OUT against the reference
  reference.py print CASE                   print the reference values
  reference.py gradcheck CASE               central finite differences
"""

import json
import math
import os
import random
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tools", "Inputs"))
import safetensors_io  # noqa: E402


class ReferenceError(Exception):
    """A bad input or config, reported with a message and exit status 1."""


# ===------------------------------------------------------------------=== #
# Shared pieces
# ===------------------------------------------------------------------=== #


def log_softmax_row(row, temperature):
    """log_softmax(row / temperature) in float64."""
    scaled = [x / temperature for x in row]
    top = max(scaled)
    lse = top + math.log(sum(math.exp(x - top) for x in scaled))
    return [x - lse for x in scaled]


def token_logprob(logits, ids, mask, temperature=1.0):
    """logp[b][t] = log_softmax(logits[b][t] / temperature)[ids[b][t]];
    0 where mask is 0 (the id there is not read)."""
    if temperature <= 0:
        raise ReferenceError("temperature must be > 0, got %r" % temperature)
    out = []
    for b, rows in enumerate(logits):
        line = []
        for t, row in enumerate(rows):
            if mask[b][t] == 0:
                line.append(0.0)
                continue
            i = ids[b][t]
            if not 0 <= i < len(row):
                raise ReferenceError("ids[%d][%d] = %d is outside the vocab"
                                     " [0, %d)" % (b, t, i, len(row)))
            line.append(log_softmax_row(row, temperature)[i])
        out.append(line)
    return out


def token_logprob_backward(logits, ids, mask, dlogp, temperature=1.0):
    """d loss / d logits from d loss / d logp: (onehot - softmax) / T."""
    grad = []
    for b, rows in enumerate(logits):
        gb = []
        for t, row in enumerate(rows):
            if mask[b][t] == 0 or dlogp[b][t] == 0.0:
                gb.append([0.0] * len(row))
                continue
            probs = [math.exp(x) for x in log_softmax_row(row, temperature)]
            g = [-dlogp[b][t] * p / temperature for p in probs]
            g[ids[b][t]] += dlogp[b][t] / temperature
            gb.append(g)
        grad.append(gb)
    return grad


def kl_k1(logp, ref):
    """k1 = logp - ref (an estimate of KL(pi || ref) under samples of pi)."""
    return logp - ref


def kl_k2(logp, ref):
    """k2 = (logp - ref)^2 / 2."""
    return 0.5 * (logp - ref) ** 2


def kl_k3(logp, ref):
    """k3 = exp(ref - logp) - (ref - logp) - 1."""
    return math.exp(ref - logp) - (ref - logp) - 1.0


def clamp(x, lo, hi):
    return min(max(x, lo), hi)


def clamp_passes(x, lo, hi):
    """torch.clamp's backward: the gradient passes where lo <= x <= hi."""
    return 1.0 if lo <= x <= hi else 0.0


def min_grads(a, b):
    """torch.minimum's backward shares: (d/da, d/db), half each on a tie."""
    if a < b:
        return 1.0, 0.0
    if b < a:
        return 0.0, 1.0
    return 0.5, 0.5


def logsigmoid(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def merge_config(kind, defaults, config):
    """The defaults updated with `config`, whose keys must be the defaults'."""
    unknown = set(config) - set(defaults)
    if unknown:
        raise ReferenceError("unknown %s config keys: %s"
                             % (kind, ", ".join(sorted(unknown))))
    return dict(defaults, **config)


def check_mask(mask):
    for b, row in enumerate(mask):
        for t, m in enumerate(row):
            if m not in (0.0, 1.0):
                raise ReferenceError("mask[%d][%d] = %r: a mask holds 0 or 1"
                                     % (b, t, m))


# ===------------------------------------------------------------------=== #
# GRPO
# ===------------------------------------------------------------------=== #


def group_advantages(rewards, num_generations, scale_rewards="group"):
    """TRL GRPOTrainer._generate_and_score_completions: (r - group mean) /
    (std + 1e-4), unbiased std over the group ("group") or over the whole
    batch ("batch"); "none" does not divide."""
    n = len(rewards)
    if num_generations < 1 or n % num_generations:
        raise ReferenceError("%d rewards do not split into groups of "
                             "num_generations = %d" % (n, num_generations))
    if scale_rewards not in ("group", "batch", "none"):
        raise ReferenceError("scale_rewards must be group, batch or none, "
                             "got %r" % scale_rewards)

    def unbiased_std(xs):
        if len(xs) < 2:
            raise ReferenceError("the unbiased std needs at least 2 rewards "
                                 "(num_generations >= 2)")
        mean = sum(xs) / len(xs)
        return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))

    batch_std = unbiased_std(rewards) if scale_rewards == "batch" else None
    out = []
    for g in range(0, n, num_generations):
        group = rewards[g:g + num_generations]
        mean = sum(group) / len(group)
        std = unbiased_std(group) if scale_rewards == "group" else batch_std
        for r in group:
            a = r - mean
            if scale_rewards != "none":
                a = a / (std + 1e-4)
            out.append(a)
    return out


GRPO_DEFAULTS = {
    "temperature": 1.0, "num_generations": 2, "scale_rewards": "group",
    "epsilon_low": 0.2, "epsilon_high": 0.2, "delta": None, "beta": 0.0,
    "importance_sampling_level": "token", "loss_type": "grpo",
    "max_completion_length": None, "gradient_accumulation_steps": 1,
    "num_processes": 1,
}


def grpo_loss(logits, ids, mask, old_logp, ref_logp, rewards, config,
              num_items_in_batch=None):
    """TRL GRPOTrainer._compute_loss. Returns a dict: loss, per_token_loss,
    per_token_kl, advantages, logp, grad_logits (d loss / d logits)."""
    cfg = merge_config("grpo", GRPO_DEFAULTS, config)
    check_mask(mask)
    B, T = len(ids), len(ids[0])
    lt = cfg["loss_type"]
    if lt not in ("grpo", "bnpo", "dr_grpo", "dapo"):
        raise ReferenceError("loss_type must be grpo, bnpo, dr_grpo or dapo, "
                             "got %r" % lt)
    level = cfg["importance_sampling_level"]
    if level not in ("token", "sequence"):
        raise ReferenceError("importance_sampling_level must be token or "
                             "sequence, got %r" % level)
    if len(rewards) != B:
        raise ReferenceError("rewards has %d rows, the batch %d"
                             % (len(rewards), B))
    adv = group_advantages(rewards, cfg["num_generations"],
                           cfg["scale_rewards"])
    logp = token_logprob(logits, ids, mask, cfg["temperature"])
    beta = cfg["beta"]
    lo, hi = 1.0 - cfg["epsilon_low"], 1.0 + cfg["epsilon_high"]
    delta = cfg["delta"]
    ga = cfg["gradient_accumulation_steps"]

    # Reduction weights w[b][t] = d loss / d per_token_loss[b][t].
    counts = [sum(mask[b]) for b in range(B)]
    if lt == "grpo":
        w = [[mask[b][t] / (max(counts[b], 1.0) * B * ga) for t in range(T)]
             for b in range(B)]
    elif lt == "bnpo":
        total = max(sum(counts), 1.0)
        w = [[mask[b][t] / (total * ga) for t in range(T)] for b in range(B)]
    elif lt == "dr_grpo":
        L = cfg["max_completion_length"]
        if not L or L < 1:
            raise ReferenceError("dr_grpo needs max_completion_length >= 1")
        w = [[mask[b][t] / (B * L * ga) for t in range(T)] for b in range(B)]
    else:
        if num_items_in_batch is None or num_items_in_batch <= 0:
            raise ReferenceError("dapo needs num_items_in_batch > 0")
        norm = num_items_in_batch / cfg["num_processes"]
        w = [[mask[b][t] / norm for t in range(T)] for b in range(B)]

    # Log importance weights, token or sequence level.
    log_ratio = [[(logp[b][t] - old_logp[b][t]) * mask[b][t]
                  for t in range(T)] for b in range(B)]
    if level == "token":
        lw = log_ratio
    else:
        lw = [[sum(log_ratio[b]) / max(counts[b], 1.0)] * T for b in range(B)]

    per_token_loss = [[0.0] * T for _ in range(B)]
    per_token_kl = [[0.0] * T for _ in range(B)]
    # d loss / d raw ratio (per token) and d loss / d logp from the KL.
    dratio = [[0.0] * T for _ in range(B)]
    dlogp = [[0.0] * T for _ in range(B)]
    loss = 0.0
    for b in range(B):
        A = adv[b]
        for t in range(T):
            if mask[b][t] == 0:
                continue
            raw = math.exp(lw[b][t])
            coef2 = clamp(raw, lo, hi)
            coef1, d1 = raw, 1.0
            if delta is not None:
                coef1 = min(raw, delta)
                d1 = clamp_passes(raw, -math.inf, delta)
            l1, l2 = coef1 * A, coef2 * A
            ptl = -min(l1, l2)
            s1, s2 = min_grads(l1, l2)
            dptl_draw = -(s1 * A * d1 + s2 * A * clamp_passes(raw, lo, hi))
            if beta != 0.0:
                kl = kl_k3(logp[b][t], ref_logp[b][t])
                per_token_kl[b][t] = kl
                ptl += beta * kl
                dlogp[b][t] += w[b][t] * beta * (
                    1.0 - math.exp(ref_logp[b][t] - logp[b][t]))
            per_token_loss[b][t] = ptl
            loss += w[b][t] * ptl
            dratio[b][t] = w[b][t] * dptl_draw * raw  # d loss / d lw[b][t]
    for b in range(B):
        if level == "token":
            for t in range(T):
                dlogp[b][t] += dratio[b][t]
        else:
            dlw = sum(dratio[b])
            for t in range(T):
                dlogp[b][t] += dlw * mask[b][t] / max(counts[b], 1.0)
    grad = token_logprob_backward(logits, ids, mask, dlogp,
                                  cfg["temperature"])
    return {"loss": loss, "per_token_loss": per_token_loss,
            "per_token_kl": per_token_kl, "advantages": adv, "logp": logp,
            "grad_logits": grad}


# ===------------------------------------------------------------------=== #
# DPO
# ===------------------------------------------------------------------=== #

DPO_DEFAULTS = {"beta": 0.1, "loss_type": "sigmoid", "label_smoothing": 0.0,
                "reference_free": False}


def dpo_loss(logits, labels, mask, ref_chosen_logps, ref_rejected_logps,
             config):
    """TRL DPOTrainer.concatenated_forward + dpo_loss. Rows 0..N-1 of logits
    are the chosen completions, rows N..2N-1 the rejected ones. Returns a
    dict: loss, chosen_rewards, rejected_rewards, losses, grad_logits."""
    cfg = merge_config("dpo", DPO_DEFAULTS, config)
    check_mask(mask)
    lt, beta, ls = cfg["loss_type"], cfg["beta"], cfg["label_smoothing"]
    if lt not in ("sigmoid", "hinge", "ipo"):
        raise ReferenceError("loss_type must be sigmoid, hinge or ipo, got %r"
                             % lt)
    if beta <= 0:
        raise ReferenceError("beta must be > 0, got %r" % beta)
    if len(labels) % 2:
        raise ReferenceError("logits has %d rows: chosen then rejected needs "
                             "an even count" % len(labels))
    N, T = len(labels) // 2, len(labels[0])
    if len(ref_chosen_logps) != N or len(ref_rejected_logps) != N:
        raise ReferenceError("the reference log-probs need %d rows" % N)
    logp = token_logprob(logits, labels, mask)
    sums = [sum(logp[b][t] * mask[b][t] for t in range(T))
            for b in range(2 * N)]
    counts = [max(sum(mask[b]), 1.0) for b in range(2 * N)]
    # ipo uses the average log-probs (of the policy and of the reference).
    scale = [1.0 / c if lt == "ipo" else 1.0 for c in counts]
    rf = 0.0 if cfg["reference_free"] else 1.0
    losses, dz, chosen_rewards, rejected_rewards = [], [], [], []
    for i in range(N):
        c, r = i, N + i
        pc, pr = sums[c] * scale[c], sums[r] * scale[r]
        rc = ref_chosen_logps[i] * scale[c]
        rr = ref_rejected_logps[i] * scale[r]
        z = (pc - rf * rc) - (pr - rf * rr)
        if lt == "sigmoid":
            loss = -(1 - ls) * logsigmoid(beta * z) - ls * logsigmoid(-beta * z)
            d = -(1 - ls) * beta * sigmoid(-beta * z) + ls * beta * sigmoid(
                beta * z)
        elif lt == "hinge":
            loss = max(0.0, 1 - beta * z)
            d = -beta if 1 - beta * z > 0 else 0.0
        else:
            loss = (z - 1 / (2 * beta)) ** 2
            d = 2 * (z - 1 / (2 * beta))
        losses.append(loss)
        dz.append(d / N)
        chosen_rewards.append(beta * (pc - rc))
        rejected_rewards.append(beta * (pr - rr))
    dlogp = [[0.0] * T for _ in range(2 * N)]
    for i in range(N):
        for row, sign in ((i, 1.0), (N + i, -1.0)):
            for t in range(T):
                dlogp[row][t] = sign * dz[i] * scale[row] * mask[row][t]
    grad = token_logprob_backward(logits, labels, mask, dlogp)
    return {"loss": sum(losses) / N, "losses": losses,
            "chosen_rewards": chosen_rewards,
            "rejected_rewards": rejected_rewards, "grad_logits": grad}


# ===------------------------------------------------------------------=== #
# PPO
# ===------------------------------------------------------------------=== #

PPO_DEFAULTS = {"kl_coef": 0.05, "gamma": 1.0, "lam": 0.95, "cliprange": 0.2,
                "cliprange_value": 0.2, "vf_coef": 1.0}


def gae(rewards, values, mask, gamma, lam):
    """ReFT rollout(): GAE over each row's valid tokens, in order; the value
    after the last valid token is 0. Returns (advantages, returns)."""
    adv = [[0.0] * len(row) for row in rewards]
    ret = [[0.0] * len(row) for row in rewards]
    for b, row in enumerate(rewards):
        valid = [t for t in range(len(row)) if mask[b][t]]
        last = 0.0
        for k in reversed(range(len(valid))):
            t = valid[k]
            nxt = values[b][valid[k + 1]] if k + 1 < len(valid) else 0.0
            d = row[t] + gamma * nxt - values[b][t]
            last = d + gamma * lam * last
            adv[b][t] = last
            ret[b][t] = last + values[b][t]
    return adv, ret


def masked_whiten(values, mask):
    """trl.core.masked_whiten(shift_mean=True) with the unbiased variance:
    (x - mean) / sqrt(var + 1e-8), 0 where mask is 0."""
    n = sum(sum(row) for row in mask)
    if n < 2:
        raise ReferenceError("whitening needs at least 2 valid tokens "
                             "(unbiased variance), got %g" % n)
    flat = [(v, m) for vr, mr in zip(values, mask) for v, m in zip(vr, mr)]
    mean = sum(v * m for v, m in flat) / n
    var = sum((v - mean) ** 2 * m for v, m in flat) / n * (n / (n - 1))
    s = 1.0 / math.sqrt(var + 1e-8)
    return [[(v - mean) * s * m for v, m in zip(vr, mr)]
            for vr, mr in zip(values, mask)]


def ppo_loss(logits, ids, mask, old_logp, ref_logp, old_values, vpred, scores,
             config):
    """ReFT train_rl_reft.py (rollout() then the loss of train_one_epoch()).
    Returns a dict: loss, pg_loss, vf_loss, pg_clipfrac, vf_clipfrac,
    rewards, advantages (whitened), returns, grad_logits, grad_vpred."""
    cfg = merge_config("ppo", PPO_DEFAULTS, config)
    check_mask(mask)
    B, T = len(ids), len(ids[0])
    if len(scores) != B:
        raise ReferenceError("scores has %d rows, the batch %d"
                             % (len(scores), B))
    rewards = [[-cfg["kl_coef"] * (old_logp[b][t] - ref_logp[b][t])
                * mask[b][t] for t in range(T)] for b in range(B)]
    for b in range(B):
        valid = [t for t in range(T) if mask[b][t]]
        if valid:
            rewards[b][valid[-1]] += scores[b]
    raw_adv, ret = gae(rewards, old_values, mask, cfg["gamma"], cfg["lam"])
    adv = masked_whiten(raw_adv, mask)
    logp = token_logprob(logits, ids, mask)
    n = sum(sum(row) for row in mask)
    cr, cv = cfg["cliprange"], cfg["cliprange_value"]
    pg = vf = pg_clip = vf_clip = 0.0
    dlogp = [[0.0] * T for _ in range(B)]
    dv = [[0.0] * T for _ in range(B)]
    for b in range(B):
        for t in range(T):
            if mask[b][t] == 0:
                continue
            A, R, v0, v = adv[b][t], ret[b][t], old_values[b][t], vpred[b][t]
            ratio = math.exp(logp[b][t] - old_logp[b][t])
            p1 = -A * ratio
            p2 = -A * clamp(ratio, 1 - cr, 1 + cr)
            pg += max(p1, p2) / n
            pg_clip += (1.0 if p2 > p1 else 0.0) / n
            s1, s2 = min_grads(-p1, -p2)  # max(a, b) = -min(-a, -b)
            dlogp[b][t] = (s1 * -A + s2 * -A * clamp_passes(
                ratio, 1 - cr, 1 + cr)) * ratio / n
            vc = clamp(v, v0 - cv, v0 + cv)
            v1, v2 = (v - R) ** 2, (vc - R) ** 2
            vf += 0.5 * max(v1, v2) / n
            vf_clip += (1.0 if v2 > v1 else 0.0) / n
            s1, s2 = min_grads(-v1, -v2)
            dv[b][t] = cfg["vf_coef"] * 0.5 / n * (
                s1 * 2 * (v - R)
                + s2 * 2 * (vc - R) * clamp_passes(v, v0 - cv, v0 + cv))
    grad = token_logprob_backward(logits, ids, mask, dlogp)
    return {"loss": pg + cfg["vf_coef"] * vf, "pg_loss": pg, "vf_loss": vf,
            "pg_clipfrac": pg_clip, "vf_clipfrac": vf_clip,
            "rewards": rewards, "raw_advantages": raw_adv, "advantages": adv,
            "returns": ret, "grad_logits": grad, "grad_vpred": dv}


# ===------------------------------------------------------------------=== #
# Named cases: inputs (rounded to f32, as they travel in files) and config
# ===------------------------------------------------------------------=== #

LN2, LN3 = math.log(2.0), math.log(3.0)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def grid(fn, *dims):
    """A nested list of shape dims filled with fn(*index)."""
    if len(dims) == 1:
        return [fn(i) for i in range(dims[0])]
    return [grid(lambda *r, i=i: fn(i, *r), *dims[1:]) for i in range(dims[0])]


def case_grpo_hand():
    # 2 groups of 2; logits 0 so logp = -ln 3; ratios 1.1 and 1.5 (clipped);
    # the second group has equal rewards; row 3 is an empty completion.
    mask = [[1, 1], [1, 0], [1, 1], [0, 0]]
    old = [[-LN3 - math.log(1.1)] * 2, [-LN3 - math.log(1.5)] * 2,
           [-LN3] * 2, [-LN3] * 2]
    return ("grpo", {"beta": 0.04, "max_completion_length": 4}, {
        "logits": grid(lambda b, t, v: 0.0, 4, 2, 3),
        "completion_ids": [[0, 1], [2, -100], [1, 1], [-100, -100]],
        "completion_mask": mask, "old_per_token_logps": old,
        "ref_per_token_logps": grid(lambda b, t: -LN3 + LN2, 4, 2),
        "rewards": [1.0, 3.0, 5.0, 5.0], "num_items_in_batch": 10.0})


def case_grpo_random(fused=False):
    rng = random.Random(7)
    B, T, V = 6, 5, 7
    mask = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0],
            [1, 0, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]]
    logits = grid(lambda b, t, v: rng.gauss(0, 1.5), B, T, V)
    lm = fused_lm_head(17, B, T, V, 1.5) if fused else {}
    logits = lm.pop("logits", logits)
    ids = grid(lambda b, t: rng.randrange(V) if mask[b][t] else -100, B, T)
    logp = token_logprob(logits, [[max(i, 0) for i in r] for r in ids],
                         [[1] * T for _ in range(B)])
    old = grid(lambda b, t: logp[b][t] + rng.uniform(-0.35, 0.35), B, T)
    ref = grid(lambda b, t: logp[b][t] + rng.uniform(-0.5, 0.5), B, T)
    return ("grpo", {"num_generations": 3, "beta": 0.1, "temperature": 0.7,
                     "epsilon_high": 0.28, "max_completion_length": 5}, dict({
        "logits": logits, "completion_ids": ids, "completion_mask": mask,
        "old_per_token_logps": old, "ref_per_token_logps": ref,
        "rewards": [rng.uniform(-1, 2) for _ in range(B)],
        "num_items_in_batch": 36.0}, **lm))


def case_dpo_hand():
    # logits 0 so logp = -ln 2. Pair 0: dc = 0.5, dr = -0.5 (chosen 2 tokens,
    # rejected 1); pair 1: dc = dr = 0 with an empty rejected completion.
    return ("dpo", {"beta": 0.5}, {
        "logits": grid(lambda b, t, v: 0.0, 4, 2, 2),
        "labels": [[0, 1], [1, 0], [1, -100], [-100, -100]],
        "completion_mask": [[1, 1], [1, 1], [1, 0], [0, 0]],
        "ref_chosen_logps": [-2 * LN2 - 0.5, -2 * LN2],
        "ref_rejected_logps": [-LN2 + 0.5, 0.0]})


def case_dpo_random(fused=False):
    rng = random.Random(11)
    N, T, V = 3, 4, 6
    mask = [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0],
            [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    logits = grid(lambda b, t, v: rng.gauss(0, 1.2), 2 * N, T, V)
    lm = fused_lm_head(19, 2 * N, T, V, 1.2) if fused else {}
    return ("dpo", {"beta": 0.3, "label_smoothing": 0.15}, dict({
        "logits": lm.pop("logits", logits),
        "labels": grid(lambda b, t: rng.randrange(V) if mask[b][t] else -100,
                       2 * N, T),
        "completion_mask": mask,
        "ref_chosen_logps": [rng.uniform(-6, -2) for _ in range(N)],
        "ref_rejected_logps": [rng.uniform(-6, -2) for _ in range(N)]}, **lm))


def case_ppo_hand():
    # logits 0 so logp = -ln 2 = old_logp; old - ref = 0.2 on every token.
    # Row 0 has 1 valid token, row 1 has 3.
    return ("ppo", {"kl_coef": 0.5, "gamma": 0.9, "lam": 0.8}, {
        "logits": grid(lambda b, t, v: 0.0, 2, 3, 2),
        "response_ids": [[1, -100, -100], [0, 1, 0]],
        "mask": [[1, 0, 0], [1, 1, 1]],
        "old_logprobs": [[-LN2] * 3, [-LN2] * 3],
        "ref_logprobs": [[-LN2 - 0.2] * 3, [-LN2 - 0.2] * 3],
        "old_values": [[0.5, 0.0, 0.0], [0.1, 0.2, 0.3]],
        "vpred": [[0.6, 0.0, 0.0], [0.1, 0.5, 1.0]],
        "scores": [1.0, 2.0]})


def case_ppo_random(fused=False):
    rng = random.Random(5)
    B, T, V = 3, 6, 5
    mask = [[0, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]
    logits = grid(lambda b, t, v: rng.gauss(0, 1.0), B, T, V)
    lm = fused_lm_head(23, B, T, V, 1.0) if fused else {}
    logits = lm.pop("logits", logits)
    ids = grid(lambda b, t: rng.randrange(V) if mask[b][t] else -100, B, T)
    logp = token_logprob(logits, [[max(i, 0) for i in r] for r in ids],
                         [[1] * T for _ in range(B)])
    old_values = grid(lambda b, t: rng.uniform(-1, 1), B, T)
    return ("ppo", {"kl_coef": 0.1, "gamma": 0.95, "lam": 0.9,
                    "cliprange_value": 0.15, "vf_coef": 0.3}, dict({
        "logits": logits, "response_ids": ids, "mask": mask,
        "old_logprobs": grid(lambda b, t: logp[b][t] + rng.uniform(-0.3, 0.3),
                             B, T),
        "ref_logprobs": grid(lambda b, t: logp[b][t] + rng.uniform(-0.4, 0.4),
                             B, T),
        "old_values": old_values,
        "vpred": grid(lambda b, t: old_values[b][t] + rng.uniform(-0.4, 0.4),
                      B, T),
        "scores": [rng.uniform(-1, 1) for _ in range(B)]}, **lm))


# ===------------------------------------------------------------------=== #
# Fused forms: hidden [B,T,d] and lm_head.weight [V,d] instead of logits
# ===------------------------------------------------------------------=== #

FUSED_D = 5


def lm_head_logits(hidden, weight):
    """logits[b][t][v] = sum_k hidden[b][t][k] * weight[v][k], float64."""
    return [[[sum(h * w for h, w in zip(row, wv)) for wv in weight]
             for row in rows] for rows in hidden]


def lm_head_backward(hidden, weight, grad_logits):
    """The chain rule through logits = hidden . weight^T: (grad_hidden =
    grad_logits . weight, grad_lm_head = sum over b, t of grad_logits^T .
    hidden)."""
    d = len(weight[0]) if weight else 0
    grad_hidden = [[[sum(g[v] * weight[v][k] for v in range(len(weight)))
                     for k in range(d)] for g in rows] for rows in grad_logits]
    grad_w = [[0.0] * d for _ in weight]
    for rows_g, rows_h in zip(grad_logits, hidden):
        for g, h in zip(rows_g, rows_h):
            for v, gv in enumerate(g):
                if gv:
                    line = grad_w[v]
                    for k in range(d):
                        line[k] += gv * h[k]
    return grad_hidden, grad_w


def fused_lm_head(seed, B, T, V, scale):
    """Random f32-representable hidden [B,T,d] and lm_head.weight [V,d] whose
    logits have about the given scale, with those logits (float64)."""
    rng = random.Random(seed)
    hidden = grid(lambda b, t, k: f32(rng.gauss(0, 1)), B, T, FUSED_D)
    weight = grid(lambda v, k: f32(rng.gauss(0, scale / math.sqrt(FUSED_D))),
                  V, FUSED_D)
    return {"hidden": hidden, "lm_head.weight": weight,
            "logits": lm_head_logits(hidden, weight)}


def fused_hand(case, seed):
    """The fused form of a hand case, whose logits are all 0: hidden rows
    (a, a, c, 0, 0) and lm_head.weight rows (1, -1, 0, p, q) give logits of
    exactly 0 again, so every output but the gradients is the unfused case's
    exactly, while the gradients of both hidden and the weight are not 0."""
    kind, config, raw = case()
    logits = raw.pop("logits")
    if any(x != 0 for rows in logits for row in rows for x in row):
        raise ReferenceError("fused_hand needs logits of 0")
    rng = random.Random(seed)
    B, T, V = len(logits), len(logits[0]), len(logits[0][0])

    def row(b, t):
        a = f32(rng.gauss(0, 1))
        return [a, a, f32(rng.gauss(0, 1)), 0.0, 0.0]

    raw["hidden"] = grid(row, B, T)
    raw["lm_head.weight"] = [[1.0, -1.0, 0.0, f32(rng.uniform(-1, 1)),
                              f32(rng.uniform(-1, 1))] for _ in range(V)]
    return kind, config, raw


def fused_random(case):
    kind, config, raw = case(fused=True)
    del raw["logits"]
    return kind, config, raw


CASES = {"grpo_hand": case_grpo_hand, "grpo_random": case_grpo_random,
         "dpo_hand": case_dpo_hand, "dpo_random": case_dpo_random,
         "ppo_hand": case_ppo_hand, "ppo_random": case_ppo_random}
for _seed, _name in enumerate(sorted(CASES)):
    CASES[_name + "_fused"] = (
        (lambda c=CASES[_name], s=_seed: fused_hand(c, s))
        if _name.endswith("_hand") else
        (lambda c=CASES[_name]: fused_random(c)))
# The kind of a case: its loss, with "_fused" for the fused forms.
CASE_KINDS = {name: CASES[name]()[0] + ("_fused" if name.endswith("_fused")
                                       else "") for name in CASES}

# Input names in file order, with their dtype; the rest are outputs.
INPUTS = {
    "grpo": [("logits", "F32"), ("completion_ids", "I64"),
             ("completion_mask", "F32"), ("old_per_token_logps", "F32"),
             ("ref_per_token_logps", "F32"), ("rewards", "F32"),
             ("num_items_in_batch", "F32")],
    "dpo": [("logits", "F32"), ("labels", "I64"), ("completion_mask", "F32"),
            ("ref_chosen_logps", "F32"), ("ref_rejected_logps", "F32")],
    "ppo": [("logits", "F32"), ("response_ids", "I64"), ("mask", "F32"),
            ("old_logprobs", "F32"), ("ref_logprobs", "F32"),
            ("old_values", "F32"), ("vpred", "F32"), ("scores", "F32")],
}
OUTPUTS = {
    "grpo": ["loss", "per_token_loss", "per_token_kl", "advantages",
             "grad_logits"],
    "dpo": ["loss", "chosen_rewards", "rejected_rewards", "grad_logits"],
    "ppo": ["loss", "pg_loss", "vf_loss", "pg_clipfrac", "vf_clipfrac",
            "advantages", "returns", "grad_logits", "grad_vpred"],
}
# The fused kinds take hidden and the lm-head weight instead of logits and
# give their gradients instead of grad_logits.
for _kind in list(INPUTS):
    INPUTS[_kind + "_fused"] = ([("hidden", "F32"), ("lm_head.weight", "F32")]
                                + INPUTS[_kind][1:])
    OUTPUTS[_kind + "_fused"] = [
        n for n in OUTPUTS[_kind] if n != "grad_logits"] + [
        "grad_hidden", "grad_lm_head"]


def base_kind(kind):
    """grpo, dpo or ppo: the loss of a kind, fused or not."""
    return kind[:-len("_fused")] if kind.endswith("_fused") else kind


def flatten(x):
    if isinstance(x, list):
        return [v for item in x for v in flatten(item)]
    return [x]


def shape_of(x):
    return [len(x)] + shape_of(x[0]) if isinstance(x, list) else []


def unflatten(values, shape):
    if not shape:
        return values[0]
    if len(shape) == 1:
        return list(values)
    step = len(values) // shape[0] if shape[0] else 0
    return [unflatten(values[i * step:(i + 1) * step], shape[1:])
            for i in range(shape[0])]


def load_case(name, overrides, round_f32=False):
    """(kind, config, inputs as nested lists); round_f32 rounds the F32
    inputs as a file holds them."""
    if name not in CASES:
        raise ReferenceError("unknown case '%s'; cases: %s"
                             % (name, ", ".join(sorted(CASES))))
    kind, config, raw = CASES[name]()
    kind = CASE_KINDS[name]
    inputs = {}
    for key, dtype in INPUTS[kind]:
        shape = shape_of(raw[key])
        vals = [(f32(v) if round_f32 else float(v)) if dtype == "F32"
                else int(v)
                for v in flatten(raw[key])]
        inputs[key] = unflatten(vals, shape)
    dtypes = dict(INPUTS[kind])
    for key, value in overrides.items():
        if key in dtypes:
            # An input given as JSON (rewards=[1, 1, 1, 0, 2, 3]): the same
            # shape, rounded like the case's own values.
            vals = flatten(value)
            if (shape_of(value) != shape_of(inputs[key])
                    or not all(isinstance(v, (int, float)) for v in vals)):
                raise ReferenceError("input override '%s' needs numbers of "
                                     "shape %s" % (key,
                                                   shape_of(inputs[key])))
            vals = [(f32(v) if round_f32 else float(v)) if dtypes[key] ==
                    "F32" else int(v) for v in vals]
            inputs[key] = unflatten(vals, shape_of(value))
        else:
            config[key] = value
    return kind, config, inputs


def evaluate(kind, config, inputs, replace=None):
    """The reference outputs of a kind on inputs, with the inputs named in
    `replace` replaced."""
    i = dict(inputs)
    i.update(replace or {})
    if kind.endswith("_fused"):
        hidden, weight = i["hidden"], i["lm_head.weight"]
        i["logits"] = lm_head_logits(hidden, weight)
        result = evaluate(base_kind(kind), config, i)
        result["grad_hidden"], result["grad_lm_head"] = lm_head_backward(
            hidden, weight, result["grad_logits"])
        return result
    if kind == "grpo":
        return grpo_loss(i["logits"], i["completion_ids"],
                         i["completion_mask"], i["old_per_token_logps"],
                         i["ref_per_token_logps"], i["rewards"], config,
                         i["num_items_in_batch"])
    if kind == "dpo":
        return dpo_loss(i["logits"], i["labels"], i["completion_mask"],
                        i["ref_chosen_logps"], i["ref_rejected_logps"], config)
    return ppo_loss(i["logits"], i["response_ids"], i["mask"],
                    i["old_logprobs"], i["ref_logprobs"], i["old_values"],
                    i["vpred"], i["scores"], config)


def read_inputs(kind, path):
    try:
        tensors = safetensors_io.load(path)
    except (OSError, ValueError, KeyError, struct.error) as e:
        raise ReferenceError("cannot read %s: %s" % (path, e))
    inputs = {}
    for key, dtype in INPUTS[kind]:
        if key not in tensors:
            raise ReferenceError("%s has no input '%s'" % (path, key))
        got, shape, values = tensors[key]
        if got != dtype:
            raise ReferenceError("input '%s' is %s, expected %s"
                                 % (key, got, dtype))
        inputs[key] = unflatten(list(values), shape)
    check_shapes(kind, {k: tensors[k][1] for k, _ in INPUTS[kind]})
    return inputs, tensors


def check_shapes(kind, shapes):
    """The input shapes of one kind agree with each other."""
    if kind.endswith("_fused"):
        hidden, weight = shapes["hidden"], shapes["lm_head.weight"]
        if len(hidden) != 3 or 0 in hidden:
            raise ReferenceError("hidden must be [B, T, d] with no zero dim, "
                                 "got %s" % hidden)
        if len(weight) != 2 or weight[0] == 0 or weight[1] != hidden[2]:
            raise ReferenceError("lm_head.weight must be [V, %d] with V > 0, "
                                 "got %s" % (hidden[2], weight))
        kind = base_kind(kind)
        logits = hidden[:2] + weight[:1]
    else:
        logits = shapes["logits"]
    if len(logits) != 3 or 0 in logits:
        raise ReferenceError("logits must be [B, T, V] with no zero dim, got "
                             "%s" % logits)
    rows = logits[:2]
    rows_of = {"grpo": ["completion_ids", "completion_mask",
                        "old_per_token_logps", "ref_per_token_logps"],
               "dpo": ["labels", "completion_mask"],
               "ppo": ["response_ids", "mask", "old_logprobs",
                       "ref_logprobs", "old_values", "vpred"]}[kind]
    want = {k: rows for k in rows_of}
    if kind == "grpo":
        want.update(rewards=rows[:1], num_items_in_batch=[])
    elif kind == "dpo":
        want.update(ref_chosen_logps=[rows[0] // 2],
                    ref_rejected_logps=[rows[0] // 2])
    else:
        want.update(scores=rows[:1])
    for key, shape in want.items():
        if shapes[key] != shape:
            raise ReferenceError("input '%s' has shape %s, expected %s"
                                 % (key, shapes[key], shape))


def parse_overrides(args):
    out = {}
    for arg in args:
        if "=" not in arg:
            raise ReferenceError("expected KEY=VALUE, got '%s'" % arg)
        key, text = arg.split("=", 1)
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        out[key] = value
    return out


def fmt(x):
    return "%.12g" % (x + 0.0)  # no "-0"


def print_values(kind, result):
    for key in OUTPUTS[kind] + (["raw_advantages", "rewards"]
                                if base_kind(kind) == "ppo" else []):
        if key in ("grad_logits", "grad_hidden", "grad_lm_head"):
            continue
        v = result[key]
        print("%s: %s" % (key, " ".join(fmt(x) for x in flatten(v))
                          if isinstance(v, list) else fmt(v)))
    nan = any(math.isnan(x) for k in OUTPUTS[kind]
              for x in flatten(result[k]))
    print("nan: %s" % ("yes" if nan else "no"))


def gradcheck(kind, config, inputs, h=1e-6):
    """Max relative error of the analytic gradient against central finite
    differences of the reference's own loss, over logits (hidden and
    lm_head.weight for the fused kinds) and vpred."""
    result = evaluate(kind, config, inputs)
    reports = []
    if kind.endswith("_fused"):
        targets = [("grad_hidden", "hidden"),
                   ("grad_lm_head", "lm_head.weight")]
    else:
        targets = [("grad_logits", "logits")]
    if base_kind(kind) == "ppo":
        targets.append(("grad_vpred", "vpred"))
    for gname, iname in targets:
        base = inputs[iname]
        shape = shape_of(base)
        flat = flatten(base)
        analytic = flatten(result[gname])
        worst, scale = 0.0, 0.0
        for k in range(len(flat)):
            plus, minus = list(flat), list(flat)
            plus[k] += h
            minus[k] -= h
            lp = evaluate(kind, config, inputs,
                          {iname: unflatten(plus, shape)})["loss"]
            lm = evaluate(kind, config, inputs,
                          {iname: unflatten(minus, shape)})["loss"]
            fd = (lp - lm) / (2 * h)
            worst = max(worst, abs(fd - analytic[k]))
            scale = max(scale, abs(fd))
        if scale == 0.0:
            raise ReferenceError("gradient of %s is 0 everywhere" % iname)
        reports.append((iname, worst / scale, scale))
    return reports


def compare(kind, config, inputs, tensors, atol, rtol):
    """Prints one line per output compared; returns True when all pass."""
    ref = evaluate(kind, config, inputs)
    names = [n for n in OUTPUTS[kind] if n in tensors]
    if not names:
        raise ReferenceError("the outputs hold none of: %s"
                             % ", ".join(OUTPUTS[kind]))
    ok = True
    for name in names:
        want = flatten(ref[name])
        dtype, shape, got = tensors[name]
        if dtype not in ("F32", "F64"):
            raise ReferenceError("output '%s' is %s, expected F32 or F64"
                                 % (name, dtype))
        if shape != shape_of(ref[name]):
            print("%s: shape %s, expected %s" % (name, shape,
                                                 shape_of(ref[name])))
            ok = False
            continue
        worst, bad = 0.0, 0
        for g, w in zip(got, want):
            err = abs(g - w)
            if math.isnan(g) or err > atol + rtol * abs(w):
                bad += 1
            if not math.isnan(err):
                worst = max(worst, err)
        print("%s: max abs diff %.3g, %d of %d outside tolerance"
              % (name, worst, bad, len(want)))
        ok = ok and bad == 0
    return ok


def main(argv):
    if not argv:
        raise ReferenceError(__doc__.strip())
    cmd, args = argv[0], argv[1:]
    if cmd == "cases":
        for name in sorted(CASES):
            print("%s %s" % (name, CASE_KINDS[name]))
        return 0
    if not args:
        raise ReferenceError("'%s' needs a case name" % cmd)
    name = args[0]
    if cmd == "config":
        kind, config, _ = load_case(name, parse_overrides(args[1:]))
        print(json.dumps(config, sort_keys=True))
    elif cmd == "inputs":
        if len(args) < 2:
            raise ReferenceError("usage: inputs CASE IN.safetensors")
        kind, _, inputs = load_case(name, parse_overrides(args[2:]), True)
        safetensors_io.write(args[1], [
            (key, dtype, shape_of(inputs[key]), flatten(inputs[key]))
            for key, dtype in INPUTS[kind]])
    elif cmd == "outputs":
        if len(args) < 3:
            raise ReferenceError("usage: outputs CASE IN OUT [F32|F64] "
                                 "[K=V...]")
        rest = args[3:]
        dtype = "F32"
        if rest and "=" not in rest[0]:
            dtype = rest.pop(0)
        if dtype not in ("F32", "F64"):
            raise ReferenceError("dtype must be F32 or F64, got %s" % dtype)
        kind, config, _ = load_case(name, parse_overrides(rest))
        inputs, _ = read_inputs(kind, args[1])
        result = evaluate(kind, config, inputs)
        safetensors_io.write(args[2], [
            (key, dtype, shape_of(result[key]), flatten(result[key]))
            for key in OUTPUTS[kind]])
    elif cmd == "check":
        if len(args) < 5:
            raise ReferenceError("usage: check CASE IN OUT ATOL RTOL")
        kind, config, _ = load_case(name, parse_overrides(args[5:]))
        inputs, _ = read_inputs(kind, args[1])
        try:
            outputs = safetensors_io.load(args[2])
        except (OSError, ValueError, KeyError, struct.error) as e:
            raise ReferenceError("cannot read %s: %s" % (args[2], e))
        ok = compare(kind, config, inputs, outputs, float(args[3]),
                     float(args[4]))
        print("ok" if ok else "mismatch")
        return 0 if ok else 1
    elif cmd == "print":
        kind, config, inputs = load_case(name, parse_overrides(args[1:]))
        print_values(kind, evaluate(kind, config, inputs))
    elif cmd == "gradcheck":
        kind, config, inputs = load_case(name, parse_overrides(args[1:]))
        ok = True
        for iname, rel, scale in gradcheck(kind, config, inputs):
            good = rel < 1e-6
            ok = ok and good
            print("%s: max relative error %s" % (
                iname, "< 1e-6" if good else "%.3g" % rel))
        return 0 if ok else 1
    else:
        raise ReferenceError("unknown command '%s'" % cmd)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ReferenceError as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(1)
