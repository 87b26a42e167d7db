"""Runs a case of reference.py through Loom's model and checks the outputs
against the float64 reference.

  run_model.py BIN_DIR WORK_DIR CASE MODE ATOL RTOL [K=V...]

MODE is `interpret` (loom-run --interpret on the .loom file), `fused`,
`two-pass` or `unfused` (loom-compile --logprob=MODE, then loom-run on the
artifact), `fused/R` (--logprob=fused --logprob-rows=R: the single-pass loss
in blocks of R tokens), or `cuda` (loom-compile --target=cuda, run on the
GPU). The
case's kind picks the model (models/grpo.loom, dpo.loom, ppo.loom) and the
entry (`grpo_loss`, or `grpo_loss_fused` for a `_fused` case); its config,
after the K=V overrides, becomes `--define`s (None as 0, as the models
document). Prints reference.py's comparison and exits with its status.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "..", "models")
sys.path.insert(0, os.path.join(HERE, "..", "tools", "Inputs"))
import safetensors_io  # noqa: E402

REFERENCE = os.path.join(HERE, "reference.py")


def run(cmd):
    result = subprocess.run(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        sys.stdout.write(result.stdout)
        sys.exit("error: %s failed with status %d"
                 % (" ".join(cmd), result.returncode))
    return result.stdout


def define(value):
    if value is None:
        return "0"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def prepare(bin_dir, work, case, mode, overrides, compile_flags=()):
    """Writes the case's inputs and params under WORK and, unless MODE is
    `interpret`, compiles the model. Returns a dict: `model` (the .loom file),
    `artifact` (None for `interpret`), `entry`, `params`, `inputs`,
    `outputs` (where a run writes them) and `flags` (the --define options of
    the config)."""
    kinds = dict(line.split() for line in
                 run([sys.executable, REFERENCE, "cases"]).splitlines())
    if case not in kinds:
        sys.exit("error: unknown case %s" % case)
    kind = kinds[case]
    objective = kind.split("_")[0]
    fused = kind.endswith("_fused")
    model = os.path.join(MODELS, objective + ".loom")
    entry = objective + "_loss" + ("_fused" if fused else "")
    config = json.loads(run([sys.executable, REFERENCE, "config", case] +
                            overrides))

    os.makedirs(work, exist_ok=True)
    base = os.path.join(work, case + "." + mode.replace("/", "-"))
    inputs = base + ".in.safetensors"
    run([sys.executable, REFERENCE, "inputs", case, inputs] + overrides)
    defines = ["%s=%s" % (k, define(v)) for k, v in sorted(config.items())]
    if fused:
        # The lm head comes with the inputs; its shape sets the configs.
        params = inputs
        _, shape, _ = safetensors_io.load(inputs)["lm_head.weight"]
        defines += ["vocab=%d" % shape[0], "hidden_size=%d" % shape[1]]
    else:
        # The fused entry's param must be bound too (any values).
        params = base + ".params.safetensors"
        safetensors_io.write(params, [("lm_head.weight", "F32", [32, 16],
                                       [0.0] * 512)])
    flags = []
    for d in defines:
        flags += ["--define", d]
    artifact = None
    if mode != "interpret":
        artifact = base + ".so"
        if mode == "cuda":
            target = ["--target=cuda"]
        elif "/" in mode:
            # fused/R: the single-pass loss in blocks of R tokens.
            logprob, rows = mode.split("/")
            target = ["--logprob=" + logprob, "--logprob-rows=" + rows]
        else:
            target = ["--logprob=" + mode]
        run([os.path.join(bin_dir, "loom-compile"), model, "-o", artifact] +
            target + list(compile_flags) + flags)
    return {"model": model, "artifact": artifact, "entry": entry,
            "params": params, "inputs": inputs,
            "outputs": base + ".out.safetensors", "flags": flags}


def check(case, inputs, outputs, atol, rtol, overrides):
    """Compares OUTPUTS with the float64 reference; prints the comparison and
    returns its exit status."""
    result = subprocess.run([sys.executable, REFERENCE, "check", case, inputs,
                             outputs, atol, rtol] + overrides,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    sys.stdout.write(result.stdout)
    return result.returncode


def main(argv):
    if len(argv) < 6:
        sys.exit(__doc__.strip())
    bin_dir, work, case, mode, atol, rtol = argv[:6]
    overrides = argv[6:]
    if (mode not in ("interpret", "fused", "two-pass", "unfused", "cuda") and
            not (mode.startswith("fused/") and mode[6:].isdigit())):
        sys.exit("error: MODE must be interpret, fused, fused/ROWS, two-pass, "
                 "unfused or cuda")
    p = prepare(bin_dir, work, case, mode, overrides)
    loom_run = os.path.join(bin_dir, "loom-run")
    if mode == "interpret":
        run([loom_run, p["model"], "--interpret"] + p["flags"] +
            ["--params", p["params"], "--inputs", p["inputs"], "--call",
             p["entry"], "--outputs", p["outputs"]])
    else:
        run([loom_run, p["artifact"], "--params", p["params"], "--inputs",
             p["inputs"], "--call", p["entry"], "--outputs", p["outputs"]])
    return check(case, p["inputs"], p["outputs"], atol, rtol, overrides)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
