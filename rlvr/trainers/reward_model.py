"""Outcome reward model trainer (`algorithm: rm`): Bradley-Terry on preference pairs.

Each pair's chosen and rejected completions are encoded by `rlvr.reward_models.orm_input_ids`, the function
scoring uses too (the prompt and completion as the conversation the policy had, ended at EOS), stacked on the
batch axis and right-padded; the model (`*ForSequenceClassification`, `num_labels=1`, a pad token distinct
from EOS) scores each at its last real token. The loss is `rlvr.losses.reward.bradley_terry_loss` with an
optional margin (`rm.margin`, plus a row's own `meta["margin"]`) and reward centering
(`rm.center_rewards_coefficient`), over the global number of pairs of the optimizer step. The result in
`run_dir/final` loads with transformers, TRL, vLLM, and as `reward_model: {kind: orm}` here.

Data: `task:` names a preference task (pairs), held out: `eval.task`, scored every `eval.every` steps and at
the end through the scoring path (`RewardModel.score`). Metrics on both: `accuracy` (chosen scored higher),
`ties` (counted apart: a tie is neither right nor wrong), `margin` (mean r_c - r_r), `reward/mean`,
`reward/std` (over all scored completions).
Not here: truncating long pairs (an error naming the pair, as `max_length` is exceeded), or storing a reward
mean/std in the config for normalisation (combine with `normalize_then_sum` instead).
"""

from __future__ import annotations

import math

import torch

from rlvr.config import TrainConfig
from rlvr.losses.reward import bradley_terry_loss
from rlvr.reward_models import RewardModel, forward_model, load_for_training, orm_input_ids, pad_right
from rlvr.trainers import reward_loop
from rlvr.trainers.runtime import build_runtime, build_task
from rlvr.types import PreferencePair

Encoded = tuple[list[int], list[int], float]  # chosen ids, rejected ids, margin


def pairs_of(task_cfg, what: str) -> list[PreferencePair]:
    data = build_task(task_cfg, what)
    pairs = getattr(data, "pairs", data)
    if not isinstance(pairs, list) or not pairs or not all(isinstance(p, PreferencePair) for p in pairs):
        raise ValueError(f"{what}: {task_cfg.name!r} gives no preference pairs; a reward model trains on a preference task")
    return pairs


def encode_pairs(tok, pairs: list[PreferencePair], margin: float, max_length: int, what: str) -> list[Encoded]:
    out = []
    for i, p in enumerate(pairs):
        c, r = orm_input_ids(tok, p.prompt, p.chosen), orm_input_ids(tok, p.prompt, p.rejected)
        where = p.meta.get("where", f"{what} pair {i}")
        if max(len(c), len(r)) > max_length:
            raise ValueError(f"{where}: {max(len(c), len(r))} tokens, over rm.max_length={max_length} (raise it or drop the pair)")
        out.append((c, r, margin + float(p.meta.get("margin", 0.0))))
    return out


def pair_summary(r_chosen: list[float], r_rejected: list[float]) -> dict[str, float]:
    """Accuracy, ties, mean margin, reward mean/std of scored pairs."""
    n = len(r_chosen)
    both = r_chosen + r_rejected
    mean = sum(both) / len(both)
    return {
        "accuracy": sum(c > r for c, r in zip(r_chosen, r_rejected)) / n,
        "ties": sum(c == r for c, r in zip(r_chosen, r_rejected)) / n,
        "margin": sum(c - r for c, r in zip(r_chosen, r_rejected)) / n,
        "reward/mean": mean, "reward/std": math.sqrt(sum((x - mean) ** 2 for x in both) / len(both)),
    }  # fmt: skip


def train(cfg: TrainConfig) -> dict[str, float]:
    rc = cfg.rm
    pairs = pairs_of(cfg.task, "task")
    held_out = pairs_of(cfg.eval.task, "eval.task") if cfg.eval.task.name else []
    steps_per_epoch = math.ceil(len(pairs) / rc.batch_size)
    total = steps_per_epoch * rc.epochs if rc.max_steps <= 0 else min(rc.max_steps, steps_per_epoch * rc.epochs)
    rt = build_runtime(cfg, total_steps=total, load_model=lambda m: load_for_training(m, "orm"))
    acc, tok = rt.accelerator, rt.tokenizer
    data = encode_pairs(tok, pairs, rc.margin, rc.max_length, f"task {cfg.task.name}")
    scorer = RewardModel("orm", rt.policy, tok, token_budget=2 * rc.micro_batch_size * rc.max_length, max_length=rc.max_length)

    def micro_loss(part: list[Encoded], n_pairs: float) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = pad_right([c for c, _, _ in part] + [r for _, r, _ in part], tok.pad_token_id)  # chosen, then rejected
        scores = forward_model(rt.model, ids.to(acc.device), mask.to(acc.device))[:, 0].float()  # (2b,)
        loss, m = bradley_terry_loss(scores[: len(part)], scores[len(part) :],
                                     margin=torch.tensor([m for _, _, m in part], device=acc.device),
                                     center_coef=rc.center_rewards_coefficient, denom=n_pairs)  # fmt: skip
        return loss, torch.stack([m["correct"], m["ties"], m["margin"], m["reward"], m["reward_sq"]])

    def summarize(s: list[float], n: float) -> dict[str, float]:
        mean = s[3] / n
        return {"accuracy": s[0] / n, "ties": s[1] / n, "margin": s[2] / n, "reward/mean": mean,
                "reward/std": math.sqrt(max(s[4] / n - mean**2, 0.0))}  # fmt: skip

    def evaluate() -> dict[str, float]:
        prompts = [p.prompt for p in held_out]
        return pair_summary(scorer.score(prompts, [p.chosen for p in held_out]), scorer.score(prompts, [p.rejected for p in held_out]))

    return reward_loop.run(
        rt, data, batch_size=rc.batch_size, micro_batch_size=rc.micro_batch_size, total=total, desc="rm",
        count=lambda item: 1, micro_loss=micro_loss, summarize=summarize, evaluate=evaluate if held_out else None,
        plot_keys=("loss", "accuracy", "eval/accuracy"),
    )  # fmt: skip
