"""The control that keeps `rlvr demo` honest: the best a user could do with the same data and no RL.

The demo's GRPO phase learns from the hard problems' final answers alone. Without RL, the natural use of
that data is SFT on it: targets that are the bare answers (`\\boxed{17}`), there being no worked solutions.
This script runs that SFT from the demo's own SFT checkpoint, on the GRPO phase's problems, for the same
training time as the GRPO phase took (its `time/step` summed from `grpo/metrics.jsonl`; the step count is
set from the seconds per step of a 12-step probe), then measures the SFT, GRPO and control models on the
same held-out problems with the demo's behaviour table and ends with

    rl minus sft: D        (held-out accuracy of the GRPO model minus the control's)

It runs from any directory: `--run-dir` (default runs/demo) must hold a finished `rlvr demo` run (the
script runs the demo there first when it does not).

    python benchmarks/demo_control.py [--run-dir runs/demo] [--seed 0]

What it does not: tune the control's learning rate (it uses the demo SFT config's), or retrain a control
that is already in `RUN_DIR/control`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

# run as a script, this folder is first on sys.path and its sandbox.py would shadow the `sandbox` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rlvr.config import load_config
from rlvr.demo import CONFIGS, run_demo
from rlvr.demo.behaviour import measure, table
from rlvr.metrics import read_metrics
from rlvr.trainers.runtime import build_task
from rlvr.trainers.sft import train as sft_train
from verifiers.pool import VerifierPool


def control_config(run_dir: Path, out: Path, seed: int, grpo_task_args: dict, max_steps: int):
    """The demo's SFT config turned into the control: same optimizer, starting from the demo's SFT model, on the
    GRPO phase's problems with bare-answer targets (`direct_fraction: 1`)."""
    cfg = load_config(CONFIGS / "sft.yaml", [f"seed={seed}", f"model.name_or_path={run_dir / 'sft' / 'final'}",
                                             f"run_dir={out}", "optim.warmup_steps=0", "save_every=0",
                                             f"sft.max_steps={max_steps}", f"sft.epochs={max_steps}"])  # fmt: skip
    cfg.task.args = {**grpo_task_args, "with_trace": True, "direct_fraction": 1.0}
    return cfg


def train_control(run_dir: Path, control_dir: Path, seed: int, task_args: dict, seconds: float) -> None:
    """SFT for about `seconds` of training: the step count comes from a 12-step probe's seconds per step."""
    probe_dir = run_dir / "control-probe"
    shutil.rmtree(probe_dir, ignore_errors=True)
    sft_train(control_config(run_dir, probe_dir, seed, task_args, 12))
    times = [r["time"] for r in read_metrics(probe_dir / "metrics.jsonl")]
    per_step = (times[-1] - times[1]) / (len(times) - 2)  # steps 3..12: no model loading, no first-step warm-up
    shutil.rmtree(probe_dir)
    steps = max(1, round(seconds / per_step))
    print(f"control: SFT on the GRPO problems' bare answers, {steps} steps (~{steps * per_step:.0f} s, the GRPO "
          f"phase trained {seconds:.0f} s)", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    sft_train(control_config(run_dir, control_dir, seed, task_args, steps))
    print(f"control trained {time.perf_counter() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="runs/demo")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    run_dir = Path(args.run_dir)
    if not (run_dir / "grpo" / "final").is_dir():
        print(f"no finished demo in {run_dir}: running `rlvr demo --run-dir {run_dir} --seed {args.seed}` first")
        run_demo("rl", run_dir, args.seed)
    grpo_cfg = load_config(run_dir / "grpo" / "config.json")
    grpo_seconds = sum(r["time/step"] for r in read_metrics(run_dir / "grpo" / "metrics.jsonl") if "time/step" in r)

    control_dir = run_dir / "control"
    if (control_dir / "final").is_dir():
        print(f"control: {control_dir / 'final'} exists, not retrained", flush=True)
    else:
        train_control(run_dir, control_dir, args.seed, grpo_cfg.task.args, grpo_seconds)
    held_out = list(build_task(grpo_cfg.eval.task, "eval.task"))
    cols = {}
    with VerifierPool(num_workers=grpo_cfg.verifier.num_workers, timeout_s=grpo_cfg.verifier.timeout_s) as pool:
        for name, d in (("after SFT", "sft"), ("after GRPO", "grpo"), ("control", "control")):
            cols[name] = measure(
                str(run_dir / d / "final"), held_out, pool,
                max_new_tokens=grpo_cfg.eval.max_new_tokens or grpo_cfg.generation.max_new_tokens,
                temperature=grpo_cfg.eval.temperature, samples_per_problem=grpo_cfg.eval.samples_per_problem,
            )  # fmt: skip
    print(table(cols))
    print(f"rl minus sft: {cols['after GRPO']['accuracy'] - cols['control']['accuracy']:.3f}")


if __name__ == "__main__":
    main()
