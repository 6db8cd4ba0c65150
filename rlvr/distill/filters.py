"""Stage 2 of `rlvr distill`: composable, counted filters over trace rows, and the report of what each removed.

What it does: each filter is a `Filter(name, keep)` whose `keep(rows) -> list[bool]` decides row by row
(and may annotate the rows it reads: `verifier`, `dedup_key`, `decontam`); `apply_filters` runs them in the
configured order, counts rows in and out of each, and reports every problem left without a trace: which
filter removed its last one, and its traces' verdicts (a teacher that never solves a problem is a line in
the report, not a crash). The filters:
- `complete`: finish_reason == "stop" (a trace cut at max_new_tokens never reached its answer);
- `verified`: the task's verifier, run in the verifier pool, says correct; each row records which verifier
  and which version judged it, with its score and any error (an error is counted apart, never "wrong");
- `length`: num_tokens <= max_tokens;
- `dedup`: the first of the rows with the same problem and the same completion up to whitespace;
- `near_dedup`: within one problem's traces, a trace whose word n-grams overlap an earlier kept one's by
  Jaccard >= threshold is dropped (across problems, traces answer different questions);
- `decontaminate`: any word n-gram (default 8, lower-cased, of the problem text only, as open-r1 and s1)
  shared with a problem of the named evaluation task; a prompt shorter than n words is one gram;
- `keep_best` (distill.keep: best): per problem, the trace with the highest verifier score, then the fewest
  tokens, then the earliest.
What it does not: read or write files (`rlvr.distill.pipeline`), or start the verifier pool (the caller
passes verdicts in). Torch-free.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from verifiers.base import Verdict

Row = dict[str, Any]
_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass
class Filter:
    name: str
    keep: Callable[[list[Row]], list[bool]]


@dataclass
class FilterReport:
    steps: list[dict[str, Any]] = field(default_factory=list)  # {"filter", "rows_in", "rows_out", "removed"}
    prompts_in: int = 0
    prompts_out: int = 0
    prompts_without_trace: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "prompts_in": self.prompts_in, "prompts_out": self.prompts_out,
                "prompts_without_trace": self.prompts_without_trace}  # fmt: skip


def prompt_text(prompt: str | list[dict[str, str]]) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)


def words(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks ("12+7=" -> 12, +, 7, =)."""
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    """The n-grams of `tokens`; fewer than n tokens make one gram of all of them."""
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def complete(rows: list[Row]) -> list[bool]:
    return [r["finish_reason"] == "stop" for r in rows]


def length(max_tokens: int) -> Callable[[list[Row]], list[bool]]:
    return lambda rows: [r["num_tokens"] <= max_tokens for r in rows]


def dedup_key(row: Row) -> str:
    text = " ".join(prompt_text(row["prompt"]).split()) + "\0" + " ".join(row["completion"].split())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dedup(rows: list[Row]) -> list[bool]:
    seen: set[str] = set()
    out = []
    for r in rows:
        r["dedup_key"] = dedup_key(r)
        out.append(r["dedup_key"] not in seen)
        seen.add(r["dedup_key"])
    return out


def near_dedup(ngram: int, threshold: float) -> Callable[[list[Row]], list[bool]]:
    def keep(rows: list[Row]) -> list[bool]:
        kept: dict[str, list[set]] = {}  # sample_id -> gram sets of its kept traces
        out = []
        for r in rows:
            g = ngrams(words(r["completion"]), ngram)
            near = any(len(g & h) / max(len(g | h), 1) >= threshold for h in kept.get(r["sample_id"], []))
            if not near:
                kept.setdefault(r["sample_id"], []).append(g)
            out.append(not near)
        return out

    return keep


def decontaminate(eval_prompts: list[str], ngram: int, task_label: str) -> Callable[[list[Row]], list[bool]]:
    banned: set[tuple[str, ...]] = set()
    for p in eval_prompts:
        banned |= ngrams(words(p), ngram)

    def keep(rows: list[Row]) -> list[bool]:
        out = []
        for r in rows:
            hit = bool(ngrams(words(prompt_text(r["prompt"])), ngram) & banned)
            r["decontam"] = {"task": task_label, "ngram": ngram, "hit": hit}
            out.append(not hit)
        return out

    return keep


