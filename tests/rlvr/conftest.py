"""Reward models built from the tiny model (fresh heads, untrained): real checkpoints for loading and scoring tests."""

from __future__ import annotations

from pathlib import Path

import pytest


def _save_untrained(kind: str, num_labels: int, out: Path) -> Path:
    from rlvr.policy import ModelConfig
    from rlvr.reward_models import load_for_training

    model, tok = load_for_training(ModelConfig(name_or_path="tiny-qwen2"), kind, num_labels)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_orm_dir(tmp_path_factory) -> Path:
    """A tiny-qwen2 Qwen2ForSequenceClassification (num_labels=1) with a random head."""
    return _save_untrained("orm", 1, tmp_path_factory.mktemp("tiny-orm"))


@pytest.fixture(scope="session")
def tiny_prm_dir(tmp_path_factory) -> Path:
    """A tiny-qwen2 Qwen2ForTokenClassification (2 labels) with a random head."""
    return _save_untrained("prm", 2, tmp_path_factory.mktemp("tiny-prm"))
