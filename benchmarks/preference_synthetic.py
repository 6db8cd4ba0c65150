"""End to end on the synthetic arithmetic preference task: held-out pair accuracy and margin before and after
DPO (any of its losses) and KTO, on the tiny model, from `rlvr train` itself.

The task (`arithmetic_preference`): "a+b=" or "a-b=" with a, b in 0..9, a correct worked solution ("3+4=7.
\\boxed{7}") preferred over a wrong one: with `mistake: answer` the steps are right and the boxed answer is not
("3+4=7. \\boxed{8}"), with `mistake: step` the step itself slips and the slip is carried to the answer ("3+4=8.
\\boxed{8}", which needs the arithmetic to see). 156 training problems; the 44 of the test split (never trained
on) give the held-out pairs. The baseline is the same run before its first update, where the policy is its own
reference: every pair tied (ties 1, strict accuracy 0, margin 0).

    python benchmarks/preference_synthetic.py           # DPO (sigmoid) and KTO, both mistakes
    python benchmarks/preference_synthetic.py --losses sigmoid ipo simpo --no-kto --mistakes answer

Each run is a fresh `python -m rlvr.cli train configs/smoke_{dpo,kto}.yaml ...` in its own process (one torch
thread, so runs on a shared machine do not fight over cores); the numbers come from its metrics.jsonl.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

# run as a script, this folder is first on sys.path and its sandbox.py would shadow the `sandbox` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rlvr.metrics import read_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN = "{num_samples: 156, seed: 0, max_value: 9, split: train, mistake: %s}"
TEST = "{num_samples: 44, seed: 0, max_value: 9, split: test, mistake: %s}"
LOSS_ARGS = {"simpo": ["dpo.beta=2.0", "dpo.simpo_gamma=0.5"]}  # SimPO's beta scales per-token averages


def run(algo: str, loss: str | None, mistake: str, args, run_dir: Path) -> dict:
    steps, lr = (args.dpo_steps, args.dpo_lr) if algo == "dpo" else (args.kto_steps, args.kto_lr)
    overrides = [
        f"run_dir={run_dir}", "save_every=0", f"task.args={TRAIN % mistake}", f"eval.task.args={TEST % mistake}",
        f"eval.every={args.eval_every}", f"{algo}.max_steps={steps}", f"{algo}.epochs=1000",
        f"{algo}.batch_size=16", f"{algo}.micro_batch_size=16", f"optim.lr={lr}",
    ]  # fmt: skip
    if loss:
        overrides += [f"dpo.loss_type={loss}", *LOSS_ARGS.get(loss, [])]
    # this checkout's rlvr in the child too, whatever the venv's editable install points at
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": pythonpath}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rlvr.cli", "train", str(ROOT / "configs" / f"smoke_{algo}.yaml"), *overrides],
                   check=True, env=env, capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - t0
    evals = [r for r in read_metrics(run_dir / "metrics.jsonl") if "eval/rewards/accuracies" in r]
    name = f"{algo}:{loss}" if loss else algo
    return {"name": f"{name} ({mistake}, {steps} steps, lr {lr:g})", "wall_s": wall, "evals": evals}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--losses", nargs="*", default=["sigmoid"], help="DPO loss types to run (rlvr.losses.preference)")
    ap.add_argument("--no-kto", action="store_true", help="skip the KTO run")
    ap.add_argument("--mistakes", nargs="*", default=["answer", "step"], choices=["answer", "step"])
    ap.add_argument("--dpo-steps", type=int, default=300)
    ap.add_argument("--dpo-lr", type=float, default=1e-3)
    # KTO pushes each sequence on its own: at 1e-3 this tiny model drives every log-prob down until the loss saturates
    ap.add_argument("--kto-steps", type=int, default=600)
    ap.add_argument("--kto-lr", type=float, default=1e-4)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run-dir", default="runs/bench_preference")
    args = ap.parse_args()
    plan = [("dpo", loss) for loss in args.losses] + ([] if args.no_kto else [("kto", None)])
    results = []
    for mistake in args.mistakes:
        for algo, loss in plan:
            res = run(algo, loss, mistake, args, Path(args.run_dir) / f"{algo}_{loss or ''}_{mistake}")
            results.append(res)
            print(f"{res['name']}: {res['wall_s']:.0f} s", flush=True)
            for r in res["evals"]:
                print(f"  step {r['step']:4d}  held-out accuracy {r['eval/rewards/accuracies']:.3f}  "
                      f"margin {r['eval/rewards/margins']:+.3f}  ties {r['eval/rewards/ties']:.3f}", flush=True)
    print(f"\nheld-out pairs, before -> after (load average {os.getloadavg()[0]:.1f}):")
    for res in results:
        first, last = res["evals"][0], res["evals"][-1]
        best = max(r["eval/rewards/accuracies"] for r in res["evals"])
        print(f"  {res['name']:40s} accuracy {first['eval/rewards/accuracies']:.3f} (ties {first['eval/rewards/ties']:.2f}) "
              f"-> {last['eval/rewards/accuracies']:.3f} (best {best:.3f})   margin {first['eval/rewards/margins']:+.3f} -> "
              f"{last['eval/rewards/margins']:+.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
