"""Preference family: DPO and its variants (sigmoid, conservative, robust, IPO, hinge, length-normalised), SimPO
and KTO, as pure functions of sequence log-probs.

What it does: sequence log-probs from per-token ones (`sequence_logps`, with an explicit `sum` or `mean`), the
normalisation each loss declares (`LOSS_NORMALIZATION`), the losses with their implicit rewards as metrics, and
checks of the options (`check_dpo_options`). All inputs are per-pair (or per-example) tensors of shape (B,); the
loss is `sum over pairs / denom` (denom defaults to B; pass the global count of the optimizer step, as in
`rlvr.losses.policy.aggregate`, so micro-batches and processes add up to the full-batch loss).
What it does not: run models, cache reference log-probs (`rlvr.reference_logps`), tokenize (`rlvr.preference_data`)
or all-reduce; KTO's reference point arrives already averaged over the step's global batch.

Variants (Δ = h_c − h_r with h = logp_policy − logp_ref under the loss's normalisation, σ = logistic, ε = label
smoothing):
  sigmoid       −log σ(βΔ)                         sum    (DPO; with ε > 0 conservative DPO: −(1−ε) log σ(βΔ) − ε log σ(−βΔ))
  robust        [−(1−ε) log σ(βΔ) + ε log σ(−βΔ)] / (1−2ε)   sum   (rDPO)
  hinge         max(0, 1 − βΔ)                     sum    (SLiC/RSO)
  ipo           (Δ − 1/(2β))²                      mean   (per-token, as TRL and the IPO authors: the default IPO)
  ipo_sum       (Δ − 1/(2β))²                      sum    (OpenRLHF's IPO)
  sigmoid_norm  −log σ(βΔ)                         mean   (length-normalised DPO; open-instruct's dpo_norm)
  simpo         −log σ(β(logp_c − logp_r) − γ)     mean   (no reference model; ε as in sigmoid)
Implicit rewards (logged, detached) are β·h under the same normalisation (β·logp for SimPO).

Differences from TRL/OpenRLHF, on purpose:
- `label_smoothing > 0` with a loss that does not use it (hinge, ipo, ipo_sum) is an error. TRL >= 0.29 reads it
  only for robust/EXO/AOT and silently trains plain DPO when `sigmoid` is given ε > 0; here `sigmoid` with ε > 0 is
  conservative DPO, as in TRL <= 0.28, OpenRLHF and open-instruct.
- Both IPO normalisations exist under their own names, since they differ by a factor of the lengths (TRL averages
  per token, OpenRLHF sums); a reference cached for one normalisation is never reused for the other (the
  normalisation is part of the cache key).
- `rewards/ties` (the fraction of pairs with r_c == r_r exactly) is logged next to the strict
  `rewards/accuracies`, so the 0.0 accuracy of step 0 (reference = policy, every pair tied) reads as ties.
- KTO's reference point z0 is clamped at 0 here and detached; the caller averages it over the step's global
  batch of mismatched pairs built after sampling (TRL bakes the pairs into the dataset order and needs a
  sequential sampler).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LOSS_NORMALIZATION = {
    "sigmoid": "sum", "robust": "sum", "hinge": "sum", "ipo": "mean", "ipo_sum": "sum",
    "sigmoid_norm": "mean", "simpo": "mean",
}  # fmt: skip
DPO_LOSS_TYPES = tuple(LOSS_NORMALIZATION)
NORMALIZATIONS = ("sum", "mean")
USES_LABEL_SMOOTHING = ("sigmoid", "sigmoid_norm", "simpo", "robust")
NEEDS_REFERENCE = tuple(t for t in DPO_LOSS_TYPES if t != "simpo")


def sequence_logps(logp: Tensor, mask: Tensor, normalization: str) -> Tensor:
    """Sequence log-probs (B,) from per-token log-probs and a completion mask (B, T).

    sum:  Σ_t logp·m            (the log-probability of the whole completion)
    mean: Σ_t logp·m / Σ_t m    (per token; a row with no unmasked token gives 0)
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; expected one of {NORMALIZATIONS}")
    if logp.shape != mask.shape or logp.dim() != 2:
        raise ValueError(f"logp and mask must both be (B, T); got {tuple(logp.shape)} and {tuple(mask.shape)}")
    m = mask.to(logp.dtype)
    total = (logp * m).sum(-1)                                 # (B,)
    return total if normalization == "sum" else total / m.sum(-1).clamp(min=1.0)


def check_dpo_options(loss_type: str, beta: float, label_smoothing: float) -> None:
    """Raise ValueError on an unknown loss, beta <= 0, or a label smoothing the loss would ignore or cannot take."""
    if loss_type not in LOSS_NORMALIZATION:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected one of {DPO_LOSS_TYPES}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if label_smoothing and loss_type not in USES_LABEL_SMOOTHING:
        raise ValueError(
            f"label_smoothing={label_smoothing} has no effect with loss_type {loss_type!r}; it is used by "
            f"{', '.join(USES_LABEL_SMOOTHING)} (sigmoid with label_smoothing is conservative DPO). Set it to 0"
        )
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")


