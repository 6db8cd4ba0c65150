"""rlvr.advantages against numbers worked out by hand."""

import math

import pytest
import torch

from rlvr.advantages import gae, group_advantages, whiten

# Three groups of G=4 used throughout:
#   g0 = [1, 0, 0, 1]: mean 0.5, deviations [+.5, -.5, -.5, +.5], sum sq 1, unbiased var 1/3, std 0.577350
#   g1 = [0, 0, 0, 0]: zero variance
#   g2 = [1, 2, 3, 6]: mean 3, deviations [-2, -1, 0, 3], sum sq 14, unbiased var 14/3, std 2.160247
REWARDS = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 6.0]])
S0, S2 = math.sqrt(1 / 3), math.sqrt(14 / 3)


def close(actual, expected, atol=1e-5):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


def test_grpo_group_scaling():
    adv = group_advantages(REWARDS, estimator="grpo", scale_rewards="group")
    # g0: +-0.5 / 0.577350 = +-0.866025; g2: [-2, -1, 0, 3] / 2.160247
    close(adv, [[0.5 / S0, -0.5 / S0, -0.5 / S0, 0.5 / S0],
                [0, 0, 0, 0],
                [-2 / S2, -1 / S2, 0, 3 / S2]])
    close(adv[0, 0], 0.866025)
    close(adv[2], [-0.925820, -0.462910, 0.0, 1.388730])


def test_dr_grpo_no_scaling():
    adv = group_advantages(REWARDS, estimator="grpo", scale_rewards="none")
    close(adv, [[0.5, -0.5, -0.5, 0.5], [0, 0, 0, 0], [-2, -1, 0, 3]])


def test_batch_scaling():
    # rewards [[0, 2], [1, 1]]: group-centred [[-1, 1], [0, 0]];
    # batch mean 1, deviations [-1, 1, 0, 0], sum sq 2, unbiased var 2/3, std 0.816497 -> +-1.224745
    adv = group_advantages(torch.tensor([[0.0, 2.0], [1.0, 1.0]]), scale_rewards="batch")
    close(adv, [[-1.224745, 1.224745], [0.0, 0.0]])


def test_rloo():
    adv = group_advantages(REWARDS, estimator="rloo", scale_rewards="none")
    # g0: 1 - mean(0,0,1) = 2/3; 0 - mean(1,0,1) = -2/3
    # g2: 1 - 11/3 = -8/3; 2 - 10/3 = -4/3; 3 - 9/3 = 0; 6 - 6/3 = 4   (= 4/3 * [-2, -1, 0, 3])
    close(adv, [[2 / 3, -2 / 3, -2 / 3, 2 / 3], [0, 0, 0, 0], [-8 / 3, -4 / 3, 0, 4]])
    scaled = group_advantages(REWARDS, estimator="rloo", scale_rewards="group")
    close(scaled[2, 3], 4 / S2)  # 4 / 2.160247 = 1.851640


def test_rloo_needs_two_completions():
    with pytest.raises(ValueError, match="at least 2"):
        group_advantages(torch.ones(3, 1), estimator="rloo")


@pytest.mark.parametrize("estimator", ["grpo", "rloo"])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_zero_variance_groups_are_exact_zeros(estimator, scale):
    # float32 mean of [0.11]*3 is 0.11 - 7.45e-9: without the guard "group" scaling gives 7.45e-9 / (0 + 1e-6)
    # = 0.0074 for every completion instead of 0
    rewards = torch.tensor([[0.11, 0.11, 0.11], [0.7, 0.7, 0.7]])
    adv = group_advantages(rewards, estimator=estimator, scale_rewards=scale)
    assert torch.equal(adv, torch.zeros(2, 3))


def test_single_completion_grpo_is_zero_not_nan():
    assert torch.equal(group_advantages(torch.tensor([[1.0], [0.0]])), torch.zeros(2, 1))


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match="'grpo', 'rloo'"):
        group_advantages(REWARDS, estimator="ppo")
    with pytest.raises(ValueError, match="'group', 'batch', 'none'"):
        group_advantages(REWARDS, scale_rewards="token")


def test_gae_hand_example():
    # gamma=1, lam=0.5
    # seq0 r=[0,0,1], V=[.5,.5,.5], all valid:
    #   t2: delta = 1 + 0 - .5 = .5,  A = .5
    #   t1: delta = 0 + .5 - .5 = 0,  A = 0 + .5*.5 = .25
    #   t0: delta = 0,                A = .5*.25 = .125        returns = A + V = [.625, .75, 1]
    # seq1 r=[0,2,junk], V=[1,.5,junk], mask [1,1,0]:
    #   t2 masked -> 0, nothing carried
    #   t1: delta = 2 + 0 - .5 = 1.5, A = 1.5
    #   t0: delta = 0 + .5 - 1 = -.5, A = -.5 + .5*1.5 = .25   returns = [1.25, 2, 0]
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 7.0]])
    values = torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.5, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    close(adv, [[0.125, 0.25, 0.5], [0.25, 1.5, 0.0]])
    close(ret, [[0.625, 0.75, 1.0], [1.25, 2.0, 0.0]])


def test_gae_discount():
    # gamma=0.5, lam=1 -> A_t = discounted return - V_t on seq0 above:
    #   t2: 1 - .5 = .5;  t1: .5*1 - .5 = 0;  t0: .25*1 - .5 = -.25
    adv, _ = gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.full((1, 3), 0.5), torch.ones(1, 3), gamma=0.5, lam=1.0)
    close(adv, [[-0.25, 0.0, 0.5]])


def test_gae_masked_middle_token_does_not_propagate():
    # mask [1,0,1]: the middle reward (5) and value (9) must be ignored; result equals the 2-token
    # sequence r=[0,1], V=[.5,.5] (t1: .5, t0: 0 + .5*.5 = .25) with a 0 in the hole
    adv, ret = gae(torch.tensor([[0.0, 5.0, 1.0]]), torch.tensor([[0.5, 9.0, 0.5]]),
                   torch.tensor([[1, 0, 1]]), gamma=1.0, lam=0.5)
    close(adv, [[0.25, 0.0, 0.5]])
    close(ret, [[0.75, 0.0, 1.0]])


def test_whiten():
    # unmasked [1, 2, 3, 4]: mean 2.5, unbiased var (2.25+.25+.25+2.25)/3 = 5/3, std 1.290994
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    z = 1.5 / math.sqrt(5 / 3)  # 1.161895
    y = 0.5 / math.sqrt(5 / 3)  # 0.387298
    close(whiten(x, mask), [[-z, -y, y], [z, 0.0, 0.0]])
    close(whiten(x, mask, shift_mean=False), [[2.5 - z, 2.5 - y, 2.5 + y], [2.5 + z, 0.0, 0.0]])
