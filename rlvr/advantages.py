"""Advantage estimators as pure functions: group-relative (GRPO, Dr.GRPO, RLOO), token-level GAE, whitening,
the per-token rewards PPO feeds to GAE, and process-supervised (step-reward) advantages.

What it does: turns rewards (and, for GAE, values) into advantages; places per-sequence scores and per-token
KL penalties on tokens (`token_rewards`). Tensors in, tensors out, no trainer state, no gradients (everything
runs under `torch.no_grad`). Statistics that must span all processes (`whiten`, `explained_variance`) take a
`sum_all` function (e.g. `lambda t: accelerator.reduce(t, "sum")`) instead of knowing about processes.
What it does not: compute scores (verifiers do), filter groups (`filter_groups` is rollout's job), or
broadcast sequence advantages over tokens (`losses.policy_loss` accepts (B,) advantages directly).

Differences from the references, on purpose:
- `group_advantages` uses the unbiased std (Bessel, `torch.std` default) like TRL's GRPOTrainer and verl's
  `compute_grpo_outcome_advantage`, but its default eps is 1e-6 (verl's) where TRL uses 1e-4.
- Zero-variance groups give exact zeros, forced with `torch.where`: `r - mean` alone can leave float
  round-off (float32 mean of [0.11]*3 is off by 7e-9), which dividing by (0 + eps) inflates to ~0.01.
- `process_advantages` (DeepSeekMath 4.1.3 process supervision; no maintained peer ships it: TRL declined it
  in trl#3090) normalises step rewards with the POPULATION std of the group's steps by default (the paper's
  `std(R)` over a set of rewards); `std="sample"` gives the unbiased one. Its input steps are any step rewards
  (a PRM's probabilities, or PURE's min-form weighted ones from `min_form_rewards`).
- `gae` does not whiten its output (verl's `compute_gae_advantage_return` does): call `whiten` yourself,
  so the trainer decides. Masked positions are 0 in both outputs (verl leaves the carried value there).
- `whiten` takes its mean and variance over all processes when given `sum_all` (TRL and verl whiten each
  rank's batch alone, so the result depends on how the batch is sharded).
- `token_rewards` puts the score on the last real token of each completion (the EOS when one was emitted),
  found from the completion's length, never by searching for a pad id; TRL puts it on the first padding
  token after EOS (trl#1893) and finds EOS as `ids == pad`, which breaks when pad and EOS share an id.
"""

from collections.abc import Callable

import torch
from torch import Tensor

ESTIMATORS = ("grpo", "rloo")
SCALE_REWARDS = ("group", "batch", "none")
TRUNCATION = ("penalize", "mask", "bootstrap")


