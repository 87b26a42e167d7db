"""PyTorch baselines of bench/mla.sh; prints one JSON object.

  python torch_mla.py layer CONFIG.json B MAX_SEQ_LEN PARAMS INPUTS WARMUP REPS
  python torch_mla.py attention B T WARMUP REPS
  python torch_mla.py check CONFIG.json B MAX_SEQ_LEN PARAMS INPUTS OUTPUTS...

`layer` times one decode step of the MLA layer of DeepSeek-V3's
inference/model.py with attn_impl="absorb", float32: the q_lora path (wq_a,
q_norm, wq_b), rotary embeddings on q_pe and k_pe, wkv_a and kv_norm into
kv_cache / pe_cache (zero-initialized buffers of [B, MAX_SEQ_LEN, ...]),
wkv_b's key part absorbed into the query by einsum, the scores einsums with
both caches, softmax in float32, the einsum with kv_cache, wkv_b's value part
and wo. CONFIG.json gives the dimensions (DeepSeek's config keys, ModelArgs
defaults for the rest), PARAMS the weights (safetensors, the names of
models/mla.loom), INPUTS `x` [B, 1, dim] and `start_pos`.

`attention` times the attention part alone: given the absorbed queries
q [B, 1, H, 512] and q_pe [B, 1, H, 64], the two scores einsums with the
caches [B, T, 512] and [B, T, 64], the softmax and the einsum with kv_cache
(H = 128, T cached positions all visible). Operands are uniform in [-1, 1);
caches smaller than 96 MiB are replicated and calls rotate among the copies,
as bench/mla_kernel_bench.cc does, so that they come from memory.

`check` runs a prefill call first when INPUTS has `pre.x` and
`pre.start_pos` (causal inside the chunk), then one step, and compares its
output with the `out` tensor of each OUTPUTS file (written by loom-run from
the same params and inputs): prints the largest absolute difference per file
and the largest output magnitude.

Timing: WARMUP untimed calls, then the median of REPS timed calls, all cores
(torch.set_num_threads(os.cpu_count())), torch.inference_mode().
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

from benchinfo import timed
from torch_safetensors import read_safetensors

ROTATION_BYTES = 96 << 20


class Args:
    """DeepSeek-V3's ModelArgs: the defaults, then the config file."""

    def __init__(self, config_path, max_batch_size, max_seq_len):
        self.dim = 2048
        self.n_heads = 16
        self.q_lora_rank = 0
        self.kv_lora_rank = 512
        self.qk_nope_head_dim = 128
        self.qk_rope_head_dim = 64
        self.v_head_dim = 128
        self.original_seq_len = 4096
        self.rope_theta = 10000.0
        self.rope_factor = 40
        self.beta_fast = 32
        self.beta_slow = 1
        self.mscale = 1.0
        with open(config_path) as f:
            for k, v in json.load(f).items():
                if hasattr(self, k):
                    setattr(self, k, v)
        self.max_batch_size = max_batch_size
        self.max_seq_len = max_seq_len


