"""Minimal math verifier (placeholder until the sympy verifier lands):
numeric answer in the last \\boxed{} or after ####, compared as a number."""

from __future__ import annotations

import re

from rlvr.types import Sample
from verifiers.base import Verdict, register_verifier


def _last_boxed(text: str) -> str | None:
    i = text.rfind("\\boxed{")
    if i < 0:
        return None
    depth, j = 0, i + len("\\boxed{") - 1
    for k in range(j, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return text[j + 1 : k]
    return None


def _number(s: str) -> float | None:
    s = s.replace(",", "").replace("$", "").strip()
    try:
        return float(s)
    except ValueError:
        return None


@register_verifier("math")
def math_verifier(completion: str, sample: Sample) -> Verdict:
    if sample.reference is None:
        return Verdict.failure("sample has no reference answer")
    pred = _last_boxed(completion)
    if pred is None and "####" in completion:
        pred = completion.rsplit("####", 1)[1].strip().split("\n")[0]
    if pred is None:
        return Verdict(0.0, False, info={"reason": "no_answer"})
    a, b = _number(pred), _number(sample.reference)
    ok = a is not None and b is not None and abs(a - b) < 1e-9
    return Verdict(float(ok), ok, info={"pred": pred})
