"""The warm worker: a long-lived process that forks each run into a fresh sandbox.

Started by `sandbox.pool` with a scrubbed environment, so no secret of the
caller is even in the memory the program is forked from. It imports the harness
and common standard-library modules once; each run then costs forks and a few
syscalls instead of a new interpreter. Speaks pickle on two pipes: it reads
`(program, tests, Limits, isolated)` and writes an `ExecResult`. The first
message it writes is its hello: `(ok, reason)` from a probe run, so a host
where isolation cannot be set up is known before any real program runs. It
exits when its request pipe closes, and when the process that owns it dies
(even killed, even mid-run: the run is killed first, within ~0.1 s). A root
worker first moves itself into a private, read-only mount namespace with home
directories hidden.
"""

from __future__ import annotations

import os
import pickle
import select
import sys

from sandbox import isolate
from sandbox.base import Limits
from sandbox.runner import CLEAN_ENV, execute

# Imported once here so that programs importing them pay nothing (fork shares them). Not hashlib
# (OpenSSL) nor threading: a bigger or hook-laden worker makes every fork slower than they save.
PRELOAD = ("math", "re", "string", "collections", "itertools", "functools", "heapq", "bisect", "typing",
           "random", "fractions", "decimal", "statistics", "copy", "operator", "datetime", "json",
           "socket", "traceback", "errno", "array", "dataclasses", "enum")


OWNER_CHECK_S = 0.2  # how often an idle worker checks that its pool's process still exists


def main() -> None:
    isolated = sys.argv[1:] != ["--unsafe"]
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # stray prints must not corrupt the reply pipe
    os.close(null)
    for name in PRELOAD:
        __import__(name)
    os.environ.clear()  # the runs' environment, set once here rather than per run
    os.environ.update(CLEAN_ENV)
    ok, reason = _prepare(isolated)
    pickle.dump((ok, reason), replies)
    replies.flush()
    if not ok:
        return
    owner_pid, hangup = os.getppid(), select.poll()
    hangup.register(requests.fileno(), select.POLLHUP | select.POLLERR)

    def owner_gone() -> bool:  # its end of the request pipe hung up, or (a child of it holds that end) we moved
        return bool(hangup.poll(0)) or os.getppid() != owner_pid

    while True:
        # wait for the next request, but not for a pool whose process has died (killed, it never closes us)
        while not select.select([requests.fileno()], [], [], OWNER_CHECK_S)[0]:
            if owner_gone():
                return
        try:
            program, tests, limits, want_isolated = pickle.load(requests)
        except EOFError:
            return
        # the pool sends one request and waits for its reply, so nothing is left unread in the buffer here
        result = execute(program, tests, limits, isolated=want_isolated and isolated, owner_gone=owner_gone)
        if owner_gone():
            return  # the run was killed with its owner; no one is left to read the result
        pickle.dump(result, replies)
        replies.flush()


def _prepare(isolated: bool) -> tuple[bool, str]:
    if not isolated:
        return True, ""
    try:
        if os.geteuid() == 0:
            isolate.prepare_worker()
    except OSError as e:
        return False, f"cannot set up the worker's mount namespace: {e}"
    probe = execute("import os\nopen('probe', 'w').write('ok')", "assert open('probe').read() == 'ok'",
                    Limits(timeout_s=10), isolated=True)
    if not probe.passed:
        return False, f"probe run ended {probe.status}: {probe.detail} {probe.stderr[-300:]}".strip()
    return True, ""


if __name__ == "__main__":
    main()
