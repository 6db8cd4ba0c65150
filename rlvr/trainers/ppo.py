"""PPO trainer: a critic, GAE and the clipped losses on the same rollout, verifiers and policy core as GRPO.

Each step: take `prompts_per_step` prompts (split across processes), sample `generation.num_generations`
completions each and score them in the verifier pool (`rlvr.rollout`, as GRPO does). Then, without gradient:
old and reference log-probs and the critic's values; per-token rewards (`advantages.token_rewards`: the score
on the last real token, `-kl_coef * KL` on every token when `kl_in_reward`, the `truncation` rule for
completions cut at max_new_tokens); GAE; advantages whitened over the global batch. Then `ppo_epochs` x
`mini_batches` optimizer steps of the clipped policy loss and the clipped value loss. The first
`critic.warmup_steps` steps train only the critic. The KL coefficient follows `kl_ctrl` and is logged.

Differences from TRL / verl / OpenRLHF, on purpose:
- The score sits on the last real token (the EOS when emitted), found from each completion's length; TRL puts
  it on the first padding token after EOS (trl#1893) and finds EOS as `ids == pad` (wrong when pad == EOS).
- A truncated completion is handled by a rule the config must name (`truncation`: penalize | mask |
  bootstrap); "truncated" is the generator's finish reason, which knows every EOS id of the generation config
  and the configured stop strings (TRL's `missing_eos_penalty` checks `eos_token_id` alone, trl#3750).
- Advantage whitening and explained variance use statistics over all processes (TRL and verl: per rank).
- KL in the reward and KL in the loss together is refused (counted twice otherwise).
- `critic/explained_variance` is measured on the rollout's values before the update (how well the critic
  predicted returns it has not trained on); `advantages/mean|std` are logged before whitening.
A `reward_model:` block adds an ORM or PRM beside the verifier as in GRPO (`rlvr.rewards`); with a PRM and
`process_advantages`, each step's reward sits on the step's last token next to the outcome score, before GAE.
What it does not: dynamic sampling (`filter_groups` is GRPO's: a critic gives a zero-variance group a
signal), or export a shared critic from FSDP shards (pass a separate critic there).
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import torch
from tqdm.auto import tqdm

from rlvr.advantages import TRUNCATION, explained_variance, gae, masked_mean_var, token_rewards, whiten
from rlvr.config import TrainConfig
from rlvr.kl_control import KL_CONTROLLERS, next_kl_coef
from rlvr.losses import KL_ESTIMATORS, LOSS_AGG_MODES, kl_penalty, policy_loss, value_loss
from rlvr.policy import Reference, token_logprobs
from rlvr.rewards import RewardSource
from rlvr.rollout import PaddedBatch, Rollout, generate_and_verify, pad_rollout, tokenize_prompts
from rlvr.trainers.critic import Critic, critic_builder, forward, save_critic
from rlvr.trainers.runtime import Runtime, build_runtime, clip_and_step, step_optimizer
from rlvr.trainers.sampling import start_sampling


def check_config(cfg: TrainConfig) -> None:
    """Errors naming the key for PPO settings that cannot work together."""
    p = cfg.ppo
    for key in ("gamma", "lam"):
        if not 0.0 <= getattr(p, key) <= 1.0:
            raise ValueError(f"ppo.{key}={getattr(p, key)}: must be in [0, 1]")
    if p.kl_in_reward and p.kl_loss:
        raise ValueError("ppo.kl_in_reward and ppo.kl_loss are both on: the KL would be counted twice, "
                         "in the reward and in the loss; turn one off")  # fmt: skip
    if p.truncation not in TRUNCATION:
        raise ValueError(f"ppo.truncation={p.truncation!r}: required, one of {TRUNCATION} (what a completion "
                         "cut at generation.max_new_tokens gets: its score minus truncation_penalty, no gradient, "
                         "or the critic's value of where it was cut)")  # fmt: skip
    for key, value, valid in [("kl_estimator", p.kl_estimator, KL_ESTIMATORS), ("kl_ctrl", p.kl_ctrl, KL_CONTROLLERS),
                              ("kl_loss_estimator", p.kl_loss_estimator, KL_ESTIMATORS),
                              ("loss_agg_mode", p.loss_agg_mode, LOSS_AGG_MODES),
                              ("critic.mode", p.critic.mode, ("separate", "shared"))]:  # fmt: skip
        if value not in valid:
            raise ValueError(f"ppo.{key}={value!r}: expected one of {tuple(valid)}")
    if p.critic.mode == "shared" and (p.critic.init or cfg.model.lora.r > 0):
        raise ValueError("ppo.critic.mode=shared puts a fresh head on the policy's own full backbone: "
                         "ppo.critic.init and model.lora need ppo.critic.mode=separate")  # fmt: skip


@torch.no_grad()
def prepare_batch(rt: Runtime, critic: Critic, ro: Rollout, ref: Reference | None,
                  kl_coef: float, rm: RewardSource | None = None) -> tuple[PaddedBatch, dict[str, float]]:
    """Padded tensors, old/reference log-probs, values, token rewards, GAE returns and advantages."""
    p, acc = rt.cfg.ppo, rt.accelerator
    batch = pad_rollout(ro, rt.tokenizer.pad_token_id, mask_truncated=p.truncation == "mask").to(acc.device)
    C, mb, mask = batch.num_completion_tokens, p.micro_batch_size, batch.completion_mask
    outs = [forward(rt, critic, batch.slice(idx), policy=True) for idx in torch.arange(len(batch)).split(mb)]
    old_logp, values = torch.cat([o[0] for o in outs]), torch.cat([o[2] for o in outs])  # (N, C), (N, C + 1)
    lengths = batch.attention_mask[:, -C:].sum(-1)  # (N,) from token counts, EOS included; never from pad ids
    errors = ro.errors().reshape(-1).to(acc.device)
    scores = torch.where(errors, 0.0, ro.rewards().reshape(-1).to(acc.device))  # errored rows are masked out
    if rm is not None and rm.process:  # the score is the verifier's; the PRM's steps are added below
        scores = rm.cfg.verifier_weight * scores
    truncated = torch.tensor([c.truncated for g in ro.completions for c in g], device=acc.device)
    sum_all = lambda t: acc.reduce(t, reduction="sum")  # noqa: E731
    metrics: dict[str, float] = {}
    kl_tok = None
    if ref is not None:
        T = rt.cfg.generation.temperature
        with torch.no_grad():
            batch.extra["ref_logp"] = torch.cat([ref.logprobs(q.input_ids, q.attention_mask, C, T)
                                                 for q in map(batch.slice, torch.arange(len(batch)).split(mb))])
        kl_tok = kl_penalty(old_logp, batch.extra["ref_logp"], p.kl_estimator if p.kl_in_reward else p.kl_loss_estimator)
        rows = (mask.sum(-1) > 0).float()
        n_tok, kl_sum, n_seq = sum_all(torch.stack([mask.sum(), (kl_tok * mask).sum(), rows.sum()])).tolist()
        metrics.update({"kl": kl_sum / max(n_tok, 1), "kl_seq": kl_sum / max(n_seq, 1)})
    rewards = token_rewards(
        scores, lengths, C, truncated=truncated, truncation=p.truncation, penalty=p.truncation_penalty,
        bootstrap_values=values[torch.arange(len(batch), device=values.device), lengths], gamma=p.gamma,
        kl=kl_tok if p.kl_in_reward else None, kl_coef=kl_coef,
    )  # fmt: skip
    if rm is not None:
        metrics.update(rm.metrics(ro))
        if rm.process:  # PRM step rewards on each step's last token, before GAE
            rewards = rewards + rm.step_rewards(ro, C).to(rewards)
    adv, returns = gae(rewards, values[:, :C], mask, gamma=p.gamma, lam=p.lam)  # (N, C) each
    n, adv_mean, adv_var = masked_mean_var(adv, mask, sum_all)
    _, value_mean, _ = masked_mean_var(values[:, :C], mask, sum_all)
    _, return_mean, _ = masked_mean_var(returns, mask, sum_all)
    if p.whiten_advantages and n >= 2:
        adv = whiten(adv, mask, sum_all=sum_all)
    batch.extra.update(old_logp=old_logp, old_values=values[:, :C], rewards=rewards, returns=returns, advantages=adv)

    all_scores, all_err, all_correct = (acc.gather(x.to(acc.device)) for x in (scores, errors, ro.correct().reshape(-1)))
    valid = all_scores[~all_err]
    metrics.update({
        "reward/mean": float(valid.mean()) if len(valid) else 0.0,
        "reward/std": float(valid.std()) if len(valid) > 1 else 0.0,
        "accuracy": float(all_correct.mean()), "verifier_errors": float(all_err.sum()),
        "critic/value_mean": float(value_mean), "returns/mean": float(return_mean),
        "critic/explained_variance": explained_variance(values[:, :C], returns, mask, sum_all=sum_all),
        "advantages/mean": float(adv_mean), "advantages/std": float(adv_var.clamp(min=0).sqrt()),
    })  # fmt: skip
    return batch, metrics


def _no_sync(acc, models: list[torch.nn.Module], sync: bool) -> ExitStack:
    stack = ExitStack()
    if not sync:  # gradient accumulation: DDP all-reduces only on the micro-batch that closes an optimizer step
        for model in models:
            stack.enter_context(acc.no_sync(model))
    return stack


def _policy_loss(rt: Runtime, part: PaddedBatch, logp: torch.Tensor, ent: torch.Tensor, *, kl_coef: float,
                 denom: float) -> tuple[torch.Tensor, dict]:
    """The clipped policy loss of one micro-batch (its share of the global `denom`) and its metrics."""
    p, cm = rt.cfg.ppo, part.completion_mask
    is_w = None  # vLLM's sampler and the trainer disagree slightly: truncated importance sampling, as GRPO
    if "sampler_logp" in part.extra and rt.cfg.generation.vllm.tis_cap > 0:
        is_w = (part.extra["old_logp"] - part.extra["sampler_logp"]).exp().clamp(max=rt.cfg.generation.vllm.tis_cap)
    pg, m = policy_loss(
        logp, part.extra["old_logp"], part.extra["advantages"], cm,
        clip_ratio_low=p.clip_ratio_low, clip_ratio_high=p.clip_ratio_high, clip_ratio_c=p.clip_ratio_c or None,
        loss_agg_mode=p.loss_agg_mode, denom=denom, max_len=rt.cfg.generation.max_new_tokens,
        ref_logp=part.extra.get("ref_logp") if p.kl_loss else None, kl_coef=kl_coef, kl_estimator=p.kl_loss_estimator,
        is_weights=is_w,
    )  # fmt: skip
    if "kl" in m:
        m["kl_loss"] = m.pop("kl")  # the KL term of the loss; "kl" is the rollout's
    return pg, {**m, "pg_loss": pg.detach(), "entropy": (ent * cm).sum() / cm.sum().clamp(min=1)}


def update(rt: Runtime, critic: Critic, batch: PaddedBatch, *, kl_coef: float, train_policy: bool) -> dict[str, float]:
    """`ppo_epochs` x `mini_batches` optimizer steps of policy (unless warming up the critic) and critic."""
    p, acc = rt.cfg.ppo, rt.accelerator
    C, T, n_proc = batch.num_completion_tokens, rt.cfg.generation.temperature, acc.num_processes
    sums: dict[str, float] = {}
    n_micro, norms, critic_norms = 0, [], []
    for _ in range(p.ppo_epochs):
        perm = torch.randperm(len(batch)) if p.mini_batches > 1 else torch.arange(len(batch))
        for mini_idx in perm.chunk(p.mini_batches):
            mini = batch.slice(mini_idx)
            # global denominators, so micro-batches and processes add up to the full mini-batch loss
            tokens = acc.reduce(mini.completion_mask.sum().to(acc.device), reduction="sum").item()
            seqs = acc.reduce(torch.tensor(float(len(mini)), device=acc.device), reduction="sum").item()
            denom = tokens if p.loss_agg_mode == "token-mean" else seqs
            parts = list(torch.arange(len(mini)).split(p.micro_batch_size))
            for j, idx in enumerate(parts):
                part = mini.slice(idx)
                with _no_sync(acc, [rt.model, critic.model], sync=j == len(parts) - 1):
                    m: dict = {}
                    pg = values = None
                    if critic.shared:  # one forward, and below one backward: the value loss trains the backbone too
                        logp, ent, values = forward(rt, critic, part, policy=train_policy)
                        if train_policy:
                            pg, m = _policy_loss(rt, part, logp, ent, kl_coef=kl_coef, denom=denom)
                    elif train_policy:
                        logp, ent = token_logprobs(rt.model, part.input_ids, part.attention_mask, C, temperature=T,
                                                   with_entropy=True)  # fmt: skip
                        pg, m = _policy_loss(rt, part, logp, ent, kl_coef=kl_coef, denom=denom)
                        # backward before the critic's forward: the two graphs never coexist, so peak memory is
                        # the larger of them, not their sum; DDP averages gradients, the denom is already global
                        acc.backward(pg * n_proc)
                        pg = None
                    if values is None:
                        values = critic.model(part.input_ids, part.attention_mask, C + 1)
                    vf, vm = value_loss(
                        values[:, :-1], part.extra["old_values"], part.extra["returns"], part.completion_mask,
                        clip_range=p.critic.clip_range or None, loss_agg_mode=p.loss_agg_mode, denom=denom,
                        max_len=rt.cfg.generation.max_new_tokens,
                    )  # fmt: skip
                    m.update({"critic/vf_loss": vf.detach(), "critic/vf_clip_frac": vm["vf_clip_frac"]})
                    acc.backward((p.critic.vf_coef * vf + (pg if pg is not None else 0.0)) * n_proc)
                for k, v in m.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                n_micro += 1
            if train_policy:
                norms.append(clip_and_step(rt))
            max_norm = rt.cfg.optim.max_grad_norm
            critic_norms.append(step_optimizer(acc, critic.model, critic.optimizer, critic.scheduler, max_norm))
    # a micro-batch's loss is its share of its optimizer step's global loss: add the shares (over processes
    # too) and average over optimizer steps; rates and means average over micro-batches
    loss_keys = ["critic/vf_loss", "pg_loss"] if train_policy else ["critic/vf_loss"]
    shares = torch.tensor([sums.pop(k) for k in loss_keys], dtype=torch.float64, device=acc.device)
    shares = acc.reduce(shares, reduction="sum") / len(critic_norms)
    out = {k: v / max(n_micro, 1) for k, v in sums.items()}
    out.update({k: float(v) for k, v in zip(loss_keys, shares)})
    out["critic/grad_norm"] = sum(critic_norms) / len(critic_norms)
    if norms:
        out["grad_norm"] = sum(norms) / len(norms)
    return out


def train(cfg: TrainConfig) -> dict[str, float]:
    check_config(cfg)
    p = cfg.ppo
    updates = p.ppo_epochs * p.mini_batches
    policy_steps = max(cfg.max_steps - p.critic.warmup_steps, 1) * updates
    rt = build_runtime(cfg, total_steps=policy_steps, prepare_extra=critic_builder(cfg, cfg.max_steps * updates))
    acc, (critic, ref) = rt.accelerator, rt.extra
    if p.prompts_per_step % acc.num_processes:
        raise ValueError(f"ppo.prompts_per_step={p.prompts_per_step} must divide by the {acc.num_processes} processes")
    kl_coef = float(rt.state.get("kl_coef", p.kl_coef))
    env = start_sampling(rt)
    stream, generator, pool = env.stream, env.generator, env.pool
    sampling = cfg.generation.sampling()
    max_prompt_len = rt.policy.config.max_position_embeddings - cfg.generation.max_new_tokens
    result: dict[str, float] = {}
    try:
        rm = RewardSource(cfg.reward_model, rt.tokenizer, acc.device) if cfg.reward_model.path else None
        if rt.start_step == 0:
            env.evaluate(0, result)
        bar = tqdm(range(rt.start_step, cfg.max_steps), initial=rt.start_step, total=cfg.max_steps,
                   disable=not acc.is_main_process, desc="ppo", dynamic_ncols=True)  # fmt: skip
        for step in bar:
            t0 = time.perf_counter()
            rt.model.eval()
            samples = stream.take(p.prompts_per_step)[acc.process_index :: acc.num_processes]
            prompt_ids = tokenize_prompts(rt.tokenizer, samples, max_prompt_len)
            ro = generate_and_verify(samples, prompt_ids, generator, pool, env.verifier, cfg.generation.num_generations,
                                     sampling)  # fmt: skip
            if rm is not None:
                ro = rm.rescore(ro)  # an ORM's (or aggregated PRM's) score joins the verifier's; the verifier stays
            t_gen = time.perf_counter() - t0
            batch, m = prepare_batch(rt, critic, ro, ref, kl_coef, rm)
            rt.model.train()
            train_policy = step >= p.critic.warmup_steps
            m.update(update(rt, critic, batch, kl_coef=kl_coef, train_policy=train_policy))
            t_sync = time.perf_counter()
            if train_policy:
                generator.update_weights(rt.policy)
            t_end = time.perf_counter()
            m["kl_coef"] = kl_coef
            if ref is not None:
                n_seq = p.prompts_per_step * cfg.generation.num_generations
                kl_coef = next_kl_coef(kl_coef, m["kl_seq"], controller=p.kl_ctrl, target=p.kl_target,
                                       horizon=p.kl_horizon, n_steps=n_seq)  # fmt: skip
            lens = [len(c.token_ids) for g in ro.completions for c in g]
            n_tok = acc.reduce(torch.tensor(float(sum(lens)), device=acc.device), reduction="sum").item()
            m.update({
                "completion_len": sum(lens) / len(lens),
                "truncated_frac": sum(c.truncated for g in ro.completions for c in g) / len(lens),
                "critic_warmup": float(not train_policy),
                "lr": rt.scheduler.get_last_lr()[0], "critic/lr": critic.scheduler.get_last_lr()[0],
                "time/step": t_end - t0, "time/rollout": t_gen, "time/update": t_sync - t0 - t_gen,
                "time/weight_sync": t_end - t_sync, "tokens_per_s": n_tok / (t_end - t0),
                "verifier_timeouts_total": float(pool.stats["timeouts"]),
            })  # fmt: skip
            rt.logger.log(step + 1, m)
            bar.set_postfix(reward=f"{m['reward/mean']:.3f}", ev=f"{m['critic/explained_variance']:.2f}")
            result.update(m)
            env.evaluate_between(step + 1, result)
            if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step + 1 == cfg.max_steps:
                rt.save(step + 1, {"data_position": stream.position, "kl_coef": kl_coef})
        env.evaluate(cfg.max_steps, result)
        rt.finish(plot_keys=("reward/mean", "accuracy", "eval/accuracy", "critic/explained_variance", "kl_coef"))
        save_critic(rt, critic)
    finally:
        env.close()
    return result