def pair_metrics(chosen_rewards: Tensor, rejected_rewards: Tensor) -> dict[str, Tensor]:
    """TRL's reward metrics over pairs (B,), plus ties: accuracies are strict (r_c > r_r), so ties count apart."""
    c, r = chosen_rewards.detach(), rejected_rewards.detach()
    return {
        "rewards/chosen": c.mean(),
        "rewards/rejected": r.mean(),
        "rewards/margins": (c - r).mean(),
        "rewards/accuracies": (c > r).float().mean(),
        "rewards/ties": (c == r).float().mean(),
    }


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor | None, ref_rejected: Tensor | None,
             *, loss_type: str = "sigmoid", beta: float = 0.1, label_smoothing: float = 0.0,
             simpo_gamma: float = 0.5, denom: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """The pairwise loss `loss_type` over B pairs (see the module docstring for the formulas).

    policy_*, ref_*: sequence log-probs (B,) under `LOSS_NORMALIZATION[loss_type]` (see `sequence_logps`);
    ref_* are None for simpo. Returns sum of per-pair losses / denom (default B) and the metrics of
    `pair_metrics` (detached means over this call's pairs).
    """
    check_dpo_options(loss_type, beta, label_smoothing)
    if (ref_chosen is None) != (loss_type == "simpo") or (ref_rejected is None) != (ref_chosen is None):
        raise ValueError(f"loss_type {loss_type!r}: reference log-probs are needed by all losses but simpo, "
                         "and simpo takes none")
    if loss_type == "simpo":
        h_c, h_r = policy_chosen, policy_rejected
    else:
        h_c, h_r = policy_chosen - ref_chosen.detach(), policy_rejected - ref_rejected.detach()
    delta = h_c - h_r                                          # (B,)
    eps = label_smoothing
    if loss_type in ("sigmoid", "sigmoid_norm", "simpo"):
        logits = beta * delta - (simpo_gamma if loss_type == "simpo" else 0.0)
        per_pair = -(1 - eps) * F.logsigmoid(logits) - eps * F.logsigmoid(-logits)
    elif loss_type == "robust":
        logits = beta * delta
        per_pair = (-(1 - eps) * F.logsigmoid(logits) + eps * F.logsigmoid(-logits)) / (1 - 2 * eps)
    elif loss_type == "hinge":
        per_pair = torch.relu(1 - beta * delta)
    else:  # ipo, ipo_sum: the normalisation was applied to the inputs
        per_pair = (delta - 1 / (2 * beta)).square()
    loss = per_pair.sum() / (per_pair.shape[0] if denom is None else denom)
    return loss, pair_metrics(beta * h_c, beta * h_r)


def kto_loss(policy_logps: Tensor, ref_logps: Tensor, desirable: Tensor, kl: Tensor | float, *, beta: float = 0.1,
             desirable_weight: float = 1.0, undesirable_weight: float = 1.0,
             denom: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """KTO (Ethayarajh et al. 2024, Eq. 7) over B unpaired examples.

    policy_logps, ref_logps: summed sequence log-probs (B,); desirable: (B,) bool labels; kl: the reference point,
    the mean of logp_policy(y'|x) − logp_ref(y'|x) over mismatched pairs of the step's global batch (clamped at 0
    and detached here). With h = policy − ref and z0 = max(kl, 0):
      desirable:   λ_D · (1 − σ(β(h − z0)))
      undesirable: λ_U · (1 − σ(β(z0 − h)))
    Returns sum / denom (default B) and metrics: "kl" (z0), "rewards/chosen" and "rewards/rejected" (mean β·h over
    this call's desirable / undesirable examples; NaN when there are none), "frac_desirable".
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not (policy_logps.shape == ref_logps.shape == desirable.shape) or policy_logps.dim() != 1:
        raise ValueError(f"policy_logps, ref_logps, desirable must all be (B,); got {tuple(policy_logps.shape)}, "
                         f"{tuple(ref_logps.shape)}, {tuple(desirable.shape)}")
    z0 = torch.as_tensor(kl, dtype=policy_logps.dtype, device=policy_logps.device).detach().clamp(min=0.0)
    h = policy_logps - ref_logps.detach()                      # (B,)
    d = desirable.bool()
    per_example = torch.where(
        d, desirable_weight * (1 - torch.sigmoid(beta * (h - z0))), undesirable_weight * (1 - torch.sigmoid(beta * (z0 - h)))
    )  # fmt: skip
    loss = per_example.sum() / (per_example.shape[0] if denom is None else denom)
    rewards = (beta * h).detach()
    nan = torch.tensor(float("nan"), dtype=rewards.dtype, device=rewards.device)
    metrics = {
        "kl": z0,
        "rewards/chosen": rewards[d].mean() if d.any() else nan,
        "rewards/rejected": rewards[~d].mean() if (~d).any() else nan,
        "frac_desirable": d.float().mean(),
    }
    return loss, metrics


def kto_weight_ratio(n_desirable: int, n_undesirable: int, desirable_weight: float, undesirable_weight: float) -> float:
    """λ_D·n_D / (λ_U·n_U); the KTO paper (Eq. 8) recommends keeping it in [1, 4/3]."""
    if n_undesirable == 0 or undesirable_weight == 0:
        return float("inf")
    return desirable_weight * n_desirable / (undesirable_weight * n_undesirable)
