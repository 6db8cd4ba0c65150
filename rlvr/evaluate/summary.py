"""From the rows of an evaluation to its numbers: `summarize(rows, spec) -> EvalResult`.

Per problem, the samples a verifier could judge (an errored sample is counted in `verifier_errors` and left
out of every other metric: an error is not a wrong answer) give pass@k for every k in the spec, maj@k for
k >= 2, avg@n (= `accuracy`, the mean over problems of the fraction correct), the mean reward and the
fraction without an extracted answer (`no_answer`). Each is averaged over the problems it applies to (pass@k
and maj@k need k scored samples), with its standard error over problems and a 95% two-level bootstrap
interval (`rlvr.evaluate.bootstrap`). Completion lengths (mean, p50, p90, max) and the truncation rate are
over all samples. Each field of `spec.breakdown` found in the problems' `meta` (level, subject, ...) gets
the same point metrics per value.

Answers are grouped for maj@k as follows: every correct answer is one group (each equals the reference, so
all equal each other, however written: `\\frac12`, `0.5`, `1/2`), and a wrong answer is grouped with the
wrong answers that normalize to the same text (`verifiers.normalize`: LaTeX wrappers, spacing, units and
percent flags). Two equal wrong answers written differently therefore split their votes, which can only
raise maj@k, never lower it; peers (lighteval, NeMo-Skills) split correct answers written differently too.
Without any extracted answer (verifiers that do not report `info["pred"]`, e.g. code) there is no maj@k.

`summarize` is a pure function of its inputs: the same rows and spec give the same summary, bit for bit,
which is what `rlvr eval --rescore` relies on. It does not generate, verify, or write files.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rlvr.evaluate.bootstrap import Problem, Stat, two_level_bootstrap
from rlvr.evaluate.estimators import across_runs_std, maj_at_k, mean_stderr, pass_at_k
from rlvr.evaluate.rows import EvalRow
from verifiers.normalize import normalize

CORRECT_KEY = "<correct>"


@dataclass
class EvalSpec:
    """What was evaluated and how: everything `summarize` needs besides the rows (saved as eval_spec.json)."""

    model: str
    task: dict[str, Any]  # {"name", "args"}
    verifier: dict[str, Any]  # {"name", "args"}
    n: int  # samples per problem
    k: list[int]  # the k of pass@k and maj@k
    generation: dict[str, Any]  # backend, temperature, top_p, top_k, max_new_tokens, stop, seed
    bootstrap: int = 1000  # resamples of the two-level bootstrap (0 = no interval)
    seed: int = 0  # the bootstrap's seed
    breakdown: list[str] = field(default_factory=list)  # meta fields to break the metrics down by


def check_spec(spec: EvalSpec) -> None:
    """Errors that name the config keys: k outside 1..n, greedy sampling asked for several samples."""
    n = spec.n
    if n < 1:
        raise ValueError(f"eval.samples_per_problem={n}: need at least 1")
    for k in spec.k:
        if k > n:
            raise ValueError(f"eval.k: k={k} is larger than n={n} (eval.samples_per_problem); "
                             f"pass@{k} needs at least {k} samples per problem")  # fmt: skip
        if k < 1:
            raise ValueError(f"eval.k: k={k} must be at least 1")
    if n > 1 and spec.generation.get("temperature", 1.0) <= 0:
        raise ValueError(f"eval.samples_per_problem={n} with eval.temperature=0 (greedy): the {n} samples of a "
                         "problem would be identical; set eval.temperature > 0 or samples_per_problem: 1")  # fmt: skip
    if spec.bootstrap < 0:
        raise ValueError(f"eval.bootstrap={spec.bootstrap}: the number of resamples must be >= 0 (0 = off)")


@dataclass
class EvalResult:
    spec: EvalSpec
    rows: list[EvalRow]
    metrics: dict[str, float | None]  # None: no problem could be scored for it
    uncertainty: dict[str, dict[str, Any]]  # metric -> {"stderr", "ci95": [low, high], "num_problems", ...}
    breakdown: dict[str, dict[str, dict[str, float | None]]]  # meta field -> value -> metrics
    first_error: str | None = None  # the first verifier error, verbatim

    def log_metrics(self) -> dict[str, float]:
        """Flat numbers for a metrics logger (trainers log them under `eval/`); None becomes NaN."""
        out = {k: math.nan if v is None else float(v) for k, v in self.metrics.items()}
        for name, u in self.uncertainty.items():
            if name in out and "stderr" in u:
                out[f"{name}_stderr"] = math.nan if u["stderr"] is None else u["stderr"]
        return out

    def summary(self) -> dict[str, Any]:
        """The content of summary.json."""
        spec = asdict(self.spec)
        return {
            "model": spec["model"], "task": spec["task"], "verifier": spec["verifier"], "n": spec["n"],
            "k": spec["k"], "generation": spec["generation"], "metrics": self.metrics,
            "uncertainty": self.uncertainty, "breakdown": self.breakdown,
            "bootstrap": {"resamples": spec["bootstrap"], "seed": spec["seed"],
                          "method": "two-level (problems, then samples within each problem), percentile interval "
                                    "shifted by the bootstrap's bias estimate"},
            "answers_grouped_by": "correct answers: one group; wrong answers: normalized text (verifiers.normalize)",
            "first_verifier_error": self.first_error,
        }  # fmt: skip


def answer_key(row: EvalRow) -> str | None:
    """The maj@k group of a sample's answer (module doc); None = no answer."""
    if row.extracted_answer is None:
        return None
    return CORRECT_KEY if row.correct else _wrong_key(row.extracted_answer)


