"""Losses as pure functions, one module per family: tensors and named scalars in, `(loss, metrics)` out.

- `rlvr.losses.policy`: clipped policy gradient (PPO/GRPO/DAPO/Dr.GRPO), KL estimators, value loss, masked NLL,
  loss aggregation, entropy from logits.
- `rlvr.losses.preference`: DPO and its variants, SimPO, KTO, sequence log-probs with explicit normalisation.
Later families (reward models, distillation) get modules of their own beside them. Nothing here runs a
model or computes advantages (`rlvr.advantages`).
"""

from rlvr.losses.policy import (
    KL_ESTIMATORS,
    LOSS_AGG_MODES,
    aggregate,
    entropy_from_logits,
    kl_penalty,
    policy_loss,
    sft_loss,
    value_loss,
)

__all__ = [
    "KL_ESTIMATORS",
    "LOSS_AGG_MODES",
    "aggregate",
    "entropy_from_logits",
    "kl_penalty",
    "policy_loss",
    "sft_loss",
    "value_loss",
]
