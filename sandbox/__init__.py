"""Sandbox: run untrusted programs isolated by default. Torch-free.

    >>> from sandbox import run
    >>> run("def f(x):\\n    return 2 * x", "assert f(2) == 4").status
    'passed'
    >>> run("import sys; sys.exit(0)", "assert False").status
    'exited'

See `sandbox.runner` for the process tree and what `passed` proves, and
`sandbox.isolate` for the namespaces, mounts and limits.
"""

from sandbox.base import STATUSES, ExecResult, Limits, SandboxUnavailable
from sandbox.pool import SandboxPool, run

__all__ = ["STATUSES", "ExecResult", "Limits", "SandboxPool", "SandboxUnavailable", "run"]
