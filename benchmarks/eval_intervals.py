"""How often do the evaluation's 95% intervals hold the true value? A coverage simulation.

Problems are drawn from a population whose per-problem success probability p follows Beta(a, b); each problem
gets n Bernoulli(p) samples. The true pass@k of the population is E[1 - (1 - p)^k] = 1 - B(a, b + k) / B(a, b)
(closed form), so every interval can be checked against it. Per trial (P problems, n samples each) three
95% intervals are built for avg@n (= pass@1) and pass@k:
- `stderr`: estimate ± 1.96 x the standard error over problems (`summary.json`'s `stderr`);
- `bootstrap-2`: rlvr's two-level bootstrap (problems, then samples; `rlvr.evaluate.bootstrap`), as shipped;
- `bootstrap-1`: a problems-only percentile bootstrap of the per-problem estimates (the baseline: what
  lighteval's bootstrap does), drawn with the same number of resamples.
maj@n is measured too: a wrong sample answers one of 3 wrong values at random, so votes split and tie; its
truth E[maj of n draws] is computed exactly per p (all vote outcomes) and averaged over 200,000 draws of p.
rlvr resamples maj@k over problems only (`bootstrap-2` is then problems-only too; see bootstrap.py).
Prints coverage (share of trials whose interval holds the truth; 0.95 is the target) and mean width.

    python benchmarks/eval_intervals.py                  # ~2 min on 2 cores
    python benchmarks/eval_intervals.py --trials 100     # quicker, noisier
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np

from rlvr.evaluate.bootstrap import Problem, two_level_bootstrap
from rlvr.evaluate.estimators import maj_at_k, mean_stderr, pass_at_k


def true_pass_at_k(a: float, b: float, k: int) -> float:
    log_ratio = math.lgamma(b + k) + math.lgamma(a + b) - math.lgamma(a + b + k) - math.lgamma(b)
    return 1.0 - math.exp(log_ratio)


WRONG = 3  # wrong answers a sample picks from, uniformly


def maj_truth(a: float, b: float, n: int, draws: int = 200_000) -> float:
    """E over p ~ Beta(a, b) of the expected vote score of n draws (correct w.p. p, else one of WRONG values)."""
    p = np.random.default_rng(123).beta(a, b, size=draws)
    total = np.zeros(draws)
    for counts in itertools.product(range(n + 1), repeat=WRONG + 1):  # (correct, wrong_1, ..., wrong_WRONG)
        if sum(counts) != n:
            continue
        top = max(counts)
        score = (counts[0] == top) / sum(c == top for c in counts)
        if score == 0:
            continue
        ways = math.factorial(n) / math.prod(math.factorial(c) for c in counts)
        total += ways * score * p ** counts[0] * ((1 - p) / WRONG) ** (n - counts[0])
    return float(total.mean())


def problems_only(values: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[float, float]:
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    lo, hi = np.percentile(values[idx].mean(1), [2.5, 97.5])
    return float(lo), float(hi)


def trial(a: float, b: float, P: int, n: int, k: int, resamples: int, seed: int) -> dict[str, dict[str, tuple]]:
    rng = np.random.default_rng(seed)
    p = rng.beta(a, b, size=P)
    correct = rng.random((P, n)) < p[:, None]  # (P, n)
    wrong = rng.integers(0, WRONG, size=(P, n))  # the wrong answer a wrong sample gives
    c = correct.sum(1)
    problems = [Problem(correct[i], correct[i].astype(float)) for i in range(P)]
    keys = [["ok" if correct[i, j] else f"w{wrong[i, j]}" for j in range(n)] for i in range(P)]
    stats = {"avg": ("avg", 0), "pass@k": ("pass", k), "maj@n": ("fixed", 0)}
    per_problem = {"avg": c / n, "pass@k": np.array([pass_at_k(n, int(ci), k) for ci in c]),
                   "maj@n": np.array([maj_at_k(keys[i], correct[i].tolist(), n) for i in range(P)])}  # fmt: skip
    estimates = {name: float(v.mean()) for name, v in per_problem.items()}
    fixed = {"maj@n": per_problem["maj@n"].tolist()}
    two = two_level_bootstrap(problems, stats, estimates, resamples=resamples, seed=seed, fixed=fixed)
    out = {}
    for name, vals in per_problem.items():
        mean, se = mean_stderr(vals.tolist())
        out[name] = {
            "stderr": (mean - 1.96 * se, mean + 1.96 * se),
            "bootstrap-2": two[name],
            "bootstrap-1": problems_only(vals, resamples, rng),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--problems", type=int, default=100)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"{args.trials} trials x {args.problems} problems, {args.resamples} resamples; target coverage 0.95")
    print(f"{'population':>14} {'n':>3} {'metric':>8} {'truth':>7} | " +
          " | ".join(f"{m:>11} cov  width" for m in ("stderr", "bootstrap-2", "bootstrap-1")))  # fmt: skip
    for a, b in ((0.5, 0.5), (2.0, 2.0), (0.3, 1.5)):
        for n in (1, 4, 16):
            k = n
            truth = {"avg": a / (a + b), "pass@k": true_pass_at_k(a, b, k), "maj@n": maj_truth(a, b, n)}
            hits = {(name, m): 0 for name in truth for m in ("stderr", "bootstrap-2", "bootstrap-1")}
            widths = {key: 0.0 for key in hits}
            for t in range(args.trials):
                res = trial(a, b, args.problems, n, k, args.resamples, seed=t)
                for name, methods in res.items():
                    for m, (lo, hi) in methods.items():
                        hits[(name, m)] += lo <= truth[name] <= hi
                        widths[(name, m)] += (hi - lo) / args.trials
            for name in ("avg", "pass@k", "maj@n") if n > 1 else ("avg",):
                label = {"avg": "avg@n", "pass@k": f"pass@{k}", "maj@n": f"maj@{n}"}[name]
                cells = " | ".join(f"{'':>11} {hits[(name, m)] / args.trials:.3f} {widths[(name, m)]:.3f}"
                                   for m in ("stderr", "bootstrap-2", "bootstrap-1"))  # fmt: skip
                print(f"  Beta({a},{b}) {n:>3} {label:>8} {truth[name]:7.3f} | {cells}")
    print(f"time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
