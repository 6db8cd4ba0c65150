"""What the intervals cost: `summarize` with the two-level bootstrap against the same call without it.

Synthetic rows (no model, no verifier) at three sizes: the demo's periodic evaluation (300 problems x 4
samples), MATH-500 with n=16, and a wide maj@k case (500 problems x 64 samples, ~20 distinct answers per
problem). Correctness and answers are drawn from a fixed seed. Each size is summarized with
`eval.bootstrap` 1000 and 0 (the baseline), alternating, caches cleared before each call, best of
`--repeats`; prints seconds and the ratio. The baseline holds the exact maj@k of every problem (a dynamic
programme each), which dominates at n=64.

    python benchmarks/eval_summary_cost.py
"""

from __future__ import annotations

import argparse
import random
import time

from rlvr.evaluate.rows import EvalRow
from rlvr.evaluate.summary import EvalSpec, summarize


def rows_for(problems: int, n: int, answers: int, seed: int = 0) -> list[EvalRow]:
    rng = random.Random(seed)
    rows = []
    for i in range(problems):
        p = rng.betavariate(0.5, 0.5)
        for j in range(n):
            ok = rng.random() < p
            ans = "42" if ok else (None if rng.random() < 0.1 else str(rng.randrange(answers)))
            rows.append(EvalRow(f"p{i}", j, "h", "", ans, ok, float(ok), None, rng.randint(10, 500), "stop", 0, "42"))
    return rows


def spec(n: int, bootstrap: int) -> EvalSpec:
    gen = {"backend": "hf", "temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 512, "stop": [], "seed": 0}
    return EvalSpec("m", {"name": "t", "args": {}}, {"name": "math", "args": {}}, n, [], gen, bootstrap, 0, [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from rlvr.evaluate.bootstrap import _pass_table
    from rlvr.evaluate.estimators import default_ks, maj_at_k_groups
    from rlvr.evaluate.summary import _wrong_key

    for label, P, n, answers in (("demo eval", 300, 4, 5), ("MATH-500 n=16", 500, 16, 8), ("wide maj", 500, 64, 20)):
        rows = rows_for(P, n, answers)
        best = {1000: float("inf"), 0: float("inf")}
        for _ in range(args.repeats):
            for b in (1000, 0):
                s = spec(n, b)
                s.k = default_ks(n)
                for cached in (maj_at_k_groups, _wrong_key, _pass_table):  # each call starts cold
                    cached.cache_clear()
                t0 = time.perf_counter()
                summarize(rows, s)
                best[b] = min(best[b], time.perf_counter() - t0)
        print(f"{label:>14}: {P} problems x {n}: summarize {best[0]:.2f} s without the bootstrap, "
              f"{best[1000]:.2f} s with 1000 resamples ({best[1000] / best[0]:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