def precompute_freqs_cis(args):
    """Rotary frequencies with YaRN's correction, as in DeepSeek-V3."""
    dim, base = args.qk_rope_head_dim, args.rope_theta

    def correction_dim(rotations):
        return (dim * math.log(args.original_seq_len / (rotations * 2 * math.pi))
                / (2 * math.log(base)))

    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    if args.max_seq_len > args.original_seq_len:
        low = max(math.floor(correction_dim(args.beta_fast)), 0)
        high = min(math.ceil(correction_dim(args.beta_slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low)
                           / (high - low), 0, 1)
        smooth = 1 - ramp
        freqs = freqs / args.rope_factor * (1 - smooth) + freqs * smooth
    t = torch.arange(args.max_seq_len)
    freqs = torch.outer(t, freqs)
    return torch.polar(torch.ones_like(freqs), freqs)


def apply_rotary_emb(x, freqs_cis):
    dtype = x.dtype
    x = torch.view_as_complex(x.float().view(*x.shape[:-1], -1, 2))
    freqs_cis = freqs_cis.view(1, x.size(1), 1, x.size(-1))
    return torch.view_as_real(x * freqs_cis).flatten(3).to(dtype)


class MLA:
    """The attn_impl="absorb" path of DeepSeek-V3's MLA, one device."""

    def __init__(self, args, params):
        self.a = args
        self.w = params
        self.qk_head_dim = args.qk_nope_head_dim + args.qk_rope_head_dim
        self.softmax_scale = self.qk_head_dim ** -0.5
        if args.max_seq_len > args.original_seq_len:
            mscale = 0.1 * args.mscale * math.log(args.rope_factor) + 1.0
            self.softmax_scale = self.softmax_scale * mscale * mscale
        self.kv_cache = torch.zeros(args.max_batch_size, args.max_seq_len,
                                    args.kv_lora_rank)
        self.pe_cache = torch.zeros(args.max_batch_size, args.max_seq_len,
                                    args.qk_rope_head_dim)
        self.freqs_cis = precompute_freqs_cis(args)

    def forward(self, x, start_pos):
        a, w = self.a, self.w
        bsz, seqlen, _ = x.size()
        end_pos = start_pos + seqlen
        freqs_cis = self.freqs_cis[start_pos:end_pos]
        if a.q_lora_rank == 0:
            q = F.linear(x, w["wq.weight"])
        else:
            q = F.linear(F.rms_norm(F.linear(x, w["wq_a.weight"]), (a.q_lora_rank,),
                                    w["q_norm.weight"], 1e-6), w["wq_b.weight"])
        q = q.view(bsz, seqlen, a.n_heads, self.qk_head_dim)
        q_nope, q_pe = torch.split(q, [a.qk_nope_head_dim, a.qk_rope_head_dim], dim=-1)
        q_pe = apply_rotary_emb(q_pe, freqs_cis)
        kv = F.linear(x, w["wkv_a.weight"])
        kv, k_pe = torch.split(kv, [a.kv_lora_rank, a.qk_rope_head_dim], dim=-1)
        k_pe = apply_rotary_emb(k_pe.unsqueeze(2), freqs_cis)
        wkv_b = w["wkv_b.weight"].view(a.n_heads, -1, a.kv_lora_rank)
        q_nope = torch.einsum("bshd,hdc->bshc", q_nope, wkv_b[:, :a.qk_nope_head_dim])
        self.kv_cache[:bsz, start_pos:end_pos] = F.rms_norm(
            kv, (a.kv_lora_rank,), w["kv_norm.weight"], 1e-6)
        self.pe_cache[:bsz, start_pos:end_pos] = k_pe.squeeze(2)
        scores = (torch.einsum("bshc,btc->bsht", q_nope, self.kv_cache[:bsz, :end_pos])
                  + torch.einsum("bshr,btr->bsht", q_pe, self.pe_cache[:bsz, :end_pos])
                  ) * self.softmax_scale
        if seqlen > 1:
            # Query s sees positions t <= start_pos + s (DeepSeek's mask when
            # start_pos is 0; a decode step of one token needs none).
            mask = torch.full((seqlen, end_pos), float("-inf")).triu_(start_pos + 1)
            scores += mask.unsqueeze(1)
        scores = scores.softmax(dim=-1, dtype=torch.float32).type_as(x)
        x = torch.einsum("bsht,btc->bshc", scores, self.kv_cache[:bsz, :end_pos])
        x = torch.einsum("bshc,hdc->bshd", x, wkv_b[:, -a.v_head_dim:])
        return F.linear(x.flatten(2), w["wo.weight"])


def uniform(*shape):
    return torch.rand(*shape, dtype=torch.float32) * 2 - 1


def attention_case(b, t, heads=128, c=512, r=64):
    """The attention part alone; returns (fn, info)."""
    q = uniform(b, 1, heads, c)
    q_pe = uniform(b, 1, heads, r)
    scale = 1.0 / math.sqrt(c + r)
    cache_bytes = b * t * (c + r) * 4
    copies = max(1, -(-ROTATION_BYTES // cache_bytes))
    caches = [(uniform(b, t, c), uniform(b, t, r)) for _ in range(copies)]
    state = {"next": 0}

    def step():
        kv, pe = caches[state["next"]]
        state["next"] = (state["next"] + 1) % copies
        scores = (torch.einsum("bshc,btc->bsht", q, kv)
                  + torch.einsum("bshr,btr->bsht", q_pe, pe)) * scale
        scores = scores.softmax(dim=-1, dtype=torch.float32)
        return torch.einsum("bsht,btc->bshc", scores, kv)

    return step, {"copies": copies}


def layer_case(config, b, max_seq_len, params_path, inputs_path):
    args = Args(config, b, max_seq_len)
    params = read_safetensors(params_path)
    inputs = read_safetensors(inputs_path)
    x = inputs["x"]
    start_pos = int(inputs["start_pos"].item())
    mla = MLA(args, params)
    return mla, x, start_pos, inputs


def main():
    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("LOOM_BENCH_TORCH_THREADS",
                                             os.cpu_count())))
    mode = sys.argv[1]
    info = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    with torch.inference_mode():
        if mode == "layer":
            config, b, msl, params, inputs, warmup, reps = sys.argv[2:9]
            mla, x, start_pos, _ = layer_case(config, int(b), int(msl), params, inputs)
            info["softmax_scale"] = mla.softmax_scale
            info.update(timed(lambda: mla.forward(x, start_pos), int(warmup), int(reps)))
        elif mode == "attention":
            b, t, warmup, reps = map(int, sys.argv[2:6])
            step, extra = attention_case(b, t)
            info.update(extra)
            info.update(timed(step, warmup, reps))
        elif mode == "check":
            config, b, msl, params, inputs = sys.argv[2:7]
            mla, x, start_pos, inputs = layer_case(config, int(b), int(msl), params,
                                                   inputs)
            if "pre.x" in inputs:
                mla.forward(inputs["pre.x"], int(inputs["pre.start_pos"].item()))
            ref = mla.forward(x, start_pos)
            info["max_abs_ref"] = ref.abs().max().item()
            info["finite"] = bool(torch.isfinite(ref).all())
            info["max_abs_diff"] = {}
            for path in sys.argv[7:]:
                out = read_safetensors(path)["out"]
                if out.shape != ref.shape:
                    raise SystemExit("%s: out has shape %s, expected %s"
                                     % (path, list(out.shape), list(ref.shape)))
                info["max_abs_diff"][os.path.basename(path)] = (
                    (out - ref).abs().max().item())
        else:
            raise SystemExit("unknown mode " + mode)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
