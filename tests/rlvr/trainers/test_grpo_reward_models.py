"""GRPO and PPO with a reward model beside the verifier, end to end through the CLI on tiny checkpoints: the verifier is
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


def test_ppo_with_prm_step_rewards_on_step_ends(tiny_prm_dir, tiny_model_dir, tmp_path):
    """PPO with a PRM: each step's reward lands on the step's last token, the verifier's score on the last one,
    all before GAE: with gamma = lam = 1, no KL and no whitening, a completion's first-token return is the sum."""
    from rlvr.config import load_config
    from rlvr.generation import build_generator
    from rlvr.rewards import RewardSource
    from rlvr.rollout import generate_and_verify, tokenize_prompts
    from rlvr.trainers import ppo
    from rlvr.trainers.critic import critic_builder
    from rlvr.trainers.runtime import PromptStream, build_runtime, build_task
    from verifiers.pool import VerifierPool

    cfg = load_config(CONFIGS / "smoke_ppo.yaml", [
        f"model.name_or_path={tiny_model_dir}", f"run_dir={tmp_path / 'ppo'}", "ppo.kl_coef=0", "ppo.gamma=1",
        "ppo.lam=1", "ppo.whiten_advantages=false", "ppo.truncation_penalty=0", f"reward_model.path={tiny_prm_dir}",
        "reward_model.kind=prm", "reward_model.process_advantages=sum", "reward_model.step_delimiter=' '",
        "reward_model.weight=0.5", "reward_model.verifier_weight=2"])  # fmt: skip
    rt = build_runtime(cfg, total_steps=1, prepare_extra=critic_builder(cfg, 1))
    critic, ref = rt.extra
    task = build_task(cfg.task, "task")
    samples = PromptStream(task, 0, 0).take(2)
    gen = build_generator(cfg.generation, rt.policy, rt.tokenizer, cfg.model.name_or_path)
    pool = VerifierPool(num_workers=1)
    try:
        ro = generate_and_verify(samples, tokenize_prompts(rt.tokenizer, samples, 64), gen, pool,
                                 (task.default_verifier, {}), cfg.generation.num_generations, cfg.generation.sampling())
    finally:
        pool.close()
    rm = RewardSource(cfg.reward_model, rt.tokenizer, "cpu")
    ro = rm.rescore(ro)
    batch, m = ppo.prepare_batch(rt, critic, ro, ref, 0.0, rm)
    flat = [v for g in ro.verdicts for v in g]
    stepped = 0
    for r, v in enumerate(flat):
        if v.error is not None or batch.completion_mask[r].sum() == 0:
            continue
        expected = 2 * v.info["verifier_score"] + 0.5 * sum(v.info.get("step_probs", []))
        stepped += "step_probs" in v.info
        rewards = batch.extra["rewards"][r]
        assert float(rewards.sum()) == pytest.approx(expected, abs=1e-5)
        for end, prob in zip(v.info.get("step_ends", []), v.info.get("step_probs", [])):
            assert float(rewards[end]) >= 0.5 * prob - 1e-6  # a step's reward sits on its last token
        assert float(batch.extra["returns"][r][0]) == pytest.approx(expected, abs=1e-4)
    assert stepped > 0 and m["rm/steps_per_completion"] >= 1
