"""Shared fixtures: the tiny models built offline (tokenizer trained here), in a cache private to this session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# one cache for this test session and the processes it starts (torchrun, resume), never the user's own
os.environ["RLVR_CACHE"] = tempfile.mkdtemp(prefix="rlvr-test-cache-")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from rlvr.tiny_models import resolve_model_path

    return Path(resolve_model_path("tiny-qwen2"))
