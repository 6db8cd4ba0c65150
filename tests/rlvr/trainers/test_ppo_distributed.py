"""2 CPU processes (torchrun, gloo) make the same PPO update, policy and critic, as 1 process on the same global
batch; advantage whitening over 2 processes x 3 tokens equals 1 process x 6 tokens.

Runs tests/rlvr/trainers/dist_ppo_update.py once with plain python (world 1, all 4 prompt groups) and once
under torchrun (world 2, groups split `[rank::2]`), for a separate critic (token-mean, truncation bootstrap)
and a shared value head (seq-mean-token-sum-norm, truncation penalize). As in test_distributed.py, the
gradients are the tight check (AdamW's first steps are ~lr * sign(grad)); parameters at a fraction of lr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from dist_ppo_update import VARIANTS, WHITEN_INPUT
from rlvr.advantages import whiten
from test_distributed import _run, _torchrun

SCRIPT = Path(__file__).resolve().parent / "dist_ppo_update.py"
LR = 1e-3  # dist_ppo_update.config's optim.lr and critic lr


@pytest.fixture(scope="module")
def ppo_runs(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    single, dist = tmp_path_factory.mktemp("ppo_single"), tmp_path_factory.mktemp("ppo_dist")
    _run([sys.executable, str(SCRIPT), str(tiny_model_dir), str(single), *VARIANTS], cwd=single)
    _run(_torchrun([str(SCRIPT), str(tiny_model_dir), str(dist), *VARIANTS]), cwd=dist)
    return single, dist


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_two_processes_make_the_ppo_update_of_one(ppo_runs, variant):
    single_dir, dist_dir = ppo_runs
    one = torch.load(single_dir / f"{variant}.rank0.pt")
    r0, r1 = (torch.load(dist_dir / f"{variant}.rank{r}.pt") for r in (0, 1))
    assert (one["world"], r0["world"], r1["world"]) == (1, 2, 2)
    assert r0["prompts"] == ["p0", "p2"] and r1["prompts"] == ["p1", "p3"]

    # token advantages (whitened over the global batch) and returns: each rank's rows are the single run's
    for key in ("advantages", "returns"):
        full = one[key].view(4, 4, -1)  # (prompt, completion, C)
        torch.testing.assert_close(r0[key].view(2, 4, -1), full[[0, 2]], rtol=0, atol=1e-5, msg=key)
        torch.testing.assert_close(r1[key].view(2, 4, -1), full[[1, 3]], rtol=0, atol=1e-5, msg=key)
    adv, mask = one["advantages"], one["mask"]
    assert (adv * mask).sum().abs() < 1e-4 and abs(adv[mask > 0].std().item() - 1) < 1e-4  # whitened
    # the verifier error (prompt 3, completion 2) is counted, and its completion gets no gradient at all
    assert one["metrics"]["verifier_errors"] == 1.0 and mask[3 * 4 + 2].sum() == 0 and adv[3 * 4 + 2].abs().max() == 0

    for k in ("reward/mean", "accuracy", "verifier_errors", "kl", "kl_seq", "critic/value_mean",
              "critic/explained_variance", "advantages/mean", "advantages/std", "returns/mean"):  # fmt: skip
        assert r0["metrics"][k] == pytest.approx(one["metrics"][k], rel=1e-5, abs=1e-6), k
    assert r0["metrics"]["grad_norm"] == pytest.approx(one["metrics"]["grad_norm"], rel=1e-4)
    assert r0["metrics"]["critic/grad_norm"] == pytest.approx(one["metrics"]["critic/grad_norm"], rel=1e-4)

    # ppo_epochs=2: step 0 from identical weights (tight), step 1 off-policy after one AdamW step
    for model in ("policy", "critic"):
        assert len(one["grads"][model]) == len(r0["grads"][model]) == 2
        for step, (atol, rtol) in enumerate([(1e-6, 1e-5), (1e-5, 1e-4)]):
            for name, g in one["grads"][model][step].items():
                got = r0["grads"][model][step][name]
                torch.testing.assert_close(got, g, atol=atol, rtol=rtol, msg=lambda m: f"{model} step {step} {name}: {m}")
                torch.testing.assert_close(r1["grads"][model][step][name], got, atol=0, rtol=0)
        # AdamW turns a near-zero gradient's round-off into a step of up to lr: a rare element may differ by ~lr
        diffs = torch.cat([(r0["params"][model][n] - p).abs().flatten() for n, p in one["params"][model].items()])
        assert diffs.max() < 2 * LR and (diffs > 0.05 * LR).float().mean() < 1e-3, f"{model}: parameters differ"
        for name, p in r0["params"][model].items():
            torch.testing.assert_close(r1["params"][model][name], p, atol=0, rtol=0)  # DDP keeps ranks equal
        no_grad = [n for n, g in one["grads"][model][0].items() if g.abs().max() == 0]
        assert not no_grad, f"{model}: parameters without gradient: {no_grad}"


@pytest.mark.slow
def test_whitening_two_processes_of_three_equal_one_of_six(ppo_runs):
    single_dir, dist_dir = ppo_runs
    one = torch.load(single_dir / "separate.rank0.pt")["whitened"]
    r0, r1 = (torch.load(dist_dir / f"separate.rank{r}.pt")["whitened"] for r in (0, 1))
    torch.testing.assert_close(torch.cat([r0, r1], 1), one, rtol=0, atol=1e-6)
    torch.testing.assert_close(one, whiten(WHITEN_INPUT, torch.ones_like(WHITEN_INPUT)), rtol=0, atol=1e-6)
    local = whiten(WHITEN_INPUT[:, :3], torch.ones(1, 3))  # what a per-rank whitening (TRL, verl) would give
    assert (local - r0).abs().max() > 0.1
