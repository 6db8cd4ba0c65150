"""`rlvr train ...` with accelerate's FSDP2 on CPU: run under torchrun by tests/rlvr/trainers/test_fsdp.py.

accelerate turns FSDP on only for GPU-like devices, so the trainers' `Accelerator(cpu=True)` is replaced by
`dist_update.fsdp_accelerator()` (the same accelerate FSDP2 plugin, its state switched); the rest is the CLI.
"""

from __future__ import annotations

import sys

import dist_update
import rlvr.trainers.runtime as runtime
from rlvr.cli import main

runtime.Accelerator = lambda cpu: dist_update.fsdp_accelerator()  # noqa: ARG005 (build_runtime passes cpu=)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
