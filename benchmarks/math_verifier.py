"""Benchmark: our `math` verifier against math-verify on a labelled set, in one run.

Both run in 2 worker processes over `benchmarks/data/math_*.jsonl`
(completion, gold, label triples labelled by hand rules: `math_labelled` covers
every answer form the verifier supports, false-positive traps and blow-up
inputs; `math_heldout` is realistic MATH/GSM8K-style completions written later
as a check on generalisation; `math_round2` the rules of issue #16, written
before they were). `--peers` runs `benchmarks/data/peer_cases.jsonl` instead:
the cases of other projects' grader test suites (Math-Verify, lighteval,
NeMo-Skills, NeMo-RL, open-instruct, TRL, open-r1), each labelled with the
verdict its authors expect and citing its source; there accuracy is agreement,
a false positive is a case we grade right that the peer grades wrong, and the
rows that do not apply (a peer option, another language) are skipped. Ours goes
through the real `VerifierPool(num_workers=2)`; math-verify through a
`ProcessPoolExecutor(2)` (its own `signal.alarm` timeouts work there because
tasks run on the workers' main threads). Printed: accuracy, false-positive
rate (wrong answers scored correct / all wrong) and count, false-negative rate
(right answers scored wrong / all right), errors, items/s, and p50/p99/max
per-item latency measured inside the workers.

    python benchmarks/math_verifier.py [--data benchmarks/data/math_labelled.jsonl ...] [--show 10]
    python benchmarks/math_verifier.py --peers [--show 20]
    python benchmarks/math_verifier.py --bombs     # inputs shaped to blow up, timed in process

Needs `pip install math-verify` (the `bench` extra) for the baseline column.
"""

from __future__ import annotations

import os
import sys

# benchmarks/sandbox.py is named like the package: keep this folder off the import path (workers inherit it)
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _HERE]

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rlvr.types import Sample
from verifiers.pool import VerifierPool

DATA = sorted((Path(__file__).parent / "data").glob("math_*.jsonl"))
PEERS = Path(__file__).parent / "data" / "peer_cases.jsonl"


def load(paths: list[Path]) -> list[dict]:
    """The labelled rows that apply (a row with `"applies": false` documents a case we do not grade)."""
    rows = []
    for path in paths:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            r = json.loads(line)
            for key, typ in (("completion", str), ("gold", str), ("label", bool), ("applies", bool)):
                if not isinstance(r.get(key, True), typ):
                    raise ValueError(f"{path}:{n}: field {key!r} must be {typ.__name__}, got {r.get(key)!r}")
            if r.get("applies", True):
                rows.append(r)
    return rows


def _math_verify_one(args: tuple[str, str]) -> tuple[bool, bool, float]:
    """(correct, error, seconds) for one item through math-verify, as its README does it."""
    from math_verify import parse, verify

    completion, gold = args
    t = time.perf_counter()
    try:
        ok = bool(verify(parse("$" + gold + "$"), parse(completion)))
        err = False
    except Exception:  # math-verify raises on some inputs (and on its own timeouts): count as an error
        ok, err = False, True
    return ok, err, time.perf_counter() - t


def _warm(_: int) -> None:
    import logging

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # its timeouts are counted here, not printed

    verify(parse("$\\frac{1}{2}$"), parse("\\boxed{0.5}"))


def run_ours(rows: list[dict], workers: int) -> tuple[list[bool], list[bool], list[float], float]:
    samples = [Sample(id=str(r.get("id", k)), prompt="", reference=r["gold"]) for k, r in enumerate(rows)]
    with VerifierPool(num_workers=workers, timeout_s=5.0) as pool:
        pool.verify_batch("math", {}, ["\\boxed{1}"] * workers * 2, samples[: workers * 2])  # wait until started
        t = time.perf_counter()
        verdicts = pool.verify_batch("math", {}, [r["completion"] for r in rows], samples)
        wall = time.perf_counter() - t
    lat = [v.info.get("verify_s", 5.0) for v in verdicts]  # a timeout has no inner time: count the limit
    return [v.correct for v in verdicts], [v.error is not None for v in verdicts], lat, wall


def run_math_verify(rows: list[dict], workers: int) -> tuple[list[bool], list[bool], list[float], float]:
    with ProcessPoolExecutor(workers) as ex:
        list(ex.map(_warm, range(workers * 2)))
        t = time.perf_counter()
        out = list(ex.map(_math_verify_one, [(r["completion"], r["gold"]) for r in rows]))
        wall = time.perf_counter() - t
    return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out], wall


