"""Distillation family: divergences between a student's and a teacher's next-token distributions, and the
per-token advantage of on-policy distillation (OPD).

What it does: pure functions of log-probs the caller already computed.
- `forward_kl` KL(teacher || student), `reverse_kl` KL(student || teacher), `generalized_jsd` (GKD's
  interpolation between them) over full distributions (..., V) -> (...): what logit distillation minimises.
- `opd_advantages`: from the log-probs of the tokens the student sampled, under the student and under the
  teacher, the per-token advantage A_t = -kl_coef * (log p_S(y_t) - log p_T(y_t)) (discount 0, as the Tinker
  cookbook and prime-rl), optionally discounted over later tokens and added to the verifier's sequence
  advantage. The policy-gradient loss (`rlvr.losses.policy.policy_loss`) takes it as (B, T) advantages.
What it does not: run models, sample, check that two tokenizers agree (`rlvr.distill.vocab`), or aggregate a
loss (the caller's `loss_agg_mode`).

Differences from the peers, on purpose:
- `generalized_jsd` at beta 0 and 1 is forward and reverse KL, as TRL's GKD; in between it is TRL's mixture
  M = beta * T + (1 - beta) * S. Every function works in log space (logsumexp), so a zero probability gives 0,
  not NaN (TRL's `F.kl_div` with log_target does the same; a hand-written p * log(p / q) does not).
- `opd_advantages` masks the per-token term before discounting, so padding after a completion never flows
  back into its last tokens (the cookbook's discounted sum runs over the sampled tokens only, too).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _kl(p_logp: Tensor, q_logp: Tensor) -> Tensor:
    """KL(p || q) = sum_v p (log p - log q) over the last axis; terms where p = 0 are 0."""
    p = p_logp.exp()
    diff = torch.where(p > 0, p_logp - q_logp, torch.zeros_like(p_logp))  # 0 * (-inf - x) would be NaN
    return (p * diff).sum(-1)


def forward_kl(student_logp: Tensor, teacher_logp: Tensor) -> Tensor:
    """KL(teacher || student) per position: (..., V) log-probs -> (...). Mass-covering (SFT on teacher samples
    minimises it in expectation)."""
    return _kl(teacher_logp.float(), student_logp.float())


def reverse_kl(student_logp: Tensor, teacher_logp: Tensor) -> Tensor:
    """KL(student || teacher) per position: (..., V) log-probs -> (...). Mode-seeking; what OPD estimates
    from the student's own samples."""
    return _kl(student_logp.float(), teacher_logp.float())


def generalized_jsd(student_logp: Tensor, teacher_logp: Tensor, beta: float = 0.5) -> Tensor:
    """GKD's generalized Jensen-Shannon divergence per position, (..., V) -> (...).

    JSD_beta = beta * KL(T || M) + (1 - beta) * KL(S || M), M = beta * T + (1 - beta) * S;
    beta = 0 is forward_kl (KL(T || S)) and beta = 1 is reverse_kl (KL(S || T)), as TRL defines them.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"generalized_jsd: beta must be in [0, 1], got {beta}")
    if beta == 0.0:
        return forward_kl(student_logp, teacher_logp)
    if beta == 1.0:
        return reverse_kl(student_logp, teacher_logp)
    s, t = student_logp.float(), teacher_logp.float()
    m = torch.logsumexp(torch.stack([t + math.log(beta), s + math.log(1.0 - beta)]), dim=0)  # (..., V)
    return beta * _kl(t, m) + (1.0 - beta) * _kl(s, m)


def opd_advantages(student_logp: Tensor, teacher_logp: Tensor, mask: Tensor, *, kl_coef: float = 1.0,
                   discount: float = 0.0,
                   sequence_advantages: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token advantages of on-policy distillation, (B, T).

    student_logp, teacher_logp, mask: (B, T), the log-probs of the tokens the student sampled.
      rkl_t = log p_S(y_t) - log p_T(y_t)                 (a one-sample estimate of KL(S || T) at t)
      r_t   = -kl_coef * rkl_t * mask_t
      A_t   = sum_{k >= t} discount^(k - t) * r_k         (discount 0: A_t = r_t)
      A_t  += sequence_advantages[b]                      (if given: the verifier's advantage, (B,))
    and A_t = 0 where mask is 0. Student [-0.5, -1.0], teacher [-0.7, -0.2] give A = [-0.2, 0.8].
    metrics: "reverse_kl", the masked mean of rkl_t (>= 0 in expectation; the student's distance to the
    teacher on its own samples).
    """
    if not (student_logp.shape == teacher_logp.shape == mask.shape) or student_logp.dim() != 2:
        raise ValueError(f"student_logp, teacher_logp, mask must all be (B, T); got {tuple(student_logp.shape)}, "
                         f"{tuple(teacher_logp.shape)}, {tuple(mask.shape)}")  # fmt: skip
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"opd discount must be in [0, 1], got {discount}")
    m = mask.to(torch.float32)
    rkl = (student_logp.float() - teacher_logp.float()).detach() * m  # (B, T)
    adv = -kl_coef * rkl
    if discount > 0:
        acc = torch.zeros_like(adv[:, 0])
        out = torch.zeros_like(adv)
        for t in range(adv.shape[1] - 1, -1, -1):  # reverse running sum; T is a completion length
            acc = adv[:, t] + discount * acc
            out[:, t] = acc
        adv = out
    if sequence_advantages is not None:
        if sequence_advantages.shape != adv.shape[:1]:
            raise ValueError(f"sequence_advantages must be (B,) = ({adv.shape[0]},), got {tuple(sequence_advantages.shape)}")
        adv = adv + sequence_advantages.detach().float()[:, None]
    adv = adv * m
    return adv, {"reverse_kl": (rkl.sum() / m.sum().clamp(min=1.0))}
