"""`rlvr demo`: the embedded default, start to finish on a CPU in minutes.

Builds everything it needs offline: a tokenizer trained on arithmetic text, a
tiny Qwen2-style model from a config, SFT on arithmetic targets (a warm start
that learns the format and two habits: bare answers and step-by-step traces),
then GRPO with the math verifier as the only reward. It measures accuracy on
held-out problems (a split never trained on; mean pass@1 of sampled answers)
before and after GRPO, and leaves the HF checkpoint, metrics (JSONL) and a
reward/accuracy plot in the run folder.
"""

from __future__ import annotations

import time
from pathlib import Path

from rlvr.config import ComponentConfig, TrainConfig
from rlvr.metrics import read_metrics

# sums of four digits; 70% of the SFT targets are bare answers and 30% step-by-step traces, so the warm-started
# model has two habits and GRPO, rewarded only by the verifier, finds which one is right more often
TASK = {"num_operands": 4, "min_value": 0, "max_value": 9, "ops": "+"}
DIRECT_FRACTION = 0.7
EVAL = {"num_problems": 300, "temperature": 1.0, "samples_per_problem": 4}


def demo_configs(run_dir: Path, grpo_steps: int) -> tuple[TrainConfig, TrainConfig]:
    sft = TrainConfig(algorithm="sft", run_dir=str(run_dir / "sft"), seed=0, report_to=["jsonl"], save_every=0)
    sft.model.name_or_path = "tiny-qwen2"  # built offline on first use (rlvr.tiny_models)
    sft.task = ComponentConfig("arithmetic", {"num_samples": 3000, "seed": 1, "split": "train",
                                              "direct_fraction": DIRECT_FRACTION, **TASK})  # fmt: skip
    sft.sft.batch_size, sft.sft.micro_batch_size, sft.sft.epochs, sft.sft.max_length = 64, 64, 4, 64
    sft.optim.lr, sft.optim.lr_scheduler, sft.optim.warmup_steps = 3e-3, "cosine", 20

    grpo = TrainConfig(algorithm="grpo", run_dir=str(run_dir / "grpo"), seed=0, report_to=["jsonl"])
    grpo.model.name_or_path = str(run_dir / "sft" / "final")
    grpo.task = ComponentConfig("arithmetic", {"num_samples": 3000, "seed": 2, "split": "train", **TASK})
    grpo.eval.task = ComponentConfig("arithmetic", {"num_samples": EVAL["num_problems"], "seed": 3, "split": "test", **TASK})
    grpo.eval.temperature, grpo.eval.samples_per_problem = EVAL["temperature"], EVAL["samples_per_problem"]
    grpo.max_steps, grpo.save_every, grpo.eval.every = grpo_steps, 40, 40
    grpo.generation.num_generations, grpo.generation.max_new_tokens, grpo.generation.temperature = 8, 40, 1.0
    grpo.grpo.prompts_per_step, grpo.grpo.micro_batch_size = 16, 128
    grpo.optim.lr, grpo.optim.lr_scheduler, grpo.optim.warmup_steps = 1e-4, "constant", 0
    return sft, grpo


def run_demo(run_dir: str | Path = "runs/demo", grpo_steps: int | None = None) -> tuple[float, float]:
    from rlvr.trainers import grpo as grpo_trainer
    from rlvr.trainers import sft as sft_trainer

    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    sft_cfg, grpo_cfg = demo_configs(run_dir, grpo_steps or 240)
    from rlvr.tiny_models import resolve_model_path

    print(f"[1/3] a tiny Qwen2 and a tokenizer trained here (built once, cached) -> {resolve_model_path('tiny-qwen2')}")
    print("[2/3] SFT warm start on step-by-step arithmetic traces")
    sft_trainer.train(sft_cfg)
    print(f"[3/3] GRPO with the math verifier ({grpo_cfg.max_steps} steps of "
          f"{grpo_cfg.grpo.prompts_per_step} prompts x {grpo_cfg.generation.num_generations} completions)")  # fmt: skip
    res = grpo_trainer.train(grpo_cfg)
    metrics_file = Path(grpo_cfg.run_dir) / "metrics.jsonl"
    png = Path(grpo_cfg.run_dir) / "curves.png"  # reward, accuracy and held-out accuracy by step
    rows = [r for r in read_metrics(metrics_file) if "reward/mean" in r]
    k = max(1, len(rows) // 10)
    first = sum(r["reward/mean"] for r in rows[:k]) / k
    last = sum(r["reward/mean"] for r in rows[-k:]) / k
    before, after = res["eval/accuracy_before"], res["eval/accuracy"]
    print(f"train reward (mean of first/last {k} steps): {first:.3f} -> {last:.3f}")
    print(f"run folder: {run_dir}  (model: {Path(grpo_cfg.run_dir) / 'final'}, metrics: {metrics_file}, plot: {png})")
    print(f"time: {time.perf_counter() - t0:.0f} s")
    print(f"held-out accuracy = mean pass@1 of {EVAL['samples_per_problem']} samples at temperature "
          f"{EVAL['temperature']} on {EVAL['num_problems']} problems never trained on")  # fmt: skip
    print(f"held-out accuracy: {before:.3f} -> {after:.3f}")
    return before, after
