"""Keep freed CPU tensor memory in the process, so a training step stops paying the kernel to zero it again.

What it does: on Linux with glibc, `keep_freed_memory()` calls `mallopt` so
that blocks up to `MMAP_THRESHOLD` come from the heap instead of fresh
`mmap`s, and the heap is trimmed back to the OS only past `TRIM_THRESHOLD`.
PyTorch's CPU allocator is plain `malloc`; with glibc's defaults every
forward/backward frees its activations back to the OS and the next step
page-faults them in again (~40,000-70,000 minor faults per update of the
2.7M-parameter benchmark model, `benchmarks/generation.py`). The peers get
the same effect by preloading tcmalloc or jemalloc (PyTorch's CPU tuning
guide, vLLM's CPU install page); `mallopt` needs no extra library.

What it does not: touch CUDA memory (torch has its own caching allocator
there), or change blocks larger than `MMAP_THRESHOLD` (still mapped and
unmapped each time). Cost: the heap stays at its peak size between steps,
as with tcmalloc/jemalloc. `RLVR_KEEP_FREED_MEMORY=0` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h> parameter numbers
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit hosts
TRIM_THRESHOLD = 2**30  # mallopt takes a C int

_applied = False


def keep_freed_memory() -> bool:
    """Tune glibc malloc for a training process (idempotent); True if it took effect."""
    global _applied
    if _applied:
        return True
    if os.environ.get("RLVR_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt  # glibc only (musl has none): AttributeError below
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # Setting either value also turns off glibc's dynamic threshold, which otherwise moves with each free.
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
