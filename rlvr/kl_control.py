"""KL coefficient controllers for KL-regularised RL (PPO): fixed, or adaptive (Ziegler et al. 2019).

What it does: `next_kl_coef` returns the coefficient for the next step from the current one and the KL
measured on this step's batch. A pure function of numbers: the trainer keeps the coefficient (and saves it
in its checkpoint so a resumed run continues with it).
What it does not: measure the KL (the trainer does, from `rlvr.losses.kl_penalty`) or apply it.

The adaptive rule is Ziegler et al.'s, as OpenRLHF and verl implement it:
    e = clip(KL / target - 1, -0.2, 0.2);   coef <- coef * (1 + e * n_steps / horizon)
with n_steps the number of sequences in the (global) batch. The KL it compares with `target` is the mean
over sequences of each sequence's summed per-token KL (Ziegler's "KL in nats per episode", target 6 in the
paper); verl feeds its controller the per-token mean instead (its default target is 0.1).
"""

KL_CONTROLLERS = ("fixed", "adaptive")
_MAX_PROPORTIONAL_ERROR = 0.2


def next_kl_coef(coef: float, kl: float, *, controller: str, target: float, horizon: float, n_steps: int) -> float:
    """The KL coefficient after one step that measured `kl` on `n_steps` sequences.

    >>> round(next_kl_coef(0.1, 12.0, controller="adaptive", target=6.0, horizon=10000, n_steps=256), 6)
    0.100512
    """
    if controller not in KL_CONTROLLERS:
        raise ValueError(f"unknown KL controller {controller!r}; expected one of {KL_CONTROLLERS}")
    if controller == "fixed":
        return coef
    if target <= 0 or horizon <= 0:
        raise ValueError(f"adaptive KL controller needs target > 0 and horizon > 0, got {target} and {horizon}")
    e = min(max(kl / target - 1.0, -_MAX_PROPORTIONAL_ERROR), _MAX_PROPORTIONAL_ERROR)
    return coef * (1.0 + e * n_steps / horizon)