@functools.lru_cache(maxsize=65536)
def _wrong_key(answer: str) -> str:
    norm = normalize(answer)  # regular expressions only (no sympy): safe in this process
    return json.dumps([re.sub(r"\s+", "", norm.text).lower(), norm.percent, norm.degrees, norm.unit, norm.choice])


def group_by_problem(rows: list[EvalRow], n: int) -> dict[str, list[EvalRow]]:
    """Rows per problem id, in order of first appearance; each problem must hold samples 0..n-1 exactly once."""
    by: dict[str, list[EvalRow]] = {}
    for r in rows:
        by.setdefault(r.problem_id, []).append(r)
    for pid, rs in by.items():
        got = sorted(r.sample_index for r in rs)
        if got != list(range(n)):
            raise ValueError(f"problem {pid!r}: sample indices {got[:12]}{'...' if len(got) > 12 else ''}, "
                             f"expected 0..{n - 1} once each (n={n})")  # fmt: skip
        rs.sort(key=lambda r: r.sample_index)
    return by


def _problem(rows: list[EvalRow]) -> tuple[Problem, list[str | None]]:
    """The scored samples of a problem as arrays, and their answer keys."""
    valid = [r for r in rows if r.verifier_error is None]
    prob = Problem(np.array([r.correct for r in valid], dtype=bool), np.array([r.score for r in valid], dtype=float))
    return prob, [answer_key(r) for r in valid]


def _stats(spec: EvalSpec, with_answers: bool) -> dict[str, Stat]:
    """Metric name -> what it computes per problem, in the order the summary lists them."""
    stats: dict[str, Stat] = {f"pass@{k}": ("pass", k) for k in spec.k}
    if with_answers:
        stats.update({f"maj@{k}": ("maj", k) for k in spec.k if k >= 2})
    stats[f"avg@{spec.n}"] = ("avg", 0)
    stats["reward/mean"] = ("reward", 0)
    return stats


def _value(p: Problem, keys: list[str | None], stat: Stat) -> float | None:
    kind, k = stat
    if p.n == 0 or (kind in ("pass", "maj") and p.n < k):
        return None
    c = int(p.correct.sum())
    if kind == "pass":
        return pass_at_k(p.n, c, k)
    if kind == "maj":
        return maj_at_k(keys, p.correct.tolist(), k)
    if kind == "avg":
        return c / p.n
    return float(p.score.mean())


def _per_problem(problems: list[tuple[Problem, list[str | None]]], stats: dict[str, Stat]) -> dict[str, list]:
    """name -> each problem's value (None where the metric does not apply), computed once for point,
    bootstrap and breakdown (maj@k of 64 samples is a dynamic programme per problem)."""
    return {name: [_value(p, keys, stat) for p, keys in problems] for name, stat in stats.items()}


