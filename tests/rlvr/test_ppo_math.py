"""PPO's pure pieces against numbers worked out by hand: GAE, whitening, token rewards, KL controller, value loss."""

import pytest
import torch

from rlvr.advantages import explained_variance, gae, token_rewards, whiten
from rlvr.kl_control import next_kl_coef
from rlvr.losses import kl_penalty, value_loss


def close(actual, expected, atol=1e-6):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


# G1: r = [0, 0, 1], V = [.5, .6, .7], gamma 1, lambda .95
#   t2: delta = 1 + 0 - .7 = .3                  A = .3
#   t1: delta = 0 + .7 - .6 = .1                  A = .1 + .95 * .3 = .385
#   t0: delta = 0 + .6 - .5 = .1                  A = .1 + .95 * .385 = .46575
#   returns = A + V = [.96575, .985, 1.0]
G1_ADV, G1_RET = [0.46575, 0.385, 0.3], [0.96575, 0.985, 1.0]
R, V = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64), torch.tensor([[0.5, 0.6, 0.7]], dtype=torch.float64)


def test_gae_hand_example():
    adv, ret = gae(R, V, torch.ones(1, 3), gamma=1.0, lam=0.95)
    close(adv[0], G1_ADV)
    close(ret[0], G1_RET)
    # lambda 1: A_t = (sum of later rewards) - V_t = 1 - V_t
    close(gae(R, V, torch.ones(1, 3), gamma=1.0, lam=1.0)[0][0], [0.5, 0.4, 0.3])


@pytest.mark.parametrize("where", [3, 1], ids=["trailing_padding", "masked_token_in_the_middle"])
def test_gae_skips_a_masked_token(where):
    # a masked token with value 9.9 (and a reward of 5 that must not count either), appended or inserted
    r = torch.cat([R[:, :where], torch.tensor([[5.0]], dtype=torch.float64), R[:, where:]], dim=1)
    v = torch.cat([V[:, :where], torch.tensor([[9.9]], dtype=torch.float64), V[:, where:]], dim=1)
    mask = torch.ones(1, 4)
    mask[0, where] = 0
    adv, ret = gae(r, v, mask, gamma=1.0, lam=0.95)
    keep = [i for i in range(4) if i != where]
    close(adv[0, keep], G1_ADV)
    close(ret[0, keep], G1_RET)
    assert adv[0, where] == 0 and ret[0, where] == 0


def test_whitening_hand_example():
    # mean .383583, unbiased var .0068698 -> [.991344, .017092, -1.008436]
    # (2 processes x 3 tokens = 1 process x 6 tokens: tests/rlvr/trainers/test_ppo_distributed.py, real gloo)
    adv = torch.tensor([G1_ADV], dtype=torch.float64)
    close(whiten(adv, torch.ones(1, 3)), [[0.991344, 0.017092, -1.008436]])


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 3.0, 99.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    assert explained_variance(torch.full((1, 4), 2.0), returns, mask) == pytest.approx(0.0, abs=1e-6)
    # errors [.5, -.5, .5]: var 1/3 against var(returns) 1 -> 2/3
    assert explained_variance(torch.tensor([[0.5, 2.5, 2.5, 0.0]]), returns, mask) == pytest.approx(2 / 3)


def test_adaptive_kl_controller():
    # e = clip(12/6 - 1, -.2, .2) = .2 -> .1 * (1 + .2 * 256/10000) = .100512; KL 3: e = -.2 -> .099488
    kw = dict(controller="adaptive", target=6.0, horizon=10000, n_steps=256)
    assert next_kl_coef(0.1, 12.0, **kw) == pytest.approx(0.100512, abs=1e-9)
    assert next_kl_coef(0.1, 3.0, **kw) == pytest.approx(0.099488, abs=1e-9)
    assert next_kl_coef(0.1, 6.0, **kw) == pytest.approx(0.1)
    assert next_kl_coef(0.1, 12.0, **{**kw, "controller": "fixed"}) == 0.1
    with pytest.raises(ValueError, match="'fixed', 'adaptive'"):
        next_kl_coef(0.1, 1.0, **{**kw, "controller": "pid"})


