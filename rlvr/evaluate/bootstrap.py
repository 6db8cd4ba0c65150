"""A 95% interval from a two-level bootstrap: problems, then samples within each problem, with a fixed seed.

Each of `resamples` replicates draws the problems with replacement (level 1), then, for every problem drawn,
its n samples with replacement (level 2, drawn afresh each time a problem is drawn), and recomputes every
metric on that replicate. Level 2 draws the count of correct samples directly, Binomial(n, c/n), which is
what n draws with replacement give (the cost does not grow with n); a mean reward that is not the
correctness draws the samples. All metrics share the draws, so their intervals are consistent with each other
(pass@2 <= pass@4 in every replicate), and the draws depend only on the seed and the problems, so a rescore
reproduces the interval bit for bit.

Bias: under with-replacement sampling within a problem, the bootstrap world's pass@k is `1 - (1 - c/n)^k`,
below the unbiased estimate the summary reports (5 samples, 2 correct, k=2: 0.64 against 0.7; the same flaw
as verl's `best@k`). For pass@k with k > 1 the percentiles are therefore shifted by the bootstrap's own bias
estimate, `mean(replicates) - estimate` (Efron & Tibshirani, ch. 10), so the interval is centred on the
number reported. avg@n and the mean reward are unshifted (their bootstrap is unbiased; a shift would only add
Monte Carlo noise). Probabilities are clipped to [0, 1].

maj@k is resampled at level 1 only ("fixed" statistics: each problem keeps its exact maj@k): an exact maj@k
for every resampled multiset of answers costs one dynamic programme per distinct multiset, and there are
~2,800 of them for 500 problems x 16 samples but ~225,000 for 500 x 64. Level 1 alone is unbiased for a mean
of per-problem values and already carries their sampling noise (`benchmarks/eval_intervals.py`).

Coverage: resampling samples on top of problems counts the within-problem noise twice (the spread of the
per-problem scores already holds it), so the interval is conservative; measured coverage is in docs/eval.md.

What it does not do: point estimates (`rlvr.evaluate.summary`), standard errors (`estimators.mean_stderr`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from rlvr.evaluate.estimators import pass_at_k


@dataclass
class Problem:
    """The scored samples of one problem (verifier errors left out), as arrays."""

    correct: np.ndarray  # (n,) bool
    score: np.ndarray  # (n,) float

    @property
    def n(self) -> int:
        return len(self.correct)


# what a metric computes on one problem's resampled samples: ("avg" | "reward" | "pass", k), or ("fixed", 0)
# for a per-problem value given in `fixed` and resampled at level 1 only
Stat = tuple[str, int]


@functools.lru_cache(maxsize=1024)
def _pass_table(n: int, k: int) -> np.ndarray:
    """(n + 1,) pass@k for c = 0..n correct samples."""
    return np.array([pass_at_k(n, c, k) for c in range(n + 1)])


def _values(csum: np.ndarray, n: int, stat: Stat) -> np.ndarray:
    """The statistic on each redraw from `csum` (m,), the correct samples among the n redrawn."""
    kind, k = stat
    if kind == "avg":
        return csum / n
    if kind == "pass":
        return _pass_table(n, k)[csum]
    raise ValueError(f"bootstrap: unknown statistic {kind!r}")


def two_level_bootstrap(
    problems: list[Problem],
    stats: dict[str, Stat],
    estimates: dict[str, float | None],
    *,
    resamples: int,
    seed: int,
    fixed: dict[str, list[float | None]] | None = None,
) -> dict[str, tuple[float, float]]:
    """{metric: (low, high)} 95% intervals for each metric in `stats`, centred on `estimates` (module doc).

    `fixed[name][i]` is problem i's value of a ("fixed", 0) statistic, None where it does not apply. A metric
    is computed on the problems it applies to (pass@k on those with at least k scored samples); replicates
    that draw none of them are left out."""
    fixed = fixed or {}
    if not problems or resamples < 1:
        return {}
    rng = np.random.Generator(np.random.PCG64(seed))
    P, B = len(problems), resamples
    pick = rng.integers(0, P, size=B * P)  # level 1: slot s belongs to replicate s // P and holds problem pick[s]
    replicate = np.arange(B * P) // P
    sums = {name: np.zeros(B) for name in stats}
    dens = {name: np.zeros(B) for name in stats}

    def add(name: str, slots: np.ndarray, vals: np.ndarray) -> None:
        sums[name] += np.bincount(replicate[slots], weights=vals, minlength=B)
        dens[name] += np.bincount(replicate[slots], minlength=B)

    for name, stat in stats.items():
        if stat[0] == "fixed":  # level 1 only: each draw of a problem brings its own value
            per = np.array([np.nan if v is None else v for v in fixed[name]])[pick]  # (B * P,)
            ok = np.flatnonzero(~np.isnan(per))
            add(name, ok, per[ok])
    sizes = np.array([p.n for p in problems])
    for n in np.unique(sizes):  # level 2, for all problems of n scored samples at once
        n = int(n)
        members = np.flatnonzero(sizes == n)
        local = np.full(P, -1)
        local[members] = np.arange(len(members))
        slots = np.flatnonzero(local[pick] >= 0)
        rows = local[pick[slots]]  # (m,) which of the members each slot redraws
        correct = np.stack([problems[i].correct for i in members])  # (P_n, n)
        # the correct count of n draws with replacement is Binomial(n, c/n): no need to draw the samples
        csum = rng.binomial(n, correct.mean(1)[rows])  # (m,)
        for name, stat in stats.items():
            if stat[0] in ("avg", "pass") and not (stat[0] == "pass" and n < stat[1]):
                add(name, slots, _values(csum, n, stat))
        if any(stat[0] == "reward" for stat in stats.values()):
            score = np.stack([problems[i].score for i in members])  # (P_n, n)
            if np.array_equal(score, correct.astype(float)):  # score is correctness: the same redraws
                reward = csum / n
            else:
                reward = np.concatenate([
                    score[rows[part][:, None], rng.integers(0, n, size=(len(part), n))].mean(1)
                    for part in np.array_split(np.arange(len(slots)), max(1, len(slots) * n // 2_000_000))
                ])  # fmt: skip
            for name, stat in stats.items():
                if stat[0] == "reward":
                    add(name, slots, reward)
    out = {}
    for name, stat in stats.items():
        ok = dens[name] > 0
        if not ok.any() or estimates.get(name) is None:
            continue
        reps = sums[name][ok] / dens[name][ok]  # (B',) the metric in each replicate
        biased = stat[0] == "pass" and stat[1] > 1
        bias = float(reps.mean()) - estimates[name] if biased else 0.0
        lo, hi = (float(q) - bias for q in np.percentile(reps, [2.5, 97.5]))
        if stat[0] != "reward":
            lo, hi = max(lo, 0.0), min(hi, 1.0)
        out[name] = (lo, hi)
    return out
