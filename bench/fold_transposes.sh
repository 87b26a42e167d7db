#!/usr/bin/env bash
# Transposes folded into strided operands (loom-cpu-fold-transposes) against
# the same artifacts with the transposed copies (--fold-transposes=false),
# in the same run on the CPU (docs/performance.md, "Transposes as strided
# operands"):
#   - models/tree_attention.loom `block` (dim 512, 8 heads of 64): the
#     heads of q, k and v split by transposes before fused attention and
#     merged after it, B = 1, S = 4096, on the code metadata of a real Python
#     file (bench/gpu_pack.py, padded to 4096 tokens);
#   - models/mla.loom `prefill` (--mla=absorb, the default): the absorbed
#     per-head projections, B = 1, S = 2048 at start_pos 0.
# Each contender runs LOOM_BENCH_ROUNDS (default 5) interleaved rounds of
# `loom-bench --rss` (median of 5 calls after a warm-up); the report gives
# the medians of the per-round medians and of the peak resident memory above
# the inputs.
#
#   bench/fold_transposes.sh [BUILD_DIR]        (default BUILD_DIR: ./build)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench_name=fold_transposes
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
bench_configure_build "${1:-$root/build}" loom-compile loom-bench loom_runtime
work="$root/bench/results/fold-transposes-work"
mkdir -p "$work"
bench_machine

python3 "$root/frontend/python/loom_codemeta.py" "$root/bench/gpu_pack.py" \
  --pad-to 4096 -o "$work/meta.safetensors"
python3 "$root/test/tools/Inputs/make_tensors.py" "$work/pos.safetensors" \
  "start_pos:i64::0"
for fold in true false; do
  "$bin/loom-compile" "$root/models/tree_attention.loom" \
    --fold-transposes=$fold -o "$work/tree_$fold.so"
  "$bin/loom-compile" "$root/models/mla.loom" --fold-transposes=$fold \
    -o "$work/mla_$fold.so"
done

rounds="${LOOM_BENCH_ROUNDS:-5}"
results="$work/results.txt"
: >"$results"
for ((r = 1; r <= rounds; ++r)); do
  for fold in true false; do
    for case in tree mla; do
      if [ "$case" = tree ]; then
        args=(--call block --inputs "$work/meta.safetensors" --dim B=1
              --dim S=4096)
      else
        args=(--call prefill --inputs "$work/pos.safetensors" --dim B=1
              --dim S=2048)
      fi
      line="$("$bin/loom-bench" "$work/${case}_$fold.so" "${args[@]}" \
        --warmup 1 --reps 5 --rss --json | tail -n 1)"
      echo "$case $fold $line" >>"$results"
    done
  done
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    case, fold, text = line.split(" ", 2)
    d = json.loads(text)
    rows.setdefault((case, fold), []).append(
        (d["median_s"], d["rss_peak_above_baseline_bytes"]))
names = {"tree": "tree-attention block, S = 4096",
         "mla": "MLA prefill (absorb), S = 2048"}
print("| case | folded | copies | time, copies / folded | memory, copies / folded |")
print("| --- | --- | --- | --- | --- |")
for case in ("tree", "mla"):
    f = rows[(case, "true")]
    c = rows[(case, "false")]
    tf = statistics.median(t for t, _ in f)
    tc = statistics.median(t for t, _ in c)
    mf = statistics.median(m for _, m in f) / 2**20
    mc = statistics.median(m for _, m in c) / 2**20
    print("| %s | %.1f ms, %.1f MiB | %.1f ms, %.1f MiB | %.3f | %.2f |" % (
        names[case], tf * 1e3, mf, tc * 1e3, mc, tc / tf, mc / mf))
PY
