"""Reward-model losses and process advantages against numbers worked out by hand (issue #14's evidence)."""

import math

import pytest
import torch

from rlvr.advantages import min_form_rewards, process_advantages, step_token_rewards
from rlvr.losses.reward import bradley_terry_loss, prm_loss, step_logits


def close(actual, expected, atol=1e-6):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


def test_bradley_terry_loss_with_margin_and_centering():
    c, r = torch.tensor([2.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    # -log sigmoid(1.5) = log(1 + e^-1.5)
    close(bradley_terry_loss(c, r)[0], 0.2014133)
    # -log sigmoid(1.5 - 1)
    close(bradley_terry_loss(c, r, margin=1.0)[0], 0.4740770)
    # + 0.01 * (2 + 0.5)^2 = + 0.0625
    close(bradley_terry_loss(c, r, center_coef=0.01)[0], 0.2639133)
    # per-pair margins, and a global denominator: two pairs summed over 4 (as if 4 pairs were split over 2 ranks)
    loss, _ = bradley_terry_loss(torch.tensor([2.0, 2.0], dtype=torch.float64), torch.tensor([0.5, 0.5], dtype=torch.float64),
                                 margin=torch.tensor([0.0, 1.0], dtype=torch.float64), denom=4)
    close(loss, (0.2014133 + 0.4740770) / 4)


def test_bradley_terry_is_finite_for_huge_gaps_and_counts_ties_apart():
    loss, m = bradley_terry_loss(torch.tensor([-200.0, 1.0, 3.0]), torch.tensor([200.0, 1.0, 0.0]))
    assert math.isfinite(float(loss))
    close(loss, (400.0 + math.log(2) + math.log1p(math.exp(-3))) / 3, atol=1e-4)
    assert float(m["correct"]) == 1 and float(m["ties"]) == 1  # the tie is neither correct nor wrong
    close(m["margin"], -400.0 + 0.0 + 3.0)


def test_prm_readout_two_class_and_single_logit():
    # softmax([0, 0])[1] = 0.5; softmax([2, 0])[1] = 1 / (1 + e^2) = 0.1192029
    close(torch.sigmoid(step_logits(torch.tensor([[0.0, 0.0], [2.0, 0.0]]))), [0.5, 0.1192029])
    close(torch.sigmoid(step_logits(torch.tensor([[0.0], [-2.0]]))), [0.5, 0.1192029])
    with pytest.raises(ValueError, match="1 or 2 outputs"):
        step_logits(torch.zeros(2, 3))


def test_prm_loss_soft_labels():
    # step logits 0 and -2; labels 1 and 0.25: BCE = log 2 + [-(0.25 log s(-2) + 0.75 log s(2))]
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    want = math.log(2) - (0.25 * math.log(s(-2)) + 0.75 * math.log(s(2)))
    loss, m = prm_loss(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([1.0, 0.25]))
    close(loss, want / 2, atol=1e-6)
    assert float(m["correct"]) == 1  # step 2: p = 0.12 and label 0.25 agree (both bad); step 1: p = 0.5 is not > 0.5


def test_process_advantages_deepseekmath():
    # group of 2: completion 1 has steps ending at tokens 2 and 5 (rewards 0.9, 0.2); completion 2 one step at 3 (0.5)
    # R = {0.9, 0.2, 0.5}: mean 0.533333, population std sqrt(0.246667 / 3) = 0.286744
    rewards = torch.tensor([[0.9, 0.2], [0.5, 0.0]])
    ends = torch.tensor([[2, 5], [3, 0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    placed = step_token_rewards(rewards, ends, mask, 6)
    close(placed, [[0, 0, 0.9, 0, 0, 0.2], [0, 0, 0, 0.5, 0, 0]])
    adv = process_advantages(rewards, ends, mask, 6, group_size=2, eps=0.0)
    a, b, c = 1.278724, -1.162476, -0.116248  # normalised rewards
    close(adv, [[a + b] * 3 + [b] * 3, [c] * 4 + [0, 0]], atol=1e-5)
    close(adv[0, 0], 0.116248, atol=1e-5)
    # the unbiased (sample) std, sqrt(0.246667 / 2) = 0.351188: completion 1 tokens 0-2 get 0.094916
    sample = process_advantages(rewards, ends, mask, 6, group_size=2, std="sample", eps=0.0)
    close(sample[:, 0], [0.094916, -0.094916], atol=1e-5)
    close(sample[0, 3], -0.949158, atol=1e-5)


def test_process_advantages_flat_groups_are_zero_and_steps_must_fit():
    adv = process_advantages(torch.full((2, 2), 0.7), torch.tensor([[1, 2], [0, 0]]), torch.tensor([[1, 1], [1, 0]]), 3,
                             group_size=2)
    assert torch.equal(adv, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="outside the 3 completion tokens"):
        step_token_rewards(torch.ones(1, 1), torch.tensor([[3]]), torch.ones(1, 1), 3)
    with pytest.raises(ValueError, match="groups of 2"):
        process_advantages(torch.ones(3, 1), torch.zeros(3, 1, dtype=torch.long), torch.ones(3, 1), 2, group_size=2)


def test_min_form_rewards_pure():
    # w = softmax(-[0.8, -0.6, 0.4] / 0.1) = [8.3149e-7, 0.9999538, 4.5398e-5]; sum w*r = -0.5999534
    r = torch.tensor([[0.8, -0.6, 0.4, 9.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0]])
    out = min_form_rewards(r, mask, temperature=0.1)
    w = out[0, :3] / r[0, :3]
    close(w.float(), [8.3149e-7, 0.9999538, 4.5398e-5], atol=1e-7)
    close(out.sum().float(), -0.5999534, atol=1e-7)
    assert out[0, 3] == 0

