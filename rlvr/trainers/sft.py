"""SFT trainer: prompt-masked cross-entropy over chat-formatted examples.

An example is a task sample's prompt (rendered with the chat template) and
its target text (`task.sft_text(sample)`: a reasoning trace, a worked
solution), followed by EOS so the model learns to stop. Only target tokens
carry loss. With `packing`, examples are laid end to end in rows of
`max_length` with position ids restarting per example, which keeps attention
within each example. Used by the demo's warm start and by distillation.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from rlvr.config import TrainConfig
from rlvr.losses import sft_loss
from rlvr.policy import render_prompt, token_logprobs
from rlvr.trainers.runtime import PromptStream, build_runtime, build_task, clip_and_step
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


def collate(examples: list[Example], pad_id: int, packing: bool, max_length: int) -> list[dict[str, torch.Tensor | None]]:
    """Rows for the model: padded (one example per row) or packed (several per row)."""
    if not packing:
        T = max(len(ids) for ids, _ in examples)
        ids = torch.full((len(examples), T), pad_id)
        attn = torch.zeros((len(examples), T), dtype=torch.long)
        lm = torch.zeros((len(examples), T))
        for r, (x, m) in enumerate(examples):
            ids[r, : len(x)], attn[r, : len(x)], lm[r, : len(x)] = torch.tensor(x), 1, torch.tensor(m, dtype=torch.float)
        return [{"input_ids": ids, "attention_mask": attn, "position_ids": None, "loss_mask": lm}]
    rows: list[list[Example]] = [[]]
    for ex in examples:  # greedy, in order
        if sum(len(x) for x, _ in rows[-1]) + len(ex[0]) > max_length:
            rows.append([])
        rows[-1].append(ex)
    T = max(sum(len(x) for x, _ in row) for row in rows)
    ids = torch.full((len(rows), T), pad_id)
    pos = torch.zeros((len(rows), T), dtype=torch.long)
    lm = torch.zeros((len(rows), T))
    for r, row in enumerate(rows):
        c = 0
        for x, m in row:
            ids[r, c : c + len(x)] = torch.tensor(x)
            pos[r, c : c + len(x)] = torch.arange(len(x))
            lm[r, c : c + len(x)] = torch.tensor(m, dtype=torch.float)
            c += len(x)
        pos[r, c:] = torch.arange(T - c)  # the padding tail is a segment of its own, without loss
    return [{"input_ids": ids, "attention_mask": None, "position_ids": pos, "loss_mask": lm}]


def train(cfg: TrainConfig) -> dict[str, float]:
    task = build_task(cfg.task, "task")
    if not hasattr(task, "sft_text"):
        raise ValueError(f"task {cfg.task.name!r} has no sft_text(sample): it gives no targets to train on")
    sc = cfg.sft
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
        (batch,) = collate(examples, tok.pad_token_id, sc.packing, sc.max_length)
        batch = {k: (v.to(acc.device) if v is not None else None) for k, v in batch.items()}
        lm = batch["loss_mask"][:, 1:]  # (R, T-1): logp at t is of token t+1
        denom = acc.reduce(lm.sum(), reduction="sum").item()
        nll_sum = 0.0
        parts = torch.arange(lm.shape[0]).split(sc.micro_batch_size)
        for j, idx in enumerate(parts):
            pick = {k: (v[idx] if v is not None else None) for k, v in batch.items()}
            ctx = acc.no_sync(model) if j < len(parts) - 1 else torch.enable_grad()
            with ctx:
                logp, _ = token_logprobs(
                    model, pick["input_ids"], pick["attention_mask"], pick["input_ids"].shape[1] - 1,
                    position_ids=pick["position_ids"],
                )  # fmt: skip
                loss, _m = sft_loss(logp, lm[idx], denom=denom)
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
