"""`exact_boxed`: 1.0 when the last \\boxed{} equals the reference as a string.

A deliberately simple verifier that shows the whole plugin contract: a function
`(completion, sample) -> Verdict`, keyword-only options bound by
`get_verifier("exact_boxed", strip_spaces=...)`, and an entry point in group
`rlvr.verifiers` (see this package's pyproject.toml). It is not a math grader:
"0.5" and "\\frac12" differ here; use `get_verifier("math")` for that.

    >>> from rlvr.types import Sample
    >>> exact_boxed("so \\\\boxed{ 42 }", Sample(id="0", prompt="", reference="42")).correct
    True
"""

from __future__ import annotations

from rlvr.types import Sample
from verifiers import Verdict, register_verifier
from verifiers.extract import last_boxed


@register_verifier("exact_boxed")
def exact_boxed(completion: str, sample: Sample, *, strip_spaces: bool = True) -> Verdict:
    """1.0 when the last `\\boxed{}` equals `sample.reference` (spaces ignored when `strip_spaces`)."""
    if sample.reference is None:
        return Verdict.failure("sample has no reference answer")
    pred = last_boxed(completion)
    if pred is None:
        return Verdict(score=0.0, correct=False, info={"reason": "no_boxed"})
    gold = sample.reference
    if strip_spaces:
        pred, gold = "".join(pred.split()), "".join(gold.split())
    ok = pred == gold
    return Verdict(score=float(ok), correct=ok, info={"pred": pred})
