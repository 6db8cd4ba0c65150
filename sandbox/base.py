"""What a sandbox run takes (`Limits`) and gives back (`ExecResult`).

The status vocabulary says why a run did not pass; it is data, never an
exception. `SandboxUnavailable` is the one exception: isolation could not be
set up and the caller did not ask for the unsafe mode.
"""

from __future__ import annotations

from dataclasses import dataclass

# Every status a run can end with, and what it means.
STATUSES: dict[str, str] = {
    "passed": "the program and then the tests ran to their end",
    "failed": "the tests raised (an assert or any other exception)",
    "error": "the program raised or did not compile",
    "exited": "the process ended (sys.exit, os._exit, a signal to itself) before the tests finished",
    "timeout": "wall-clock or CPU time limit",
    "memory": "address-space limit (MemoryError)",
    "output-limit": "stdout + stderr exceeded the output limit",
    "file-limit": "file-size or disk (tmpfs) limit",
    "process-limit": "could not start another process or thread",
    "forbidden": "a write outside the work dir or a read of a protected file was refused",
    "network": "a network call was refused (there is no network in the sandbox)",
    "killed": "died by a signal (e.g. SIGSEGV from ctypes, SIGKILL to its own group)",
    "sandbox-error": "the sandbox itself failed (a bug or a broken host, not the program)",
}


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run; the defaults suit unit-test style programs."""

    timeout_s: float = 10.0  # wall clock, set-up included
    memory_mb: int = 1024  # RLIMIT_AS of every process in the sandbox
    processes: int = 32  # RLIMIT_NPROC: processes + threads of the sandbox user
    file_mb: int = 16  # RLIMIT_FSIZE: largest file the program may write
    disk_mb: int = 64  # size of the tmpfs work dir
    open_files: int = 256  # RLIMIT_NOFILE
    output_bytes: int = 1 << 20  # stdout + stderr together; more is "output-limit"
    tail_bytes: int = 4096  # how much of the end of stdout/stderr is kept

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_mb", "processes", "file_mb", "disk_mb", "open_files", "output_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Limits.{name} must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class ExecResult:
    passed: bool
    status: str  # one of STATUSES
    stdout: str  # tail, at most Limits.tail_bytes
    stderr: str  # tail
    duration_s: float  # wall clock, fork to reap
    detail: str = ""  # why, in a few words: "AssertionError: ...", "SIGSEGV", "exit code 0 before the tests ended"
    exit_code: int | None = None  # of the harness process, when it exited
    signal: int | None = None  # that killed the harness process, when one did


class SandboxUnavailable(RuntimeError):
    """Isolation cannot be set up here; pass `unsafe=True` to run without it."""
