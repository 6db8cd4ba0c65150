"""SFT trainer: prompt-masked cross-entropy over chat-formatted examples.

An example is a task sample's prompt (rendered with the chat template) and
its target text (`task.sft_text(sample)`: a reasoning trace, a worked
solution), followed by EOS so the model learns to stop. Only target tokens
carry loss. Examples go through the same layout, micro-batches and log-probs
as GRPO's completions (`rlvr.packing`): padded, `micro_batch_size` per
forward, or with `packing` laid end to end (position ids restarting per
example, which keeps attention within each example) in micro-batches of at
most `max_tokens_per_micro_batch` tokens. Used by the demo's warm start and
by distillation.
"""

from __future__ import annotations

import math

from tqdm.auto import tqdm

from rlvr.config import TrainConfig
from rlvr.losses import sft_loss
from rlvr.packing import max_over_processes, micro_batches, part_logprobs
from rlvr.policy import render_prompt
from rlvr.rollout import PaddedBatch, pad_pairs
from rlvr.trainers.runtime import PromptStream, accumulating, build_runtime, build_task, clip_and_step
from rlvr.types import Sample

Example = tuple[list[int], list[int]]  # (token ids, loss mask)


def encode(tokenizer, sample: Sample, target: str, max_length: int) -> Example:
    prompt = tokenizer(render_prompt(tokenizer, sample.prompt), add_special_tokens=False)["input_ids"]
    answer = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(prompt) + len(answer) > max_length:
        raise ValueError(
            f"sample {sample.id!r}: {len(prompt) + len(answer)} tokens, over sft.max_length={max_length} (raise it or drop the sample)"
        )
    return prompt + answer, [0] * len(prompt) + [1] * len(answer)


def to_batch(examples: list[Example], pad_id: int) -> PaddedBatch:
    """Examples as prompt + completion rows (the completion is the target, EOS included), the layout every
    trainer's micro-batches and log-probs share."""
    pairs = []
    for ids, mask in examples:
        start = mask.index(1)  # encode puts the prompt (mask 0) before the target (mask 1)
        pairs.append((ids[:start], ids[start:]))
    return pad_pairs(pairs, pad_id)


def train(cfg: TrainConfig) -> dict[str, float]:
    task = build_task(cfg.task, "task")
    if not hasattr(task, "sft_text"):
        raise ValueError(f"task {cfg.task.name!r} has no sft_text(sample): it gives no targets to train on")
    sc = cfg.sft
    if sc.packing and 0 < sc.max_tokens_per_micro_batch < sc.max_length:
        raise ValueError(f"sft.max_tokens_per_micro_batch={sc.max_tokens_per_micro_batch} cannot hold an example of "
                         f"sft.max_length={sc.max_length} tokens")  # fmt: skip
    steps_per_epoch = math.ceil(len(task) / sc.batch_size)
    total = steps_per_epoch * sc.epochs if sc.max_steps <= 0 else min(sc.max_steps, steps_per_epoch * sc.epochs)
    rt = build_runtime(cfg, total_steps=total)
    acc, model, tok = rt.accelerator, rt.model, rt.tokenizer
    stream = PromptStream(task, cfg.seed, rt.state.get("data_position", 0))
    result: dict[str, float] = {}
    model.train()
    bar = tqdm(range(rt.start_step, total), initial=rt.start_step, total=total, disable=not acc.is_main_process, desc="sft")
    for step in bar:
        samples = stream.take(sc.batch_size)[acc.process_index :: acc.num_processes]
        examples = [encode(tok, s, task.sft_text(s), sc.max_length) for s in samples]
        batch = to_batch(examples, tok.pad_token_id).to(acc.device)
        denom = acc.reduce(batch.completion_mask.sum(), reduction="sum").item()
        nll_sum = 0.0
        budget = (sc.max_tokens_per_micro_batch or sc.micro_batch_size * sc.max_length) if sc.packing else 0
        parts = micro_batches(batch, rows=sc.micro_batch_size, max_tokens=budget, agree=max_over_processes(acc),
                              what="sft.max_tokens_per_micro_batch")  # fmt: skip
        for j, idx in enumerate(parts):
            part = batch.slice(idx)
            with accumulating(acc, model, last=j == len(parts) - 1):
                logp, _ = part_logprobs(model, part, temperature=1.0, packed=sc.packing)
                loss, _m = sft_loss(logp, part.completion_mask, denom=denom)
                acc.backward(loss * acc.num_processes)
            nll_sum += float(loss.detach()) * acc.num_processes
        grad_norm = clip_and_step(rt)
        m = {"loss": nll_sum, "grad_norm": grad_norm, "lr": rt.scheduler.get_last_lr()[0], "tokens": denom}
        rt.logger.log(step + 1, m)
        bar.set_postfix(loss=f"{nll_sum:.4f}")
        result = m
        if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step + 1 == total:
            rt.save(step + 1, {"data_position": stream.position})
    rt.finish(plot_keys=("loss",))
    return result
