"""What an evaluation leaves in its directory, and reading it back for a rescore.

`write_outputs(result, out_dir)` writes:
- `samples.jsonl`: one row per (problem, sample) (`rlvr.evaluate.rows`);
- `eval_spec.json`: model, task, verifier, n, k, generation config, bootstrap settings: with samples.jsonl,
  all `rlvr eval --rescore` needs;
- `summary.json`: every metric under the names users know (`pass@1`, `maj@4`, `avg@8`, ...), stderr and
  95% intervals, the breakdown by meta field, n, k and the generation config;
- `summary.md`: the same as tables a person pastes into a report;
- `pass_at_k.png` (pass@k and maj@k against k, log-x, with the intervals) and `accuracy_by_length.png`
  (accuracy per length bucket of the completions that stopped, and of the truncated ones apart, with
  counts), unless `plots=False`.
Files are written whole (temporary file, then rename). No timing goes into summary.json, so a rescore of the
same rows reproduces it byte for byte. Plots use matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rlvr.evaluate.rows import SAMPLES_FILE, write_rows
from rlvr.evaluate.summary import EvalResult, EvalSpec

SPEC_FILE = "eval_spec.json"
SUMMARY_FILE = "summary.json"


def prepare_output_dir(out_dir: str | Path) -> Path:
    """`out_dir`, created and proven writable, before any generation is spent; else an error naming it."""
    d = Path(out_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".rlvr_write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"eval output directory {str(d)!r} is not writable: {e.strerror or e}") from None
    return d


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_spec(spec: EvalSpec, out_dir: Path) -> Path:
    _write(out_dir / SPEC_FILE, json.dumps(asdict(spec), indent=2) + "\n")
    return out_dir / SPEC_FILE


def read_spec(run_dir: str | Path) -> EvalSpec:
    path = Path(run_dir) / SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; is {str(run_dir)!r} the directory of an evaluation?")
    try:
        data = json.loads(path.read_text())
        return EvalSpec(**data)
    except (json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"{path}: not a valid evaluation spec ({e})") from None


def write_outputs(result: EvalResult, out_dir: str | Path, *, plots: bool = True) -> Path:
    d = prepare_output_dir(out_dir)
    write_rows(result.rows, d / SAMPLES_FILE)
    write_spec(result.spec, d)
    write_summary(result, d, plots=plots)
    return d


def write_summary(result: EvalResult, d: Path, *, plots: bool = True) -> None:
    """summary.json, summary.md and (if `plots`) the two plots: everything computed from the rows."""
    _write(d / SUMMARY_FILE, json.dumps(result.summary(), indent=2) + "\n")
    _write(d / "summary.md", markdown(result))
    if plots:
        plot_pass_at_k(result, d / "pass_at_k.png")
        plot_accuracy_by_length(result, d / "accuracy_by_length.png")


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _metric_names(result: EvalResult) -> list[str]:
    return [m for m in result.metrics if m.startswith(("pass@", "maj@", "avg@")) or m == "reward/mean"]


def markdown(result: EvalResult) -> str:
    s, m = result.spec, result.metrics
    g = s.generation
    lines = [
        f"# Evaluation: {s.model} on {s.task.get('name')}",
        "",
        f"{int(m['num_problems'])} problems x n={s.n} samples; verifier `{s.verifier.get('name')}`; "
        f"{g.get('backend')} generation, temperature {g.get('temperature')}, top_p {g.get('top_p')}, "
        f"max_new_tokens {g.get('max_new_tokens')}, seed {g.get('seed')}.",
        "",
        "| metric | value | ± stderr | 95% CI (bootstrap) | problems |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in _metric_names(result):
        u = result.uncertainty.get(name, {})
        ci = u.get("ci95")
        ci_text = f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "n/a"
        lines.append(f"| {name} | {_fmt(m[name])} | {_fmt(u.get('stderr'))} | {ci_text} | {u.get('num_problems', 0)} |")
    lines += [
        "",
        f"Verifier errors: {int(m['verifier_errors'])} samples (not counted as wrong; left out of every metric "
        f"above); problems with no scored sample: {int(m['problems_unscored'])}.",
    ]
    if result.first_error:
        lines.append(f"First verifier error: `{result.first_error[:200]}`")
    if "no_answer" in m:
        lines.append(f"No extracted answer: {_fmt(m['no_answer'])} of scored samples.")
    else:
        lines.append("No sample has an extracted answer (`info['pred']`): no maj@k.")
    lines += [
        f"Completion length (tokens): mean {_fmt(m['completion_len'], 1)}, p50 {_fmt(m['completion_len/p50'], 1)}, "
        f"p90 {_fmt(m['completion_len/p90'], 1)}, max {int(m['completion_len/max'])}; "
        f"truncated at max_new_tokens: {_fmt(m['truncated_frac'])}.",
        f"Intervals: two-level bootstrap ({s.bootstrap} resamples, seed {s.seed}); stderr over problems.",
    ]
    for fld, table in result.breakdown.items():
        cols = [c for c in _metric_names(result) if c != "reward/mean"]
        lines += ["", f"## By {fld}", "", f"| {fld} | problems | " + " | ".join(cols) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in cols) + " |"]  # fmt: skip
        for value, row in table.items():
            cells = [f"{_fmt(row.get(c))} ± {_fmt(row.get(f'{c}_stderr'))}" for c in cols]
            lines.append(f"| {value} | {int(row['num_problems'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _figure(width: float = 5.5, height: float = 3.6) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_pass_at_k(result: EvalResult, png: Path) -> Path:
    fig = _figure()
    ax = fig.subplots()
    plotted = False
    for prefix, color in (("pass@", "tab:blue"), ("maj@", "tab:orange")):
        pts = [(int(n.split("@")[1]), v, result.uncertainty.get(n, {}).get("ci95"))
               for n, v in result.metrics.items() if n.startswith(prefix) and v is not None]  # fmt: skip
        if not pts:
            continue
        ks, vals, cis = zip(*pts)
        lo = [v - ci[0] if ci else 0.0 for v, ci in zip(vals, cis)]
        hi = [ci[1] - v if ci else 0.0 for v, ci in zip(vals, cis)]
        ax.errorbar(ks, vals, yerr=[lo, hi], marker="o", capsize=3, color=color, label=f"{prefix}k (95% CI)")
        plotted = True
    ax.set_xscale("log", base=2)
    ks = result.spec.k
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if plotted:
        ax.legend(loc="best", fontsize="small")
    ax.set_title(f"{result.spec.model} on {result.spec.task.get('name')} (n={result.spec.n})", fontsize="medium")
    fig.savefig(png, dpi=100)
    return png


def _accuracy_points(rows: list, buckets: int) -> list[tuple[float, float, float, int]]:
    """(median length, accuracy, binomial stderr, count) per bucket of about equal counts."""
    lengths = np.array([r.num_tokens for r in rows])
    correct = np.array([r.correct for r in rows], dtype=float)
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, buckets + 1)))
    which = np.searchsorted(edges[1:-1], lengths, side="right")  # bucket index by the interior edges
    out = []
    for b in np.unique(which):
        sel = which == b
        acc = float(correct[sel].mean())
        out.append((float(np.median(lengths[sel])), acc, math.sqrt(acc * (1 - acc) / sel.sum()), int(sel.sum())))
    return out


def plot_accuracy_by_length(result: EvalResult, png: Path, buckets: int = 8) -> Path:
    """Accuracy of the scored samples that stopped, in up to `buckets` length buckets of about equal counts,
    and of those cut at max_new_tokens as one point of their own (often the bulk of a weak model's samples)."""
    scored = [r for r in result.rows if r.verifier_error is None]
    fig = _figure()
    ax = fig.subplots()
    stopped = [r for r in scored if r.finish_reason == "stop"]
    cut = [r for r in scored if r.finish_reason == "length"]
    for group, style, label in ((stopped, "o-", "stopped"), (cut, "X", "truncated (max_new_tokens)")):
        if not group:
            continue
        pts = _accuracy_points(group, buckets if group is stopped else 1)
        xs, ys, errs, counts = zip(*pts)
        ax.errorbar(xs, ys, yerr=errs, fmt=style, capsize=3, label=label)
        for x, y, c in zip(xs, ys, counts):
            ax.annotate(f"n={c}", (x, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize="x-small")
    if scored:
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel("completion length (tokens; median of each bucket)")
    ax.set_ylabel("accuracy (± binomial stderr)")
    ax.set_ylim(-0.02, 1.08)
    ax.grid(alpha=0.3)
    ax.set_title("accuracy by completion length", fontsize="medium")
    fig.savefig(png, dpi=100)
    return png
