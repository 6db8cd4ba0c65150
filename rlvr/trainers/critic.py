"""PPO's critic around the training loop: built and prepared before a resume, run beside the policy, exported.

What it does: `critic_builder` makes the `build_runtime(prepare_extra=...)` hook that loads the critic
(`rlvr.heads`: a separate `ValueModel` or a `ValueHead` on the policy's backbone), gives it its own AdamW and
schedule, `accelerator.prepare`s them (so checkpoints hold and restore them) and builds the reference model
from the initial policy; `forward` runs policy and critic on a micro-batch (one forward when they share a
backbone); `save_critic` writes `run_dir/final/critic` as an HF `*ForTokenClassification`.
What it does not: losses, GAE or the update loop (`rlvr.trainers.ppo`).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from rlvr.checkpoint import save_pretrained
from rlvr.config import TrainConfig
from rlvr.heads import ValueHead, capture_hidden, load_value_model, save_shared_critic
from rlvr.policy import Reference, token_logprobs
from rlvr.rollout import PaddedBatch
from rlvr.trainers.runtime import Runtime, optimizer_and_scheduler


@dataclass
class Critic:
    model: torch.nn.Module  # prepared `ValueModel` (separate) or `ValueHead` (shared)
    optimizer: Any
    scheduler: Any
    shared: bool


def critic_builder(cfg: TrainConfig, total_steps: int):
    """`prepare_extra` for `build_runtime`: (critic with its optimizer and schedule, reference or None), built
    before a checkpoint is loaded: a resume restores the critic, and the reference stays the initial policy."""

    def prepare(acc, policy: torch.nn.Module, tokenizer) -> tuple[Critic, Reference | None]:
        c = cfg.ppo.critic
        if c.mode == "shared":
            model: torch.nn.Module = ValueHead(policy.config.get_text_config().hidden_size)
        else:
            key = "ppo.critic.init" if c.init else "model.name_or_path"
            model = load_value_model(c.init or cfg.model.name_or_path, key=key, policy_config=policy.config,
                                     policy_tokenizer=tokenizer, dtype=cfg.model.dtype,
                                     trust_remote_code=cfg.model.trust_remote_code)  # fmt: skip
            if cfg.model.gradient_checkpointing:
                model.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        optimizer, scheduler = optimizer_and_scheduler(list(model.parameters()), c.lr, cfg, total_steps)
        critic = Critic(*acc.prepare(model, optimizer, scheduler), shared=c.mode == "shared")
        return critic, Reference(policy) if cfg.ppo.kl_coef > 0 else None

    return prepare


def forward(rt: Runtime, critic: Critic, part: PaddedBatch, *, policy: bool) -> tuple[torch.Tensor | None, ...]:
    """(logp (B, C), entropy (B, C), values (B, C + 1)); logp and entropy None unless `policy`. Value j is read
    before completion token j; value C is the state after the last column (for bootstrapping)."""
    C, T = part.num_completion_tokens, rt.cfg.generation.temperature
    logp = ent = None
    if critic.shared:  # one forward: the head reads the hidden states the policy's logits come from
        with capture_hidden(rt.policy) as seen, nullcontext() if policy else torch.no_grad():
            logp, ent = token_logprobs(rt.model, part.input_ids, part.attention_mask, C, temperature=T, with_entropy=policy)
        return logp, ent, critic.model(seen[-1][:, -C - 1 :])  # without `policy` the backbone gets no value gradient
    if policy:
        logp, ent = token_logprobs(rt.model, part.input_ids, part.attention_mask, C, temperature=T, with_entropy=True)
    return logp, ent, critic.model(part.input_ids, part.attention_mask, C + 1)


def save_critic(rt: Runtime, critic: Critic) -> None:
    """The critic as an HF `*ForTokenClassification` (num_labels=1) at `run_dir/final/critic`."""
    out = rt.run_dir / "final" / "critic"
    if not critic.shared:
        save_pretrained(rt.accelerator, critic.model, rt.tokenizer, out)
        return
    if rt.accelerator.is_main_process:
        save_shared_critic(rt.policy, rt.accelerator.unwrap_model(critic.model), rt.tokenizer, out)
    rt.accelerator.wait_for_everyone()
