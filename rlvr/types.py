"""Torch-free data contracts shared by tasks, verifiers and trainers.

`Sample` is what a task yields and a verifier reads; `Completion` is what a
generation backend returns; `PreferencePair` and `UnpairedExample` feed
preference trainers and reward models.
Nothing here imports torch, so verifier worker processes start fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": "user", "content": "..."}


@dataclass
class Sample:
    """One problem: a prompt (plain string or chat messages) and what checks it."""

    id: str
    prompt: str | list[Message]
    reference: str | None = None  # gold answer (math) or canonical solution
    tests: str | None = None  # test code run in the sandbox (code tasks)
    meta: dict[str, Any] = field(default_factory=dict)

    def messages(self) -> list[Message]:
        """The prompt as chat messages (a plain string becomes one user turn)."""
        if isinstance(self.prompt, str):
            return [{"role": "user", "content": self.prompt}]
        return list(self.prompt)


@dataclass
class Completion:
    """One sampled continuation of a prompt."""

    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (EOS or stop string) or "length" (hit max_new_tokens)
    logprobs: list[float] | None = None  # sampler log-probs per token, when the backend gives them

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass
class PreferencePair:
    """A prompt with a preferred and a rejected response (DPO, reward models).

    Strings are raw text (no chat template); message lists are rendered with the chat template.
    """

    prompt: str | list[Message]
    chosen: str | list[Message]
    rejected: str | list[Message]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class UnpairedExample:
    """A prompt with one response labelled desirable or not (KTO)."""

    prompt: str | list[Message]
    completion: str | list[Message]
    label: bool
    meta: dict[str, Any] = field(default_factory=dict)
