"""One PPO batch update on a fixed synthetic rollout, in one process or as one rank of a torchrun group.

Run by tests/rlvr/trainers/test_ppo_distributed.py, not collected as a test:
    python dist_ppo_update.py MODEL_DIR OUT_DIR VARIANT [VARIANT ...]
    torchrun --nproc_per_node 2 dist_ppo_update.py MODEL_DIR OUT_DIR VARIANT [VARIANT ...]
Every process builds GRPO's fixed global rollout (`dist_update.global_rollout`: ragged prompts and
completions, an empty one, a truncated one, a verifier error), keeps its share of the prompt groups the way
the trainer splits them (`samples[rank::world]`), then runs the trainer's `prepare_batch` (values, token
rewards, GAE, advantages whitened over the global batch) and `update`. Per variant it writes
OUT_DIR/{variant}.rank{r}.pt with the gradients each policy and critic optimizer step saw, the parameters
after, its advantages and returns, the global metrics, and `whiten` of 3 of 6 fixed numbers (world 2) or
all 6 (world 1). The test file also builds runtimes from `config` here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from dist_update import GROUP, MAX_NEW_TOKENS, NUM_PROMPTS, global_rollout
from rlvr.advantages import whiten
from rlvr.config import TrainConfig
from rlvr.trainers.critic import critic_builder
from rlvr.trainers.ppo import prepare_batch, update
from rlvr.trainers.runtime import Runtime, build_runtime

# variant -> (loss_agg_mode, critic mode, truncation)
VARIANTS = {
    "separate": ("token-mean", "separate", "bootstrap"),
    "shared": ("seq-mean-token-sum-norm", "shared", "penalize"),
}
WHITEN_INPUT = torch.tensor([[0.1, 0.5, -0.3, 0.9, 0.0, 0.2]])  # process r of 2 holds columns 3r..3r+2


def config(model_dir: str, run_dir: Path, variant: str = "separate") -> TrainConfig:
    mode, critic_mode, truncation = VARIANTS[variant]
    cfg = TrainConfig(algorithm="ppo", run_dir=str(run_dir), seed=0, report_to=[])
    cfg.model.name_or_path = model_dir
    cfg.generation.max_new_tokens = MAX_NEW_TOKENS
    cfg.generation.num_generations = GROUP
    p = cfg.ppo
    p.prompts_per_step, p.micro_batch_size, p.ppo_epochs = NUM_PROMPTS, 3, 2  # accumulation; epoch 2 off-policy
    p.loss_agg_mode, p.truncation, p.truncation_penalty = mode, truncation, 0.5
    p.kl_coef, p.lam = 0.05, 0.95
    p.critic.mode, p.critic.lr, p.critic.clip_range = critic_mode, 1e-3, 0.2
    cfg.optim.lr = 1e-3
    cfg.optim.max_grad_norm = 1e6  # the norm is computed (and compared) but never clips: grads stay comparable
    return cfg


def runtime(cfg: TrainConfig) -> Runtime:
    steps = cfg.ppo.ppo_epochs * cfg.ppo.mini_batches
    return build_runtime(cfg, total_steps=steps, prepare_extra=critic_builder(cfg, steps))


def run(model_dir: str, out_dir: Path, variant: str) -> None:
    cfg = config(model_dir, out_dir / f"run_{variant}", variant)
    rt = runtime(cfg)
    acc, (critic, ref) = rt.accelerator, rt.extra
    grads: dict[str, list] = {"policy": [], "critic": []}
    modules = {"policy": rt.policy, "critic": acc.unwrap_model(critic.model)}
    for name, opt in (("policy", rt.optimizer), ("critic", critic.optimizer)):
        def record(optimizer, args, kwargs, name=name) -> None:  # what the optimizer steps on, after all-reduce
            grads[name].append({n: p.grad.detach().clone() for n, p in modules[name].named_parameters()})

        opt.optimizer.register_step_pre_hook(record)
    ro = global_rollout(rt.policy.config.vocab_size)
    ro = ro.select(list(range(NUM_PROMPTS))[acc.process_index :: acc.num_processes])
    batch, metrics = prepare_batch(rt, critic, ro, ref, cfg.ppo.kl_coef)
    rt.model.train()
    metrics.update(update(rt, critic, batch, kl_coef=cfg.ppo.kl_coef, train_policy=True))
    share = WHITEN_INPUT if acc.num_processes == 1 else WHITEN_INPUT[:, 3 * acc.process_index : 3 * acc.process_index + 3]
    torch.save(
        {
            "world": acc.num_processes,
            "prompts": [s.id for s in ro.samples],
            "advantages": batch.extra["advantages"].cpu(),  # (N_local, C)
            "returns": batch.extra["returns"].cpu(),
            "mask": batch.completion_mask.cpu(),
            "metrics": metrics,
            "grads": grads,
            "params": {k: {n: p.detach().clone() for n, p in m.named_parameters()} for k, m in modules.items()},
            "whitened": whiten(share, torch.ones_like(share), sum_all=lambda t: acc.reduce(t, reduction="sum")),
        },
        out_dir / f"{variant}.rank{acc.process_index}.pt",
    )
    acc.wait_for_everyone()


def main(argv: list[str]) -> None:
    model_dir, out_dir, variants = argv[0], Path(argv[1]), argv[2:]
    for variant in variants:
        run(model_dir, out_dir, variant)


if __name__ == "__main__":
    main(sys.argv[1:])