@torch.no_grad()
def group_advantages(rewards: Tensor, *, estimator: str = "grpo", scale_rewards: str = "group",
                     eps: float = 1e-6) -> Tensor:
    """Group-relative advantages for P prompts x G completions.

    rewards: (P, G). Returns (P, G) float advantages.
    estimator:
      "grpo": r_i - mean(r of the group).
      "rloo": r_i - mean of the other G-1 rewards of the group (= G/(G-1) * (r_i - mean)); needs G >= 2.
    scale_rewards:
      "group": divide by the group's std (unbiased, as TRL) + eps.
      "batch": divide by the std of all P*G rewards (unbiased, as TRL) + eps.
      "none":  no division (Dr.GRPO; also plain RLOO, which verl never scales).
    A group whose rewards are all equal gets all-zero advantages, whatever the scaling (never NaN);
    so does every group when G == 1 with "grpo".
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (P, G) = (prompts, completions per prompt), got shape {tuple(rewards.shape)}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; expected one of {ESTIMATORS}")
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"unknown scale_rewards {scale_rewards!r}; expected one of {SCALE_REWARDS}")
    r = rewards if rewards.is_floating_point() else rewards.float()  # (P, G); int/bool rewards become float32
    G = r.shape[1]
    if estimator == "rloo" and G < 2:
        raise ValueError(f"estimator 'rloo' needs at least 2 completions per prompt, got G={G}")

    mean = r.mean(dim=1, keepdim=True)                         # (P, 1)
    if estimator == "grpo":
        adv = r - mean
    else:
        # mean of the others = (sum - r_i) / (G - 1)
        adv = r - (r.sum(dim=1, keepdim=True) - r) / (G - 1)

    if scale_rewards == "group" and G > 1:
        adv = adv / (r.std(dim=1, keepdim=True) + eps)          # (P, G) / (P, 1)
    elif scale_rewards == "batch" and r.numel() > 1:
        adv = adv / (r.std() + eps)

    flat = (r == r[:, :1]).all(dim=1, keepdim=True)            # (P, 1): zero-variance groups
    return torch.where(flat, torch.zeros_like(adv), adv)


@torch.no_grad()
def gae(rewards: Tensor, values: Tensor, mask: Tensor, *, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Token-level generalised advantage estimation for PPO.

    rewards, values, mask: (B, T). Returns (advantages, returns), both (B, T).
      delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1};  R_t = A_t + V_t,
    where "t+1" is the next position with mask 1 (V and A are 0 past the last one).
    Positions with mask 0 are skipped: their reward and value never enter the recursion (so padding and
    tool-output tokens in the middle do not propagate), and both outputs are 0 there.
    """
    if not (rewards.shape == values.shape == mask.shape) or rewards.dim() != 2:
        raise ValueError(f"rewards, values, mask must all be (B, T); got {tuple(rewards.shape)}, "
                         f"{tuple(values.shape)}, {tuple(mask.shape)}")
    m = mask.to(values.dtype)                                  # (B, T)
    B, T = rewards.shape
    next_value = values.new_zeros(B)                           # (B,)
    last_adv = values.new_zeros(B)                             # (B,)
    advs = []
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv_t = delta + gamma * lam * last_adv
        # a masked position carries the later value/advantage through unchanged
        next_value = torch.where(m[:, t] > 0, values[:, t], next_value)
        last_adv = torch.where(m[:, t] > 0, adv_t, last_adv)
        advs.append(adv_t * m[:, t])
    advantages = torch.stack(advs[::-1], dim=1)                # (B, T)
    returns = (advantages + values) * m
    return advantages, returns


def _local_sum(t: Tensor) -> Tensor:
    return t


def masked_mean_var(x: Tensor, m: Tensor, sum_all: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """(count, mean, unbiased variance) of x where m is 1, over every process `sum_all` sums across."""
    x, m = x.to(torch.float64), m.to(torch.float64)
    n, s = sum_all(torch.stack([m.sum(), (x * m).sum()])).unbind()
    mean = s / n
    sq = sum_all(((x - mean) ** 2 * m).sum())
    return n, mean, sq / (n - 1)


@torch.no_grad()
def whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, *, eps: float = 1e-8,
           sum_all: Callable[[Tensor], Tensor] = _local_sum) -> Tensor:
    """Masked whitening: (x - mean) / sqrt(var + eps) over the positions where mask is 1.

    x, mask: (B, T) (any matching shapes work). var is unbiased (as TRL's and verl's `masked_whiten`).
    shift_mean=False adds the mean back (scale only, as TRL's `whiten`). Masked positions are 0 in the output.
    sum_all: sums a tensor over all processes (default: this process only), so that N processes holding
    3 tokens each get what one process holding all 3N gets.
    """
    m = mask.to(x.dtype)
    n, mean, var = masked_mean_var(x, m, sum_all)
    if n < 2:
        raise ValueError(f"whiten needs at least 2 unmasked elements, got {int(n)}")
    out = ((x - mean) * torch.rsqrt(var + eps)).to(x.dtype)
    if not shift_mean:
        out = out + mean.to(x.dtype)
    return out * m


