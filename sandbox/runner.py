"""Run one program and its tests in a fresh sandbox; called inside a warm worker.

Process tree of one run (W is the warm worker, trusted, never runs user code):

    W ── init: PID 1 of new user/mount/PID/net/IPC/UTS/cgroup namespaces
           └── harness: drops every capability, sets rlimits, runs program then tests

W clones init straight into the new namespaces, maps its ids and lets it go;
init mounts the sandbox's filesystem, forks the harness, reaps everything, and
reports the harness's wait status on a control pipe that the harness has closed.
When init exits the kernel kills everything left in its PID namespace, and W's
`waitpid(init)` returns only once they are gone: nothing of the run is left
running. W kills init on a wall timeout, an output flood or too much memory.
The harness is an ordinary process (not PID 1), so signals act on it as usual.

Threat model of `passed`. A pass is the line `pass <nonce>` written by the
harness on a report pipe after `exec(program)` and then `exec(tests)` both
returned normally, followed by the harness exiting 0. Module-level code can
only end by running to its end or raising, so `sys.exit`, `os._exit`, `atexit`
hooks, `SystemExit`/`KeyboardInterrupt` in the tests, signals to itself, an
exit code of 0, text printed on stdout, and patched builtins (the harness holds
its own references to `exec` and `compile`; `assert` cannot be patched) do not
give a pass. Not covered: a program written against this harness, which runs in
the same process as the tests, can find the report fd and the nonce in its own
memory and forge the line, just as it could return objects whose `__eq__` is
always true. The sandbox protects the host from the program, not the reward
from a program that targets the harness; that is the verifier's concern.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable

from sandbox import isolate
from sandbox.base import ExecResult, Limits

CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
             "PYTHONDONTWRITEBYTECODE": "1",
             # one thread per math library: threads count against the process limit
             "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
REPORT_FD = 3  # where the harness writes `pass <nonce>` or `exc ...`
MAX_FD = 1 << 16
MEMORY_CHECK_S = 0.1  # how often a running program's total resident memory is summed
_ERRNO_STATUS = {  # OSError errno -> status, for exceptions that say why
    "ENOSPC": "file-limit", "EFBIG": "file-limit", "EDQUOT": "file-limit",
    "EROFS": "forbidden", "EACCES": "forbidden", "EPERM": "forbidden",
    "ENETUNREACH": "network", "EHOSTUNREACH": "network", "ENETDOWN": "network", "ECONNREFUSED": "network",
    "EADDRNOTAVAIL": "network", "EAGAIN": "process-limit", "EMFILE": "file-limit",
}
_signal_names = {s.value: s.name for s in signal.Signals}
_exit = os._exit  # bound at import, before any program runs


@dataclass(frozen=True)
class _Run:
    """What the forked processes of one run need (inherited through fork)."""

    program: str
    tests: str
    limits: Limits
    isolated: bool
    worker_prepared: bool  # a root worker hid home dirs and made all read-only once; else per run
    nonce: str
    workdir: str  # unsafe runs only: a host temp dir made by W, removed after the run
    fds: tuple[int, int, int, int, int]  # devnull, stdout, stderr, report, control (write ends)


def execute(program: str, tests: str, limits: Limits, isolated: bool = True,
            owner_gone: Callable[[], bool] | None = None) -> ExecResult:
    """Run `program` then `tests`; never raises for anything the program does. When `owner_gone()` turns true
    (checked at least every 0.1 s), the run is killed at once: no one is left to want its result."""
    nonce = os.urandom(16).hex()  # not `secrets`: it loads OpenSSL, and a bigger worker forks slower
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    rep_r, rep_w = os.pipe()  # harness -> W: untrusted, parsed defensively
    ctl_r, ctl_w = os.pipe()  # set-up errors -> W: trusted, closed before user code
    go_r, go_w = os.pipe()  # W -> child: ids are mapped, go on
    devnull = os.open("/dev/null", os.O_RDONLY)
    t0 = time.monotonic()
    workdir = "" if isolated else _make_workdir()
    run = _Run(program, tests, limits, isolated, isolate.worker_prepared(), nonce, workdir,
               (devnull, out_w, err_w, rep_w, ctl_w))
    try:
        init = isolate.clone_into_namespaces() if isolated else os.fork()
    except OSError as e:
        for fd in (out_r, out_w, err_r, err_w, rep_r, rep_w, ctl_r, ctl_w, go_r, go_w, devnull):
            os.close(fd)
        return ExecResult(False, "sandbox-error", "", "", 0.0, detail=f"setup-error {e}")
    if init == 0:
        code = 70
        try:
            for fd in (out_r, err_r, rep_r, ctl_r, go_w):
                os.close(fd)
            code = _sandboxed(run, go_r)
        finally:
            os._exit(code)
    for fd in (out_w, err_w, rep_w, ctl_w, devnull, go_r):
        os.close(fd)
    map_error = ""
    if isolated:
        try:
            isolate.map_ids(init, *isolate.host_ids_for(init))
            os.write(go_w, b"g")
        except OSError as e:
            map_error = f"setup-error mapping ids: {e}"  # the child reads no "g" and exits
    os.close(go_w)
    pidfd = os.pidfd_open(init)
    out, err, rep, ctl = bytearray(), bytearray(), bytearray(), bytearray()
    bufs = {out_r: out, err_r: err, rep_r: rep, ctl_r: ctl}
    written = 0  # stdout + stderr bytes, all of them
    stop_reason = ""
    deadline = t0 + limits.timeout_s
    init_done = False
    watching = [*bufs, pidfd]
    next_memory_check = t0 + MEMORY_CHECK_S
    while not init_done:
        now = time.monotonic()
        left = deadline - now
        if left <= 0:
            stop_reason = "timeout"
            break
        if owner_gone is not None and owner_gone():
            stop_reason = "owner-gone"
            break
        if now >= next_memory_check:
            # Each process has its own address-space limit; this bounds all of them together.
            if _tree_memory_bytes(init) > limits.memory_mb << 20:
                stop_reason = "memory"
                break
            next_memory_check = now + MEMORY_CHECK_S
        ready, _, _ = select.select(watching, [], [], max(min(left, next_memory_check - now), 0.0))
        for fd in ready:
            if fd == pidfd:
                init_done = True
                continue
            n = _read_into(fd, bufs[fd], limits)
            if n == 0:
                watching.remove(fd)  # end of file: it would stay readable and spin the loop
            elif fd in (out_r, err_r):
                written += n
        if written > limits.output_bytes:
            stop_reason = "output-limit"
            break
    if stop_reason:
        _kill_run(init, isolated)
    _, wait_status = os.waitpid(init, 0)  # PID 1 of a namespace: returns once all of it is gone
    duration = time.monotonic() - t0
    if not isolated:
        _killpg_quietly(init)
        shutil.rmtree(workdir, ignore_errors=True)
    for fd in bufs:  # drain what the (now dead) writers left, without waiting on strays
        os.set_blocking(fd, False)
        while _read_into(fd, bufs[fd], limits) > 0:
            pass
        os.close(fd)
    os.close(pidfd)
    if map_error:
        return ExecResult(False, "sandbox-error", "", "", duration, detail=map_error)
    return _classify(stop_reason, nonce, out, err, rep, ctl, wait_status, duration, limits)


def _make_workdir() -> str:
    import tempfile  # unsafe runs only

    return tempfile.mkdtemp(prefix="rlvr-sandbox-")


def _read_into(fd: int, buf: bytearray, limits: Limits) -> int:
    try:
        data = os.read(fd, 1 << 16)
    except BlockingIOError:
        return 0
    buf += data
    if len(buf) > 2 * limits.tail_bytes + 65536:
        del buf[: len(buf) - limits.tail_bytes - 65536]  # keep a tail; reports are short
    return len(data)


def _tree_memory_bytes(root: int) -> int:
    """Proportional set size (shared pages split between sharers) of `root` and all its descendants."""
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                pss = next(line for line in f.read().splitlines() if line.startswith(b"Pss:"))
            total += int(pss.split()[1]) << 10
            for tid in os.listdir(f"/proc/{pid}/task"):  # children are listed per thread
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (OSError, StopIteration, ValueError):
            continue  # exited while we looked
    return total


def _kill_run(init: int, isolated: bool) -> None:
    # Killing init tears down its PID namespace; unsafe runs have only their process group.
    try:
        if isolated:
            os.kill(init, signal.SIGKILL)
        else:
            os.killpg(init, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _killpg_quietly(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _sandboxed(run: _Run, go_r: int) -> int:
    """In the cloned child, PID 1 of the run: set up isolation, fork the harness, reap, report."""
    devnull, out_w, err_w, rep_w, ctl_w = run.fds
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # PID 1 ignores signals it has no handler for
    try:
        isolate.die_with_parent(run.isolated)  # W gone: the whole run goes
        os.setsid()  # a session of its own: the program's kill(0) reaches nothing outside the run
        if run.isolated:
            if os.read(go_r, 1) != b"g":
                raise OSError(errno.EPERM, "the worker could not map the sandbox's uid/gid")
            isolate.become_inside_user()
            isolate.die_with_parent(run.isolated)  # changing credentials cleared the death signal: again
            isolate.setup_filesystem(run.limits, run.worker_prepared)
        else:
            os.chdir(run.workdir)
        isolate.prctl(isolate.PR_SET_DUMPABLE, 0)  # the harness may not read init's memory
    except OSError as e:
        os.write(ctl_w, f"setup-error {e}\n".encode())
        return 70
    os.close(go_r)
    harness = os.fork()
    if harness == 0:
        code = 1
        try:
            code = _harness_process(run)
        finally:
            _exit(code)  # not os._exit, which the program may have replaced
    for fd in (devnull, out_w, err_w, rep_w):
        os.close(fd)
    while True:  # as PID 1, init also reaps every orphan of the program
        pid, status = os.waitpid(-1, 0)
        if pid == harness:
            break
    os.write(ctl_w, f"exit {status}\n".encode())
    return 0


def _harness_process(run: _Run) -> int:
    devnull, out_w, err_w, rep_w, ctl_w = run.fds
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # init's death handler is not the program's
    os.close(ctl_w)  # the trusted channel is init's alone
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(rep_w, REPORT_FD)
    os.closerange(REPORT_FD + 1, MAX_FD)  # W's protocol pipes and anything else of W's
    if os.environ != CLEAN_ENV:  # a warm worker set it once at start; putenv per run is slow
        os.environ.clear()
        os.environ.update(CLEAN_ENV)
    if run.isolated:
        os.setpgid(0, 0)  # its own group: killpg(0) in the program ends the program, not init
        isolate.drop_privileges()
        isolate.prctl(isolate.PR_SET_DUMPABLE, 1)  # its own /proc/self is readable again
    isolate.apply_limits(run.limits)
    return run_harness(run.program, run.tests, REPORT_FD, run.nonce)


def run_harness(program: str, tests: str, report_fd: int, nonce: str) -> int:
    """exec the program, then the tests, in one namespace; report how it ended.

    The namespace is not `__main__`, as in the official HumanEval harness: a
    completion's `if __name__ == "__main__":` block (examples, `input()`) does
    not run, so it cannot fail tests of the functions it defines.
    """
    exec_, compile_, write = exec, compile, os.write  # held before user code can patch builtins
    stage = "program"
    try:
        scope = {"__name__": "__sandbox__", "__builtins__": __builtins__}
        exec_(compile_(program, "<program>", "exec"), scope)
        stage = "tests"
        if tests.strip():
            exec_(compile_(tests, "<tests>", "exec"), scope)
    except (SystemExit, KeyboardInterrupt) as e:
        _flush_output()
        _report_exception(write, report_fd, stage, e)
        return 1
    except Exception as e:
        _print_traceback(e)
        _flush_output()
        _report_exception(write, report_fd, stage, e)
        return 1
    _flush_output()  # os._exit follows: what the program printed must not die in a buffer
    write(report_fd, f"pass {nonce}\n".encode())
    return 0


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # the program may have replaced or closed them; its output is its own business
            pass


def _report_exception(write: Callable[[int, bytes], int], report_fd: int, stage: str, e: BaseException) -> None:
    import errno

    name = type(e).__name__
    code = errno.errorcode.get(e.errno, "-") if isinstance(e, OSError) and e.errno else "-"
    try:
        msg = str(e)
    except Exception:
        msg = "<unprintable>"
    msg = " ".join(msg.split())[:500]
    try:
        write(report_fd, f"exc {stage} {name} {code} {msg}\n".encode(errors="replace"))
    except OSError:
        pass


def _print_traceback(e: Exception) -> None:
    import traceback

    try:
        tb = e.__traceback__.tb_next if e.__traceback__ else None  # drop the harness's own frame
        sys.__stderr__.write("".join(traceback.format_exception(type(e), e, tb)))
    except Exception:  # a broken stderr or a hostile __str__: the report already says why
        pass


def _classify(stop_reason: str, nonce: str, out: bytearray, err: bytearray, rep: bytearray, ctl: bytearray,
              wait_status: int, duration: float, limits: Limits) -> ExecResult:
    def result(status: str, detail: str, exit_code: int | None = None, sig: int | None = None) -> ExecResult:
        tail = limits.tail_bytes
        return ExecResult(
            passed=status == "passed", status=status, detail=detail, duration_s=duration,
            stdout=bytes(out[-tail:]).decode(errors="replace"), stderr=bytes(err[-tail:]).decode(errors="replace"),
            exit_code=exit_code, signal=sig,
        )

    if stop_reason == "timeout":
        return result("timeout", f"wall clock over {limits.timeout_s:g} s")
    if stop_reason == "memory":
        return result("memory", f"memory of all its processes together over {limits.memory_mb} MiB")
    if stop_reason == "output-limit":
        return result("output-limit", f"stdout + stderr over {limits.output_bytes} bytes")
    if stop_reason == "owner-gone":
        return result("sandbox-error", "the process that owns the pool exited; the run was killed")
    ctl_lines = bytes(ctl).splitlines()
    for line in ctl_lines:
        if line.startswith(b"setup-error"):
            return result("sandbox-error", line.decode(errors="replace"))
    statuses = [int(line.split()[1]) for line in ctl_lines if line.startswith(b"exit ")]
    if not statuses:
        return result("sandbox-error", f"init ended (wait status {wait_status}) without the harness's status")
    code = os.waitstatus_to_exitcode(statuses[0])
    exit_code, sig = (code, None) if code >= 0 else (None, -code)
    reports = bytes(rep).splitlines()
    if exit_code == 0 and f"pass {nonce}".encode() in reports:
        return result("passed", "", exit_code, sig)
    if sig is not None:
        name = _signal_names.get(sig, str(sig))
        status = {signal.SIGXCPU: "timeout", signal.SIGXFSZ: "file-limit"}.get(sig, "killed")
        return result(status, name, exit_code, sig)
    for line in reports:
        parts = line.decode(errors="replace").split(" ", 4)
        if len(parts) >= 4 and parts[0] == "exc":
            stage, name, code_name = parts[1], parts[2], parts[3]
            detail = f"{name}: {parts[4] if len(parts) > 4 else ''}".strip()
            return result(_exception_status(stage, name, code_name, detail), detail, exit_code, sig)
    return result("exited", f"exit code {exit_code} before the tests finished", exit_code, sig)


def _exception_status(stage: str, name: str, errno_name: str, detail: str) -> str:
    if name in ("SystemExit", "KeyboardInterrupt"):
        return "exited"
    if name == "MemoryError":
        return "memory"
    if errno_name in _ERRNO_STATUS:
        return _ERRNO_STATUS[errno_name]
    if name == "RuntimeError" and "can't start new thread" in detail:
        return "process-limit"
    if name == "gaierror":
        return "network"
    return "failed" if stage == "tests" else "error"
