"""Shared fixtures: a tiny Qwen2 model directory built offline (tokenizer trained here)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from rlvr.demo import build_model_dir

    return build_model_dir(tmp_path_factory.mktemp("tiny") / "model", seed=0)
