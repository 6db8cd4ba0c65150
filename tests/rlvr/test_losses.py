"""rlvr.losses against numbers worked out by hand."""

import math

import pytest
import torch

from rlvr.losses import LOSS_AGG_MODES, aggregate, entropy_from_logits, kl_penalty, policy_loss, sft_loss, value_loss

# The running example: two sequences of lengths 2 and 3 in a (B=2, T=3) batch, clip 0.2 -> range [0.8, 1.2].
#   seq0, A = +1, ratios [1.5, 0.5, pad]:
#     r=1.5: -min(1.5*1, 1.2*1) = -1.2   (clipped high: A>0, r>1.2)
#     r=0.5: -min(0.5*1, 0.8*1) = -0.5   (not clipped: for A>0 a low ratio keeps its gradient)
#   seq1, A = -2, ratios [1.1, 0.7, 1.3]:
#     r=1.1: -min(-2.2, -2.2)   =  2.2   (inside)
#     r=0.7: -min(-1.4, -1.6)   =  1.6   (clipped low: A<0, r<0.8)
#     r=1.3: -min(-2.6, -2.4)   =  2.6   (not clipped: for A<0 a high ratio keeps its gradient)
#   per-token [-1.2, -0.5 | 2.2, 1.6, 2.6]; seq sums -1.7 and 6.4; total 4.7 over 5 tokens.
RATIOS = torch.tensor([[1.5, 0.5, 9.0], [1.1, 0.7, 1.3]])
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])
ADV = torch.tensor([1.0, -2.0])
OLD = torch.full((2, 3), -1.0)
PER_TOKEN = torch.tensor([[-1.2, -0.5, 123.0], [2.2, 1.6, 2.6]])  # 123 sits under the mask


def logp_from(ratios):
    return (OLD + ratios.log()).requires_grad_(True)


def close(actual, expected, atol=1e-5):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


@pytest.mark.parametrize("mode, max_len, expected", [
    ("token-mean", None, 4.7 / 5),                             # 0.94
    ("seq-mean-token-mean", None, (-1.7 / 2 + 6.4 / 3) / 2),   # (-0.85 + 2.133333) / 2 = 0.641667
    ("seq-mean-token-sum", None, (-1.7 + 6.4) / 2),            # 2.35
    ("seq-mean-token-sum-norm", None, 4.7 / 3 / 2),            # max_len defaults to T=3: 0.783333
    ("seq-mean-token-sum-norm", 4, 4.7 / 4 / 2),               # generation budget 4: 0.5875
])
def test_aggregate_modes(mode, max_len, expected):
    close(aggregate(PER_TOKEN, MASK, mode, max_len=max_len), expected)


@pytest.mark.parametrize("mode, expected", [
    ("token-mean", 4.7 / 5), ("seq-mean-token-mean", 0.641667), ("seq-mean-token-sum", 2.35),
])
def test_policy_loss_matches_hand_per_token(mode, expected):
    loss, _ = policy_loss(logp_from(RATIOS), OLD, ADV, MASK, loss_agg_mode=mode)
    close(loss, expected)


def test_micro_batches_with_global_denom_sum_to_full_batch():
    # token-mean, global denom 5: seq0 alone -1.7/5 = -0.34, seq1 alone 6.4/5 = 1.28; sum 0.94 = full batch
    parts = [aggregate(PER_TOKEN[i:i + 1], MASK[i:i + 1], "token-mean", denom=5) for i in range(2)]
    close(parts[0], -0.34)
    close(parts[1], 1.28)
    close(parts[0] + parts[1], aggregate(PER_TOKEN, MASK, "token-mean"))
    # with local denominators the halves would be -0.85 and 2.133333, summing to 1.283333, not 0.94
    local = sum(aggregate(PER_TOKEN[i:i + 1], MASK[i:i + 1], "token-mean") for i in range(2))
    assert abs(float(local) - 0.94) > 0.3
    # seq-mean-token-mean with the global sequence count 2: -0.85/2 + 2.133333/2 = 0.641667
    seq = sum(aggregate(PER_TOKEN[i:i + 1], MASK[i:i + 1], "seq-mean-token-mean", denom=2) for i in range(2))
    close(seq, aggregate(PER_TOKEN, MASK, "seq-mean-token-mean"))
    # and the same through policy_loss, including gradients
    full_logp = logp_from(RATIOS)
    policy_loss(full_logp, OLD, ADV, MASK)[0].backward()
    micro_logp = logp_from(RATIOS)
    for i in range(2):
        policy_loss(micro_logp[i:i + 1], OLD[i:i + 1], ADV[i:i + 1], MASK[i:i + 1], denom=5)[0].backward()
    close(micro_logp.grad, full_logp.grad)


def test_aggregate_unknown_mode_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        aggregate(PER_TOKEN, MASK, "sum")
    assert all(mode in str(err.value) for mode in LOSS_AGG_MODES)


