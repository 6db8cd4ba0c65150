"""GRPO with a reward model beside the verifier, end to end through the CLI on tiny checkpoints: the verifier is
still run and counted (verl skips it once an RM is configured, verl#2232), and a PRM drives process advantages."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvr.cli import main
from rlvr.metrics import read_metrics

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_grpo_with_an_orm_adds_its_score_to_the_verifiers(tiny_orm_dir, tiny_model_dir, tmp_path):
    run = tmp_path / "orm"
    rc = main(["train", str(CONFIGS / "smoke_grpo.yaml"), f"model.name_or_path={tiny_model_dir}", f"run_dir={run}",
               "max_steps=1", f"reward_model.path={tiny_orm_dir}", "reward_model.kind=orm",
               "reward_model.combine=weighted_sum", "reward_model.weight=0.5"])  # fmt: skip
    assert rc == 0
    (row,) = read_metrics(run / "metrics.jsonl")
    # reward = verifier + 0.5 * RM, completion by completion, so the means add the same way
    assert row["reward/mean"] == pytest.approx(row["rm/verifier_score_mean"] + 0.5 * row["rm/score_mean"], abs=1e-5)
    assert 0.0 <= row["rm/verifier_score_mean"] <= 1.0 and row["verifier_errors"] == 0


@pytest.mark.parametrize("mode", ["sum", "min_form"])
def test_grpo_with_prm_process_advantages(mode, tiny_prm_dir, tiny_model_dir, tmp_path):
    run = tmp_path / mode
    rc = main(["train", str(CONFIGS / "smoke_grpo.yaml"), f"model.name_or_path={tiny_model_dir}", f"run_dir={run}",
               "max_steps=1", "grpo.num_iterations=1", f"reward_model.path={tiny_prm_dir}", "reward_model.kind=prm",
               f"reward_model.process_advantages={mode}", "reward_model.step_delimiter=' '"])  # fmt: skip
    assert rc == 0
    (row,) = read_metrics(run / "metrics.jsonl")
    # process mode: the scalar reward stays the verifier's; the PRM's steps only shape token advantages
    assert row["reward/mean"] == pytest.approx(row["rm/verifier_score_mean"], abs=1e-6)
    for key in ("rm/steps_per_completion", "rm/tokens_per_step", "rm/verifier_match", "rm/score_mean"):
        assert row[key] is not None and row[key] >= 0, key
    assert row["rm/steps_per_completion"] >= 1 and row["grad_norm"] > 0