@torch.no_grad()
def explained_variance(values: Tensor, returns: Tensor, mask: Tensor, *, eps: float = 1e-8,
                       sum_all: Callable[[Tensor], Tensor] = _local_sum) -> float:
    """1 - Var(returns - values) / Var(returns) over unmasked positions (of all processes, see `whiten`).

    1 = the critic predicts every return; 0 = no better than the mean return; negative = worse.
    """
    m = mask.to(torch.float64)
    _, _, var_r = masked_mean_var(returns.to(torch.float64), m, sum_all)
    _, _, var_err = masked_mean_var((returns - values).to(torch.float64), m, sum_all)
    return float(1.0 - var_err / (var_r + eps))


@torch.no_grad()
def token_rewards(scores: Tensor, lengths: Tensor, num_tokens: int, *, truncated: Tensor, truncation: str,
                  penalty: float = 0.0, bootstrap_values: Tensor | None = None, gamma: float = 1.0,
                  kl: Tensor | None = None, kl_coef: float = 0.0) -> Tensor:
    """Per-token rewards (B, T=num_tokens) for GAE from one score per completion.

    scores (B,): each completion's outcome score, placed on its last real token, index lengths - 1 (the EOS
      when the completion emitted one; the length counts it). Padding never gets a reward.
    lengths (B,): real completion tokens per row. A row of length 0 gets no reward.
    truncated (B,) bool: the completion was cut at max_new_tokens without reaching a stop token or string.
    truncation: what a truncated completion's last token gets instead of its score:
      "penalize":  score - penalty (TRL's `missing_eos_penalty`);
      "mask":      the score, unchanged (the caller gives the row an all-zero mask: no gradient at all);
      "bootstrap": gamma * bootstrap_values (B,), the critic's value of the state after the last token: the
                   episode was cut, not ended, so its return is estimated, and the verifier's verdict on an
                   unfinished answer is not used.
    kl (B, T), optional: per-token KL estimates; kl_coef * kl is subtracted from every real token's reward.
    """
    if truncation not in TRUNCATION:
        raise ValueError(f"unknown truncation {truncation!r}; expected one of {TRUNCATION}")
    B = scores.shape[0]
    final = scores.to(torch.float32).clone()                   # (B,)
    trunc = truncated.to(torch.bool)
    if truncation == "penalize":
        final = torch.where(trunc, final - penalty, final)
    elif truncation == "bootstrap":
        if bootstrap_values is None:
            raise ValueError("truncation 'bootstrap' needs bootstrap_values (B,)")
        final = torch.where(trunc, gamma * bootstrap_values.to(final.dtype), final)
    positions = torch.arange(num_tokens, device=scores.device)  # (T,)
    real = positions[None, :] < lengths[:, None]               # (B, T)
    rewards = torch.zeros((B, num_tokens), dtype=torch.float32, device=scores.device)
    if kl is not None and kl_coef != 0.0:
        rewards = rewards - kl_coef * kl.to(torch.float32) * real
    last = (lengths - 1).clamp(min=0)                          # (B,)
    has_tokens = (lengths > 0).to(final.dtype)
    rewards[torch.arange(B, device=scores.device), last] += final * has_tokens
    return rewards


STEP_STDS = ("population", "sample")


def _check_steps(step_values: Tensor, step_ends: Tensor, step_mask: Tensor) -> None:
    if not (step_values.shape == step_ends.shape == step_mask.shape) or step_values.dim() != 2:
        raise ValueError(f"step values, ends and mask must all be (N, S); got {tuple(step_values.shape)}, "
                         f"{tuple(step_ends.shape)}, {tuple(step_mask.shape)}")


@torch.no_grad()
def step_token_rewards(step_values: Tensor, step_ends: Tensor, step_mask: Tensor, num_tokens: int) -> Tensor:
    """Each step's value placed on the step's last token (PPO with PRM step scores, before GAE).

    step_values (N, S), step_ends (N, S) token index of each step's last token in the completion, step_mask
    (N, S) 1 on real steps. Returns (N, num_tokens): values at the step ends, 0 elsewhere (two steps ending on
    the same token add). A step ending at or past num_tokens is an error.
    """
    _check_steps(step_values, step_ends, step_mask)
    m = step_mask.bool()
    if bool(((step_ends < 0) | (step_ends >= num_tokens))[m].any()):
        raise ValueError(f"a step ends outside the {num_tokens} completion tokens: {step_ends[m].tolist()}")
    out = step_values.new_zeros(step_values.shape[0], num_tokens)
    ends = torch.where(m, step_ends, torch.zeros_like(step_ends)).long()
    return out.scatter_add_(1, ends, torch.where(m, step_values, torch.zeros_like(step_values)))


