"""The `Generator` protocol every generation backend implements.

A backend takes tokenized prompts and returns `n` sampled completions per
prompt, with token ids, text, finish reason and (where the backend gives them)
the sampler's per-token log-probs. Trainers only see this protocol; they never
import vLLM. Weight sync: `update_weights(model)` is called after each
optimizer step with the trainer's (unwrapped) policy module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from rlvr.types import Completion


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()  # stop strings, in addition to EOS
    seed: int | None = None
    logprobs: bool = True  # return the sampler's log-prob of each sampled token


class Generator(Protocol):
    def generate(self, prompt_ids: list[list[int]], n: int, sampling: SamplingParams) -> list[list[Completion]]:
        """`n` completions for each prompt, grouped per prompt, in prompt order."""
        ...

    def update_weights(self, model: torch.nn.Module) -> None:
        """Make the next `generate` sample from `model`'s current weights."""
        ...
