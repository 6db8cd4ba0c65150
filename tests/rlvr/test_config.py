"""Typed config: YAML + dotted overrides; unknown keys and wrong types name the key."""

from __future__ import annotations

import pytest

from rlvr.config import ConfigError, load_config


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_yaml_and_overrides_fill_typed_fields(tmp_path):
    p = _write(tmp_path, "algorithm: grpo\noptim: {lr: 1e-5}\ngrpo: {clip_ratio_high: 0.28}\n")
    cfg = load_config(p, ["grpo.kl_coef=0.01", 'generation.stop=["\\n\\n"]', "task.args={limit: 3}"])
    assert cfg.optim.lr == 1e-5 and isinstance(cfg.optim.lr, float)  # YAML reads 1e-5 as a string
    assert cfg.grpo.clip_ratio_high == 0.28 and cfg.grpo.kl_coef == 0.01
    assert cfg.generation.stop == ["\n\n"] and cfg.task.args == {"limit": 3}
    assert cfg.grpo.clip_ratio_low == 0.2  # untouched default


def test_unknown_key_names_its_path_and_the_nearest(tmp_path):
    p = _write(tmp_path, "grpo: {clip_ratio_hihg: 0.3}\n")
    with pytest.raises(ConfigError, match=r"grpo\.clip_ratio_hihg.*did you mean 'grpo\.clip_ratio_high'"):
        load_config(p)


def test_wrong_type_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"grpo\.num_iterations: expected int"):
        load_config(None, ["grpo.num_iterations=two"])
    with pytest.raises(ConfigError, match=r"max_steps: expected int, got bool"):
        load_config(None, ["max_steps=true"])


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_config(None, ["grpo.kl_coef"])
