"""Sandbox: run untrusted programs isolated by default. Torch-free.

    >>> from sandbox import run
    >>> run("def f(x):\\n    return 2 * x", "assert f(2) == 4").status
    'passed'
    >>> run("import sys; sys.exit(0)", "assert False").status
    'exited'

See `sandbox.runner` for the process tree and what `passed` proves, and
`sandbox.isolate` for the namespaces, mounts and limits.
"""

from typing import Any

from sandbox.base import STATUSES, ExecResult, Limits, SandboxUnavailable

__all__ = ["STATUSES", "ExecResult", "Limits", "SandboxPool", "SandboxUnavailable", "run"]


def __getattr__(name: str) -> Any:
    # The pool (threads, subprocess) loads on first use, not in the warm worker that
    # imports this package: threading's fork hooks would slow every run's fork.
    if name in ("run", "SandboxPool"):
        from sandbox import pool

        return getattr(pool, name)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
