"""rlvr.losses.preference against numbers worked out by hand.

The running pair: policy log-probs -10 (chosen, 4 tokens) and -12 (rejected, 2 tokens), reference -11 and -11,
beta 0.1. Summed: h_c = 1, h_r = -1, delta = 2, beta*delta = 0.2.
  -log sigmoid(0.2) = 0.598139, -log sigmoid(-0.2) = 0.798139
Per token: policy -2.5 and -6, reference -2.75 and -5.5: h_c = 0.25, h_r = -0.5, delta = 0.75.
"""

import math

import pytest
import torch

from rlvr.losses.preference import (
    LOSS_NORMALIZATION,
    check_dpo_options,
    dpo_loss,
    kto_loss,
    kto_weight_ratio,
    sequence_logps,
)

SUM = dict(policy_chosen=torch.tensor([-10.0]), policy_rejected=torch.tensor([-12.0]),
           ref_chosen=torch.tensor([-11.0]), ref_rejected=torch.tensor([-11.0]))  # fmt: skip
MEAN = dict(policy_chosen=torch.tensor([-10.0 / 4]), policy_rejected=torch.tensor([-12.0 / 2]),
            ref_chosen=torch.tensor([-11.0 / 4]), ref_rejected=torch.tensor([-11.0 / 2]))  # fmt: skip


def close(actual, expected, atol=1e-6):
    assert float(actual) == pytest.approx(expected, abs=atol)


def loss_of(loss_type, inputs, **kw):
    p = inputs
    return dpo_loss(p["policy_chosen"], p["policy_rejected"], p["ref_chosen"], p["ref_rejected"], loss_type=loss_type, **kw)


