"""Policy-gradient family: clipped policy gradient (PPO/GRPO/DAPO/Dr.GRPO), KL estimators, value loss,
masked NLL, loss aggregation, entropy from logits.

What it does: per-token losses from log-probs the caller already computed, aggregated by `loss_agg_mode`,
returned as `(loss, metrics)` with detached scalar metrics. Variants are arguments, never trainer branches.
What it does not: run models, compute advantages (`rlvr.advantages`), scale by gradient-accumulation
steps (pass the global `denom` instead, see `aggregate`), or all-reduce metrics across processes.

Differences from TRL (`GRPOTrainer._compute_loss`) and verl (`core_algos.py`), on purpose:
- `aggregate` takes an explicit `denom` (global #tokens or #sequences of the whole optimizer step), so
  micro-batch losses add up to the full-batch loss; TRL/verl divide by local counts (TRL's "dapo" mode
  is the exception, with `num_items_in_batch`). "seq-mean-token-sum-norm" divides by `max_len` (the
  generation budget) like TRL's "dr_grpo", not by the padded width T as verl does (which varies per batch).
- The log-ratio log(pi/pi_old) is clamped to [-20, 20] before exp (as verl; TRL does not clamp).
- `kl_penalty` "k3" clamps the log-ratio to [-20, 20] (as verl) but not the output (verl clamps it to
  [-10, 10], which silently zeroes the gradient of a runaway KL). TRL's k3 has no clamp at all.
- `clip_frac*` count tokens where the clipped term is selected (TRL's `is_low/high_clipped`; verl's
  `pg_clipfrac` is the same set). verl's `pg_clipfrac_lower` (the dual-clip fraction) is `dual_clip_frac`.
- Dual-clip is off by default (`clip_ratio_c=None`); verl turns it on with 3.0.
- `is_weights` multiply the policy-gradient term only, not the KL term (as TRL's vLLM IS correction and
  verl's TIS, which keeps its KL loss separate).
"""

import torch
from torch import Tensor

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
KL_ESTIMATORS = ("k1", "k2", "k3")
_LOG_RATIO_CLAMP = 20.0  # exp(20) ~ 5e8: far outside any trust region, still finite in fp32


def aggregate(per_token: Tensor, mask: Tensor, mode: str, *, denom: float | None = None,
              max_len: int | None = None) -> Tensor:
    """Reduce per-token values (B, T) over a mask (B, T) to a scalar.

    token-mean:              sum(x*m) / denom;                     denom defaults to mask.sum().
    seq-mean-token-mean:     sum_b (sum_t x*m / sum_t m) / denom;  denom defaults to B.
    seq-mean-token-sum:      sum_b sum_t x*m / denom;              denom defaults to B.
    seq-mean-token-sum-norm: sum_b sum_t x*m / max_len / denom;    denom defaults to B, max_len to T (Dr.GRPO).
    With gradient accumulation or several processes, pass the GLOBAL count (completion tokens or sequences
    of the whole optimizer step) as denom: the micro-batch losses then sum to the full-batch loss.
    A sequence with no unmasked token contributes 0 (its length is clamped to 1).
    """
    if mode not in LOSS_AGG_MODES:
        raise ValueError(f"unknown loss_agg_mode {mode!r}; expected one of {LOSS_AGG_MODES}")
    if per_token.shape != mask.shape or per_token.dim() != 2:
        raise ValueError(f"per_token and mask must both be (B, T); got {tuple(per_token.shape)} and {tuple(mask.shape)}")
    m = mask.to(per_token.dtype)
    seq_sum = (per_token * m).sum(dim=1)                       # (B,)
    B, T = per_token.shape
    if mode == "token-mean":
        return seq_sum.sum() / (m.sum().clamp(min=1.0) if denom is None else denom)
    n_seq = B if denom is None else denom
    if mode == "seq-mean-token-mean":
        return (seq_sum / m.sum(dim=1).clamp(min=1.0)).sum() / n_seq
    if mode == "seq-mean-token-sum":
        return seq_sum.sum() / n_seq
    return seq_sum.sum() / (T if max_len is None else max_len) / n_seq


