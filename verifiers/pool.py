"""Hang-proof batch verification: persistent worker processes with a hard per-item timeout.

`VerifierPool(num_workers, timeout_s).verify_batch(name, args, completions,
samples)` returns one `Verdict` per item, in order. Each worker is a fresh
`python` process (started with `subprocess`, not `fork`, so it inherits none of
the trainer's torch or thread state, and imports only `verifiers`); it caches
the verifier per `(name, args)`. An item that runs past `timeout_s` gets
`Verdict(error="timeout ...")` and its worker's whole process group is killed
and replaced; a worker that dies gets `error="worker crashed ..."` likewise.
The other items carry on. No `signal.alarm`, so the pool works from any thread,
from asyncio (`averify_batch`), and in any process (build one pool per process;
a pool is not shared across `fork`). `stats` counts items, errors, timeouts,
crashes and restarts for the trainers' metrics; each verdict's
`info["verify_s"]` is its time inside the worker.

Not here: what a verifier computes (see the registry), sandboxing of untrusted
code (see `sandbox/`).

    >>> from rlvr.types import Sample
    >>> with VerifierPool(num_workers=1) as pool:
    ...     [v.correct for v in pool.verify_batch("math", {}, ["\\\\boxed{4}", "5"],
    ...                                           [Sample(id="0", prompt="", reference="4")] * 2)]
    [True, False]
"""

from __future__ import annotations

import asyncio
import collections
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection, wait
from typing import Any

from rlvr.types import Sample
from verifiers.base import Verdict

OWNER_CHECK_MS = 100  # how often a worker checks that its pool's process still exists
STARTUP_TIMEOUT_S = 120.0  # importing sympy on a loaded machine can take a while; a worker never ready is a bug


