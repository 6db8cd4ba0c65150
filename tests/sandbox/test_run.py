"""What `run` reports for ordinary programs, and that `passed` means the tests ran to their end."""

from __future__ import annotations

import pytest

import sandbox
from sandbox import STATUSES, ExecResult, Limits, SandboxPool

FAST = Limits(timeout_s=2.0, memory_mb=256)


def test_run_passes_a_correct_program_and_fails_a_wrong_one():
    ok = sandbox.run("def add(a, b):\n    return a + b", "assert add(2, 3) == 5", timeout_s=3)
    bad = sandbox.run("def add(a, b):\n    return a - b", "assert add(2, 3) == 5", timeout_s=3)
    assert (ok.passed, ok.status) == (True, "passed")
    assert (bad.passed, bad.status) == (False, "failed")
    assert "AssertionError" in bad.detail and "AssertionError" in bad.stderr


def test_program_errors_are_error_and_test_errors_are_failed(pool):
    assert pool.run("1 / 0", "", FAST).status == "error"
    assert pool.run("def f(:", "", FAST).status == "error"  # does not compile
    assert pool.run("x = 1", "undefined_name", FAST).status == "failed"


def test_an_empty_test_passes_a_program_that_runs_to_its_end(pool):
    r = pool.run("print('hello')", "", FAST)
    assert r.passed and r.stdout == "hello\n" and r.exit_code == 0


def test_stdout_and_stderr_are_tails(pool):
    r = pool.run("import sys\nprint('a' * 10_000 + 'END')\nprint('oops', file=sys.stderr)", "", FAST)
    assert r.stdout.endswith("END\n") and len(r.stdout) == FAST.tail_bytes
    assert r.stderr == "oops\n"


def test_program_and_tests_share_one_namespace_that_is_not_main(pool):
    program = "ready = True\nif __name__ == '__main__':\n    input()  # a completion's demo: must not run"
    assert pool.run(program, "assert ready", FAST).passed


def test_pool_map_keeps_order_and_statuses(pool):
    jobs = [("x = 1", "assert x == 1"), ("x = 1", "assert x == 2"), ("import os\nos._exit(0)", "")] * 3
    statuses = [r.status for r in pool.map(jobs, FAST)]
    assert statuses == ["passed", "failed", "exited"] * 3


def test_every_status_is_documented(pool):
    r = pool.run("pass", "", FAST)
    assert isinstance(r, ExecResult) and r.status in STATUSES


def test_unsafe_mode_runs_without_isolation_when_asked():
    with SandboxPool(workers=1, unsafe=True) as unsafe:
        r = unsafe.run("import os\nprint(os.getpid() > 2)", "assert True", FAST)
        loop = unsafe.run("while True: pass", "", Limits(timeout_s=0.5))
    assert r.passed and r.stdout == "True\n"
    assert loop.status == "timeout"


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="timeout_s"):
        Limits(timeout_s=0)


def test_a_forked_caller_gets_its_own_workers():
    import os

    assert sandbox.run("pass").passed  # the parent's default pool is warm
    pid = os.fork()
    if pid == 0:  # trusted test code: the child only calls run() and reports by exit code
        code = 1
        try:
            code = 0 if sandbox.run("x = 1", "assert x == 1").passed else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sandbox.run("x = 2", "assert x == 2").passed  # and the parent's still work
