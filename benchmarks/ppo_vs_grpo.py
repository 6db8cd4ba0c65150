"""PPO against GRPO on the same task and budget: train reward and held-out accuracy by step, seconds per step,
peak memory. Writes a side-by-side plot and a JSON summary; the numbers in docs/ppo.md come from it.

Workload (CPU, fp32): the former `rlvr demo` setup (`warm_start_configs` below): the tiny Qwen2 (0.8M parameters) warm-
started once with SFT on sums of four digits (70% bare answers, 30% step-by-step traces), then, from that
same checkpoint, each algorithm for `--steps` steps of 16 prompts x 8 completions x <= 40 new tokens at
temperature 1, policy lr 1e-4, one update per batch, no KL term, the `math` verifier as the only reward.
Held-out accuracy: mean pass@1 of 4 samples at temperature 1 on 300 problems of a split never trained on,
before training and every `--eval-every` steps.
- grpo: that setup's GRPO (group-relative advantages, scaled by the group's std).
- ppo:  a separate critic initialised from the SFT checkpoint (critic lr `--critic-lr`, the first
        `--critic-warmup` steps train only the critic), GAE gamma 1 / lambda 0.95, advantages whitened over the
        batch, value clipping 0.2, a truncated completion keeps its verifier score (truncation penalize, 0).
- ppo_1: ppo with 128 prompts x 1 completion (classic PPO sampling; the same 128 completions per step).

Each run is a fresh process (`--child`), run in the order given, alternating over seeds, so load from other
work on the machine hits each alike; seconds per step is the median of `time/step` over all steps after
the first, memory the process's peak RSS (`ru_maxrss`; the verifier pool's workers are other processes).
Not a test: it asserts nothing.

    python benchmarks/ppo_vs_grpo.py       # 120 steps, seed 0, grpo + ppo: runs of 500-980 s each on 2 shared cores
    python benchmarks/ppo_vs_grpo.py --steps 120 --seeds 0 1 --variants grpo ppo ppo_1 --plot docs/ppo_vs_grpo.png
    python benchmarks/ppo_vs_grpo.py --steps 30 --eval-every 15 --variants grpo ppo ppo_1        # ~8 min + SFT
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# run as a script, this folder is first on sys.path and its sandbox.py would shadow the `sandbox` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

VARIANTS = ("grpo", "ppo", "ppo_1")


def warm_start_configs(run_dir: Path, grpo_steps: int):
    """(SFT, GRPO) configs of the measurements in docs/ppo.md: sums of four digits, tiny-qwen2 SFT'd on 70% bare
    answers and 30% step-by-step traces, then RL on the same kind of problems, held-out = mean pass@1 of 4
    samples at temperature 1 on 300 test problems (the former `rlvr demo`'s setup, kept here as it was)."""
    from rlvr.config import ComponentConfig, TrainConfig

    task = {"num_operands": 4, "min_value": 0, "max_value": 9, "ops": "+"}
    sft = TrainConfig(algorithm="sft", run_dir=str(run_dir / "sft"), seed=0, report_to=["jsonl"], save_every=0)
    sft.model.name_or_path = "tiny-qwen2"
    sft.task = ComponentConfig("arithmetic", {"num_samples": 3000, "seed": 1, "split": "train",
                                              "direct_fraction": 0.7, **task})  # fmt: skip
    sft.sft.batch_size, sft.sft.micro_batch_size, sft.sft.epochs, sft.sft.max_length = 64, 64, 4, 64
    sft.optim.lr, sft.optim.lr_scheduler, sft.optim.warmup_steps = 3e-3, "cosine", 20

    grpo = TrainConfig(algorithm="grpo", run_dir=str(run_dir / "grpo"), seed=0, report_to=["jsonl"])
    grpo.model.name_or_path = str(run_dir / "sft" / "final")
    grpo.task = ComponentConfig("arithmetic", {"num_samples": 3000, "seed": 2, "split": "train", **task})
    grpo.eval.task = ComponentConfig("arithmetic", {"num_samples": 300, "seed": 3, "split": "test", **task})
    grpo.eval.temperature, grpo.eval.samples_per_problem = 1.0, 4
    grpo.max_steps, grpo.save_every, grpo.eval.every = grpo_steps, 40, 40
    grpo.generation.num_generations, grpo.generation.max_new_tokens, grpo.generation.temperature = 8, 40, 1.0
    grpo.grpo.prompts_per_step, grpo.grpo.micro_batch_size = 16, 128
    grpo.optim.lr, grpo.optim.lr_scheduler, grpo.optim.warmup_steps = 1e-4, "constant", 0
    return sft, grpo


def configs(out: Path, variant: str, seed: int, steps: int, eval_every: int, critic_lr: float, critic_warmup: int):
    """(sft config, this variant's config) on the warm start's task, model and evaluation."""
    from rlvr.config import TrainConfig

    sft, grpo = warm_start_configs(out, steps)
    grpo.run_dir, grpo.seed, grpo.eval.every, grpo.save_every = str(out / f"{variant}_seed{seed}"), seed, eval_every, 0
    if variant == "grpo":
        return sft, grpo
    ppo = TrainConfig(algorithm="ppo", run_dir=grpo.run_dir, seed=seed, max_steps=steps, save_every=0, report_to=["jsonl"],
                      model=grpo.model, task=grpo.task, verifier=grpo.verifier, generation=grpo.generation,
                      optim=grpo.optim, eval=grpo.eval)  # fmt: skip
    p = ppo.ppo
    p.prompts_per_step, p.micro_batch_size = grpo.grpo.prompts_per_step, grpo.grpo.micro_batch_size
    p.kl_coef, p.truncation, p.truncation_penalty = 0.0, "penalize", 0.0
    p.critic.lr, p.critic.warmup_steps = critic_lr, critic_warmup
    if variant == "ppo_1":
        p.prompts_per_step *= ppo.generation.num_generations
        ppo.generation.num_generations = 1
    return sft, ppo


def child(args: argparse.Namespace) -> None:
    import torch

    from rlvr.cli import run_training

    torch.set_num_threads(args.threads)
    _, cfg = configs(args.out, args.child, args.seed_child, args.steps, args.eval_every, args.critic_lr, args.critic_warmup)
    t0 = time.perf_counter()
    run_training(cfg)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print("RESULT " + json.dumps({"peak_rss_mb": rss_mb, "wall_s": time.perf_counter() - t0}), flush=True)


def summarize(run_dir: Path, res: dict) -> dict:
    from rlvr.metrics import read_metrics

    rows = read_metrics(run_dir / "metrics.jsonl")
    steps = [r for r in rows if "reward/mean" in r]
    evals = [(r["step"], r["eval/accuracy"]) for r in rows if "eval/accuracy" in r]
    k = max(1, len(steps) // 10)
    return {
        "reward": [(r["step"], r["reward/mean"]) for r in steps],
        "eval": evals,
        "reward_first_last": (statistics.mean(r["reward/mean"] for r in steps[:k]),
                              statistics.mean(r["reward/mean"] for r in steps[-k:])),
        "s_per_step": statistics.median(r["time/step"] for r in steps[1:]),
        "rollout_s": statistics.median(r["time/rollout"] for r in steps[1:]),
        "update_s": statistics.median(r["time/update"] for r in steps[1:]),
        "explained_variance_last": statistics.mean(r["critic/explained_variance"] for r in steps[-k:])
        if "critic/explained_variance" in steps[-1] else None,
        **res,
    }  # fmt: skip


def plot(results: dict[str, list[dict]], png: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax_r, ax_e = fig.subplots(1, 2)
    colors = {"grpo": "tab:blue", "ppo": "tab:orange", "ppo_1": "tab:green"}
    for variant, runs in results.items():
        for i, run in enumerate(runs):
            steps, rewards = zip(*run["reward"])
            w = 10  # a 10-step moving average: one step's reward is a mean over 128 completions, still noisy
            smooth = [statistics.mean(rewards[max(0, j - w + 1) : j + 1]) for j in range(len(rewards))]
            label = variant if i == 0 else None
            ax_r.plot(steps, smooth, color=colors[variant], alpha=0.9 - 0.3 * i, label=label)
            ax_e.plot(*zip(*run["eval"]), marker="o", color=colors[variant], alpha=0.9 - 0.3 * i, label=label)
    ax_r.set(xlabel="step", ylabel="train reward (10-step mean)", title="train reward")
    ax_e.set(xlabel="step", ylabel="held-out accuracy", title="held-out accuracy (300 problems, pass@1 of 4)")
    for ax in (ax_r, ax_e):
        ax.grid(alpha=0.3)
        ax.legend()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--eval-every", type=int, default=40)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=["grpo", "ppo"])
    ap.add_argument("--critic-lr", type=float, default=1e-3)
    ap.add_argument("--critic-warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads in every run")
    ap.add_argument("--out", type=Path, default=Path("runs/ppo_vs_grpo"))
    ap.add_argument("--plot", type=Path, default=None, help="where the PNG goes (default OUT/ppo_vs_grpo.png)")
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--seed-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    from rlvr.trainers import sft

    sft_cfg, _ = configs(args.out, "grpo", 0, args.steps, args.eval_every, args.critic_lr, args.critic_warmup)
    if not (Path(sft_cfg.run_dir) / "final" / "config.json").is_file():
        print(f"SFT warm start -> {sft_cfg.run_dir}/final", flush=True)
        sft.train(sft_cfg)
    results: dict[str, list[dict]] = {v: [] for v in args.variants}
    for seed in args.seeds:
        for variant in args.variants:
            cmd = [sys.executable, __file__, "--child", variant, "--seed-child", str(seed), "--steps", str(args.steps),
                   "--eval-every", str(args.eval_every), "--critic-lr", str(args.critic_lr),
                   "--critic-warmup", str(args.critic_warmup), "--threads", str(args.threads), "--out", str(args.out)]  # fmt: skip
            shutil.rmtree(args.out / f"{variant}_seed{seed}", ignore_errors=True)  # a fresh run, never a resume
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"{variant} seed {seed} failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
            res = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT ") :])
            s = summarize(args.out / f"{variant}_seed{seed}", res)
            results[variant].append(s)
            ev = " ".join(f"{a:.3f}" for _, a in s["eval"])
            print(f"{variant:6s} seed {seed}: held-out accuracy by eval {ev}; train reward {s['reward_first_last'][0]:.3f}"
                  f" -> {s['reward_first_last'][1]:.3f}; {s['s_per_step']:.2f} s/step (rollout {s['rollout_s']:.2f},"
                  f" update {s['update_s']:.2f}); peak RSS {s['peak_rss_mb']:.0f} MB; wall {s['wall_s']:.0f} s",
                  flush=True)  # fmt: skip
    png = args.plot or args.out / "ppo_vs_grpo.png"
    plot(results, png)
    (args.out / "summary.json").write_text(json.dumps(results, indent=1))
    base = results.get("grpo")
    for variant, runs in results.items():
        acc = statistics.mean(r["eval"][-1][1] for r in runs)
        sps = statistics.median(r["s_per_step"] for r in runs)
        rss = max(r["peak_rss_mb"] for r in runs)
        ratio = f"; s/step {sps / statistics.median(r['s_per_step'] for r in base):.2f}x grpo, peak RSS " \
                f"{rss / max(r['peak_rss_mb'] for r in base):.2f}x grpo" if base and variant != "grpo" else ""  # fmt: skip
        print(f"{variant:6s}: held-out accuracy {runs[0]['eval'][0][1]:.3f} -> {acc:.3f} (mean over {len(runs)} seed(s))"
              f"; {sps:.2f} s/step; peak RSS {rss:.0f} MB{ratio}")  # fmt: skip
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
