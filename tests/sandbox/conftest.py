"""Shared fixtures: one warm pool for the sandbox tests, and host-side leak checks."""

from __future__ import annotations

import os

import pytest

from sandbox import SandboxPool
from sandbox.isolate import FIRST_HOST_UID


def sandbox_processes() -> list[str]:
    """Host processes running as a sandbox uid (there must be none between runs)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
        except OSError:
            continue  # exited while we looked
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        if uid >= FIRST_HOST_UID:
            found.append(f"{pid} uid={uid} {status.splitlines()[0]}")
    return found


@pytest.fixture(scope="session")
def pool():
    with SandboxPool(workers=2) as p:
        yield p


@pytest.fixture
def no_leaks():
    """Fails the test if a sandbox process is still running on the host after it."""
    yield
    assert sandbox_processes() == []
