"""Format verifiers: does the completion have the shape asked for?

- `think_format`: `<think>...</think>` first, then a non-empty answer (inside
  `<answer>...</answer>` when `answer_tag=True`); each tag exactly once.
- `one_box`: exactly one closed `\\boxed{}` / `\\fbox{}`.
- `length_limit`: between `min_chars` and `max_chars` characters.

They judge shape only, never whether the answer is right; combine them with
`math` through `verifiers.combine` (weighted, all_of, gate).

    >>> from rlvr.types import Sample
    >>> s = Sample(id="0", prompt="")
    >>> think_format("<think>2+2=4</think> The answer is 4.", s).correct
    True
    >>> one_box("\\\\boxed{1} then \\\\boxed{2}", s).correct
    False
"""

from __future__ import annotations

import re

from rlvr.types import Sample
from verifiers.base import Verdict, register_verifier
from verifiers.extract import boxed_all

_THINK = re.compile(r"\s*<think>(?P<think>.*?)</think>(?P<rest>.*)", re.DOTALL)
_ANSWER = re.compile(r"\s*<answer>(?P<answer>.*?)</answer>\s*", re.DOTALL)


def _verdict(ok: bool, reason: str) -> Verdict:
    return Verdict(float(ok), ok, info={"reason": reason})


@register_verifier("think_format")
def think_format(completion: str, sample: Sample, *, answer_tag: bool = False) -> Verdict:
    """1.0 for `<think>reasoning</think> answer` (answer in `<answer>` tags when `answer_tag`)."""
    for tag in ("<think>", "</think>") + (("<answer>", "</answer>") if answer_tag else ()):
        if completion.count(tag) != 1:
            return _verdict(False, f"{tag} appears {completion.count(tag)} times, expected once")
    m = _THINK.fullmatch(completion)
    if m is None:
        return _verdict(False, "completion does not start with <think>")
    if not m.group("think").strip():
        return _verdict(False, "empty <think>")
    rest = m.group("rest")
    if answer_tag:
        a = _ANSWER.fullmatch(rest)
        if a is None or not a.group("answer").strip():
            return _verdict(False, "no non-empty <answer>...</answer> after </think>")
    elif not rest.strip():
        return _verdict(False, "nothing after </think>")
    return _verdict(True, "ok")


@register_verifier("one_box")
def one_box(completion: str, sample: Sample) -> Verdict:
    """1.0 when the completion has exactly one closed `\\boxed{}`."""
    boxes, unclosed = boxed_all(completion)
    if unclosed:
        return _verdict(False, "unclosed box")
    return _verdict(len(boxes) == 1, f"{len(boxes)} boxes")


@register_verifier("length_limit")
def length_limit(completion: str, sample: Sample, *, max_chars: int, min_chars: int = 0) -> Verdict:
    """1.0 when `min_chars <= len(completion) <= max_chars`.

    >>> length_limit("abc", Sample(id="0", prompt=""), max_chars=2).correct
    False
    """
    n = len(completion)
    return _verdict(min_chars <= n <= max_chars, f"{n} characters (allowed {min_chars}..{max_chars})")
