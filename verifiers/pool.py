"""Batch verification API used by trainers (in-process placeholder until the
hang-proof worker pool lands)."""

from __future__ import annotations

from typing import Any

from rlvr.types import Sample
from verifiers.base import Verdict, get_verifier


class VerifierPool:
    def __init__(self, num_workers: int = 2, timeout_s: float = 5.0):
        self.num_workers = num_workers
        self.timeout_s = timeout_s

    def verify_batch(
        self, name: str, args: dict[str, Any], completions: list[str], samples: list[Sample]
    ) -> list[Verdict]:
        fn = get_verifier(name, **args)
        out = []
        for c, s in zip(completions, samples, strict=True):
            try:
                out.append(fn(c, s))
            except Exception as e:  # a verifier bug is an error verdict, counted, not a 0
                out.append(Verdict.failure(f"{type(e).__name__}: {e}"))
        return out

    def close(self) -> None:
        pass

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
