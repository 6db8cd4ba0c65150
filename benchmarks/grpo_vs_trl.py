"""GRPO seconds per step and peak memory: TRL's `GRPOTrainer` vs ours, same workload, one run.

Workload (CPU, fp32): the demo's tiny Qwen2 and locally trained tokenizer
(`rlvr.tiny_models`), the arithmetic task's prompts rendered through
its chat template, 8 prompts x 8 completions x exactly 64 new tokens per step
(EOS suppressed by `min_new_tokens=64` in both: in the model directory's
generation config, which our HF backend reads, and in TRL's
`generation_kwargs`), temperature 1, KL coefficient 0, one update per batch,
one forward/backward of 64 completions, AdamW lr 1e-5, grad clip 1.0, no
gradient checkpointing (TRL defaults it on), no eval, no checkpoints.
Reward: our `math` verifier, in our verifier pool for ours (what users run)
and called in-process from a TRL reward function (a random model's 64 tokens
hold no answer, so it costs well under a millisecond per completion in both).

Each framework runs in its own fresh process through its real entry point
(`rlvr.trainers.grpo.train`, `trl.GRPOTrainer.train`), `--rounds` times,
alternating, so load from elsewhere hits both alike. Seconds per step is the
median over the steps after `--warmup`; peak memory is the process's peak RSS
(`ru_maxrss`), max over rounds. It also prints the mean completion length
of each run (64.0 when the work is the same). Needs the `bench` extra (trl). Not a test: it
asserts nothing.

    python benchmarks/grpo_vs_trl.py                 # ~1 min on 2 CPU cores (2 rounds x 6 steps each)
    python benchmarks/grpo_vs_trl.py --steps 6 --rounds 3
    python benchmarks/grpo_vs_trl.py --threads 2     # torch intra-op threads in both (default 1)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# run as a script, this folder is first on sys.path and its sandbox.py would shadow the `sandbox` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

LR = 1e-5
TASK = {"num_samples": 256, "seed": 0}


@dataclass(frozen=True)
class Workload:
    prompts: int = 8  # per step
    generations: int = 8  # per prompt; all prompts x generations go through one forward/backward
    new_tokens: int = 64  # exactly: EOS is suppressed until then


WORKLOAD = Workload()


def force_length(path: Path, new_tokens: int) -> None:
    """Completions of exactly `new_tokens` from the model in `path` (our HF backend generates with the model's
    generation config; TRL gets the same through `generation_kwargs`)."""
    gc_file = path / "generation_config.json"
    gc = json.loads(gc_file.read_text())
    gc["min_new_tokens"] = new_tokens
    gc_file.write_text(json.dumps(gc, indent=2))


def make_model(path: Path) -> None:
    from rlvr.tiny_models import build_tiny_model

    path.mkdir(parents=True, exist_ok=True)
    build_tiny_model("tiny-qwen2", path)  # a private copy: its generation config is changed
    force_length(path, WORKLOAD.new_tokens)


def run_ours(model: Path, steps: int, run_dir: Path, w: Workload = WORKLOAD) -> tuple[list[float], float, dict[str, list[float]]]:
    from rlvr.config import ComponentConfig, TrainConfig
    from rlvr.metrics import read_metrics
    from rlvr.trainers.grpo import train

    cfg = TrainConfig(algorithm="grpo", run_dir=str(run_dir), seed=0, max_steps=steps, save_every=0, report_to=["jsonl"])
    cfg.model.name_or_path = str(model)
    cfg.task = ComponentConfig("arithmetic", dict(TASK))
    cfg.generation.num_generations, cfg.generation.max_new_tokens, cfg.generation.temperature = w.generations, w.new_tokens, 1.0
    cfg.grpo.prompts_per_step, cfg.grpo.micro_batch_size, cfg.grpo.kl_coef = w.prompts, w.prompts * w.generations, 0.0
    cfg.optim.lr, cfg.optim.max_grad_norm = LR, 1.0
    cfg.verifier.num_workers = 1
    train(cfg)
    rows = read_metrics(run_dir / "metrics.jsonl")
    rows = [r for r in rows if "time/step" in r]
    split = {k: [r[f"time/{k}"] for r in rows] for k in ("rollout", "update")}  # where our step goes
    return [r["time/step"] for r in rows], statistics.mean(r["completion_len"] for r in rows), split


def run_trl(model: Path, steps: int, run_dir: Path, w: Workload = WORKLOAD) -> tuple[list[float], float, dict[str, list[float]]]:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlvr.policy import render_prompt
    from rlvr.types import Sample
    from tasks import get_task
    from verifiers import get_verifier

    tok = AutoTokenizer.from_pretrained(model)
    samples = list(get_task("arithmetic", **TASK))
    # prompts as the rendered chat text, so both frameworks tokenize exactly the same string
    ds = datasets.Dataset.from_dict({
        "prompt": [render_prompt(tok, s.prompt) for s in samples],
        "reference": [s.reference for s in samples],
    })  # fmt: skip
    verify = get_verifier("math")

    lens: list[int] = []

    def math_reward(prompts: list[str], completions: list[str], reference: list[str], completion_ids: list[list[int]],
                    **_: object) -> list[float]:
        lens.extend(len(c) for c in completion_ids)
        return [verify(c, Sample(id="", prompt=p, reference=r)).score for p, c, r in zip(prompts, completions, reference)]

    stamps: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001
            if not stamps:
                stamps.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            stamps.append(time.perf_counter())

    args = GRPOConfig(
        output_dir=str(run_dir), use_cpu=True, bf16=False, fp16=False, seed=0,
        use_vllm=False, beta=0.0, num_generations=w.generations, num_iterations=1,
        per_device_train_batch_size=w.prompts * w.generations, gradient_accumulation_steps=1,
        max_completion_length=w.new_tokens, generation_kwargs={"min_new_tokens": w.new_tokens},
        temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=LR, lr_scheduler_type="constant", max_grad_norm=1.0, gradient_checkpointing=False,
        max_steps=steps, logging_steps=10_000, save_strategy="no", eval_strategy="no", report_to="none",
        disable_tqdm=True, log_completions=False, dataloader_num_workers=0,
    )  # fmt: skip
    policy = AutoModelForCausalLM.from_pretrained(model, dtype="float32", attn_implementation="sdpa")
    trainer = GRPOTrainer(model=policy, reward_funcs=math_reward, args=args, train_dataset=ds, processing_class=tok,
                          callbacks=[StepTimes()])  # fmt: skip
    trainer.train()
    return [b - a for a, b in zip(stamps, stamps[1:])], statistics.mean(lens), {}


def child(which: str, model: Path, steps: int, run_dir: Path, threads: int, w: Workload = WORKLOAD) -> None:
    import torch

    torch.set_num_threads(threads)
    times, mean_len, split = (run_ours if which == "ours" else run_trl)(model, steps, run_dir, w)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print("RESULT " + json.dumps({"times": times, "peak_rss_mb": rss_mb, "mean_len": mean_len, "split": split}), flush=True)


def run_child(cmd: list[str], what: str) -> dict:
    """Run `cmd` (a fresh process) and return the JSON of its last `RESULT ` line."""
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{what} run failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def measure(which: str, model: Path, steps: int, run_dir: Path, threads: int) -> dict:
    return run_child([sys.executable, __file__, "--child", which, str(model), str(steps), str(run_dir), str(threads)], which)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6, help="steps per run, warm-up included")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2, help="runs of each framework, alternating")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads in both")
    ap.add_argument("--child", nargs=5, metavar=("WHICH", "MODEL", "STEPS", "RUN_DIR", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        which, model, steps, run_dir, threads = args.child
        child(which, Path(model), int(steps), Path(run_dir), int(threads))
        return
    import torch
    import trl

    w = WORKLOAD
    print(f"torch {torch.__version__}, trl {trl.__version__}, {args.threads} thread(s); workload: {w.prompts} prompts x "
          f"{w.generations} generations x {w.new_tokens} new tokens, beta 0, CPU fp32")  # fmt: skip
    times: dict[str, list[float]] = {"trl": [], "ours": []}
    rss: dict[str, float] = {"trl": 0.0, "ours": 0.0}
    split: dict[str, list[float]] = {"rollout": [], "update": []}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        make_model(model)
        for rnd in range(args.rounds):
            for which in ("trl", "ours"):
                res = measure(which, model, args.steps, Path(tmp) / f"{which}{rnd}", args.threads)
                kept = res["times"][args.warmup :]
                print(f"  round {rnd} {which:4s}: s/step {' '.join(f'{t:.2f}' for t in kept)}  "
                      f"peak RSS {res['peak_rss_mb']:.0f} MB  mean completion {res['mean_len']:.1f} tokens", flush=True)  # fmt: skip
                times[which] += kept
                for k, v in res["split"].items():
                    split[k] += v[args.warmup :]
                rss[which] = max(rss[which], res["peak_rss_mb"])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'':6s} {'s/step (median)':>16s} {'peak RSS MB':>12s}")
    for k in ("trl", "ours"):
        print(f"{k:6s} {med[k]:16.3f} {rss[k]:12.0f}")
    print(f"ours, median: rollout (generate + verify) {statistics.median(split['rollout']):.3f} s, "
          f"update (forward + backward + optimizer) {statistics.median(split['update']):.3f} s")
    print(f"memory: ours/trl {rss['ours'] / rss['trl']:.2f}")
    print(f"speedup: {med['trl'] / med['ours']:.2f}")


if __name__ == "__main__":
    main()