@torch.no_grad()
def process_advantages(step_rewards: Tensor, step_ends: Tensor, step_mask: Tensor, num_tokens: int, *,
                       group_size: int, std: str = "population", eps: float = 1e-6) -> Tensor:
    """Process-supervised GRPO advantages (DeepSeekMath 4.1.3).

    step_rewards, step_ends, step_mask: (N, S), N = P * group_size completions in consecutive groups, S steps
    at most (step_ends: token index of each step's last token; mask 1 on real steps). Returns (N, num_tokens).
      r~ = (r - mean(R)) / (std(R) + eps), R = the rewards of every step of every completion of the group;
      A_t = sum of r~_j over the steps j of this completion that end at or after token t.
    Tokens after a completion's last step get 0. A group whose step rewards are all equal gets zeros (never
    NaN). std: "population" (default; divides by |R|) or "sample" (|R| - 1).
    """
    _check_steps(step_rewards, step_ends, step_mask)
    if std not in STEP_STDS:
        raise ValueError(f"unknown std {std!r}; expected one of {STEP_STDS}")
    N, S = step_rewards.shape
    if group_size < 1 or N % group_size:
        raise ValueError(f"{N} completions do not split into groups of {group_size}")
    r = step_rewards.float().view(N // group_size, group_size * S)                 # (P, G*S)
    m = step_mask.float().view_as(r)
    n = m.sum(-1, keepdim=True)                                                    # (P, 1)
    mean = (r * m).sum(-1, keepdim=True) / n.clamp(min=1)
    var = ((r - mean) ** 2 * m).sum(-1, keepdim=True) / (n if std == "population" else n - 1).clamp(min=1)
    normed = (r - mean) / (var.sqrt() + eps)
    flat = ((r - r.gather(-1, m.argmax(-1, keepdim=True))).abs() * m).amax(-1, keepdim=True) == 0  # (P, 1)
    normed = torch.where(flat, torch.zeros_like(normed), normed).view(N, S)
    placed = step_token_rewards(normed, step_ends, step_mask, num_tokens)          # (N, T)
    return placed.flip(-1).cumsum(-1).flip(-1)                                     # reverse cumsum over tokens


@torch.no_grad()
def min_form_rewards(step_rewards: Tensor, step_mask: Tensor, *, temperature: float = 0.1) -> Tensor:
    """PURE's min-form credit assignment: step rewards re-weighted so their sum tends to the minimum.

    step_rewards, step_mask: (N, S). Returns (N, S): w_j * r_j with w = softmax(-r / temperature) over the real
    steps of each completion (0 on padding). As temperature -> 0, sum_j w_j r_j -> min_j r_j, so a completion's
    return is set by its worst step, the defence against PRM reward hacking in Cheng et al. (2025).
    """
    if step_rewards.shape != step_mask.shape or step_rewards.dim() != 2:
        raise ValueError(f"step_rewards and step_mask must both be (N, S); got {tuple(step_rewards.shape)}, {tuple(step_mask.shape)}")
    if temperature <= 0:
        raise ValueError(f"min-form temperature must be > 0, got {temperature}")
    m = step_mask.bool()
    logits = torch.where(m, -step_rewards.float() / temperature, torch.full_like(step_rewards.float(), float("-inf")))
    w = torch.softmax(logits, dim=-1).nan_to_num(0.0)                               # rows without steps: 0
    return w * torch.where(m, step_rewards.float(), torch.zeros_like(step_rewards.float()))
