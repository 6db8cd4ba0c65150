"""The verification pool: order, hard timeouts, crashes, threads, asyncio."""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import textwrap
import threading

import pytest

from rlvr.types import Sample
from verifiers.pool import VerifierPool

PLUGIN = '''
import os, time
from verifiers import Verdict, register_verifier

@register_verifier("test_misbehave")
def misbehave(completion, sample):
    if completion == "hang":
        time.sleep(10**6)  # a checker stuck forever (what a pathological sympy call looks like)
    if completion == "crash":
        os._exit(3)  # the worker dies (segfault, OOM kill)
    if completion == "raise":
        raise RuntimeError("verifier bug")
    if completion == "oom":
        return Verdict(1.0, True, info={"n": len(bytearray(64 * 2**30))})  # far past the pool's memory limit
    return Verdict(1.0, True, info={"pid": os.getpid()})
'''


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("plugin")
    (d / "misbehave_plugin.py").write_text(textwrap.dedent(PLUGIN))
    sys.path.insert(0, str(d))  # the workers inherit this process's sys.path
    try:
        with VerifierPool(num_workers=2, timeout_s=1.0, preload=("misbehave_plugin",)) as p:
            yield p
    finally:
        sys.path.remove(str(d))


def samples(n: int, reference: str = "4") -> list[Sample]:
    return [Sample(id=str(k), prompt="", reference=reference) for k in range(n)]


def test_order_is_preserved(pool: VerifierPool) -> None:
    completions = [f"\\boxed{{{k % 7}}}" for k in range(60)]
    verdicts = pool.verify_batch("math", {}, completions, samples(60))
    assert [v.correct for v in verdicts] == [k % 7 == 4 for k in range(60)]
    assert [v.info["pred"] for v in verdicts] == [str(k % 7) for k in range(60)]


def test_hang_times_out_replaces_worker_and_carries_on(pool: VerifierPool) -> None:
    before = dict(pool.stats)
    completions = ["ok", "hang", "ok", "crash", "raise", "ok", "hang", "oom", "ok"]
    verdicts = pool.verify_batch("test_misbehave", {}, completions, samples(len(completions)))
    assert [v.correct for v in verdicts] == [c == "ok" for c in completions]
    assert verdicts[1].error.startswith("timeout") and verdicts[6].error.startswith("timeout")
    assert "crashed" in verdicts[3].error and "verifier bug" in verdicts[4].error
    assert "MemoryError" in verdicts[7].error
    assert pool.stats["timeouts"] - before.get("timeouts", 0) == 2
    assert pool.stats["restarts"] - before.get("restarts", 0) == 3
    # the replaced workers serve the next batch
    again = pool.verify_batch("math", {}, ["\\boxed{4}"] * 4, samples(4))
    assert all(v.correct for v in again)


def test_composition_and_bad_names_become_error_verdicts(pool: VerifierPool) -> None:
    args = {"components": [{"name": "math", "weight": 1.0}, {"name": "test_misbehave", "weight": 1.0}]}
    v = pool.verify_batch("weighted", args, ["raise", "\\boxed{4}"], samples(2))
    assert v[0].error is not None and v[1].score == 2.0
    unknown = pool.verify_batch("maht", {}, ["\\boxed{4}"], samples(1))[0]
    assert unknown.error is not None and "did you mean" in unknown.error


def test_usable_from_threads_and_asyncio(pool: VerifierPool) -> None:
    out: list[list] = []

    def work() -> None:
        out.append(pool.verify_batch("math", {}, ["\\boxed{4}"] * 5, samples(5)))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 3 and all(v.correct for batch in out for v in batch)

    async def main() -> list:
        return await asyncio.gather(
            pool.averify_batch("math", {}, ["\\boxed{4}"], samples(1)),
            pool.averify_batch("math", {}, ["\\boxed{5}"], samples(1)),
        )

    a, b = asyncio.run(main())
    assert a[0].correct and not b[0].correct


def test_verdicts_are_picklable_and_carry_latency(pool: VerifierPool) -> None:
    v = pool.verify_batch("math", {}, ["\\boxed{4}"], samples(1))[0]
    assert pickle.loads(pickle.dumps(v)) == v and v.info["verify_s"] >= 0


def test_mismatched_lengths_and_closed_pool_are_errors() -> None:
    p = VerifierPool(num_workers=1)
    with pytest.raises(ValueError, match="completions but"):
        p.verify_batch("math", {}, ["a"], [])
    p.close()
    with pytest.raises(RuntimeError, match="closed"):
        p.verify_batch("math", {}, [], [])


def test_workers_do_not_import_torch() -> None:
    # what a worker imports before it says ready: the pool, every built-in verifier, sympy
    code = (
        "import sys; from verifiers.pool import worker_main; from verifiers.base import list_verifiers; "
        "list_verifiers(); import verifiers.math_equiv; print('torch' in sys.modules)"
    )

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_forked_child_neither_uses_nor_kills_the_parents_workers(pool: VerifierPool) -> None:
    import os

    pid = os.fork()
    if pid == 0:  # child: using the inherited pool is refused; dropping it must not kill the workers
        try:
            pool.verify_batch("math", {}, ["\\boxed{4}"], samples(1))
            code = 1
        except RuntimeError:
            code = 0
        pool.close()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pool.verify_batch("math", {}, ["\\boxed{4}"], samples(1))[0].correct


def test_a_worker_that_cannot_start_is_a_clear_error() -> None:
    with VerifierPool(num_workers=1, preload=("no_such_plugin_module",)) as p:
        with pytest.raises(RuntimeError, match="before it was ready"):
            p.verify_batch("math", {}, ["\\boxed{4}"], samples(1))