def verified(verify: Callable[[list[Row]], list[Verdict]], name: str, version: str) -> Callable[[list[Row]], list[bool]]:
    """Keep what the verifier judges correct; `verify(rows)` returns one verdict per row (the pool's work)."""

    def keep(rows: list[Row]) -> list[bool]:
        verdicts = verify(rows)
        for r, v in zip(rows, verdicts):
            r["verifier"] = {"name": name, "version": version, "score": float(v.score), "correct": bool(v.correct),
                             "error": v.error}  # fmt: skip
        return [v.correct and v.error is None for v in verdicts]

    return keep


def keep_best(rows: list[Row]) -> list[bool]:
    if any("verifier" not in r for r in rows):
        raise ValueError("distill.keep: best ranks traces by their verifier score; put 'verified' in distill.filters")

    def rank(i: int) -> tuple[float, int, int]:  # higher score, then fewer tokens, then earlier
        r = rows[i]
        return (r["verifier"]["score"], -r.get("num_tokens", len(r["completion"])), -i)

    best: dict[str, int] = {}
    for i, r in enumerate(rows):
        j = best.get(r["sample_id"])
        if j is None or rank(i) > rank(j):
            best[r["sample_id"]] = i
    chosen = set(best.values())
    return [i in chosen for i in range(len(rows))]


def _prompt_stats(rows: list[Row]) -> dict[str, dict[str, int]]:
    stats: dict[str, dict[str, int]] = {}
    for r in rows:
        s = stats.setdefault(r["sample_id"], {"traces": 0, "correct": 0, "wrong": 0, "verifier_errors": 0, "truncated": 0})
        s["traces"] += 1
        s["truncated"] += r.get("finish_reason") == "length"
        v = r.get("verifier")
        if v is not None:
            key = "verifier_errors" if v["error"] is not None else "correct" if v["correct"] else "wrong"
            s[key] += 1
    return stats


def apply_filters(rows: list[Row], filters: list[Filter]) -> tuple[list[Row], list[Row], FilterReport]:
    """(kept rows, rejected rows with `rejected_by`, report). Rows keep their order."""
    report = FilterReport(prompts_in=len({r["sample_id"] for r in rows}))
    last_removed_by: dict[str, str] = {}
    kept, rejected = list(rows), []
    for f in filters:
        flags = f.keep(kept)
        if len(flags) != len(kept):
            raise RuntimeError(f"filter {f.name!r} returned {len(flags)} decisions for {len(kept)} rows")
        out = [r for r, k in zip(kept, flags) if k]
        gone = [r for r, k in zip(kept, flags) if not k]
        still = {r["sample_id"] for r in out}
        for r in gone:
            r["rejected_by"] = f.name
            if r["sample_id"] not in still:
                last_removed_by[r["sample_id"]] = f.name
        report.steps.append({"filter": f.name, "rows_in": len(kept), "rows_out": len(out), "removed": len(gone)})
        rejected += gone
        kept = out
    final = {r["sample_id"] for r in kept}
    report.prompts_out = len(final)
    stats = _prompt_stats(rows)
    report.prompts_without_trace = [{"sample_id": sid, "removed_by": by, **stats[sid]}
                                    for sid, by in last_removed_by.items() if sid not in final]  # fmt: skip
    return kept, rejected, report


def report_markdown(report: FilterReport) -> str:
    lines = ["| filter | rows in | rows out | removed |", "| --- | --- | --- | --- |"]
    lines += [f"| {s['filter']} | {s['rows_in']} | {s['rows_out']} | {s['removed']} |" for s in report.steps]
    lines += ["", f"problems: {report.prompts_in} in, {report.prompts_out} with at least one kept trace, "
              f"{len(report.prompts_without_trace)} without"]  # fmt: skip
    if report.prompts_without_trace:
        lines += ["", "| problem | removed by | traces | correct | wrong | verifier errors | truncated |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        lines += [f"| {p['sample_id']} | {p['removed_by']} | {p['traces']} | {p['correct']} | {p['wrong']} | "
                  f"{p['verifier_errors']} | {p['truncated']} |" for p in report.prompts_without_trace]  # fmt: skip
    return "\n".join(lines) + "\n"
