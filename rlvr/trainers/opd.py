"""On-policy distillation trainer (`algorithm: opd`): the student samples, the teacher scores every token.

Each step: `grpo.prompts_per_step` prompts, `generation.num_generations` student completions each (scored by
the verifier pool too, for the metrics and the optional verifier term), then the student's log-probs of its
own tokens (at the sampling temperature) and the frozen teacher's (`opd.teacher`, temperature 1) give the
per-token advantage A_t = -opd.kl_coef * (log p_S(y_t) - log p_T(y_t)) (discount `opd.discount`, default 0;
`rlvr.losses.distill.opd_advantages`), plus `opd.verifier_coef` x the verifier's group advantage. The update
is GRPO's (`grpo.update`: the clipped policy loss with `grpo.loss_agg_mode`, micro-batches, iterations), so
its batch and loss settings come from the `grpo` block. The teacher must share the student's vocabulary: the
same tokens with the same ids, checked before training with an error naming both models and the first token
that differs.

Why a trainer of its own and not a GRPO option: OPD loads and checks a second model and makes per-token
advantages; inside grpo.py that would be a teacher branch in its setup, batch preparation and advantages.
Here it composes GRPO's rollout collection, advantages and update and adds only what differs.

Differences from the peers, on purpose:
- The vocabulary check compares the tokenizers (size and token-to-id map), not `config.vocab_size`: Qwen2.5
  0.5B and 7B share one tokenizer but pad their embeddings to 151936 and 152064 rows, which TRL's GKD refuses
  (trl#2215). Only sampled token ids are looked up, and they all lie in the shared tokenizer.
- The teacher is scored at temperature 1 (its own distribution); the student at the sampling temperature
  (the distribution its tokens were drawn from), as the Tinker cookbook. Sample at temperature 1 for the
  reverse KL of the student itself.
What it does not: logit (full-vocabulary) distillation, a teacher with another tokenizer (use off-policy
`rlvr distill`), a reference-model KL (`grpo.kl_coef` must be 0: the teacher term is the KL).
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
from tqdm.auto import tqdm

from rlvr.config import TrainConfig
from rlvr.losses.distill import opd_advantages
from rlvr.packing import part_logprobs
from rlvr.policy import load_policy
from rlvr.rollout import PaddedBatch, Rollout, pad_rollout
from rlvr.trainers.grpo import advantages_for, collect, forward_logps, micro_parts, update
from rlvr.trainers.runtime import Runtime, build_runtime
from rlvr.trainers.sampling import start_sampling


def check_same_vocabulary(student_tok, teacher_tok, student: str, teacher: str) -> None:
    """Same number of tokens and the same id for every token, else a ValueError naming both models."""
    s, t = student_tok.get_vocab(), teacher_tok.get_vocab()
    if len(s) != len(t):
        raise ValueError(f"opd.teacher {teacher!r} ({len(t)} tokens) and student model.name_or_path {student!r} "
                         f"({len(s)} tokens) do not share a vocabulary; on-policy distillation scores the student's "
                         "token ids with the teacher, so both need the same tokenizer (off-policy `rlvr distill` "
                         "works across tokenizers)")  # fmt: skip
    for token, i in sorted(s.items(), key=lambda kv: kv[1]):
        if t.get(token) != i:
            raise ValueError(f"opd.teacher {teacher!r} and student model.name_or_path {student!r} do not share a "
                             f"vocabulary: token {token!r} is id {i} for the student and {t.get(token)} for the "
                             "teacher (same size, other token-to-id map)")  # fmt: skip


def load_teacher(cfg: TrainConfig, rt: Runtime) -> torch.nn.Module:
    oc = cfg.opd
    if not oc.teacher:
        raise ValueError("opd.teacher is empty: name the teacher model (a tiny model, a local directory or a hub name)")
    if cfg.grpo.kl_coef > 0:
        raise ValueError("grpo.kl_coef > 0 with algorithm: opd: no reference model is loaded; the teacher term "
                         "(opd.kl_coef) is the KL to regularise toward")  # fmt: skip
    teacher, tok = load_policy(replace(cfg.model, name_or_path=oc.teacher, dtype=oc.teacher_dtype or cfg.model.dtype,
                                       lora=replace(cfg.model.lora, r=0), gradient_checkpointing=False))  # fmt: skip
    check_same_vocabulary(rt.tokenizer, tok, cfg.model.name_or_path, oc.teacher)
    teacher.requires_grad_(False)
    return teacher.to(rt.accelerator.device).eval()


@torch.no_grad()
def teacher_logps(rt: Runtime, teacher: torch.nn.Module, batch: PaddedBatch) -> torch.Tensor:
    """The teacher's log-probs (N, C) of the sampled tokens at temperature 1, in the update's micro-batches."""
    packed = rt.cfg.grpo.max_tokens_per_micro_batch > 0
    logp = torch.zeros(batch.completion_mask.shape, device=batch.input_ids.device)
    for idx in micro_parts(rt, batch):
        logp[idx.to(logp.device)] = part_logprobs(teacher, batch.slice(idx), temperature=1.0, packed=packed)[0]
    return logp


def prepare_batch(rt: Runtime, ro: Rollout, teacher: torch.nn.Module) -> tuple[PaddedBatch, dict[str, float]]:
    """Padded tensors, the student's and teacher's log-probs of the sampled tokens, per-token advantages."""
    cfg, acc = rt.cfg, rt.accelerator
    batch = pad_rollout(ro, rt.tokenizer.pad_token_id, mask_truncated=cfg.grpo.mask_truncated_completions).to(acc.device)
    student = forward_logps(rt, rt.model, batch)  # (N, C) at the sampling temperature
    teacher_logp = teacher_logps(rt, teacher, batch)
    seq_adv, metrics = advantages_for(rt, ro, None)  # (N,): also the reward/accuracy metrics
    adv, m = opd_advantages(student, teacher_logp, batch.completion_mask, kl_coef=cfg.opd.kl_coef,
                            discount=cfg.opd.discount,
                            sequence_advantages=cfg.opd.verifier_coef * seq_adv.to(acc.device))  # fmt: skip
    batch.extra["old_logp"], batch.extra["advantages"] = student, adv
    tokens = acc.reduce(batch.completion_mask.sum(), reduction="sum")
    kl_sum = acc.reduce(m["reverse_kl"] * batch.completion_mask.sum(), reduction="sum")
    metrics["teacher_kl"] = float(kl_sum / tokens.clamp(min=1))  # sampled KL(student || teacher) per token
    return batch, metrics


def train(cfg: TrainConfig) -> dict[str, float]:
    rt = build_runtime(cfg, total_steps=cfg.max_steps * cfg.grpo.num_iterations * cfg.grpo.mini_batches)
    acc = rt.accelerator
    if cfg.grpo.prompts_per_step % acc.num_processes:
        raise ValueError(f"grpo.prompts_per_step={cfg.grpo.prompts_per_step} must divide by the {acc.num_processes} processes")
    teacher = load_teacher(cfg, rt)
    env = start_sampling(rt)
    stream, generator, pool = env.stream, env.generator, env.pool
    result: dict[str, float] = {}
    try:
        if rt.start_step == 0:
            env.evaluate(0, result)
        bar = tqdm(range(rt.start_step, cfg.max_steps), initial=rt.start_step, total=cfg.max_steps,
                   disable=not acc.is_main_process, desc="opd", dynamic_ncols=True)  # fmt: skip
        for step in bar:
            t0 = time.perf_counter()
            stats: dict = {}
            rt.model.eval()
            ro = collect(rt, stream, generator, pool, env.verifier, cfg.generation.sampling(), stats)
            t_gen = time.perf_counter() - t0
            batch, m = prepare_batch(rt, ro, teacher)
            rt.model.train()
            m.update(update(rt, batch))
            generator.update_weights(rt.policy)
            lens = [len(c.token_ids) for g in ro.completions for c in g]
            m.update({"completion_len": sum(lens) / len(lens), "lr": rt.scheduler.get_last_lr()[0],
                      "truncated_frac": sum(c.truncated for g in ro.completions for c in g) / len(lens),
                      "time/step": time.perf_counter() - t0, "time/rollout": t_gen})  # fmt: skip
            rt.logger.log(step + 1, m)
            bar.set_postfix(teacher_kl=f"{m['teacher_kl']:.3f}", acc=f"{m['accuracy']:.3f}")
            result.update(m)
            env.evaluate_between(step + 1, result)
            if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step + 1 == cfg.max_steps:
                rt.save(step + 1, {"data_position": stream.position})
        env.evaluate(cfg.max_steps, result)
        rt.finish(plot_keys=("teacher_kl", "accuracy", "eval/accuracy"))
    finally:
        env.close()
    return result
