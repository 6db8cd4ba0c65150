"""Tiny models by name: built offline, deterministic, ordinary HF directories, rebuilt when corrupted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr.policy import ModelConfig, load_policy, load_tokenizer
from rlvr.tiny_models import MANIFEST, TINY_MODELS, check_model_dir, model_dir, resolve_model_path


def test_unknown_tiny_name_lists_the_known_ones():
    with pytest.raises(ValueError) as e:
        resolve_model_path("tiny-qwen3")
    assert "tiny-qwen3" in str(e.value)
    for name in TINY_MODELS:
        assert name in str(e.value)


def test_hub_names_and_paths_pass_through(tmp_path):
    assert resolve_model_path("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert resolve_model_path(str(tmp_path)) == str(tmp_path)
    local = tmp_path / "tiny-local"
    local.mkdir()
    assert resolve_model_path(str(local)) == str(local)  # a directory that exists is a path, whatever its name


def test_built_once_into_the_cache_and_loadable_by_transformers(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "cache"))
    path = Path(resolve_model_path("tiny-qwen2"))
    assert path.parent == tmp_path / "cache" / "models" and check_model_dir(path) is None
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model_path("tiny-qwen2") == str(path)  # second use: loaded, not rebuilt
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime
    model = AutoModelForCausalLM.from_pretrained(path)  # an ordinary HF model directory
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.vocab_size == len(tok) and tok.chat_template
    assert tok.pad_token_id != tok.eos_token_id
    assert len(tok("<extra_0>", add_special_tokens=False)["input_ids"]) == 1  # the PRM step tag is one token


def test_build_is_deterministic_and_the_family_shares_one_tokenizer(tmp_path, monkeypatch):
    def digests(cache: Path, name: str) -> dict[str, str]:
        monkeypatch.setenv("RLVR_CACHE", str(cache))
        d = Path(resolve_model_path(name))
        return json.loads((d / MANIFEST).read_text())["files"]

    a = digests(tmp_path / "a", "tiny-qwen2")
    b = digests(tmp_path / "b", "tiny-qwen2")
    assert a == b  # weights and tokenizer files byte for byte
    small = digests(tmp_path / "a", "tiny-qwen2-small")
    assert small["tokenizer.json"] == a["tokenizer.json"]
    assert small["model.safetensors"] != a["model.safetensors"]
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "a"))
    big, _ = load_policy(ModelConfig(name_or_path="tiny-qwen2"))
    little, _ = load_policy(ModelConfig(name_or_path="tiny-qwen2-small"))
    assert big.config.vocab_size == little.config.vocab_size
    assert sum(p.numel() for p in little.parameters()) < sum(p.numel() for p in big.parameters()) / 3


@pytest.mark.parametrize("damage", ["truncate_weights", "drop_manifest", "delete_tokenizer"])
def test_a_corrupted_cache_is_rebuilt_never_half_loaded(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path))
    d = Path(resolve_model_path("tiny-qwen2-small"))
    good = json.loads((d / MANIFEST).read_text())["files"]
    if damage == "truncate_weights":
        w = d / "model.safetensors"
        w.write_bytes(w.read_bytes()[:100])
    elif damage == "drop_manifest":
        (d / MANIFEST).unlink()
    else:
        (d / "tokenizer.json").unlink()
    assert check_model_dir(d) is not None
    assert resolve_model_path("tiny-qwen2-small") == str(d) == str(model_dir("tiny-qwen2-small"))
    assert check_model_dir(d) is None
    assert json.loads((d / MANIFEST).read_text())["files"] == good
    tok = load_tokenizer("tiny-qwen2-small")
    assert tok.decode(tok("12+7=19")["input_ids"]) == "12+7=19"