def test_clipped_value_loss_hand_example():
    # old .5, v .9, R 1, clip .2: clamp(v) = .7 -> .5 * max((.9-1)^2, (.7-1)^2) = .5 * .09 = .045, clipped
    loss, m = value_loss(torch.tensor([[0.9]]), torch.tensor([[0.5]]), torch.tensor([[1.0]]), torch.ones(1, 1), clip_range=0.2)
    close(loss, 0.045)
    close(m["vf_clip_frac"], 1.0)


def test_score_goes_on_the_last_real_token_and_kl_on_every_real_token():
    # lengths 3 and 1 in a width of 4; k1 KL with beta .1 on d = [.2, -.5, 0] adds [-.02, .05, 0]
    d = torch.tensor([[0.2, -0.5, 0.0, 7.0], [0.3, 7.0, 7.0, 7.0]])
    kl = kl_penalty(d, torch.zeros_like(d), "k1")
    r = token_rewards(torch.tensor([1.0, 0.5]), torch.tensor([3, 1]), 4, truncated=torch.tensor([False, False]),
                      truncation="penalize", penalty=2.0, kl=kl, kl_coef=0.1)  # fmt: skip
    close(r, [[-0.02, 0.05, 1.0, 0.0], [0.5 - 0.03, 0.0, 0.0, 0.0]])
    # an empty completion gets nothing
    empty = token_rewards(torch.tensor([1.0]), torch.tensor([0]), 2, truncated=torch.tensor([False]), truncation="mask")
    close(empty, [[0.0, 0.0]])


def test_truncation_rules_differ_only_where_they_say():
    # the same 3 tokens, once ended by EOS (not truncated) and once cut at max_new_tokens
    args = (torch.tensor([1.0, 1.0]), torch.tensor([3, 3]), 3)
    trunc = torch.tensor([False, True])
    pen = token_rewards(*args, truncated=trunc, truncation="penalize", penalty=0.25)
    close(pen, [[0.0, 0.0, 1.0], [0.0, 0.0, 0.75]])
    close(token_rewards(*args, truncated=trunc, truncation="mask"), [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    boot = token_rewards(*args, truncated=trunc, truncation="bootstrap", bootstrap_values=torch.tensor([9.0, 0.4]), gamma=0.5)
    close(boot, [[0.0, 0.0, 1.0], [0.0, 0.0, 0.2]])  # gamma * V(after the cut); the finished row keeps its score
    with pytest.raises(ValueError, match="'penalize', 'mask', 'bootstrap'"):
        token_rewards(*args, truncated=trunc, truncation="drop")


def test_score_on_eos_not_first_pad_differs_from_trl():
    # TRL's placement (trl#1893): the score on the first PAD (index 3, value .8) after EOS (index 2), the PAD
    # position masked out of the policy loss but kept for GAE:
    #   t3: 1 - .8 = .2; t2: 0 + .8 - .7 + .95*.2 = .29; t1: .1 + .95*.29 = .3755; t0: .1 + .95*.3755 = .456725
    trl, _ = gae(torch.tensor([[0.0, 0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7, 0.8]]), torch.ones(1, 4), lam=0.95)
    close(trl[0, :3], [0.456725, 0.3755, 0.29], atol=1e-5)
    # ours: the score on EOS, the padding masked out (value .8 ignored) -> G1
    rewards = token_rewards(torch.tensor([1.0]), torch.tensor([3]), 4, truncated=torch.tensor([False]), truncation="mask")
    ours, _ = gae(rewards, torch.tensor([[0.5, 0.6, 0.7, 0.8]]), torch.tensor([[1, 1, 1, 0]]), lam=0.95)
    close(ours[0, :3], G1_ADV, atol=1e-5)
