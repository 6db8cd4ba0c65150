"""Workers and their programs die with the process that owns the pool, mid-run included.

The owner is a separate process killed with SIGKILL while its programs run (each forks a child that sleeps,
so the program's own process group is there to be killed too); then nothing of it may be left on the host.
Both pools are checked here, the sandbox's and the verifiers' (`verifiers.pool`), with one helper.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OWNER = """
import sys
from sandbox import Limits, SandboxPool
program = "import os, time\\nif os.fork() == 0:\\n    time.sleep(600)\\nwhile True:\\n    pass"
pool = SandboxPool(workers=2, unsafe=sys.argv[1] == "unsafe")
print("ready", flush=True)
pool.map([(program, ""), (program, "")], Limits(timeout_s=600))
"""
VERIFIER_OWNER = """
import subprocess, sys, time
from verifiers import Verdict, register_verifier
from verifiers.pool import VerifierPool

@register_verifier("test_spawn_and_hang")
def spawn_and_hang(completion, sample):  # a verifier stuck while its own child process runs
    subprocess.Popen(["sleep", "600"])
    time.sleep(600)
    return Verdict(0.0, False)

if __name__ == "__main__":
    from rlvr.types import Sample
    pool = VerifierPool(num_workers=2, timeout_s=600, preload=("__owner__",))
    print("ready", flush=True)
    pool.verify_batch("test_spawn_and_hang", {}, ["a", "b"], [Sample(id=str(k), prompt="", reference="1") for k in (0, 1)])
"""


def descendants(root: int) -> set[int]:
    """Host pids below `root` (read from /proc; a process that exits meanwhile is skipped)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, stack = set(), [root]
    while stack:
        for c in children.get(stack.pop(), []):
            if c not in out:
                out.add(c)
                stack.append(c)
    return out


def alive(pids: set[int]) -> set[int]:
    """The pids still running (a zombie waiting to be reaped has stopped running)."""
    left = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    left.add(pid)
        except OSError:
            pass
    return left


def kill_owner_mid_run(code: list[str], expect: int) -> set[int]:
    """Start `code` as the owner, wait until `expect` processes run below it, SIGKILL it; what is left after 5 s."""
    owner = subprocess.Popen([sys.executable, "-c", *code], stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": ROOT})  # fmt: skip
    try:
        assert owner.stdout is not None and owner.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 60
        while len(procs := descendants(owner.pid)) < expect and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(procs) >= expect, f"only {len(procs)} processes started under the owner"
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 5  # "at once": well under the programs' own 600 s timeout
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(procs)


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("mode", ["isolated", "unsafe"])
def test_killing_the_owner_of_a_sandbox_pool_mid_run_leaves_nothing_running(mode: str) -> None:
    # per run: the worker, init, the harness running the loop, and the program's sleeping child
    assert kill_owner_mid_run([OWNER, mode], expect=8) == set()


def test_killing_the_owner_of_a_verifier_pool_mid_run_leaves_nothing_running(tmp_path) -> None:
    (tmp_path / "__owner__.py").write_text(VERIFIER_OWNER)  # the workers import it (preload) to find the verifier
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import runpy; runpy.run_path({str(tmp_path / '__owner__.py')!r}, run_name='__main__')"
    # per worker: the worker and the `sleep` its verifier started
    assert kill_owner_mid_run([code], expect=4) == set()