def kl_penalty(logp: Tensor, ref_logp: Tensor, estimator: str = "k3") -> Tensor:
    """Per-token estimate of KL(pi || ref) from log-probs (B, T) of tokens sampled from pi (Schulman 2020).

    k1 = logp - ref_logp                                 (unbiased, can be negative)
    k2 = 0.5 * (logp - ref_logp) ** 2                    (biased, low variance, right gradient)
    k3 = exp(ref_logp - logp) - (ref_logp - logp) - 1    (unbiased, >= 0, low variance); log-ratio clamped to [-20, 20].
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"unknown kl_estimator {estimator!r}; expected one of {KL_ESTIMATORS}")
    d = logp - ref_logp                                        # (B, T)
    if estimator == "k1":
        return d
    if estimator == "k2":
        return 0.5 * d.square()
    neg = (-d).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)      # log(ref / pi)
    return neg.exp() - neg - 1.0


def _masked_mean(x: Tensor, m: Tensor) -> Tensor:
    return ((x * m).sum() / m.sum().clamp(min=1.0)).detach()


def policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *,
                clip_ratio_low: float = 0.2, clip_ratio_high: float = 0.2, clip_ratio_c: float | None = None,
                loss_agg_mode: str = "token-mean", denom: float | None = None, max_len: int | None = None,
                ref_logp: Tensor | None = None, kl_coef: float = 0.0, kl_estimator: str = "k3",
                is_weights: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO/GRPO clipped surrogate with optional dual-clip, KL-in-loss and importance-sampling weights.

    logp, old_logp, mask: (B, T). advantages: (B,) (one per sequence, broadcast over tokens) or (B, T).
      ratio = exp(logp - old_logp)
      per_token = -min(ratio * A, clamp(ratio, 1 - clip_ratio_low, 1 + clip_ratio_high) * A)
      dual-clip (clip_ratio_c > 1, verl): where A < 0, per_token = min(per_token, -A * clip_ratio_c)
      is_weights (B, T): per_token *= is_weights.detach()   (trainer/sampler mismatch, truncated by caller)
      KL in the loss, if ref_logp is given and kl_coef > 0: per_token += kl_coef * kl_penalty(logp, ref_logp)
    loss = aggregate(per_token, mask, loss_agg_mode, denom=denom, max_len=max_len).

    metrics (detached scalars, means over this call's unmasked tokens):
      clip_frac_low  ratio < 1 - low  and A < 0 (the clipped term is selected, gradient 0)
      clip_frac_high ratio > 1 + high and A > 0
      clip_frac      their sum
      dual_clip_frac (only with clip_ratio_c) A < 0 and the dual-clip bound is selected
      approx_kl      KL(pi_old || pi) by k3 with r = pi/pi_old: mean(r - 1 - log r)  (>= 0)
      ratio_mean     mean ratio
      kl             (only with ref_logp) mean kl_penalty(logp, ref_logp, kl_estimator)
    """
    if not (logp.shape == old_logp.shape == mask.shape) or logp.dim() != 2:
        raise ValueError(f"logp, old_logp, mask must all be (B, T); got {tuple(logp.shape)}, "
                         f"{tuple(old_logp.shape)}, {tuple(mask.shape)}")
    if advantages.dim() == 1 and advantages.shape[0] == logp.shape[0]:
        adv = advantages[:, None]                              # (B, 1), broadcasts over T
    elif advantages.shape == logp.shape:
        adv = advantages
    else:
        raise ValueError(f"advantages must be (B,) or (B, T) with (B, T) = {tuple(logp.shape)}; "
                         f"got {tuple(advantages.shape)}")
    if clip_ratio_c is not None and clip_ratio_c <= 1.0:
        raise ValueError(f"clip_ratio_c (dual-clip bound) must be > 1, got {clip_ratio_c}")
    adv = adv.detach().to(logp.dtype)
    m = mask.to(logp.dtype)

    log_ratio = (logp - old_logp.detach()).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)  # (B, T)
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1.0 - clip_ratio_low, 1.0 + clip_ratio_high)
    per_token = torch.maximum(-ratio * adv, -clipped * adv)    # = -min(ratio*A, clipped*A)
    metrics: dict[str, Tensor] = {}
    if clip_ratio_c is not None:
        bound = -adv * clip_ratio_c                            # (B, 1) or (B, T)
        dual = (adv < 0) & (per_token > bound)
        per_token = torch.where(adv < 0, torch.minimum(per_token, bound), per_token)
        metrics["dual_clip_frac"] = _masked_mean(dual.to(m.dtype), m)
    if is_weights is not None:
        per_token = per_token * is_weights.detach()
    if ref_logp is not None:
        kl = kl_penalty(logp, ref_logp.detach(), kl_estimator)  # (B, T)
        if kl_coef > 0:
            per_token = per_token + kl_coef * kl
        metrics["kl"] = _masked_mean(kl, m)

    loss = aggregate(per_token, mask, loss_agg_mode, denom=denom, max_len=max_len)

    with torch.no_grad():
        low = ((ratio < 1.0 - clip_ratio_low) & (adv < 0)).to(m.dtype)
        high = ((ratio > 1.0 + clip_ratio_high) & (adv > 0)).to(m.dtype)
        metrics["clip_frac_low"] = _masked_mean(low, m)
        metrics["clip_frac_high"] = _masked_mean(high, m)
        metrics["clip_frac"] = metrics["clip_frac_low"] + metrics["clip_frac_high"]
        metrics["approx_kl"] = _masked_mean(ratio - 1.0 - log_ratio, m)
        metrics["ratio_mean"] = _masked_mean(ratio, m)
    return loss, metrics


