"""Rollout: prompts -> groups of completions -> verdicts -> padded tensors.

The one place where completions meet verifiers. It renders and tokenizes
prompts, samples `num_generations` completions per prompt through any
`Generator`, scores them in the verification pool, and lays the result out
as tensors: left-padded prompts followed by right-padded completions, so all
completions start at the same column. It computes no advantages or losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from rlvr.generation.base import Generator, SamplingParams
from rlvr.policy import render_prompt
from rlvr.types import Completion, Sample
from verifiers.base import Verdict
from verifiers.pool import VerifierPool


@dataclass
class Rollout:
    samples: list[Sample]  # one per prompt
    completions: list[list[Completion]]  # (P, G)
    verdicts: list[list[Verdict]]  # (P, G)
    prompt_ids: list[list[int]]  # (P,) ragged

    def rewards(self) -> Tensor:
        return torch.tensor([[v.score for v in g] for g in self.verdicts], dtype=torch.float32)  # (P, G)

    def errors(self) -> Tensor:
        return torch.tensor([[v.error is not None for v in g] for g in self.verdicts])  # (P, G) bool

    def correct(self) -> Tensor:
        return torch.tensor([[v.correct for v in g] for g in self.verdicts], dtype=torch.float32)  # (P, G)

    def extend(self, other: "Rollout") -> None:
        self.samples += other.samples
        self.completions += other.completions
        self.verdicts += other.verdicts
        self.prompt_ids += other.prompt_ids

    def select(self, keep: list[int]) -> "Rollout":
        return Rollout(
            [self.samples[i] for i in keep],
            [self.completions[i] for i in keep],
            [self.verdicts[i] for i in keep],
            [self.prompt_ids[i] for i in keep],
        )


@dataclass
class PaddedBatch:
    input_ids: Tensor  # (N, P + C) left-padded prompt, right-padded completion
    attention_mask: Tensor  # (N, P + C)
    completion_mask: Tensor  # (N, C) 1 on completion tokens that get gradient
    num_completion_tokens: int  # C
    extra: dict[str, Tensor] = field(default_factory=dict)  # per-row tensors (advantages, old_logp, ...)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def slice(self, idx: Tensor) -> "PaddedBatch":
        return PaddedBatch(
            self.input_ids[idx],
            self.attention_mask[idx],
            self.completion_mask[idx],
            self.num_completion_tokens,
            {k: v[idx] for k, v in self.extra.items()},
        )

    def to(self, device: torch.device) -> "PaddedBatch":
        return PaddedBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.completion_mask.to(device),
            self.num_completion_tokens,
            {k: v.to(device) for k, v in self.extra.items()},
        )


def tokenize_prompts(tokenizer, samples: list[Sample], max_prompt_len: int) -> list[list[int]]:
    """Token ids of each rendered prompt; a prompt longer than `max_prompt_len` is an error naming the sample."""
    out = []
    for s in samples:
        ids = tokenizer(render_prompt(tokenizer, s.prompt), add_special_tokens=False)["input_ids"]
        if len(ids) > max_prompt_len:
            raise ValueError(
                f"sample {s.id!r}: prompt is {len(ids)} tokens, longer than the {max_prompt_len} the context leaves "
                f"after max_new_tokens (model context minus generation.max_new_tokens)"
            )
        out.append(ids)
    return out


def generate_and_verify(
    samples: list[Sample],
    prompt_ids: list[list[int]],
    generator: Generator,
    pool: VerifierPool,
    verifier: tuple[str, dict],
    n: int,
    sampling: SamplingParams,
) -> Rollout:
    groups = generator.generate(prompt_ids, n, sampling)
    texts = [c.text for g in groups for c in g]
    flat_samples = [s for s in samples for _ in range(n)]
    flat = pool.verify_batch(verifier[0], verifier[1], texts, flat_samples)
    verdicts = [flat[i * n : (i + 1) * n] for i in range(len(samples))]
    return Rollout(list(samples), groups, verdicts, list(prompt_ids))


def pad_pairs(pairs: list[tuple[list[int], list[int]]], pad_id: int) -> PaddedBatch:
    """(prompt, completion) token ids as left-padded prompts followed by right-padded completions;
    completion_mask is 1 on every completion token."""
    P = max(len(p) for p, _ in pairs)
    C = max(max(len(c) for _, c in pairs), 1)
    N = len(pairs)
    ids = torch.full((N, P + C), pad_id, dtype=torch.long)
    attn = torch.zeros((N, P + C), dtype=torch.long)
    cmask = torch.zeros((N, C), dtype=torch.float32)
    for r, (p, c) in enumerate(pairs):
        ids[r, P - len(p) : P] = torch.tensor(p)
        attn[r, P - len(p) : P] = 1
        if c:
            ids[r, P : P + len(c)] = torch.tensor(c)
            attn[r, P : P + len(c)] = 1
            cmask[r, : len(c)] = 1.0
    return PaddedBatch(ids, attn, cmask, C)


def pad_rollout(ro: Rollout, pad_id: int, *, mask_truncated: bool) -> PaddedBatch:
    """Tensors for the update. Completions whose verdict is an error, and (if
    `mask_truncated`) those cut at max_new_tokens, get an all-zero completion mask."""
    rows = [(ro.prompt_ids[i], c, v) for i in range(len(ro.samples)) for c, v in zip(ro.completions[i], ro.verdicts[i])]
    batch = pad_pairs([(p, c.token_ids) for p, c, _ in rows], pad_id)
    for r, (_, c, v) in enumerate(rows):
        if v.error is not None or (mask_truncated and c.truncated):
            batch.completion_mask[r] = 0.0
    if rows[0][1].logprobs is not None:
        slp = torch.zeros(batch.completion_mask.shape)
        for r, (_, c, _) in enumerate(rows):
            slp[r, : len(c.logprobs)] = torch.tensor(c.logprobs)
        batch.extra["sampler_logp"] = slp
    return batch
