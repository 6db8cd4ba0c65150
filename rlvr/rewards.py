"""Reward models beside the verifier: where RM scores meet verifier verdicts, next to rollout.

`RewardSource.rescore(rollout)` scores every completion of a rollout with the configured ORM or PRM (in this,
the trainer's, process, on its device: the verifier pool stays torch-free) and returns the rollout with new
verdicts whose `score` is the combination and whose `info` keeps what went into it (`verifier_score`,
`rm_score`, and for a PRM `step_probs` and `step_ends`, the token index where each step ends). The verifier is
always run and always kept: `correct` stays the verifier's, and a verifier error stays an error.
Combinations (`combine_scores`, a pure function over (P, G) groups):
- weighted_sum:       verifier_weight * v + weight * rm
- gate:               verifier_weight * v + weight * rm * [verifier passed]  (the RM only ranks correct answers)
- normalize_then_sum: each source standardised within its group (mean 0, unbiased std 1; a flat source gives
  0), then the weighted sum (TRL's `multi_objective_aggregation="normalize_then_sum"`).
A PRM becomes one score by `prm_aggregate` (min, product or last step). With `process_advantages` (and a PRM)
the score stays the verifier's and the steps shape the token signal: in GRPO `token_advantages` adds
DeepSeekMath process-supervised advantages (step probabilities, or PURE's min-form weighting of 2p - 1) to the
outcome advantages; in PPO `step_rewards` puts each step's reward on its last token, beside the outcome
score on the last token, before GAE.
An unscorable completion (an RM input longer than its context) becomes an error verdict, counted with the
verifier errors and masked like them, never a silent 0.

Differences from verl/TRL, on purpose: verl's reward manager returns the RM scores and skips the rule-based
verifier once a reward model is configured (verl#2232); here a configured RM never replaces the verifier.
Steps are cut from the completion's text at `step_delimiter` (a delimiter begins the next step) and mapped back to
the policy's token ids by decoding prefixes, so a step's advantage covers exactly its tokens; the PRM re-reads
the steps with its own tokenizer and separator.
Not here: loading and running the models (`rlvr.reward_models`), group-relative outcome advantages
(`rlvr.advantages`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rlvr.advantages import min_form_rewards, process_advantages, step_token_rewards
from rlvr.reward_models import conversation, load_reward_model
from rlvr.rollout import Rollout
from verifiers.base import Verdict

COMBINE = ("weighted_sum", "gate", "normalize_then_sum")
AGGREGATES = ("min", "product", "last")
PROCESS = ("off", "sum", "min_form")


def split_steps(text: str, delimiter: str) -> list[tuple[str, int]]:
    """(step text, end) pairs: `text` cut at `delimiter`, each step's end the index just past its text (the
    delimiter after a step starts the next one; the last step ends at len(text)). Empty pieces are no steps;
    there is always one step.

    >>> split_steps("7+2=9. 9-5=4. \\\\boxed{4}", ". ")
    [('7+2=9', 5), ('9-5=4', 12), ('\\\\boxed{4}', 23)]
    """
    if not delimiter:
        raise ValueError("reward_model.step_delimiter is empty")
    out: list[tuple[str, int]] = []
    start = 0
    while True:
        at = text.find(delimiter, start)
        piece = text[start:] if at < 0 else text[start:at]
        if piece.strip() or not out:
            out.append((piece, start + len(piece)))
        if at < 0:
            out[-1] = (out[-1][0], len(text))  # trailing delimiters belong to the last step
            return out
        start = at + len(delimiter)


def step_token_ends(decode, token_ids: list[int], char_ends: list[int]) -> list[int]:
    """Index of the token where each step ends: the first k with len(decode(token_ids[:k + 1])) >= char end,
    so a token that straddles a step boundary belongs to the earlier step. The last step ends on the last token
    (EOS included). `decode` maps ids to the completion's text."""
    ends = []
    lo = 0
    for j, end in enumerate(char_ends):
        if j == len(char_ends) - 1:
            ends.append(len(token_ids) - 1)
            break
        hi = len(token_ids) - 1
        while lo < hi:  # binary search over prefix lengths; steps end in order, so start from the last end
            mid = (lo + hi) // 2
            if len(decode(token_ids[: mid + 1])) >= end:
                hi = mid
            else:
                lo = mid + 1
        ends.append(lo)
    return ends


def aggregate_steps(probs: list[float], how: str) -> float:
    """One score from a PRM's step probabilities: min (Lightman et al.), product (OpenAI's PRM800K) or last."""
    if how not in AGGREGATES:
        raise ValueError(f"reward_model.prm_aggregate: {how!r} is not one of {AGGREGATES}")
    if how == "min":
        return min(probs)
    if how == "product":
        return math.prod(probs)
    return probs[-1]