def test_clip_fracs_and_ratio_mean():
    _, m = policy_loss(logp_from(RATIOS), OLD, ADV, MASK)
    close(m["clip_frac_high"], 1 / 5)   # seq0 r=1.5
    close(m["clip_frac_low"], 1 / 5)    # seq1 r=0.7
    close(m["clip_frac"], 2 / 5)        # r=0.5 (A>0) and r=1.3 (A<0) are outside the range but not clipped
    close(m["ratio_mean"], 5.1 / 5)     # (1.5 + 0.5 + 1.1 + 0.7 + 1.3) / 5 = 1.02
    # approx_kl = mean(r - 1 - ln r): 0.094535 + 0.193147 + 0.004690 + 0.056675 + 0.037636 = 0.386682 -> /5
    close(m["approx_kl"], 0.386682 / 5)
    assert "kl" not in m and "dual_clip_frac" not in m
    assert all(v.dim() == 0 and not v.requires_grad for v in m.values())


def test_clipped_tokens_have_zero_gradient():
    logp = logp_from(RATIOS)
    policy_loss(logp, OLD, ADV, MASK)[0].backward()
    # d/dlogp of -A*r is -A*r; token-mean divides by 5.
    #   seq0: r=1.5 clipped -> 0;  r=0.5 -> -0.5/5 = -0.1;  pad -> 0
    #   seq1: r=1.1 -> 2.2/5 = 0.44;  r=0.7 clipped -> 0;  r=1.3 -> 2.6/5 = 0.52
    close(logp.grad, [[0.0, -0.1, 0.0], [0.44, 0.0, 0.52]])


def test_asymmetric_clip_higher():
    # clip_ratio_high 0.6 (DAPO clip-higher): seq0 r=1.5 is now inside [0.8, 1.6]: per-token -1.5 instead of -1.2
    # total 4.7 - 0.3 = 4.4 -> /5 = 0.88; high clip frac 0
    loss, m = policy_loss(logp_from(RATIOS), OLD, ADV, MASK, clip_ratio_high=0.6)
    close(loss, 0.88)
    close(m["clip_frac_high"], 0.0)


def test_dual_clip():
    # A = -1, ratios [4, 2], c = 3, clip 0.2:
    #   r=4: -min(-4, -1.2) = 4  -> dual-clip min(4, -A*c = 3) = 3 (constant: zero gradient)
    #   r=2: -min(-2, -1.2) = 2  -> min(2, 3) = 2, gradient -A*r/2 = 1
    # token-mean (3 + 2) / 2 = 2.5; dual_clip_frac 1/2. Without dual-clip: (4 + 2) / 2 = 3.
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[4.0, 2.0]])).requires_grad_(True)
    loss, m = policy_loss(logp, old, torch.tensor([-1.0]), torch.ones(1, 2), clip_ratio_c=3.0)
    close(loss, 2.5)
    close(m["dual_clip_frac"], 0.5)
    loss.backward()
    close(logp.grad, [[0.0, 1.0]])
    close(policy_loss(logp, old, torch.tensor([-1.0]), torch.ones(1, 2))[0], 3.0)
    with pytest.raises(ValueError, match="> 1"):
        policy_loss(logp, old, torch.tensor([-1.0]), torch.ones(1, 2), clip_ratio_c=0.5)


def test_token_level_advantages_equal_broadcast_sequence_ones():
    adv_bt = ADV[:, None].expand(2, 3).clone()
    close(policy_loss(logp_from(RATIOS), OLD, adv_bt, MASK)[0], 0.94)
    with pytest.raises(ValueError, match="advantages"):
        policy_loss(logp_from(RATIOS), OLD, torch.ones(3), MASK)


def test_is_weights_scale_per_token_and_get_no_gradient():
    # weights [[.5, 1, x], [1, 1, 2]]: per-token [-0.6, -0.5 | 2.2, 1.6, 5.2], sum 7.9 -> /5 = 1.58
    w = torch.tensor([[0.5, 1.0, 7.0], [1.0, 1.0, 2.0]], requires_grad=True)
    loss, _ = policy_loss(logp_from(RATIOS), OLD, ADV, MASK, is_weights=w)
    close(loss, 1.58)
    loss.backward()
    assert w.grad is None


def test_kl_estimators():
    # d = logp - ref = [ln2, -ln2, 0]
    #   k1 = d                    = [0.693147, -0.693147, 0]
    #   k2 = d^2 / 2              = [0.240227, 0.240227, 0]
    #   k3 = e^-d + d - 1         = [0.5 + ln2 - 1, 2 - ln2 - 1, 0] = [0.193147, 0.306853, 0]
    ln2 = math.log(2)
    logp = torch.tensor([[ln2, 0.0, -3.0]])
    ref = torch.tensor([[0.0, ln2, -3.0]])
    close(kl_penalty(logp, ref, "k1"), [[ln2, -ln2, 0.0]])
    close(kl_penalty(logp, ref, "k2"), [[0.240227, 0.240227, 0.0]])
    close(kl_penalty(logp, ref, "k3"), [[0.193147, 0.306853, 0.0]])
    with pytest.raises(ValueError, match="'k1', 'k2', 'k3'"):
        kl_penalty(logp, ref, "low_var_kl")


