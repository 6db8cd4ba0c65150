"""Two-step smoke runs of every trainer from its configs/smoke_*.yaml, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlvr.cli import main
from rlvr.metrics import read_metrics

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("smoke_*.yaml")))
def test_every_smoke_config_runs_with_no_overrides(config, tmp_path, monkeypatch):
    """The README contract: `rlvr train configs/smoke_X.yaml` as written, from a fresh directory (its tiny model is
    built offline into this session's cache)."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(CONFIGS / config)]) == 0
    outputs = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert outputs, f"{config} wrote nothing under its run_dir"


def test_grpo_smoke(tiny_model_dir, tmp_path):
    run = tmp_path / "grpo"
    rc = main(["train", str(CONFIGS / "smoke_grpo.yaml"), f"model.name_or_path={tiny_model_dir}", f"run_dir={run}"])
    assert rc == 0
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("reward/mean", "accuracy", "verifier_errors", "kl", "clip_frac", "entropy", "completion_len",
                "zero_var_groups", "time/step", "tokens_per_s", "grad_norm"):
        assert key in rows[0], key
    for r in rows:  # where the step's time went adds up to the step
        parts = r["time/rollout"] + r["time/update"] + r["time/weight_sync"]
        assert parts == pytest.approx(r["time/step"], abs=1e-6)
    # KL is on (kl_coef 0.05) and two iterations per batch: the second iteration is off-policy, so ratios move
    assert rows[1]["entropy"] > 0
    model = AutoModelForCausalLM.from_pretrained(run / "final")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values()))
    assert changed, "two GRPO steps with lr 1e-3 left the weights unchanged"
    assert json.loads((run / "config.json").read_text())["algorithm"] == "grpo"
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sft_smoke_learns(tiny_model_dir, tmp_path):
    run = tmp_path / "sft"
    rc = main(["train", str(CONFIGS / "smoke_sft.yaml"), f"model.name_or_path={tiny_model_dir}", f"run_dir={run}",
               "sft.max_steps=6", "sft.epochs=2"])
    assert rc == 0
    rows = read_metrics(run / "metrics.jsonl")
    assert len(rows) == 6
    assert rows[-1]["loss"] < rows[0]["loss"]  # lr 1e-3 on a fresh model: the loss must fall
    assert (run / "final" / "config.json").is_file()


@pytest.mark.parametrize(
    "override, needle",
    [
        ("grpo.clip_ratio_hgih=0.3", "grpo.clip_ratio_high"),  # typo -> did you mean
        ("grpo.kl_coef=abc", "grpo.kl_coef"),  # wrong type names the key
        ("model.name_or_path=/nonexistent/model", "/nonexistent/model"),
    ],
)
def test_bad_config_names_the_key(override, needle, tmp_path, capsys):
    rc = main(["train", str(CONFIGS / "smoke_grpo.yaml"), override, f"run_dir={tmp_path}"])
    assert rc == 2
    assert needle in capsys.readouterr().err


FLAKY = '''
from verifiers import Verdict, register_verifier

@register_verifier("flaky_length")
def flaky_length(completion, sample):
    if len(completion) % 3 == 0:
        raise ValueError("this verifier has a bug")
    return Verdict(score=float(len(completion) < 16), correct=len(completion) < 16)
'''


def test_verifier_exception_is_counted_not_scored_zero(tiny_model_dir, tmp_path, monkeypatch):
    (tmp_path / "flaky_plugin.py").write_text(FLAKY)
    monkeypatch.syspath_prepend(str(tmp_path))  # the pool's workers inherit sys.path
    run = tmp_path / "run"
    rc = main(["train", str(CONFIGS / "smoke_grpo.yaml"), f"model.name_or_path={tiny_model_dir}", f"run_dir={run}",
               "verifier.name=flaky_length", "verifier.args={}", "verifier.preload=[flaky_plugin]",
               "max_steps=1", "generation.num_generations=8"])
    assert rc == 0
    (row,) = read_metrics(run / "metrics.jsonl")
    assert row["verifier_errors"] > 0


def test_grpo_code_smoke_runs_programs_in_the_sandbox(tiny_model_dir, tmp_path):
    run = tmp_path / "code"
    rc = main(["train", str(CONFIGS / "grpo_code_cpu.yaml"), f"model.name_or_path={tiny_model_dir}", f"run_dir={run}",
               "max_steps=1", "task.args={limit: 2}", "grpo.prompts_per_step=2", "generation.num_generations=2",
               "generation.max_new_tokens=8"])
    assert rc == 0
    (row,) = read_metrics(run / "metrics.jsonl")
    # a random tiny model writes no valid program: every completion is judged (failed/error status), none is lost
    assert row["verifier_errors"] == 0 and row["reward/mean"] == 0.0
    assert (run / "final" / "model.safetensors").is_file()
