"""`rlvr demo distill`: a teacher's verified traces into a smaller student, on a CPU in minutes.

`rlvr demo distill [--seed N] [--run-dir D]` (registered in `rlvr.demo.DEMOS`) builds everything offline, in
`D/distill/` (default runs/demo/distill; `run_demo(dir)` runs it in `dir` itself):
1. the teacher: SFT of `tiny-qwen2` (0.8M parameters) on step-by-step sums of three digits (the cheapest
   honest teacher: good, not perfect; sampled at temperature 1 it gets a fair share of sums wrong), kept
   in `teacher/` and reused by a later run;
2. off-policy distillation (`rlvr.distill.pipeline`) into `tiny-qwen2-small` (0.1M, same tokenizer):
   K traces per training problem from the teacher, the `complete`, `verified` (math) and `dedup` filters,
   SFT of the student on what is kept (`verified/`);
3. the same SFT on the same traces UNFILTERED (`unfiltered/`): what the verifier's filter is worth. Both SFT
   runs take the same number of optimizer steps (`SFT_STEPS` batches of 32), so the unfiltered run's four
   times as many traces buy it no extra compute;
4. on-policy distillation (`rlvr.trainers.opd`) of the same student (`opd/`) for about the wall time of
   the off-policy generate+SFT, the teacher scoring the student's own samples.
Accuracy is greedy pass@1 on held-out problems (the `test` split, never trained on), through `rlvr.evaluate`.
Ends with `student held-out accuracy: A -> B` (A: the student before, B: after verified off-policy SFT).

What it does not: reuse the RL demo's models (`rlvr demo`, `runs/demo/sft`, `runs/demo/grpo`): they are
trained on that demo's own problems; this teacher is the cheapest one honest for this task. Nor tune anything.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rlvr.config import ComponentConfig, TrainConfig

TASK = {"num_operands": 3, "min_value": 0, "max_value": 9, "ops": "+"}
EVAL_PROBLEMS = 150
DISTILL_PROBLEMS = 400
TRACES_PER_PROBLEM = 4
SFT_STEPS = 600


def _base(run_dir: Path, algorithm: str, model: str, seed: int = 0) -> TrainConfig:
    cfg = TrainConfig(algorithm=algorithm, run_dir=str(run_dir), seed=seed, report_to=["jsonl"], save_every=0)
    cfg.model.name_or_path = model
    cfg.eval.task = ComponentConfig("arithmetic", {"num_samples": EVAL_PROBLEMS, "seed": 3, "split": "test", **TASK})
    cfg.eval.temperature, cfg.eval.samples_per_problem, cfg.eval.bootstrap = 0.0, 1, 0
    cfg.generation.max_new_tokens = 40
    cfg.verifier.name, cfg.verifier.num_workers = "math", 1
    return cfg


def teacher_config(run_dir: Path, seed: int = 0) -> TrainConfig:
    cfg = _base(run_dir / "teacher", "sft", "tiny-qwen2", seed)
    cfg.task = ComponentConfig("arithmetic", {"num_samples": 800, "seed": 1, "split": "train", **TASK})
    cfg.sft.batch_size, cfg.sft.micro_batch_size, cfg.sft.epochs, cfg.sft.max_length = 64, 64, 24, 64
    cfg.optim.lr, cfg.optim.lr_scheduler, cfg.optim.warmup_steps = 5e-3, "cosine", 10
    cfg.eval.task = ComponentConfig()
    return cfg


def distill_config(run_dir: Path, teacher: str, *, filtered: bool, seed: int = 0) -> TrainConfig:
    cfg = _base(run_dir / ("verified" if filtered else "unfiltered"), "distill", "tiny-qwen2-small", seed)
    cfg.task = ComponentConfig("arithmetic", {"num_samples": DISTILL_PROBLEMS, "seed": 2, "split": "train", **TASK})
    cfg.generation.num_generations, cfg.generation.temperature = TRACES_PER_PROBLEM, 1.0
    cfg.distill.teacher, cfg.distill.shard_size = teacher, 100
    cfg.distill.filters = ["complete", "verified", "dedup"] if filtered else []
    if not filtered:  # the verified run's traces, every one of them
        cfg.distill.traces, cfg.distill.stages = str(run_dir / "verified" / "traces"), ["filter", "train"]
    cfg.sft.batch_size, cfg.sft.micro_batch_size, cfg.sft.max_length = 32, 32, 64
    cfg.sft.epochs, cfg.sft.max_steps = 100, SFT_STEPS  # the steps decide; epochs only bound the passes
    cfg.optim.lr, cfg.optim.lr_scheduler, cfg.optim.warmup_steps = 5e-3, "cosine", 10
    return cfg


def opd_config(run_dir: Path, teacher: str, steps: int, seed: int = 0) -> TrainConfig:
    cfg = _base(run_dir / "opd", "opd", "tiny-qwen2-small", seed)
    cfg.task = ComponentConfig("arithmetic", {"num_samples": DISTILL_PROBLEMS, "seed": 2, "split": "train", **TASK})
    cfg.opd.teacher, cfg.max_steps = teacher, steps
    cfg.generation.num_generations, cfg.generation.temperature = TRACES_PER_PROBLEM, 1.0
    cfg.grpo.prompts_per_step, cfg.grpo.micro_batch_size = 16, 64
    cfg.optim.lr, cfg.optim.lr_scheduler, cfg.optim.warmup_steps = 3e-3, "constant", 0
    return cfg


def run(run_dir: Path, seed: int, configs: Path) -> dict[str, float]:
    """`rlvr demo distill`: the demo in `run_dir/distill` (its settings are in this module, not in `configs`)."""
    a, b = run_demo(run_dir / "distill", seed=seed)
    return {"student_before": a, "student_after": b}


def run_demo(run_dir: str | Path = "runs/demo/distill", opd_steps: int = 80, seed: int = 0) -> tuple[float, float]:
    from rlvr.distill import pipeline
    from rlvr.trainers import opd, sft

    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    teacher = run_dir / "teacher" / "final"
    if (teacher / "config.json").is_file():
        print(f"[1/4] teacher: {teacher} (already trained)")
    else:
        print("[1/4] teacher: SFT of tiny-qwen2 on step-by-step sums of three digits")
        sft.train(teacher_config(run_dir, seed))
    teacher_acc = pipeline.evaluate_model(_base(run_dir, "eval", str(teacher), seed), str(teacher), run_dir / "eval_teacher")
    t1 = time.perf_counter()
    print(f"[2/4] off-policy: {TRACES_PER_PROBLEM} traces x {DISTILL_PROBLEMS} problems from the teacher, "
          "verified, SFT of tiny-qwen2-small")  # fmt: skip
    verified = pipeline.run(distill_config(run_dir, str(teacher), filtered=True, seed=seed))
    t2 = time.perf_counter()
    print("[3/4] the same SFT on the same traces, unfiltered")
    unfiltered = pipeline.run(distill_config(run_dir, str(teacher), filtered=False, seed=seed))
    t3 = time.perf_counter()
    print(f"[4/4] on-policy distillation of tiny-qwen2-small ({opd_steps} steps)")
    on_policy = opd.train(opd_config(run_dir, str(teacher), opd_steps, seed))
    t4 = time.perf_counter()
    a, b = verified["train"]["accuracy_before"], verified["train"]["accuracy_after"]
    numbers = {
        "teacher_accuracy": teacher_acc["accuracy"], "student_before": a, "student_after_verified": b,
        "student_after_unfiltered": unfiltered["train"]["accuracy_after"],
        "student_after_opd": on_policy["eval/accuracy"],
        "traces": verified["filter"]["rows_in"], "traces_kept": verified["filter"]["rows_kept"],
        "seconds": {"teacher": round(t1 - t0), "off_policy_verified": round(t2 - t1),
                    "off_policy_unfiltered": round(t3 - t2), "on_policy": round(t4 - t3)},
    }  # fmt: skip
    (run_dir / "demo_distill.json").write_text(json.dumps(numbers, indent=2) + "\n")
    kept = f"{numbers['traces_kept']}/{numbers['traces']}"
    print(f"held-out accuracy = greedy pass@1 on {EVAL_PROBLEMS} sums of three digits never trained on")
    print(f"teacher (tiny-qwen2, SFT): {numbers['teacher_accuracy']:.3f}")
    print(f"student (tiny-qwen2-small) after off-policy SFT on unfiltered traces: {numbers['student_after_unfiltered']:.3f}")
    print(f"student after on-policy distillation ({opd_steps} steps, {t4 - t3:.0f} s; off-policy took "
          f"{t2 - t1:.0f} s): {numbers['student_after_opd']:.3f}")  # fmt: skip
    print(f"run folder: {run_dir}  (numbers: {run_dir / 'demo_distill.json'})  time: {t4 - t0:.0f} s")
    print(f"student held-out accuracy: {a:.3f} -> {b:.3f}  (verified traces only, {kept} kept)")
    return a, b