def test_k3_log_ratio_is_clamped():
    # d = -100 -> log(ref/pi) = 100, clamped to 20: e^20 - 20 - 1 (finite; unclamped would overflow to inf)
    out = kl_penalty(torch.tensor([[-100.0]]), torch.tensor([[0.0]]), "k3")
    close(out, [[math.exp(20) - 21]], atol=1e3)
    assert torch.isfinite(out).all()


def test_kl_in_loss():
    # ratio 1 everywhere and A = 0, so only the KL term remains: logp - ref = [ln2, -ln2]
    # k3 = [0.193147, 0.306853], mean exactly 0.25; loss = 0.1 * 0.25 = 0.025; metric kl = 0.25
    ln2 = math.log(2)
    logp = torch.tensor([[ln2, 0.0]])
    ref = torch.tensor([[0.0, ln2]])
    loss, m = policy_loss(logp, logp, torch.zeros(1), torch.ones(1, 2), ref_logp=ref, kl_coef=0.1)
    close(loss, 0.025)
    close(m["kl"], 0.25)
    # k1 in the loss: mean(ln2, -ln2) = 0
    close(policy_loss(logp, logp, torch.zeros(1), torch.ones(1, 2), ref_logp=ref, kl_coef=0.1,
                      kl_estimator="k1")[0], 0.0)
    # kl_coef 0 reports the metric but leaves the loss alone
    loss0, m0 = policy_loss(logp, logp, torch.zeros(1), torch.ones(1, 2), ref_logp=ref)
    close(loss0, 0.0)
    close(m0["kl"], 0.25)


def test_sft_loss():
    # logp [-1, -2 | -3] unmasked: NLL sum 6 over 3 tokens -> 2.0; with denom 6 -> 1.0 (nll metric stays 2.0)
    logp = torch.tensor([[-1.0, -2.0, -50.0], [-3.0, -50.0, -50.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    loss, m = sft_loss(logp, mask)
    close(loss, 2.0)
    close(m["nll"], 2.0)
    loss6, m6 = sft_loss(logp, mask, denom=6)
    close(loss6, 1.0)
    close(m6["nll"], 2.0)


def test_value_loss():
    # clip 0.2, three valid tokens:
    #   old 0, v .5, R 1:  (v-R)^2 = .25, clip(v)=.2 -> (.2-1)^2 = .64; max .64 (clipped term larger)
    #   old 0, v .1, R 1:  .81, clip(v)=.1 -> .81; max .81 (equal: not counted)
    #   old 0, v .5, R 0:  .25, clip(v)=.2 -> .04; max .25
    # loss = 0.5 * (.64 + .81 + .25) / 3 = 0.283333; vf_clip_frac 1/3
    values = torch.tensor([[0.5, 0.1], [0.5, 9.0]], requires_grad=True)
    old = torch.zeros(2, 2)
    returns = torch.tensor([[1.0, 1.0], [0.0, 5.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, m = value_loss(values, old, returns, mask)
    close(loss, 0.283333)
    close(m["vf_clip_frac"], 1 / 3)
    loss.backward()
    # the clipped token has zero gradient; the others d/dv 0.5(v-R)^2 / 3 = (v-R)/3
    close(values.grad, [[0.0, -0.9 / 3], [0.5 / 3, 0.0]])
    # unclipped: 0.5 * (.25 + .81 + .25) / 3 = 0.218333
    close(value_loss(values, old, returns, mask, clip_range=None)[0], 0.218333)


def test_entropy_from_logits():
    # uniform over 4 -> ln 4 = 1.386294; logits [0, ln3] -> p = [.25, .75]:
    #   H = .25 ln 4 + .75 ln(4/3) = 0.346574 + 0.215762 = 0.562335; [1000, 1000] -> ln 2 to 1e-5 (no overflow,
    #   no cancellation); -inf logits count as probability 0 (no NaN)
    inf = float("inf")
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3), -inf, -inf], [1000.0, 1000.0, -1e9, -inf]]])
    expected = [[math.log(4), 0.562335, math.log(2)]]
    with torch.no_grad():
        close(entropy_from_logits(logits, chunk_size=2), expected)
    grad_logits = logits.clone().requires_grad_(True)
    h = entropy_from_logits(grad_logits)
    close(h, expected)
    assert h.requires_grad
    h[0, 1].backward()
    assert torch.isfinite(grad_logits.grad).all()
