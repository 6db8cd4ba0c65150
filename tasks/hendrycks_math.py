"""Competition math (Hendrycks MATH, MATH-500): the row schema and the tasks.

A row has `problem` and a `solution` whose last \\boxed{...} holds the answer
(brace-balanced, so "\\boxed{\\frac{7}{12}}" gives "\\frac{7}{12}"); a row
with an `answer` field (MATH-500) uses it as the reference instead. `level`
and `type` (or MATH-500's `subject`) go to meta, with the solution (the SFT
target). Tasks: "hendrycks_math" (alias "math"; hub EleutherAI/hendrycks_math,
one config per subject, "all" joins the seven) and "math500" (hub
HuggingFaceH4/MATH-500, test split only); each takes `path` for a local file.

    >>> last_boxed("so $x=\\\\boxed{\\\\frac{1}{2}}$.")
    '\\\\frac{1}{2}'
"""

from __future__ import annotations

from itertools import chain
from typing import Iterator

from rlvr.types import Sample
from tasks.base import register_task
from tasks.gsm8k import MATH_TEMPLATE
from tasks.loading import DatasetTask, Row, load_task, require_str, source_rows

HENDRYCKS_HUB = "EleutherAI/hendrycks_math"
HENDRYCKS_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)
MATH500_HUB = "HuggingFaceH4/MATH-500"


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced; None if there is none.

    Also takes the brace-less form "\\boxed 5" found in a few MATH solutions (up to the next "$").
    """
    i, j = text.rfind("\\boxed"), text.rfind("\\fbox")
    if i < 0 and j < 0:
        return None
    rest = text[i + len("\\boxed") :] if i > j else text[j + len("\\fbox") :]
    if rest.startswith(" "):
        value = rest[1:].split("$")[0].strip()
        return value or None
    if not rest.startswith("{"):
        return None
    depth = 0
    for k, ch in enumerate(rest):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return rest[1:k]
    return None  # unbalanced braces


def math_row(row: Row, where: str, default_id: str) -> Sample:
    """A MATH (or MATH-500) row as a Sample (prompt = the problem)."""
    problem = require_str(row, "problem", where, "the problem statement as a string")
    solution = row.get("solution")
    if solution is not None and not isinstance(solution, str):
        raise ValueError(f"{where}: field 'solution' should be a string, got {type(solution).__name__}")
    if row.get("answer") is not None:
        reference = require_str(row, "answer", where, "the final answer as a string")
    elif solution is not None:
        boxed = last_boxed(solution)
        if boxed is None:
            raise ValueError(
                f"{where}: field 'solution' has no \\boxed{{...}} with balanced braces "
                f"(expected the final answer boxed, or an 'answer' field)"
            )
        reference = boxed
    else:
        raise ValueError(
            f"{where}: missing field 'solution' (expected a worked solution ending in \\boxed{{...}}, "
            f"or an 'answer' field); row has fields {sorted(row)}"
        )
    meta: dict = {"level": row.get("level"), "type": row.get("type", row.get("subject"))}
    if solution is not None:
        meta["solution"] = solution
    sid = next((str(row[k]) for k in ("id", "unique_id") if row.get(k) is not None), default_id)
    return Sample(id=sid, prompt=problem, reference=reference.strip(), meta=meta)


def _hendrycks_hub_rows(config: str, split: str, limit: int | None) -> Iterator[tuple[str, Row]]:
    if config != "all":
        return source_rows(None, HENDRYCKS_HUB, config, split, limit)
    # the hub holds one config per subject; "all" is the usual 7,500 / 5,000 train / test set
    return chain.from_iterable(source_rows(None, HENDRYCKS_HUB, c, split, None) for c in HENDRYCKS_SUBJECTS)


@register_task("math")
@register_task("hendrycks_math")
def hendrycks_math_task(
    split: str = "train",
    config: str = "all",
    path: str | None = None,
    limit: int | None = None,
    prompt_template: str = MATH_TEMPLATE,
    system_prompt: str | None = None,
) -> DatasetTask:
    """Hendrycks MATH from the hub (`config`: a subject or "all") or a local file (`path`)."""
    if path is None and config != "all" and config not in HENDRYCKS_SUBJECTS:
        raise ValueError(f"unknown MATH config {config!r}; expected 'all' or one of {', '.join(HENDRYCKS_SUBJECTS)}")
    if path is not None:
        rows = source_rows(path, None, None, split, limit)
    else:
        rows = _hendrycks_hub_rows(config, split, limit)
    return load_task(rows, math_row, "hendrycks_math", limit, prompt_template, system_prompt, "math")


@register_task("math500")
def math500_task(
    split: str = "test",
    path: str | None = None,
    limit: int | None = None,
    prompt_template: str = MATH_TEMPLATE,
    system_prompt: str | None = None,
) -> DatasetTask:
    """MATH-500 (the 500-problem test subset) from the hub or a local file (`path`)."""
    rows = source_rows(path, None if path is not None else MATH500_HUB, None, split, limit)
    return load_task(rows, math_row, "math500", limit, prompt_template, system_prompt, "math")