def _point(values: dict[str, list], rows: list[int]) -> dict[str, tuple]:
    """name -> (mean, stderr, problems) over `rows` (problem indices) where it applies; (None, None, 0) if none."""
    out = {}
    for name, per in values.items():
        vals = [v for i in rows if (v := per[i]) is not None]
        out[name] = (*mean_stderr(vals), len(vals)) if vals else (None, None, 0)
    return out


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _breakdown(spec: EvalSpec, by_problem: dict[str, list[EvalRow]], per_problem: dict[str, list]) -> dict[str, dict]:
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    metas = [rows[0].meta for rows in by_problem.values()]
    for fld in spec.breakdown:
        if not any(fld in m for m in metas):
            continue
        groups: dict[str, list[int]] = {}  # value of the field -> problem indices
        for i, m in enumerate(metas):
            v = m.get(fld, "(missing)")
            groups.setdefault(v if isinstance(v, str) else json.dumps(v, default=repr), []).append(i)
        table = {}
        for value in sorted(groups):
            point = _point(per_problem, groups[value])
            row: dict[str, float | None] = {"num_problems": len(groups[value])}
            for name, (mean, se, _) in point.items():
                row[name], row[f"{name}_stderr"] = mean, _finite(se)
            table[value] = row
        out[fld] = table
    return out


def summarize(rows: list[EvalRow], spec: EvalSpec) -> EvalResult:
    check_spec(spec)
    by_problem = group_by_problem(rows, spec.n)
    problems = [_problem(rs) for rs in by_problem.values()]
    with_answers = any(r.extracted_answer is not None for r in rows if r.verifier_error is None)
    stats = _stats(spec, with_answers)
    per_problem = _per_problem(problems, stats)
    point = _point(per_problem, list(range(len(problems))))
    metrics: dict[str, float | None] = {name: mean for name, (mean, _, _) in point.items()}
    avg = f"avg@{spec.n}"
    metrics["accuracy"] = metrics[avg]  # the name trainers have always logged: mean correctness = avg@n
    if with_answers:
        no_answer = [sum(k is None for k in keys) / p.n for p, keys in problems if p.n > 0]
        metrics["no_answer"] = sum(no_answer) / len(no_answer) if no_answer else None
    errors = [r.verifier_error for r in rows if r.verifier_error is not None]
    lengths = np.array([r.num_tokens for r in rows], dtype=float)
    metrics.update({
        "verifier_errors": float(len(errors)),
        "problems_unscored": float(sum(p.n == 0 for p, _ in problems)),
        "num_problems": float(len(problems)),
        "num_samples": float(len(rows)),
        "completion_len": float(lengths.mean()),
        "completion_len/p50": float(np.percentile(lengths, 50)),
        "completion_len/p90": float(np.percentile(lengths, 90)),
        "completion_len/max": float(lengths.max()),
        "truncated_frac": sum(r.finish_reason == "length" for r in rows) / len(rows),
    })  # fmt: skip

    scored = [i for i, (p, _) in enumerate(problems) if p.n > 0]
    # maj@k keeps each problem's exact value and is resampled over problems only (see rlvr.evaluate.bootstrap)
    boot = {name: ("fixed", 0) if stat[0] == "maj" else stat for name, stat in stats.items()}
    fixed = {name: [per_problem[name][i] for i in scored] for name, stat in stats.items() if stat[0] == "maj"}
    intervals = two_level_bootstrap([problems[i][0] for i in scored], boot, metrics, resamples=spec.bootstrap,
                                    seed=spec.seed, fixed=fixed)  # fmt: skip
    uncertainty: dict[str, dict[str, Any]] = {}
    for name, (mean, se, m) in point.items():
        if mean is None:
            continue
        u: dict[str, Any] = {"stderr": _finite(se), "num_problems": m}
        if name in intervals:
            u["ci95"] = list(intervals[name])
        uncertainty[name] = u
    if avg in uncertainty:
        if spec.n >= 2 and all(p.n == spec.n for p, _ in problems):
            std, se = across_runs_std([p.correct.astype(float).tolist() for p, _ in problems])
            uncertainty[avg].update(std_dev_across_runs=std, std_err_across_runs=se)
        uncertainty["accuracy"] = uncertainty[avg]
    return EvalResult(spec, rows, metrics, uncertainty, _breakdown(spec, by_problem, per_problem),
                      errors[0] if errors else None)  # fmt: skip
