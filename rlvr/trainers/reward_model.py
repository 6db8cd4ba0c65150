"""Outcome reward model trainer (`algorithm: rm`): Bradley-Terry on preference pairs.

Pairs are read and encoded as DPO reads them (`rlvr.trainers.preference.load_rows`: TRL's formats, bad rows
named by file, row and field, raised or skipped with `rm.skip_bad_rows`); each side's prompt + completion
(ended at EOS) is what `rlvr.reward_models.orm_input_ids` gives at scoring time too. Chosen and rejected rows
are stacked on the batch axis and right-padded; the model (`*ForSequenceClassification`, `num_labels=1`, a pad token distinct
from EOS) scores each at its last real token. The loss is `rlvr.losses.reward.bradley_terry_loss` with an
optional margin (`rm.margin`) and reward centering
(`rm.center_rewards_coefficient`), over the global number of pairs of the optimizer step. The result in
`run_dir/final` loads with transformers, TRL, vLLM, and as `reward_model: {kind: orm}` here.

Data: `task:` names a preference task (pairs), held out: `eval.task`, scored every `eval.every` steps and at
the end through the scoring path (`RewardModel.score`). Metrics on both: `accuracy` (chosen scored higher),
`ties` (counted apart: a tie is neither right nor wrong), `margin` (mean r_c - r_r), `reward/mean`,
`reward/std` (over all scored completions).
Not here: truncating long pairs (a bad row naming the pair), per-row margins, or a reward mean/std stored in
the config for normalisation (combine with `normalize_then_sum` instead).
"""

from __future__ import annotations

import math

import torch

from rlvr.config import TrainConfig
from rlvr.losses.reward import bradley_terry_loss
from rlvr.policy import load_tokenizer
from rlvr.preference_data import EncodedPair
from rlvr.reward_models import RewardModel, forward_model, load_for_training, pad_right
from rlvr.trainers import reward_loop
from rlvr.trainers.preference import load_rows, total_steps
from rlvr.trainers.runtime import build_runtime


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
    tok = load_tokenizer(cfg.model.name_or_path)  # rows first: bad rows stop the run before a model is loaded
    rows, _ = load_rows(cfg.task, tok, rc.max_length, rc.skip_bad_rows, what="task", skip_key="rm.skip_bad_rows")
    held_out: list[EncodedPair] = []
    if cfg.eval.task.name:
        held_out, _ = load_rows(cfg.eval.task, tok, rc.max_length, rc.skip_bad_rows, what="eval.task", skip_key="rm.skip_bad_rows")
    total = total_steps(len(rows), rc.batch_size, rc.epochs, rc.max_steps)
    rt = build_runtime(cfg, total_steps=total, load_model=lambda m: load_for_training(m, "orm"))
    acc, tok = rt.accelerator, rt.tokenizer  # it may have gained a pad token (ids of text are the same)
    scorer = RewardModel("orm", rt.policy, tok, token_budget=2 * rc.micro_batch_size * rc.max_length, max_length=rc.max_length)

    def micro_loss(part: list[EncodedPair], n_pairs: float) -> tuple[torch.Tensor, torch.Tensor]:
        # chosen rows, then rejected rows, in one forward
        ids, mask = pad_right([p.prompt + p.chosen for p in part] + [p.prompt + p.rejected for p in part], tok.pad_token_id)
        scores = forward_model(rt.model, ids.to(acc.device), mask.to(acc.device))[:, 0].float()  # (2b,)
        loss, m = bradley_terry_loss(scores[: len(part)], scores[len(part) :], margin=rc.margin or None,
                                     center_coef=rc.center_rewards_coefficient, denom=n_pairs)  # fmt: skip
        return loss, torch.stack([m["correct"], m["ties"], m["margin"], m["reward"], m["reward_sq"]])

    def summarize(s: list[float], n: float) -> dict[str, float]:
        mean = s[3] / n
        return {"accuracy": s[0] / n, "ties": s[1] / n, "margin": s[2] / n, "reward/mean": mean,
                "reward/std": math.sqrt(max(s[4] / n - mean**2, 0.0))}  # fmt: skip

    def evaluate() -> dict[str, float]:
        return pair_summary(scorer.score_ids([p.prompt + p.chosen for p in held_out]),
                            scorer.score_ids([p.prompt + p.rejected for p in held_out]))  # fmt: skip

    return reward_loop.run(
        rt, rows, batch_size=rc.batch_size, micro_batch_size=rc.micro_batch_size, total=total, desc="rm",
        count=lambda item: 1, micro_loss=micro_loss, summarize=summarize, evaluate=evaluate if held_out else None,
        plot_keys=("loss", "accuracy", "eval/accuracy"),
    )  # fmt: skip
