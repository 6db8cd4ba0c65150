"""Reward-model family: Bradley-Terry pair loss (outcome RMs) and the step loss of process RMs.

What it does: losses from scores/logits the caller already computed, returned as `(loss, metrics)` with
detached scalar metrics, plus `step_logits`, the one readout of a PRM head that training and scoring share.
What it does not: run models, pool hidden states, find separator positions (`rlvr.reward_models`).

Differences from TRL/OpenRLHF, on purpose:
- Pair accuracy counts ties apart (`pair/ties`, and a tie is not a correct pair): TRL and OpenRLHF count a tie
  as wrong, silently; a reward model that scores everything the same would read as 0% accurate rather than
  100% tied. The loss is `softplus(-(r_c - r_r - margin))`, overflow-safe for any score (OpenRLHF's
  `LogExpLoss` computes `log(1 + exp(.))` as written).
- A PRM head is read as ONE logit per step: `logit[1] - logit[0]` for a 2-class head (softmax probability of
  class 1 = sigmoid of that difference) or the single logit of a 1-class head, so hard and soft labels (floats
  in [0, 1]) train both heads with the same binary cross-entropy. TRL's PRMTrainer casts labels to int.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def bradley_terry_loss(r_chosen: Tensor, r_rejected: Tensor, *, margin: Tensor | float | None = None,
                       center_coef: float = 0.0, denom: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Bradley-Terry loss of a batch of pairs, with an optional margin and reward centering.

    r_chosen, r_rejected: (B,) scalar rewards. margin: (B,) or a float, the gap the chosen reward should
    exceed the rejected one by (Llama 2's margin loss). center_coef: Eisenstein et al. (2023) centering,
    `+ c * (r_c + r_r)^2`, which pulls rewards towards zero mean (TRL's `center_rewards_coefficient`).
      loss_b = -log sigmoid(r_c - r_r - margin) + c * (r_c + r_r)^2;   loss = sum_b loss_b / denom
    denom defaults to B; with micro-batches or several processes pass the global number of pairs.
    """
    if r_chosen.shape != r_rejected.shape or r_chosen.dim() != 1:
        raise ValueError(f"r_chosen and r_rejected must both be (B,); got {tuple(r_chosen.shape)}, {tuple(r_rejected.shape)}")
    diff = r_chosen - r_rejected                                # (B,)
    per_pair = F.softplus(-(diff - (0.0 if margin is None else margin)))
    if center_coef:
        per_pair = per_pair + center_coef * (r_chosen + r_rejected) ** 2
    loss = per_pair.sum() / (len(per_pair) if denom is None else denom)
    return loss, pair_metrics(r_chosen.detach(), r_rejected.detach())


def pair_metrics(r_chosen: Tensor, r_rejected: Tensor) -> dict[str, Tensor]:
    """Sums over the pairs (divide by the number of pairs): correct pairs, ties, margins, rewards and squares."""
    diff = r_chosen - r_rejected
    both = torch.cat([r_chosen, r_rejected])
    return {
        "correct": (diff > 0).float().sum(), "ties": (diff == 0).float().sum(), "margin": diff.sum(),
        "reward": both.sum() / 2, "reward_sq": (both**2).sum() / 2,
    }  # fmt: skip


def step_logits(logits: Tensor) -> Tensor:
    """One logit per scored position from a PRM head's logits (..., K), K = 1 or 2: sigmoid of it is P(good)."""
    if logits.shape[-1] == 2:
        return logits[..., 1] - logits[..., 0]
    if logits.shape[-1] == 1:
        return logits[..., 0]
    raise ValueError(f"a PRM head has 1 or 2 outputs per position, got {logits.shape[-1]}")


def prm_loss(logits: Tensor, labels: Tensor, *, denom: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Binary cross-entropy of step labels at the scored positions.

    logits: (S, K) head outputs at the S separator positions of a batch (K = 1 or 2); labels: (S,) in [0, 1].
    loss = sum_s BCE(step_logit_s, y_s) / denom (denom defaults to S; pass the global count when accumulating).
    Metrics are sums over steps: `correct` ((p > 0.5) == (y > 0.5)) and `positive` (labels above 0.5).
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (S, K) and labels (S,); got {tuple(logits.shape)}, {tuple(labels.shape)}")
    z = step_logits(logits.float())                                 # (S,)
    y = labels.to(z.dtype)
    loss = F.binary_cross_entropy_with_logits(z, y, reduction="sum") / (len(y) if denom is None else denom)
    with torch.no_grad():
        correct = ((z > 0) == (y > 0.5)).float().sum()
    return loss, {"correct": correct, "positive": (y > 0.5).float().sum()}
