"""The RL demo (`rlvr demo`, `rlvr demo rl`): can a verifier rewarding final answers teach what no
demonstration showed? (Measured on `tiny-qwen2`: not yet; docs/demo.md has the numbers.)

Worked solutions exist only for easy problems; the harder problems come with final answers and nothing
else. The demo runs two ordinary configs from `configs/demo/`, prints each as its `rlvr train`
command:

1. `sft.yaml`: SFT of `tiny-qwen2` (built offline) on worked solutions of the easy problems;
2. `grpo.yaml`: GRPO on the hard problems, with the `math` verifier on the final answer as the only
   reward (the task is built without traces: there is nothing else to learn from);
3. then it measures, on hard problems never trained on, the SFT model and the GRPO model: accuracy and
   the behaviour that explains it (steps written against steps needed, right steps, length).

`benchmarks/demo_control.py` runs the best a user could do with the same data and no RL (SFT on the hard
problems' answers) for the same time, from the same SFT model, and prints `rl minus sft`.
What it does not: tune anything at run time; every setting is in the configs.
"""

from __future__ import annotations

import time
from pathlib import Path

from rlvr.demo import train_phase
from rlvr.demo.behaviour import measure, table


def describe(args: dict) -> str:
    """'2-4 operands of 0-9 with + and -' for arithmetic task args."""
    hi = args.get("num_operands", 2)
    lo = args.get("min_operands") or hi
    count = f"{lo}-{hi}" if lo != hi else f"{hi}"
    ops = " and ".join(args.get("ops", "+-"))
    return f"{count} operands of {args.get('min_value', 0)}-{args.get('max_value', 50)} with {ops}"


def run(run_dir: Path, seed: int, configs: Path) -> dict[str, float]:
    from rlvr.config import load_config
    from rlvr.tiny_models import resolve_model_path
    from rlvr.trainers.runtime import build_task
    from verifiers.pool import VerifierPool

    t0 = time.perf_counter()
    sft_dir, grpo_dir = run_dir / "sft", run_dir / "grpo"
    sft_args = [f"seed={seed}", f"run_dir={sft_dir}"]
    grpo_args = [f"seed={seed}", f"run_dir={grpo_dir}", f"model.name_or_path={sft_dir / 'final'}"]
    sft_cfg = load_config(configs / "sft.yaml", sft_args)
    grpo_cfg = load_config(configs / "grpo.yaml", grpo_args)

    print(f"[1/4] {sft_cfg.model.name_or_path}: a tiny Qwen2 and its tokenizer, built here once -> "
          f"{resolve_model_path(sft_cfg.model.name_or_path)}", flush=True)  # fmt: skip
    print(f"\n[2/4] SFT on worked solutions of easy problems only ({describe(sft_cfg.task.args)})", flush=True)
    t_sft = train_phase(configs / "sft.yaml", sft_args)
    print(f"\n[3/4] GRPO on hard problems ({describe(grpo_cfg.task.args)}) with final answers only: "
          f"the math verifier's verdict is the whole reward", flush=True)  # fmt: skip
    t_grpo = train_phase(configs / "grpo.yaml", grpo_args)

    held_out = list(build_task(grpo_cfg.eval.task, "eval.task"))
    how = "greedy" if grpo_cfg.eval.temperature <= 0 else f"temperature {grpo_cfg.eval.temperature}"
    print(f"\n[4/4] {len(held_out)} held-out hard problems ({describe(grpo_cfg.eval.task.args)}), never trained "
          f"on; {how}", flush=True)  # fmt: skip
    t_eval = time.perf_counter()
    cols = {}
    with VerifierPool(num_workers=grpo_cfg.verifier.num_workers, timeout_s=grpo_cfg.verifier.timeout_s) as pool:
        for name, d in (("after SFT", sft_dir), ("after GRPO", grpo_dir)):
            cols[name] = measure(
                str(d / "final"), held_out, pool,
                max_new_tokens=grpo_cfg.eval.max_new_tokens or grpo_cfg.generation.max_new_tokens,
                temperature=grpo_cfg.eval.temperature, samples_per_problem=grpo_cfg.eval.samples_per_problem,
            )  # fmt: skip
    t_eval = time.perf_counter() - t_eval
    print(table(cols))
    before, after = cols["after SFT"]["accuracy"], cols["after GRPO"]["accuracy"]
    total = time.perf_counter() - t0
    print(f"\nrun folder: {run_dir}  (models: {sft_dir / 'final'}, {grpo_dir / 'final'}; "
          f"metrics and curves.png in each)")  # fmt: skip
    print(f"time: SFT {t_sft:.0f} s, GRPO {t_grpo:.0f} s, held-out evaluation {t_eval:.0f} s, total {total:.0f} s")
    print(f"held-out accuracy: {before:.3f} -> {after:.3f}")
    return {"accuracy_before": before, "accuracy_after": after, "time_sft": t_sft, "time_grpo": t_grpo, "time": total}
