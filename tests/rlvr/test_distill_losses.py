"""rlvr.losses.distill against numbers worked out by hand.

Student p_S = [0.5, 0.5], teacher p_T = [0.9, 0.1]:
  KL(T || S) = 0.9 ln(0.9/0.5) + 0.1 ln(0.1/0.5) = 0.529008 - 0.160944 = 0.368064
  KL(S || T) = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1) = -0.293893 + 0.804719 = 0.510826
  M = [0.7, 0.3]: KL(T || M) = 0.116322, KL(S || M) = 0.087177, JSD(0.5) = 0.101749
OPD: student log-probs [-0.5, -1.0], teacher [-0.7, -0.2] -> reverse KL per token [0.2, -0.8], advantages
[-0.2, 0.8].
"""

import math

import pytest
import torch

from rlvr.losses import policy_loss
from rlvr.losses.distill import forward_kl, generalized_jsd, opd_advantages, reverse_kl

S = torch.tensor([0.5, 0.5]).log()
T = torch.tensor([0.9, 0.1]).log()


def test_kl_both_directions_and_jsd_by_hand():
    assert float(forward_kl(S, T)) == pytest.approx(0.368064, abs=1e-6)
    assert float(reverse_kl(S, T)) == pytest.approx(0.510826, abs=1e-6)
    assert float(generalized_jsd(S, T, 0.5)) == pytest.approx(0.101749, abs=1e-6)
    # the end points are the two KLs (TRL's convention), and a distribution is at distance 0 from itself
    assert float(generalized_jsd(S, T, 0.0)) == pytest.approx(0.368064, abs=1e-6)
    assert float(generalized_jsd(S, T, 1.0)) == pytest.approx(0.510826, abs=1e-6)
    assert float(forward_kl(T, T)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="beta"):
        generalized_jsd(S, T, 1.5)


def test_divergences_batch_over_leading_axes_and_survive_zero_probabilities():
    s = torch.stack([S, T])[None]  # (1, 2, V)
    t = torch.stack([T, T])[None]
    assert forward_kl(s, t).shape == (1, 2)
    assert forward_kl(s, t)[0].tolist() == pytest.approx([0.368064, 0.0], abs=1e-6)
    # a token the teacher gives probability 0: KL(T || S) ignores it, KL(S || T) is infinite, never NaN
    t0 = torch.tensor([1.0, 0.0]).log()
    assert float(forward_kl(S, t0)) == pytest.approx(math.log(2.0), abs=1e-6)
    assert math.isinf(float(reverse_kl(S, t0)))


def test_sampled_reverse_kl_is_unbiased_for_the_exact_one():
    # E_{y ~ S}[log S(y) - log T(y)] = KL(S || T): the OPD advantage is minus a one-sample estimate of it
    p = S.exp()
    expectation = float((p * (S - T)).sum())
    assert expectation == pytest.approx(float(reverse_kl(S, T)), abs=1e-6)


def test_opd_advantages_by_hand():
    student = torch.tensor([[-0.5, -1.0]])
    teacher = torch.tensor([[-0.7, -0.2]])
    mask = torch.ones(1, 2)
    adv, m = opd_advantages(student, teacher, mask)
    assert adv[0].tolist() == pytest.approx([-0.2, 0.8], abs=1e-6)
    assert float(m["reverse_kl"]) == pytest.approx((0.2 - 0.8) / 2, abs=1e-6)
    adv2, _ = opd_advantages(student, teacher, mask, kl_coef=0.5)
    assert adv2[0].tolist() == pytest.approx([-0.1, 0.4], abs=1e-6)


def test_opd_discount_masks_padding_and_adds_the_verifier_advantage():
    student = torch.tensor([[-0.5, -1.0, -3.0]])
    teacher = torch.tensor([[-0.7, -0.2, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the third token is padding: its huge gap must not flow back
    adv, _ = opd_advantages(student, teacher, mask, discount=0.5)
    assert adv[0].tolist() == pytest.approx([-0.2 + 0.5 * 0.8, 0.8, 0.0], abs=1e-6)
    adv, _ = opd_advantages(student, teacher, mask, sequence_advantages=torch.tensor([1.0]))
    assert adv[0].tolist() == pytest.approx([0.8, 1.8, 0.0], abs=1e-6)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        opd_advantages(student, teacher[:, :2], mask)
    with pytest.raises(ValueError, match="discount"):
        opd_advantages(student, teacher, mask, discount=2.0)


def test_policy_loss_with_opd_advantages_pushes_toward_the_teacher():
    # one on-policy step (ratio 1) with per-token advantages: the gradient of -A_t * log p(y_t) raises the log-prob
    # of the token the teacher likes more than the student (A > 0) and lowers the other one
    logp = torch.tensor([[-0.5, -1.0]], requires_grad=True)
    adv, _ = opd_advantages(logp.detach(), torch.tensor([[-0.7, -0.2]]), torch.ones(1, 2))
    loss, _ = policy_loss(logp, logp.detach(), adv, torch.ones(1, 2), loss_agg_mode="token-mean")
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([0.1, -0.4], abs=1e-6)  # -A / 2 tokens
