"""The "code" verifier: run a completion's code against the sample's tests in the sandbox.

Extraction: the last fenced block (```python, ```py or bare ```) that defines
the sample's entry point, else the last fenced block, else an unclosed fence's
rest (a truncated answer), else the raw completion (a base model continuing the
prompt). When the code does not define the entry point itself, the sample's
`code_prefix` (HumanEval's prompt) is put in front; when it does, only the
prefix's import lines are.

Scoring: one sandbox run of program + `sample.tests`. All pass -> score 1.0,
correct. Otherwise, when the sample lists `test_units` (MBPP's asserts) and the
program itself ran, each unit is run on its own and `pass_fraction` is the
share that passed; the score is that fraction with `partial_credit=True`, else
0.0. A sandbox failure (not the program's) is a `Verdict` with `error` set.
Does not judge style, speed, or whether the code "cheats" the tests from
inside the same process (see `sandbox.runner` on what a pass proves).

    >>> from rlvr.types import Sample
    >>> s = Sample(id="0", prompt="", tests="assert add(2, 3) == 5")
    >>> v = CodeVerifier(timeout_s=5)("```python\\ndef add(a, b):\\n    return a + b\\n```", s)
    >>> (v.score, v.correct, v.info["status"])
    (1.0, True, 'passed')
"""

from __future__ import annotations

import re

import sandbox
from rlvr.types import Sample
from sandbox import Limits, SandboxUnavailable
from verifiers.base import Verdict, register_verifier

_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+-]*)[ \t]*\n(?P<code>.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(?P<code>.*)\Z", re.DOTALL)
_CODE_LANGS = ("", "python", "py", "python3")


def extract_code(completion: str, entry_point: str | None = None) -> str | None:
    """The code in a completion (see the module docstring); None when there is none."""
    blocks = [m.group("code") for m in _FENCE.finditer(completion) if m.group("lang").lower() in _CODE_LANGS]
    if blocks:
        if entry_point:
            defining = [b for b in blocks if _defines(b, entry_point)]
            if defining:
                return defining[-1]
        return blocks[-1]
    unclosed = _OPEN_FENCE.search(completion)
    if unclosed:
        return unclosed.group("code")
    return completion if completion.strip() else None


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def build_program(code: str, sample: Sample) -> str:
    """The program to test: the code, behind the prompt or the prompt's imports when the sample has one."""
    prefix = sample.meta.get("code_prefix", "")
    entry = sample.meta.get("entry_point")
    if not prefix:
        return code
    if entry and _defines(code, entry):
        imports = [ln for ln in prefix.splitlines() if re.match(r"(from\s+\S+\s+)?import\s", ln)]
        return "\n".join(imports) + ("\n" if imports else "") + code
    return prefix + code


@register_verifier("code")
class CodeVerifier:
    def __init__(self, timeout_s: float = 10.0, memory_mb: int = 1024, partial_credit: bool = False):
        self.limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb)
        self.partial_credit = partial_credit

    def __call__(self, completion: str, sample: Sample) -> Verdict:
        if not sample.tests:
            return Verdict.failure(f"sample {sample.id} has no tests", sample_id=sample.id)
        code = extract_code(completion, sample.meta.get("entry_point"))
        if code is None:
            return Verdict(0.0, False, info={"status": "no_code", "pass_fraction": 0.0})
        program = build_program(code, sample)
        try:
            full = sandbox.run(program, sample.tests, limits=self.limits)
            if full.status == "sandbox-error":
                return Verdict.failure(f"sandbox: {full.detail}", status=full.status)
            units: list[str] = sample.meta.get("test_units") or []
            fraction, passed_units = (1.0, len(units)) if full.passed else (0.0, 0)
            if not full.passed and len(units) > 1 and full.status == "failed":
                setup = sample.meta.get("test_setup", "")
                results = [sandbox.run(program, f"{setup}\n{unit}", limits=self.limits) for unit in units]
                if any(r.status == "sandbox-error" for r in results):
                    return Verdict.failure("sandbox: a test unit could not be run", status="sandbox-error")
                passed_units = sum(r.passed for r in results)
                fraction = passed_units / len(units)
        except SandboxUnavailable as e:
            return Verdict.failure(str(e), status="sandbox-error")
        score = fraction if self.partial_credit else float(full.passed)
        info = {"status": full.status, "detail": full.detail, "pass_fraction": fraction,
                "duration_s": full.duration_s}
        if units:
            info.update(tests_passed=passed_units, tests_total=len(units))
        return Verdict(score, full.passed, info=info)
