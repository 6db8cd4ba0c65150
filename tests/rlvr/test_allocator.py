"""keep_freed_memory: freed tensor memory is reused without page faults (glibc hosts)."""

import platform
import subprocess
import sys

import pytest

CHURN = """
import resource, sys
import torch
from rlvr.allocator import keep_freed_memory
if sys.argv[1] == "1":
    assert keep_freed_memory()
def step(mib):  # an update's activations: many mid-sized tensors, written, then all freed
    xs = [torch.ones(mib * 2**18) for _ in range(30)]  # 30 x `mib` MiB of float32
    del xs
step(8)  # the first step faults its pages in either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for mib in (7, 6, 5, 4):  # later steps need no more memory than the first, in other sizes
    step(mib)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(tuned: bool) -> int:
    out = subprocess.run([sys.executable, "-c", CHURN, "1" if tuned else "0"], capture_output=True, text=True,
                         check=True, env={"RLVR_KEEP_FREED_MEMORY": "1", "PATH": ""})  # fmt: skip
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
    # glibc's default maps the 8 MiB blocks, then trims the heap the 7 and 6 MiB ones came from, and faults
    # them in again (~90,000 pages of 4 KiB measured); kept, the heap serves every later step as it is
    assert _faults(tuned=False) > 20_000
    assert _faults(tuned=True) < 1_000


def test_switched_off_by_environment(monkeypatch):
    import rlvr.allocator as allocator

    monkeypatch.setattr(allocator, "_applied", False)
    monkeypatch.setenv("RLVR_KEEP_FREED_MEMORY", "0")
    assert allocator.keep_freed_memory() is False
