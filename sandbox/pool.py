"""A pool of warm sandbox workers, and `run`, the one-call entry point.

`SandboxPool(workers=n)` starts up to n worker processes lazily (the first run
on each pays ~0.1 s of interpreter start; later runs pay ~1-3 ms) and hands
each run to an idle one; `map` runs a batch on all of them at once. A worker
that dies (a bug, never the program: programs run in grandchildren) gives a
`sandbox-error` result and is replaced. `run()` uses a process-wide pool.
Does not queue across processes: each process that runs programs has its own.
"""

from __future__ import annotations

import atexit
import os
import pickle
import queue
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from sandbox.base import ExecResult, Limits, SandboxUnavailable

_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The worker's whole environment: nothing of the caller's (tokens, keys) reaches it.
_WORKER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": _PKG_PARENT,
               "PYTHONDONTWRITEBYTECODE": "1"}


class _Worker:
    def __init__(self, unsafe: bool):
        self.unsafe = unsafe
        args = [sys.executable, "-s", "-m", "sandbox.worker"] + (["--unsafe"] if unsafe else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_WORKER_ENV,
                                     cwd="/", close_fds=True)
        try:
            ok, reason = pickle.load(self.proc.stdout)
        except EOFError:
            ok, reason = False, f"the worker exited with {self.proc.wait()} before saying hello"
        if not ok:
            self.close()
            raise SandboxUnavailable(
                f"sandbox isolation cannot be set up here ({reason}). It needs Linux >= 5.12 with user "
                "namespaces enabled; run(..., unsafe=True) runs without isolation."
            )

    def run(self, program: str, tests: str, limits: Limits) -> ExecResult:
        pickle.dump((program, tests, limits, not self.unsafe), self.proc.stdin)
        self.proc.stdin.flush()
        return pickle.load(self.proc.stdout)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


class SandboxPool:
    """Up to `workers` warm workers; thread-safe; `with SandboxPool(2) as pool: pool.map(...)`."""

    def __init__(self, workers: int = 2, unsafe: bool = False):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.unsafe = unsafe
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._started = 0
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("SandboxPool is closed")
            spawn = self._idle.empty() and self._started < self.workers
            if spawn:
                self._started += 1
        if not spawn:
            return self._idle.get()
        started = False
        try:
            worker = _Worker(self.unsafe)
            started = True
        finally:
            if not started:  # free the slot, whatever stopped the start
                with self._lock:
                    self._started -= 1
        with self._lock:
            self._all.append(worker)
        return worker

    def run(self, program: str, tests: str = "", limits: Limits = Limits()) -> ExecResult:
        worker = self._take()
        try:
            result = worker.run(program, tests, limits)
        except (EOFError, OSError, pickle.UnpicklingError) as e:
            self._drop(worker)
            return ExecResult(False, "sandbox-error", "", "", 0.0, detail=f"worker died: {type(e).__name__}: {e}")
        self._idle.put(worker)
        return result

    def map(self, jobs: list[tuple[str, str]], limits: Limits = Limits()) -> list[ExecResult]:
        """Run `(program, tests)` pairs on all workers; results in the order of `jobs`."""
        with ThreadPoolExecutor(self.workers) as ex:
            return list(ex.map(lambda job: self.run(job[0], job[1], limits), jobs))

    def _drop(self, worker: _Worker) -> None:
        worker.proc.kill()
        worker.close()
        with self._lock:
            self._all.remove(worker)
            self._started -= 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
        for worker in workers:
            worker.close()

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default: dict[bool, SandboxPool] = {}
_default_lock = threading.Lock()


def run(program: str, tests: str = "", *, timeout_s: float = 10.0, memory_mb: int = 1024,
        limits: Limits | None = None, unsafe: bool = False) -> ExecResult:
    """Run `program`, then `tests`, isolated; `passed` only if both ran to their end.

    `limits` overrides `timeout_s` and `memory_mb` when given. Raises
    `SandboxUnavailable` if isolation cannot be set up and `unsafe` is False.
    """
    if limits is None:
        limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb)
    with _default_lock:
        pool = _default.get(unsafe)
        if pool is None:
            pool = _default[unsafe] = SandboxPool(workers=os.cpu_count() or 1, unsafe=unsafe)
    return pool.run(program, tests, limits)


@atexit.register
def _close_default_pools() -> None:
    for pool in _default.values():
        pool.close()


def _forget_pools_in_child() -> None:
    # A forked child shares the parent's worker pipes: it must start its own workers,
    # and a lock held by another thread at fork time would never be released here.
    global _default_lock
    _default.clear()
    _default_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_in_child)
