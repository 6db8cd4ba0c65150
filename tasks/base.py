"""Task registry and the `Task` contract.

A task is an indexable collection of `Sample` with a default verifier spec
(the registry name of a verifier and its arguments). Tasks are registered by
name (`@register_task("arithmetic")`) or through the `rlvr.tasks` entry point
group, and built with `get_task(name, **args)`. Torch-free.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Protocol, runtime_checkable

from rlvr.registry import Registry
from rlvr.types import Sample


@runtime_checkable
class Task(Protocol):
    default_verifier: str

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Sample: ...


class ListTask:
    """A task backed by an in-memory list of samples."""

    def __init__(self, samples: list[Sample], default_verifier: str = "math", name: str = "list"):
        self.samples = samples
        self.default_verifier = default_verifier
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)


TASKS = Registry(
    "task",
    "rlvr.tasks",
    builtin_modules=("tasks.arithmetic", "tasks.loading", "tasks.gsm8k", "tasks.hendrycks_math", "tasks.code",
                     "tasks.preference", "tasks.stepwise", "tasks.arithmetic_steps", "tasks.traces"),
)


def register_task(name: str) -> Callable[[Any], Any]:
    return TASKS.register(name)


def get_task(name: str, **args: Any) -> Task:
    """Build the task registered as `name` (a class or a factory function) with `args`."""
    return TASKS.get(name)(**args)


def list_tasks() -> list[str]:
    return TASKS.names()