def _standardise(x: Tensor, valid: Tensor) -> Tensor:
    """(x - mean) / unbiased std within each group (row) over the valid entries; a flat row gives 0."""
    v = valid.float()
    n = v.sum(-1, keepdim=True)
    xv = torch.where(valid, x, torch.zeros_like(x))
    mean = xv.sum(-1, keepdim=True) / n.clamp(min=1)
    std = (((xv - mean) ** 2 * v).sum(-1, keepdim=True) / (n - 1).clamp(min=1)).sqrt()
    return torch.where(std > 0, (x - mean) / std.clamp(min=1e-12), torch.zeros_like(x))


def combine_scores(verifier: Tensor, correct: Tensor, rm: Tensor, *, how: str, weight: float = 1.0,
                   verifier_weight: float = 1.0) -> Tensor:
    """Verifier scores and RM scores, both (P, G), combined per `how` (see the module docstring).

    correct: (P, G) bool, the verifier's verdict. A NaN in either source is unscorable and gives NaN; it does
    not enter the group statistics of normalize_then_sum.
    """
    if how not in COMBINE:
        raise ValueError(f"reward_model.combine: {how!r} is not one of {COMBINE}")
    if not (verifier.shape == correct.shape == rm.shape) or verifier.dim() != 2:
        raise ValueError(f"verifier, correct and rm must all be (P, G); got {tuple(verifier.shape)}, "
                         f"{tuple(correct.shape)}, {tuple(rm.shape)}")
    valid = ~(verifier.isnan() | rm.isnan())
    if how == "normalize_then_sum":
        out = verifier_weight * _standardise(verifier, valid) + weight * _standardise(rm, valid)
    elif how == "gate":
        out = verifier_weight * verifier + weight * torch.where(correct, rm, torch.zeros_like(rm))
    else:
        out = verifier_weight * verifier + weight * rm
    return torch.where(valid, out, torch.full_like(out, math.nan))


