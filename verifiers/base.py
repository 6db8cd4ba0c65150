"""Verdict, the verifier registry, and `get_verifier`.

A verifier is a callable `(completion: str, sample: Sample) -> Verdict`. It is
registered either as a plain function (its keyword arguments bound by
`get_verifier(name, **args)`) or as a class (instantiated with `**args`, then
called). A verifier that cannot judge returns `Verdict(error=...)`: an error is
counted and reported by trainers, never mistaken for a zero reward.
Torch-free: verification runs in worker processes that must start fast.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from rlvr.registry import Registry
from rlvr.types import Sample


@dataclass
class Verdict:
    score: float
    correct: bool
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failure(cls, error: str, **info: Any) -> "Verdict":
        """A verdict for a completion that could not be judged (not a wrong answer)."""
        return cls(score=0.0, correct=False, error=error, info=dict(info))


class Verifier(Protocol):
    def __call__(self, completion: str, sample: Sample) -> Verdict: ...


VERIFIERS = Registry(
    "verifier",
    "rlvr.verifiers",
    builtin_modules=(
        "verifiers.math_equiv",
        "verifiers.format",
        "verifiers.combine",
        "verifiers.code",
    ),
)


def register_verifier(name: str) -> Callable[[Any], Any]:
    """Decorator: `@register_verifier("name")` on a function or a class."""
    return VERIFIERS.register(name)


def get_verifier(name: str, **args: Any) -> Verifier:
    """The verifier registered as `name`, configured with `args`."""
    obj = VERIFIERS.get(name)
    if isinstance(obj, type):
        return obj(**args)
    return functools.partial(obj, **args) if args else obj


def list_verifiers() -> list[str]:
    return VERIFIERS.names()