def sft_loss(logp: Tensor, mask: Tensor, *, denom: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Masked negative log-likelihood: -sum(logp * m) / denom (denom defaults to mask.sum()).

    logp, mask: (B, T). metrics: "nll", the per-token mean NLL of this call (independent of denom).
    """
    loss = aggregate(-logp, mask, "token-mean", denom=denom)
    m = mask.to(logp.dtype)
    return loss, {"nll": _masked_mean(-logp, m)}


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, *,
               clip_range: float | None = 0.2, loss_agg_mode: str = "token-mean",
               denom: float | None = None, max_len: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped value loss, per token 0.5 * max((v - R)^2, (clamp(v, old - c, old + c) - R)^2).

    values, old_values, returns, mask: (B, T). clip_range=None gives plain 0.5 * (v - R)^2.
    Aggregated like `policy_loss` (`loss_agg_mode`, `denom`, `max_len`: see `aggregate`).
    metrics: "vf_clip_frac", the fraction of unmasked tokens where the clipped term is strictly larger.
    """
    old_values, returns = old_values.detach(), returns.detach()
    loss1 = (values - returns).square()                        # (B, T)
    if clip_range is None:
        per_token = loss1
        clip_frac = torch.zeros((), dtype=values.dtype, device=values.device)
    else:
        v_clipped = torch.clamp(values, old_values - clip_range, old_values + clip_range)
        loss2 = (v_clipped - returns).square()
        per_token = torch.maximum(loss1, loss2)
        clip_frac = _masked_mean((loss2 > loss1).to(values.dtype), mask.to(values.dtype))
    loss = aggregate(0.5 * per_token, mask, loss_agg_mode, denom=denom, max_len=max_len)
    return loss, {"vf_clip_frac": clip_frac}


def entropy_from_logits(logits: Tensor, *, chunk_size: int = 1024) -> Tensor:
    """Entropy of softmax(logits) over the last axis: (B, T, V) -> (B, T), in float32.

    H = -sum(p * log p) with log p = log_softmax(z) (a logsumexp), so large logits neither overflow nor
    lose digits (verl's logsumexp(z) - sum(p * z) cancels two numbers of size |z|), and -inf logits give
    0, not NaN. With grad enabled it is one expression (autograd keeps what it needs). Under no_grad it
    runs over chunk_size rows of B*T at a time, so only a (chunk_size, V) float32 copy exists at once
    instead of a full (B, T, V) one.
    """
    if not torch.is_grad_enabled() or not logits.requires_grad:
        flat = logits.reshape(-1, logits.shape[-1])            # (B*T, V)
        out = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
        for i in range(0, flat.shape[0], chunk_size):
            out[i:i + chunk_size] = _entropy(flat[i:i + chunk_size])
        return out.reshape(logits.shape[:-1])
    return _entropy(logits)


def _entropy(logits: Tensor) -> Tensor:
    logp = torch.log_softmax(logits.float(), dim=-1)          # (..., V)
    # clamp -inf (masked vocabulary) to the most negative float so that 0 * log 0 is 0, not NaN
    logp = logp.clamp(min=torch.finfo(logp.dtype).min)
    return -(logp.exp() * logp).sum(dim=-1)