class _Worker:
    def __init__(self, preload: tuple[str, ...], memory_mb: int | None):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        # the worker must import what this process can (the repo, test plugins on sys.path)
        env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p and os.path.isdir(p)])
        code = (
            "import sys; from verifiers.pool import worker_main; "
            "worker_main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(to_child_r), str(from_child_w), json.dumps(list(preload)), str(memory_mb or 0)],
            pass_fds=(to_child_r, from_child_w),
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a kill takes whatever it spawned too
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.send_conn = Connection(to_child_w, readable=False)
        self.recv_conn = Connection(from_child_r, writable=False)
        self.ready = False
        self.started = time.monotonic()
        self.job: int | None = None  # index in the batch of the item it is working on
        self.deadline = 0.0

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.send_conn.close()
        self.recv_conn.close()


class VerifierPool:
    def __init__(
        self, num_workers: int = 2, timeout_s: float = 5.0, preload: tuple[str, ...] = (), memory_mb: int | None = 4096
    ):
        """`preload`: modules each worker imports at start (plugins registered without an entry point).
        `memory_mb`: address-space limit of each worker (None: unlimited); past it a verifier gets a
        MemoryError, which becomes an error verdict, instead of the machine swapping."""
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self.num_workers = num_workers
        self.timeout_s = timeout_s
        self.preload = tuple(preload)
        self.memory_mb = memory_mb
        self.stats: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()  # one batch at a time; callers in other threads wait their turn
        self._workers = [_Worker(self.preload, self.memory_mb) for _ in range(num_workers)]
        self._closed = False
        self._pid = os.getpid()  # a forked child inherits this object but must neither use nor kill its workers

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._workers[self._workers.index(w)] = _Worker(self.preload, self.memory_mb)
        self.stats["restarts"] += 1

    def verify_batch(
        self, name: str, args: dict[str, Any], completions: list[str], samples: list[Sample]
    ) -> list[Verdict]:
        """One verdict per (completion, sample), in order; never raises for what a verifier does."""
        if len(completions) != len(samples):
            raise ValueError(f"{len(completions)} completions but {len(samples)} samples")
        if os.getpid() != self._pid:
            raise RuntimeError("this VerifierPool belongs to another process (inherited by fork): create one per process")
        with self._lock:
            if self._closed:
                raise RuntimeError("VerifierPool is closed")
            try:
                return self._run(name, args, completions, samples)
            finally:
                for w in list(self._workers):
                    if w.job is not None:  # left mid-item by an exception: its late verdict must not leak into the next batch
                        w.job = None
                        self._replace(w)

    async def averify_batch(
        self, name: str, args: dict[str, Any], completions: list[str], samples: list[Sample]
    ) -> list[Verdict]:
        """`verify_batch` without blocking the event loop."""
        return await asyncio.to_thread(self.verify_batch, name, args, completions, samples)

    def _run(self, name: str, args: dict[str, Any], completions: list[str], samples: list[Sample]) -> list[Verdict]:
        key = json.dumps([name, args], sort_keys=True, default=repr)
        results: list[Verdict | None] = [None] * len(completions)
        todo = collections.deque(range(len(completions)))
        while todo or any(w.job is not None for w in self._workers):
            for w in self._workers:
                if w.ready and w.job is None and todo:
                    k = todo.popleft()
                    try:
                        w.send_conn.send((k, key, name, args, completions[k], samples[k]))
                    except (BrokenPipeError, OSError):
                        todo.appendleft(k)
                        self.stats["crashes"] += 1
                        self._replace(w)
                        continue
                    w.job, w.deadline = k, time.monotonic() + self.timeout_s
            now = time.monotonic()
            busy = [w for w in self._workers if w.job is not None]
            waits = [w.deadline - now for w in busy] + [
                w.started + STARTUP_TIMEOUT_S - now for w in self._workers if not w.ready
            ]
            conns = {w.recv_conn: w for w in self._workers if w.job is not None or not w.ready}
            for conn in wait(list(conns), timeout=max(0.0, min(waits, default=1.0))):
                self._receive(conns[conn], results)
            now = time.monotonic()
            for w in list(self._workers):
                if w.job is not None and now > w.deadline:
                    results[w.job] = Verdict.failure(f"timeout after {self.timeout_s}s (worker killed and replaced)")
                    self.stats["timeouts"] += 1
                    self._replace(w)
                elif not w.ready and now > w.started + STARTUP_TIMEOUT_S:
                    raise RuntimeError(f"verifier worker did not start within {STARTUP_TIMEOUT_S}s")
        out = [r if r is not None else Verdict.failure("no result") for r in results]
        self.stats["items"] += len(out)
        self.stats["errors"] += sum(v.error is not None for v in out)
        return out

    def _receive(self, w: _Worker, results: list[Verdict | None]) -> None:
        try:
            msg = w.recv_conn.recv()
        except (EOFError, OSError):
            try:
                code = w.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:  # closed its pipe but lives on: killed by _replace below
                code = None
            if not w.ready:  # died while importing: a broken install or plugin, not a data error
                self._replace(w)
                raise RuntimeError(f"verifier worker exited with code {code} before it was ready") from None
            if w.job is not None:
                results[w.job] = Verdict.failure(f"worker crashed (exit code {code}); replaced")
            self.stats["crashes"] += 1
            self._replace(w)
            return
        if msg == "ready":
            w.ready = True
            return
        k, verdict = msg
        results[k] = verdict
        w.job = None

    def close(self) -> None:
        """Stop all workers (idempotent)."""
        if self._closed or os.getpid() != self._pid:
            return
        self._closed = True
        for w in self._workers:
            w.kill()

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


def worker_main(read_fd: int, write_fd: int, preload_json: str, memory_mb: int = 0) -> None:
    """Worker process loop: receive an item, verify it, send the verdict back."""
    if memory_mb > 0:
        import resource

        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from verifiers.base import get_verifier, list_verifiers

    parent = os.getppid()

    def watchdog() -> None:
        # a worker stuck in a verifier must not outlive a pool that died without closing it (killed, it never
        # does): when the pool's end of the pipe hangs up or this process is re-parented, the worker's whole
        # process group goes at once, with whatever its verifier started (a sandbox worker, a `sleep`)
        hangup = select.poll()
        hangup.register(read_fd, select.POLLHUP | select.POLLERR)
        while not hangup.poll(OWNER_CHECK_MS) and os.getppid() == parent:
            pass
        if os.getpgrp() == os.getpid():  # started with a session of its own, as _Worker does
            os.killpg(0, signal.SIGKILL)
        os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    recv_conn = Connection(read_fd, writable=False)
    send_conn = Connection(write_fd, readable=False)
    for mod in json.loads(preload_json):
        importlib.import_module(mod)
    list_verifiers()  # import the built-in verifiers (and sympy) before saying ready
    from verifiers.math_equiv import warm_up

    warm_up()  # sympy's caches and lazy imports on each comparison path, so the first items are not slow

    send_conn.send("ready")
    cache: dict[str, Any] = {}
    while True:
        try:
            k, key, name, args, completion, sample = recv_conn.recv()
        except EOFError:  # the pool closed its end: exit quietly
            return
        t = time.perf_counter()
        try:
            if key not in cache:
                cache[key] = get_verifier(name, **args)
            verdict = cache[key](completion, sample)
            if not isinstance(verdict, Verdict):
                verdict = Verdict.failure(f"verifier {name!r} returned {type(verdict).__name__}, not a Verdict")
        except Exception as e:  # a verifier bug (or a bad name) is an error verdict for this item, counted
            verdict = Verdict.failure(f"{type(e).__name__}: {e}")
        verdict.info["verify_s"] = time.perf_counter() - t  # per-item latency, for metrics and benchmarks
        try:
            send_conn.send((k, verdict))
        except Exception as e:  # e.g. an unpicklable info dict
            send_conn.send((k, Verdict.failure(f"verdict could not be sent: {type(e).__name__}: {e}")))
