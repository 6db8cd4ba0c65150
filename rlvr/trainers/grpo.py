"""GRPO (RLVR) trainer: a thin loop over rollout, advantages and the clipped loss.

Each step: take `prompts_per_step` prompts (split across processes), sample
`num_generations` completions each, score them with the verifier pool
(optionally resampling until enough groups have reward variance:
`filter_groups`), compute group-relative advantages, then run
`num_iterations` x `mini_batches` optimizer steps of the clipped policy loss in
micro-batches. With one update per batch, the old log-probs equal the current
ones (ratio 1), so the extra forward pass is skipped. The variants live in
`rlvr.losses` / `rlvr.advantages` as arguments, not here.
"""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from rlvr.advantages import group_advantages
from rlvr.config import TrainConfig
from rlvr.losses import kl_penalty, policy_loss
from rlvr.packing import max_over_processes, micro_batches, part_logprobs
from rlvr.policy import Reference
from rlvr.rewards import RewardSource
from rlvr.rollout import PaddedBatch, Rollout, generate_and_verify, pad_rollout, tokenize_prompts
from rlvr.trainers.runtime import PromptStream, Runtime, accumulating, build_runtime, clip_and_step
from rlvr.trainers.sampling import start_sampling


def collect(rt: Runtime, stream: PromptStream, generator, pool, verifier, sampling, stats: dict,
            rm: RewardSource | None = None) -> Rollout:
    """This process's share of one step's prompts, rolled out (and rescored with the reward model beside the
    verifier, if any); with `filter_groups`, groups without reward variance are dropped and more prompts
    sampled (DAPO)."""
    cfg, acc = rt.cfg, rt.accelerator
    n_local = cfg.grpo.prompts_per_step // acc.num_processes
    max_prompt_len = rt.policy.config.max_position_embeddings - cfg.generation.max_new_tokens
    kept: Rollout | None = None
    dropped: list[Rollout] = []
    rounds = cfg.grpo.max_filter_rounds if cfg.grpo.filter_groups else 1
    for rnd in range(rounds):
        samples = stream.take(cfg.grpo.prompts_per_step)[acc.process_index :: acc.num_processes]
        ro = generate_and_verify(
            samples, tokenize_prompts(rt.tokenizer, samples, max_prompt_len), generator, pool, verifier,
            cfg.generation.num_generations, sampling,
        )  # fmt: skip
        if rm is not None:
            ro = rm.rescore(ro)
        var = ro.rewards().std(-1) > 0  # (P,)
        stats["zero_var_groups"] = stats.get("zero_var_groups", 0) + int((~var).sum())
        if cfg.grpo.filter_groups:
            dropped.append(ro.select([i for i in range(len(samples)) if not var[i]]))
            ro = ro.select([i for i in range(len(samples)) if var[i]])
        if kept is None:
            kept = ro
        else:
            kept.extend(ro)
        if len(kept.samples) >= n_local:
            break
    # not enough varied groups: fill with dropped ones (zero advantage) so every process keeps the same shapes
    for d in dropped:
        if len(kept.samples) >= n_local:
            break
        kept.extend(d.select(list(range(min(len(d.samples), n_local - len(kept.samples))))))
    stats["generation_rounds"] = rnd + 1
    return kept.select(list(range(n_local)))


