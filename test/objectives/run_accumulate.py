"""Runs the gradient-accumulating entry of a fused case twice and checks its
state against the float64 reference.

  run_accumulate.py BIN_DIR WORK_DIR CASE MODE ATOL RTOL [K=V...] [-- K=V...]

CASE is a `_fused` case of reference.py and MODE one of run_model.py's. The
entry `<objective>_loss_fused_accumulate` is called twice in one run, on the
case's inputs (call `a`) and on the same inputs with `hidden` scaled by -0.7
(call `b`). Each call's outputs are compared with the reference, and the
state `lm_head_grad` with the sum of the two calls' `grad_lm_head`. Prints
the comparisons and `ok` or `mismatch`, and exits with 0 or 1. Overrides
after `--` apply to the reference only (to show that the check can fail).
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools", "Inputs"))
import reference  # noqa: E402
import run_model  # noqa: E402
import safetensors_io  # noqa: E402

STATE = "lm_head_grad"


def main(argv):
    if len(argv) < 6:
        sys.exit(__doc__.strip())
    bin_dir, work, case, mode, atol, rtol = argv[:6]
    atol, rtol = float(atol), float(rtol)
    overrides = argv[6:]
    reference_only = []
    if "--" in overrides:
        at = overrides.index("--")
        overrides, reference_only = overrides[:at], overrides[at + 1:]
    p = run_model.prepare(bin_dir, work, case, mode, overrides)
    if not p["entry"].endswith("_fused"):
        sys.exit("error: %s is not a fused case" % case)
    entry = p["entry"] + "_accumulate"

    # The second call's inputs, and both calls' under their prefixes.
    tensors = safetensors_io.load(p["inputs"])
    base = os.path.splitext(p["inputs"])[0]
    second = base + ".b.safetensors"
    pooled = base + ".ab.safetensors"
    scaled = dict(tensors)
    dtype, shape, values = tensors["hidden"]
    scaled["hidden"] = (dtype, shape, [-0.7 * v for v in values])
    safetensors_io.write(second, [(k, d, s, v)
                                  for k, (d, s, v) in scaled.items()])
    safetensors_io.write(pooled, [
        (prefix + "." + k, d, s, v)
        for prefix, t in (("a", tensors), ("b", scaled))
        for k, (d, s, v) in t.items()])

    outputs = base + ".acc.out.safetensors"
    states = base + ".acc.states.safetensors"
    loom_run = os.path.join(bin_dir, "loom-run")
    if mode == "interpret":
        cmd = [loom_run, p["model"], "--interpret"] + p["flags"]
    else:
        cmd = [loom_run, p["artifact"]]
    run_model.run(cmd + ["--params", p["params"], "--inputs", pooled,
                         "--call", entry + ":a", "--call", entry + ":b",
                         "--outputs", outputs, "--states", states])

    kind, config, _ = reference.load_case(
        case, reference.parse_overrides(overrides + reference_only))
    got = safetensors_io.load(outputs)
    ok = True
    want = None
    for prefix, path in (("a", p["inputs"]), ("b", second)):
        inputs, _ = reference.read_inputs(kind, path)
        print("call %s:" % prefix)
        ok = reference.compare(kind, config, inputs, {
            k[len(prefix) + 1:]: v for k, v in got.items()
            if k.startswith(prefix + ".")}, atol, rtol) and ok
        grad = reference.flatten(
            reference.evaluate(kind, config, inputs)["grad_lm_head"])
        want = grad if want is None else [x + y for x, y in zip(want, grad)]

    state = safetensors_io.load(states)
    if STATE not in state:
        sys.exit("error: the run left no state '%s'" % STATE)
    _, _, values = state[STATE]
    worst, bad = 0.0, 0
    for g, w in zip(values, want):
        err = abs(g - w)
        if not err <= atol + rtol * abs(w):
            bad += 1
        if err == err:
            worst = max(worst, err)
    if len(values) != len(want):
        bad = max(bad, 1)
    print("%s: max abs diff %.3g, %d of %d outside tolerance"
          % (STATE, worst, bad, len(want)))
    ok = ok and bad == 0
    print("ok" if ok else "mismatch")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except reference.ReferenceError as e:
        sys.exit("error: %s" % e)
