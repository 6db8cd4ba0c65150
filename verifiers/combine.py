"""Composition of verifiers by registry name, so YAML can express it.

A component spec is a dict `{"name": str, "args": dict (optional),
"weight": float (weighted only)}`.

- `weighted`: score = sum of weight * component score; correct when every
  component is correct.
- `all_of`: 1.0 when every component is correct, else 0.0.
- `gate`: the `then` verdict when the `gate` verdict is correct, else 0.0
  (e.g. the answer only counts when the format holds).

An error in any component is an error of the whole (never a silent 0), and the
component verdicts are kept in `info["components"]`. Components are evaluated
in order, in-process; hard timeouts are the pool's job.

    >>> from rlvr.types import Sample
    >>> from verifiers import get_verifier
    >>> v = get_verifier("weighted", components=[{"name": "math", "weight": 1.0},
    ...                                          {"name": "one_box", "weight": 0.1}])
    >>> v("so \\\\boxed{4}", Sample(id="0", prompt="", reference="4")).score
    1.1
    >>> g = get_verifier("gate", gate={"name": "think_format"}, then={"name": "math"})
    >>> g("\\\\boxed{4}", Sample(id="0", prompt="", reference="4")).score
    0.0
"""

from __future__ import annotations

from typing import Any

from rlvr.types import Sample
from verifiers.base import Verdict, Verifier, get_verifier, register_verifier

_KEYS = {"name", "args", "weight"}


def build(spec: dict[str, Any], where: str, weighted: bool = False) -> tuple[str, Verifier, float]:
    """(name, verifier, weight) from a component spec; a malformed spec is a ValueError naming `where`."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(f"{where}: expected a dict with a string 'name', got {spec!r}")
    allowed = _KEYS if weighted else _KEYS - {"weight"}
    unknown = set(spec) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    args = spec.get("args") or {}
    if not isinstance(args, dict):
        raise ValueError(f"{where}.args: expected a dict, got {args!r}")
    weight = spec.get("weight", 1.0)
    if weighted and not isinstance(weight, (int, float)):
        raise ValueError(f"{where}.weight: expected a number, got {weight!r}")
    return spec["name"], get_verifier(spec["name"], **args), float(weight)


def _run(parts: list[tuple[str, Verifier, float]], completion: str, sample: Sample) -> tuple[list, Verdict | None]:
    """Verdicts of all parts, or an error verdict for the first part that errs."""
    out = []
    for name, fn, w in parts:
        v = _call(name, fn, completion, sample)
        out.append((name, w, v))
        if v.error is not None:
            return out, Verdict.failure(f"{name}: {v.error}", components=_info(out))
    return out, None


def _call(name: str, fn: Verifier, completion: str, sample: Sample) -> Verdict:
    try:
        return fn(completion, sample)
    except Exception as e:  # a component that raises is an error of the whole, reported, never a 0
        return Verdict.failure(f"{type(e).__name__}: {e}")


def _info(out: list) -> list[dict[str, Any]]:
    return [{"name": n, "score": v.score, "correct": v.correct, "info": v.info} for n, _, v in out]


@register_verifier("weighted")
class Weighted:
    """Weighted sum of component scores."""

    def __init__(self, components: list[dict[str, Any]]):
        if not components:
            raise ValueError("weighted: components must be a non-empty list")
        self.parts = [build(c, f"weighted.components[{k}]", weighted=True) for k, c in enumerate(components)]

    def __call__(self, completion: str, sample: Sample) -> Verdict:
        out, err = _run(self.parts, completion, sample)
        if err is not None:
            return err
        score = sum(w * v.score for _, w, v in out)
        info: dict[str, Any] = {"components": _info(out)}
        if "pred" in out[0][2].info:
            info["pred"] = out[0][2].info["pred"]
        return Verdict(score, all(v.correct for _, _, v in out), info=info)


@register_verifier("all_of")
class AllOf:
    """1.0 when every component is correct."""

    def __init__(self, components: list[dict[str, Any]]):
        if not components:
            raise ValueError("all_of: components must be a non-empty list")
        self.parts = [build(c, f"all_of.components[{k}]") for k, c in enumerate(components)]

    def __call__(self, completion: str, sample: Sample) -> Verdict:
        out, err = _run(self.parts, completion, sample)
        if err is not None:
            return err
        ok = all(v.correct for _, _, v in out)
        return Verdict(float(ok), ok, info={"components": _info(out)})


@register_verifier("gate")
class Gate:
    """`then`'s verdict when `gate` holds, else 0."""

    def __init__(self, gate: dict[str, Any], then: dict[str, Any]):
        self.gate = build(gate, "gate.gate")
        self.then = build(then, "gate.then")

    def __call__(self, completion: str, sample: Sample) -> Verdict:
        g = _call(self.gate[0], self.gate[1], completion, sample)
        if g.error is not None:
            return Verdict.failure(f"{self.gate[0]}: {g.error}", gate=g.info)
        if not g.correct:
            return Verdict(0.0, False, info={"reason": f"gate {self.gate[0]} failed", "gate": g.info})
        v = _call(self.then[0], self.then[1], completion, sample)
        if v.error is not None:
            return Verdict.failure(f"{self.then[0]}: {v.error}", gate=g.info)
        return Verdict(v.score, v.correct, info={**v.info, "gate": g.info})