def advantages_for(rt: Runtime, ro: Rollout, kl_penalty_seq: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
    """Per-completion advantages (P_local * G,), computed over the global batch."""
    cfg, acc = rt.cfg.grpo, rt.accelerator
    rewards = ro.rewards()  # (P, G)
    errors = ro.errors()
    # an unscorable completion must not move its group's baseline: stand it in at the valid mean (its loss is masked)
    valid = (~errors).float()
    mean_valid = (rewards * valid).sum(-1, keepdim=True) / valid.sum(-1, keepdim=True).clamp(min=1)
    rewards = torch.where(errors, mean_valid, rewards)
    if kl_penalty_seq is not None:  # kl_in_reward
        rewards = rewards - cfg.kl_coef * kl_penalty_seq.view_as(rewards)
    all_rewards = acc.gather(rewards)  # (P_global, G)
    adv = group_advantages(all_rewards, estimator=cfg.estimator, scale_rewards=cfg.scale_rewards)
    P = rewards.shape[0]
    own = adv[acc.process_index * P : (acc.process_index + 1) * P]
    correct = acc.gather(ro.correct())
    all_err = acc.gather(errors.float())
    metrics = {
        "reward/mean": float(all_rewards.mean()),
        "reward/std": float(all_rewards.std()),
        "accuracy": float(correct.mean()),
        "verifier_errors": float(all_err.sum()),
    }
    return own.reshape(-1), metrics


def micro_parts(rt: Runtime, batch: PaddedBatch) -> list[torch.Tensor]:
    """Row indices of each micro-batch: `micro_batch_size` rows, or padding-free groups of at most
    `max_tokens_per_micro_batch` tokens, as many on every process."""
    return micro_batches(batch, rows=rt.cfg.grpo.micro_batch_size, max_tokens=rt.cfg.grpo.max_tokens_per_micro_batch,
                         agree=max_over_processes(rt.accelerator), what="grpo.max_tokens_per_micro_batch")  # fmt: skip


@torch.no_grad()
def forward_logps(rt: Runtime, model: torch.nn.Module, batch: PaddedBatch) -> torch.Tensor:
    """Completion log-probs (N, C) of `model` over the batch, in the update's micro-batches."""
    T, packed = rt.cfg.generation.temperature, rt.cfg.grpo.max_tokens_per_micro_batch > 0
    logp = torch.zeros(batch.completion_mask.shape, device=batch.input_ids.device)
    for idx in micro_parts(rt, batch):
        logp[idx.to(logp.device)] = part_logprobs(model, batch.slice(idx), temperature=T, packed=packed)[0]
    return logp


def prepare_batch(rt: Runtime, ro: Rollout, ref: Reference | None,
                  rm: RewardSource | None = None) -> tuple[PaddedBatch, dict[str, float]]:
    """Everything between rollout and update: padded tensors, old and reference log-probs where needed,
    the KL-in-reward penalty, and advantages over the global batch."""
    cfg, acc = rt.cfg, rt.accelerator
    batch = pad_rollout(ro, rt.tokenizer.pad_token_id, mask_truncated=cfg.grpo.mask_truncated_completions).to(acc.device)
    if cfg.grpo.num_iterations > 1 or cfg.grpo.mini_batches > 1 or cfg.grpo.kl_in_reward:
        batch.extra["old_logp"] = forward_logps(rt, rt.model, batch)
    kl_seq = None
    if ref is not None:
        with ref.active():
            batch.extra["ref_logp"] = forward_logps(rt, ref.model, batch)
        if cfg.grpo.kl_in_reward:
            kl_tok = kl_penalty(batch.extra["old_logp"], batch.extra["ref_logp"], cfg.grpo.kl_estimator)
            kl_seq = (kl_tok * batch.completion_mask).sum(-1).cpu()  # (N,)
    adv, metrics = advantages_for(rt, ro, kl_seq)
    if rm is not None:
        metrics.update(rm.metrics(ro))
        if rm.process:  # (N, C) token advantages: outcome + process-supervised (PRM step rewards)
            adv = rm.token_advantages(ro, adv, batch.num_completion_tokens)
    batch.extra["advantages"] = adv.to(acc.device)
    return batch, metrics


def update(rt: Runtime, batch: PaddedBatch) -> dict[str, float]:
    """`num_iterations` x `mini_batches` optimizer steps on one rolled-out batch (old/ref log-probs and
    advantages ride in `batch.extra`)."""
    cfg, acc, model = rt.cfg.grpo, rt.accelerator, rt.model
    T = rt.cfg.generation.temperature
    loss_kl_coef = 0.0 if cfg.kl_in_reward else cfg.kl_coef
    sums: dict[str, float] = {}
    n_micro = 0
    grad_norms = []
    for _ in range(cfg.num_iterations):
        perm = torch.randperm(len(batch)) if cfg.mini_batches > 1 else torch.arange(len(batch))
        for mini_idx in perm.chunk(cfg.mini_batches):
            mini = batch.slice(mini_idx)
            # global denominators, so micro-batches and processes add up to the full mini-batch loss
            tokens = acc.reduce(mini.completion_mask.sum().to(acc.device), reduction="sum").item()
            seqs = acc.reduce(torch.tensor(float(len(mini)), device=acc.device), reduction="sum").item()
            denom = tokens if cfg.loss_agg_mode == "token-mean" else seqs
            parts = micro_parts(rt, mini)
            for j, idx in enumerate(parts):
                part = mini.slice(idx)
                with accumulating(acc, model, last=j == len(parts) - 1):
                    logp, ent = part_logprobs(model, part, temperature=T, with_entropy=True,
                                              packed=cfg.max_tokens_per_micro_batch > 0)  # fmt: skip
                    old = part.extra["old_logp"] if "old_logp" in part.extra else logp.detach()
                    is_w = None
                    if "sampler_logp" in part.extra and rt.cfg.generation.vllm.tis_cap > 0:
                        is_w = (old - part.extra["sampler_logp"]).exp().clamp(max=rt.cfg.generation.vllm.tis_cap)
                    loss, m = policy_loss(
                        logp, old, part.extra["advantages"], part.completion_mask,
                        clip_ratio_low=cfg.clip_ratio_low, clip_ratio_high=cfg.clip_ratio_high,
                        clip_ratio_c=cfg.clip_ratio_c or None, loss_agg_mode=cfg.loss_agg_mode,
                        denom=denom, max_len=rt.cfg.generation.max_new_tokens,
                        ref_logp=part.extra.get("ref_logp"), kl_coef=loss_kl_coef, kl_estimator=cfg.kl_estimator,
                        is_weights=is_w,
                    )  # fmt: skip
                    acc.backward(loss * acc.num_processes)  # DDP averages gradients; the denom is already global
                cm = part.completion_mask
                m["entropy"] = (ent * cm).sum() / cm.sum().clamp(min=1)
                if "sampler_logp" in part.extra:
                    m["sampler_logp_gap"] = ((old - part.extra["sampler_logp"]).abs() * cm).sum() / cm.sum().clamp(min=1)
                m["loss"] = loss.detach()
                for k, v in m.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                n_micro += 1
            grad_norms.append(clip_and_step(rt))
    return {**{k: v / max(n_micro, 1) for k, v in sums.items()}, "grad_norm": sum(grad_norms) / len(grad_norms)}


def train(cfg: TrainConfig) -> dict[str, float]:
    # The reference is built before a checkpoint loads (prepare_extra), so after a resume it is still the
    # initial policy, not the resumed weights.
    rt = build_runtime(cfg, total_steps=cfg.max_steps * cfg.grpo.num_iterations * cfg.grpo.mini_batches,
                       prepare_extra=lambda acc, policy, tok: Reference(policy) if cfg.grpo.kl_coef > 0 else None)
    acc = rt.accelerator
    if cfg.grpo.prompts_per_step % acc.num_processes:
        raise ValueError(f"grpo.prompts_per_step={cfg.grpo.prompts_per_step} must divide by the {acc.num_processes} processes")
    if 0 < cfg.grpo.max_tokens_per_micro_batch <= cfg.generation.max_new_tokens:
        raise ValueError(f"grpo.max_tokens_per_micro_batch={cfg.grpo.max_tokens_per_micro_batch} cannot hold a prompt "
                         f"and a completion of generation.max_new_tokens={cfg.generation.max_new_tokens}")  # fmt: skip
    ref = rt.extra
    env = start_sampling(rt)
    stream, generator, pool = env.stream, env.generator, env.pool
    sampling = cfg.generation.sampling()
    result: dict[str, float] = {}
    try:
        rm = RewardSource(cfg.reward_model, rt.tokenizer, acc.device) if cfg.reward_model.path else None
        if rt.start_step == 0:
            env.evaluate(0, result)
        bar = tqdm(range(rt.start_step, cfg.max_steps), initial=rt.start_step, total=cfg.max_steps,
                   disable=not acc.is_main_process, desc="grpo", dynamic_ncols=True)  # fmt: skip
        for step in bar:
            t0 = time.perf_counter()
            stats: dict = {}
            rt.model.eval()
            ro = collect(rt, stream, generator, pool, env.verifier, sampling, stats, rm)
            t_gen = time.perf_counter() - t0
            batch, m = prepare_batch(rt, ro, ref, rm)
            rt.model.train()
            m.update(update(rt, batch))
            t_sync = time.perf_counter()
            generator.update_weights(rt.policy)
            t_end = time.perf_counter()
            dt = t_end - t0
            lens = [len(c.token_ids) for g in ro.completions for c in g]
            n_tok = acc.reduce(torch.tensor(float(sum(lens)), device=acc.device), reduction="sum").item()
            m.update({
                "completion_len": sum(lens) / len(lens),
                "truncated_frac": sum(c.truncated for g in ro.completions for c in g) / len(lens),
                "zero_var_groups": float(stats["zero_var_groups"]),
                "generation_rounds": float(stats["generation_rounds"]),
                "lr": rt.scheduler.get_last_lr()[0],
                "time/step": dt, "time/rollout": t_gen, "time/update": t_sync - t0 - t_gen,
                "time/weight_sync": t_end - t_sync,
                "tokens_per_s": n_tok / dt,
                "verifier_timeouts_total": float(pool.stats["timeouts"]),
            })  # fmt: skip
            rt.logger.log(step + 1, m)
            bar.set_postfix(reward=f"{m['reward/mean']:.3f}", acc=f"{m['accuracy']:.3f}")
            result.update(m)
            env.evaluate_between(step + 1, result)
            if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step + 1 == cfg.max_steps:
                rt.save(step + 1, {"data_position": stream.position})
        env.evaluate(cfg.max_steps, result)
        rt.finish(plot_keys=("reward/mean", "accuracy", "eval/accuracy"))
    finally:
        env.close()
    return result