def report(name: str, rows: list[dict], pred: list[bool], err: list[bool], lat: list[float], wall: float) -> dict:
    labels = [r["label"] for r in rows]
    pos, neg = sum(labels), len(labels) - sum(labels)
    fp = sum(p and not y for p, y in zip(pred, labels))
    fn = sum(y and not p for p, y in zip(pred, labels))
    lat_ms = sorted(x * 1000 for x in lat)
    m = {
        "accuracy": sum(p == y for p, y in zip(pred, labels)) / len(rows),
        "fp_rate": fp / max(neg, 1),
        "fp": fp,
        "fn_rate": fn / max(pos, 1),
        "errors": sum(err),
        "items_per_s": len(rows) / wall,
        "p50_ms": lat_ms[len(lat_ms) // 2],
        "p99_ms": lat_ms[min(len(lat_ms) - 1, int(0.99 * len(lat_ms)))],
        "max_ms": lat_ms[-1],
    }
    print(
        f"{name:<12} acc {m['accuracy']:.3f}  FP {m['fp_rate']:.1%} ({fp})  FN {m['fn_rate']:.1%}  errors "
        f"{m['errors']:>3}  {m['items_per_s']:8.1f} items/s  p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:7.2f} ms  "
        f"max {m['max_ms']:7.1f} ms"
    )
    return m


# shaped to blow up: each must be refused (or compared) fast and score 0
BOMBS = [
    "99999!!", "99999!", "(99999!)!", "(400!)!", "1000!!", "10^{1000}!", "10^{10^{10}}", "2^{2^{2^{2^{2}}}}", "9^{9^{9}}",
    "e^{e^{e^{10}}}", "x^{x^{x^{x}}}", r"\sin(10^{300})", "10^{1000}", r"\binom{10000}{5000}^{100}",
    r"\sqrt{" * 35 + "2" + "}" * 35, "(" * 38 + "1" + ")" * 38, r"\frac{1}{" * 30 + "2" + "}" * 30, "(10^{7})!",
    r"\sum_{k=1}^{10^{9}} k", r"\sum_{k=1}^{200} k^{k}", r"\sum_{k=1}^{100} k^{k^{k}}",
    r"(1+\frac{1}{10^{100}})^{10^{100}}", r"\log(10^{1000}!)",
    "(x+y+z)^{200}", r"\sin^{1000} x", ",".join(map(str, range(49))),
    ",".join(f"({a},{b})" for a in range(1, 4) for b in range(1, 10)),
    r"\begin{pmatrix}1&2\\3&4\end{pmatrix}" * 6, r"|x| > 10^{300}", r"\mathbb{R} \setminus \{" + ",".join(map(str, range(20))) + r"\}",
]  # fmt: skip
BOMB_GOLDS = ["1", "x", "\\frac{1}{2}", "x^2+1", "(1,2)", "\\{1,2,3\\}", "[0,1)"]


def run_bombs() -> None:
    """Every bomb against every gold, and as the gold, in this process: the slowest calls."""
    from verifiers.math_equiv import math_verifier, warm_up

    warm_up()  # as a pool worker does before it says it is ready
    calls = [(f"\\boxed{{{b}}}", g) for b in BOMBS for g in BOMB_GOLDS] + [("\\boxed{1}", b) for b in BOMBS]
    timed = []
    for completion, gold in calls:
        t = time.perf_counter()
        v = math_verifier(completion, Sample(id="bomb", prompt="", reference=gold))
        timed.append((time.perf_counter() - t, completion[:50], gold[:20], v.correct))
    timed.sort(reverse=True)
    print(f"{len(calls)} calls in process; scored correct: {sum(t[3] for t in timed)}; the slowest:")
    for dt, completion, gold, ok in timed[:5]:
        print(f"  {dt * 1000:7.1f} ms  {completion!r} gold {gold!r} correct={ok}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, nargs="+", default=DATA, help="labelled jsonl files (default: all math_*.jsonl)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--peers", action="store_true", help=f"agreement with other projects' tests ({PEERS.name})")
    ap.add_argument("--bombs", action="store_true", help="time inputs shaped to blow up, in process, and stop")
    ap.add_argument("--show", type=int, default=0, help="print up to N disagreements with the labels per verifier")
    a = ap.parse_args()
    if a.bombs:
        return run_bombs()
    paths = [PEERS] if a.peers else a.data
    rows = load(paths)
    names = ", ".join(p.name for p in paths)
    print(f"{len(rows)} labelled items ({sum(r['label'] for r in rows)} correct) from {names}; {a.workers} workers each")
    results = {"ours": run_ours(rows, a.workers)}
    try:
        results["math-verify"] = run_math_verify(rows, a.workers)
    except ImportError:
        print("math-verify is not installed (pip install math-verify): baseline skipped")
    metrics = {name: report(name, rows, *res) for name, res in results.items()}
    if "math-verify" in metrics:
        o, b = metrics["ours"], metrics["math-verify"]
        print(f"throughput ratio ours / math-verify: {o['items_per_s'] / b['items_per_s']:.1f}x")
    for name, (pred, err, _, _) in results.items():
        wrong = [(r, p) for r, p in zip(rows, pred) if p != r["label"]][: a.show]
        for r, p in wrong:
            where = r.get("source", r.get("category", "?"))
            print(f"  [{name}] {where}: gold {r['gold'][-60:]!r} label {r['label']} got {p}: {r['completion'][-90:]!r}"
                  + (f"  ({r['note']})" if "note" in r else ""))


if __name__ == "__main__":
    main()