def test_sequence_logps_sum_and_mean_from_tokens():
    # chosen: 4 tokens summing to -10; rejected: 2 tokens summing to -12, then 2 pads (whatever is under the mask)
    logp = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [-5.0, -7.0, 99.0, 99.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    torch.testing.assert_close(sequence_logps(logp, mask, "sum"), torch.tensor([-10.0, -12.0]))
    torch.testing.assert_close(sequence_logps(logp, mask, "mean"), torch.tensor([-2.5, -6.0]))
    with pytest.raises(ValueError, match="normalization"):
        sequence_logps(logp, mask, "avg")


def test_sigmoid_loss_and_rewards():
    loss, m = loss_of("sigmoid", SUM)
    close(loss, 0.598139)
    close(m["rewards/chosen"], 0.1)
    close(m["rewards/rejected"], -0.1)
    close(m["rewards/margins"], 0.2)
    close(m["rewards/accuracies"], 1.0)
    close(m["rewards/ties"], 0.0)


@pytest.mark.parametrize("loss_type, inputs, kw, expected", [
    ("hinge", SUM, {}, 0.8),                                   # max(0, 1 - 0.2)
    ("sigmoid", SUM, {"label_smoothing": 0.1}, 0.618139),      # cDPO: 0.9*0.598139 + 0.1*0.798139
    ("robust", SUM, {"label_smoothing": 0.1}, 0.573139),       # (0.9*0.598139 - 0.1*0.798139) / 0.8
    ("ipo", MEAN, {}, 18.0625),                                # (0.75 - 1/(2*0.1))^2 = (0.75 - 5)^2
    ("ipo_sum", SUM, {}, 9.0),                                 # (2 - 5)^2, OpenRLHF's normalisation
    ("sigmoid_norm", MEAN, {}, 0.656350),                      # -log sigmoid(0.1 * 0.75)
    ("sigmoid_norm", MEAN, {"beta": 5.0}, 0.023245),           # open-instruct's dpo_norm beta: -log sigmoid(3.75)
])  # fmt: skip
def test_variants_match_hand(loss_type, inputs, kw, expected):
    close(loss_of(loss_type, inputs, **kw)[0], expected)


def test_declared_normalizations():
    assert LOSS_NORMALIZATION == {"sigmoid": "sum", "robust": "sum", "hinge": "sum", "ipo": "mean",
                                  "ipo_sum": "sum", "sigmoid_norm": "mean", "simpo": "mean"}  # fmt: skip


def test_simpo_needs_no_reference():
    # averages -2.5 vs -6 (diff 3.5); beta 2, gamma 1: -log sigmoid(2*3.5 - 1) = -log sigmoid(6)
    pc, pr = MEAN["policy_chosen"], MEAN["policy_rejected"]
    loss, m = dpo_loss(pc, pr, None, None, loss_type="simpo", beta=2.0, simpo_gamma=1.0)
    close(loss, 0.002476)
    close(m["rewards/chosen"], -5.0)  # beta * average log-prob
    # at TRL's CPO defaults (beta 0.1, gamma 0.5) the same pair barely moves: -log sigmoid(0.35 - 0.5)
    close(dpo_loss(pc, pr, None, None, loss_type="simpo", beta=0.1, simpo_gamma=0.5)[0], 0.770957)
    with pytest.raises(ValueError, match="simpo takes none"):
        dpo_loss(pc, pr, pc, pr, loss_type="simpo")
    with pytest.raises(ValueError, match="reference"):
        dpo_loss(pc, pr, None, None, loss_type="sigmoid")


def test_step_zero_reference_equals_policy():
    logps = torch.tensor([-10.0, -3.0, -7.5])
    other = torch.tensor([-12.0, -2.0, -7.5])
    loss, m = dpo_loss(logps, other, logps.clone(), other.clone())
    close(loss, math.log(2))
    for k in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        close(m[k], 0.0)
    close(m["rewards/ties"], 1.0)


@pytest.mark.parametrize("loss_type, eps", [("hinge", 0.1), ("ipo", 0.1), ("ipo_sum", 0.2)])
def test_label_smoothing_with_a_loss_that_ignores_it_is_an_error(loss_type, eps):
    with pytest.raises(ValueError, match="no effect"):
        loss_of(loss_type, SUM, label_smoothing=eps)


def test_bad_options():
    with pytest.raises(ValueError, match="unknown DPO loss_type"):
        check_dpo_options("sigmod", 0.1, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 0.5\)"):
        check_dpo_options("robust", 0.1, 0.5)
    with pytest.raises(ValueError, match="beta"):
        check_dpo_options("sigmoid", 0.0, 0.0)


def test_global_denominator_sums_micro_batches():
    pc, pr = torch.tensor([-10.0, -4.0]), torch.tensor([-12.0, -3.0])
    rc, rr = torch.tensor([-11.0, -4.0]), torch.tensor([-11.0, -3.5])
    full, _ = dpo_loss(pc, pr, rc, rr)
    parts = [dpo_loss(pc[i:i + 1], pr[i:i + 1], rc[i:i + 1], rr[i:i + 1], denom=2)[0] for i in range(2)]
    close(parts[0], 0.598139 / 2)
    close(parts[0] + parts[1], float(full))


def test_dpo_gradient_direction():
    pc = torch.tensor([-10.0], requires_grad=True)
    pr = torch.tensor([-12.0], requires_grad=True)
    loss, _ = dpo_loss(pc, pr, torch.tensor([-11.0]), torch.tensor([-11.0]))
    loss.backward()
    # d/dx -log sigmoid(beta*(x - y)) = -beta * sigmoid(-0.2) = -0.1 * 0.450166
    close(pc.grad, -0.0450166)
    close(pr.grad, 0.0450166)


def test_kto_desirable_and_undesirable():
    policy, ref = torch.tensor([-10.0, -12.0]), torch.tensor([-11.0, -11.0])  # h = +1, -1
    des = torch.tensor([True, False])
    loss, m = kto_loss(policy, ref, des, torch.tensor(0.5), beta=0.1)
    # desirable: 1 - sigmoid(0.1*(1 - 0.5)) = 0.487503; undesirable: 1 - sigmoid(0.1*(0.5 + 1)) = 0.462570
    close(loss, (0.487503 + 0.462570) / 2)
    one, _ = kto_loss(policy[:1], ref[:1], des[:1], 0.5, beta=0.1)
    close(one, 0.487503)
    one, _ = kto_loss(policy[1:], ref[1:], des[1:], 0.5, beta=0.1)
    close(one, 0.462570)
    close(m["kl"], 0.5)
    close(m["rewards/chosen"], 0.1)
    close(m["rewards/rejected"], -0.1)
    close(m["frac_desirable"], 0.5)


def test_kto_reference_point_is_clamped_at_zero_and_weights_apply():
    policy, ref, des = torch.tensor([-10.0]), torch.tensor([-11.0]), torch.tensor([True])
    loss, m = kto_loss(policy, ref, des, torch.tensor(-3.0), beta=0.1, desirable_weight=2.0)
    close(m["kl"], 0.0)
    close(loss, 2 * (1 - 1 / (1 + math.exp(-0.1))))  # 2 * (1 - sigmoid(0.1)) = 0.950042
    _, m = kto_loss(policy, ref, des, 0.0)
    assert math.isnan(float(m["rewards/rejected"]))  # no undesirable example in this call


def test_kto_reference_point_has_no_gradient():
    policy = torch.tensor([-10.0], requires_grad=True)
    kl = torch.tensor(0.5, requires_grad=True)
    loss, _ = kto_loss(policy, torch.tensor([-11.0]), torch.tensor([True]), kl)
    loss.backward()
    assert kl.grad is None and policy.grad is not None


def test_kto_weight_ratio():
    assert kto_weight_ratio(10, 10, 1.0, 1.0) == 1.0
    assert kto_weight_ratio(5, 10, 1.0, 1.0) == 0.5
    assert kto_weight_ratio(5, 0, 1.0, 1.0) == float("inf")
