"""Verifiers: turn a completion into a reward (`Verdict`). Torch-free.

    >>> from verifiers import get_verifier
    >>> from rlvr.types import Sample
    >>> get_verifier("math")("so \\\\boxed{4}", Sample(id="0", prompt="2+2?", reference="4")).correct
    True
"""

from verifiers.base import Verdict, Verifier, get_verifier, list_verifiers, register_verifier

__all__ = ["Verdict", "Verifier", "get_verifier", "list_verifiers", "register_verifier"]
