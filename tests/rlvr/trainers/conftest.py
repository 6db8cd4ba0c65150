"""The one-process GRPO updates the 2-process tests (DDP, padding-free, FSDP) compare against, run once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rlvr.losses import LOSS_AGG_MODES
from dist_update import BUDGET
from test_distributed import SCRIPT, _run


@pytest.fixture(scope="session")
def single_updates(tiny_model_dir, tmp_path_factory) -> Path:
    """dist_update.py in one plain process over every loss_agg_mode, padded and padding-free (`MODE@BUDGET`)."""
    out = tmp_path_factory.mktemp("single")
    specs = [*LOSS_AGG_MODES, *(f"{m}@{BUDGET}" for m in LOSS_AGG_MODES)]
    _run([sys.executable, str(SCRIPT), str(tiny_model_dir), str(out), *specs], cwd=out)
    return out