class RewardSource:
    """A configured reward model (`reward_model:` block) and how its scores join the verifier's."""

    def __init__(self, cfg, policy_tokenizer, device: torch.device | str):
        if cfg.combine not in COMBINE:
            raise ValueError(f"reward_model.combine: {cfg.combine!r} is not one of {COMBINE}")
        if cfg.process_advantages not in PROCESS:
            raise ValueError(f"reward_model.process_advantages: {cfg.process_advantages!r} is not one of {PROCESS}")
        if cfg.process_advantages != "off" and cfg.kind != "prm":
            raise ValueError("reward_model.process_advantages needs kind: prm (step scores)")
        aggregate_steps([1.0], cfg.prm_aggregate)  # a bad name fails here, before any model is loaded
        self.cfg = cfg
        self.process = cfg.process_advantages != "off"
        self.policy_tokenizer = policy_tokenizer
        self.model = load_reward_model(cfg.path, cfg.kind, device=device, dtype=cfg.dtype, separator=cfg.separator,
                                       token_budget=cfg.token_budget, max_length=cfg.max_length,
                                       trust_remote_code=cfg.trust_remote_code)  # fmt: skip

    def _decode(self, ids: list[int]) -> str:
        return self.policy_tokenizer.decode(ids, skip_special_tokens=True)

    def rescore(self, ro: Rollout) -> Rollout:
        """`ro` with verdicts that carry the RM's scores and (unless process advantages) the combined score."""
        cfg = self.cfg
        flat = [(ro.samples[i].prompt, c, v) for i in range(len(ro.samples)) for c, v in zip(ro.completions[i], ro.verdicts[i])]
        prompts, texts = [p for p, _, _ in flat], [c.text for _, c, _ in flat]
        infos: list[dict] = [{} for _ in flat]
        if cfg.kind == "orm":
            conv = [conversation(self.model.tokenizer, p, t) for p, t in zip(prompts, texts)]
            scores = self.model.score([p for p, _ in conv], [c for _, c in conv])
        else:
            cut = [split_steps(t, cfg.step_delimiter) for t in texts]
            probs = self.model.step_probs(prompts, [[s for s, _ in steps] for steps in cut])
            scores = [math.nan if p is None else aggregate_steps(p, cfg.prm_aggregate) for p in probs]
            for info, p, steps, (_, c, _) in zip(infos, probs, cut, flat):
                if p is not None and c.token_ids:
                    info["step_probs"] = p
                    info["step_ends"] = step_token_ends(self._decode, c.token_ids, [e for _, e in steps])
        P, G = len(ro.samples), len(flat) // max(len(ro.samples), 1)
        v_scores = torch.tensor([math.nan if v.error else v.score for _, _, v in flat]).view(P, G)
        correct = torch.tensor([v.correct for _, _, v in flat]).view(P, G)
        rm = torch.tensor(scores, dtype=torch.float32).view(P, G)
        combined = v_scores if self.process else combine_scores(v_scores, correct, rm, how=cfg.combine,
                                                                 weight=cfg.weight, verifier_weight=cfg.verifier_weight)
        verdicts = []
        for k, ((_, _, v), info) in enumerate(zip(flat, infos)):
            info = {**v.info, **info, "verifier_score": v.score, "rm_score": scores[k]}
            if v.error is not None:
                verdicts.append(Verdict(v.score, v.correct, v.error, info))
            elif math.isnan(scores[k]):
                verdicts.append(Verdict(0.0, v.correct, f"reward model: input not encodable or longer than its {self.model.max_length}-token context", info))
            else:
                verdicts.append(Verdict(float(combined.view(-1)[k]), v.correct, None, info))
        return Rollout(ro.samples, ro.completions, [verdicts[i * G : (i + 1) * G] for i in range(P)], ro.prompt_ids)

    def _steps(self, ro: Rollout) -> tuple[Tensor, Tensor, Tensor]:
        """(N, S) step rewards, step-end token indices and step mask from the PRM's verdict infos: the step
        probabilities, or under min_form PURE's min-form weighting of 2p - 1 (p_good - p_bad)."""
        flat = [v for g in ro.verdicts for v in g]
        S = max([len(v.info.get("step_probs", ())) for v in flat] + [1])
        probs, ends, mask = torch.zeros(len(flat), S), torch.zeros(len(flat), S, dtype=torch.long), torch.zeros(len(flat), S)
        for r, v in enumerate(flat):
            if v.error is None and "step_probs" in v.info:
                n = len(v.info["step_probs"])
                probs[r, :n], ends[r, :n], mask[r, :n] = torch.tensor(v.info["step_probs"]), torch.tensor(v.info["step_ends"]), 1
        if self.cfg.process_advantages == "min_form":
            probs = min_form_rewards(2 * probs - 1, mask, temperature=self.cfg.min_form_temperature)
        return probs, ends, mask

    def token_advantages(self, ro: Rollout, outcome: Tensor, num_tokens: int) -> Tensor:
        """GRPO: (N, num_tokens) = verifier_weight * outcome advantage (N,) on every token + weight * the process
        advantages of the PRM's step rewards (over each group of the rollout)."""
        probs, ends, mask = self._steps(ro)
        process = process_advantages(probs, ends, mask, num_tokens, group_size=len(ro.verdicts[0]), std=self.cfg.step_std)
        return self.cfg.verifier_weight * outcome.view(-1, 1).to(process) + self.cfg.weight * process

    def step_rewards(self, ro: Rollout, num_tokens: int) -> Tensor:
        """PPO: (N, num_tokens) = weight * each step's reward on the step's last token (Math-Shepherd's PPO), added
        to the outcome score's token rewards before GAE; 0 for errored completions and on other tokens."""
        probs, ends, mask = self._steps(ro)
        return self.cfg.weight * step_token_rewards(probs, ends, mask, num_tokens)

    def metrics(self, ro: Rollout) -> dict[str, float]:
        """Signals that reveal reward hacking: RM vs verifier, and how completions are cut into steps."""
        ok = [[v for v in g if v.error is None] for g in ro.verdicts]
        flat = [v for g in ok for v in g]
        m = {"rm/score_mean": _mean([v.info["rm_score"] for v in flat]),
             "rm/verifier_score_mean": _mean([v.info["verifier_score"] for v in flat]),
             "rm/errors": float(sum(v.error is not None and v.error.startswith("reward model") for g in ro.verdicts for v in g)),
             "rm/rank_agreement": _rank_agreement(ok)}  # fmt: skip
        if self.cfg.kind == "prm":
            stepped = [v for v in flat if "step_probs" in v.info]
            n_steps = sum(len(v.info["step_probs"]) for v in stepped)
            tokens = sum(v.info["step_ends"][-1] + 1 for v in stepped)
            m["rm/steps_per_completion"] = n_steps / max(len(stepped), 1)
            m["rm/tokens_per_step"] = tokens / max(n_steps, 1)
            m["rm/verifier_match"] = _mean([float((v.info["rm_score"] > 0.5) == v.correct) for v in flat])
        return m


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _rank_agreement(groups: list[list[Verdict]]) -> float:
    """Over (correct, incorrect) pairs of one group: how often the RM scores the correct one higher (ties 1/2)."""
    won, pairs = 0.0, 0
    for g in groups:
        for a in g:
            for b in g:
                if a.correct and not b.correct:
                    pairs += 1
                    d = a.info["rm_score"] - b.info["rm_score"]
                    won += 1.0 if d > 0 else 0.5 if d == 0 else 0.0
    return won / pairs if pairs else math.nan
