"""PRM trainer (`algorithm: prm`): a token-classification head trained on step labels at the separator tokens.

Each solution is encoded by `rlvr.reward_models.encode_steps`, the function scoring uses too: the rendered
prompt, then each step's tokens followed by the separator token id. The loss is the binary cross-entropy of
each step's label (a float in [0, 1]) at its separator, over the global number of steps of the optimizer step
(`rlvr.losses.reward.prm_loss`); nothing else in the sequence carries loss. The head is 2-class (TRL's
PRMTrainer, Qwen2.5-Math-PRM) or a single logit; both read P(good) = sigmoid(step logit) and take soft labels.
The result is an HF `*ForTokenClassification` in `run_dir/final` that `reward_model: {kind: prm}` loads.

Data: `task:` names a stepwise task (`stepwise_file`, `arithmetic_steps`), as DPO names preference data.
Held-out evaluation (`eval.task`, every `eval.every` steps and at the end) scores through the same
`RewardModel.step_probs` path and reports step accuracy, solution accuracy (any step below 0.5 = flagged),
and how often the first step below 0.5 is the first wrong step (`eval/first_error_rate`) next to the rate a
uniform guess over the steps gets (`eval/first_error_chance`).
Not here: truncating long solutions (an error naming the example instead: a cut solution has fewer scored
positions than labels) or `train_on_last_step_only` (label only the last step in the data instead).
"""

from __future__ import annotations

import math

import torch

from rlvr.config import TrainConfig
from rlvr.losses.reward import prm_loss
from rlvr.reward_models import RewardModel, encode_steps, forward_model, gather_steps, load_for_training, pad_right, separator_id
from rlvr.trainers import reward_loop
from rlvr.trainers.runtime import build_runtime, build_task
from tasks.stepwise import StepwiseExample

HEADS = {"two_class": 2, "one_logit": 1}
Encoded = tuple[list[int], list[int], list[float]]  # ids, separator positions, labels


def stepwise(task_cfg, what: str) -> list[StepwiseExample]:
    """The step-labelled solutions of the task named in `what` (an error if it gives anything else)."""
    data = build_task(task_cfg, what)
    if not isinstance(data, list) or not data or not all(isinstance(ex, StepwiseExample) for ex in data):
        raise ValueError(f"{what}: {task_cfg.name!r} gives no step-labelled solutions; a PRM trains on a stepwise "
                         "task (stepwise_file, arithmetic_steps)")
    return data


def encode_all(tok, examples: list[StepwiseExample], sep_id: int, max_length: int, what: str) -> list[Encoded]:
    out = []
    for i, ex in enumerate(examples):
        ids, positions = encode_steps(tok, ex.prompt, ex.steps, sep_id)
        if len(ids) > max_length:
            raise ValueError(f"{what} example {i}: {len(ids)} tokens, over prm.max_length={max_length} (raise it or drop the example)")
        if len(positions) != len(ex.labels):  # a bug guard: encode_steps places one separator per step
            raise ValueError(f"{what} example {i}: {len(positions)} scored positions for {len(ex.labels)} labels")
        out.append((ids, positions, list(ex.labels)))
    return out


def step_metrics(probs: list[list[float]], examples: list[StepwiseExample]) -> dict[str, float]:
    """Step and solution accuracy, and first-error detection against its chance rate, of PRM outputs."""
    steps = sum(len(p) for p in probs)
    step_ok = sum((q > 0.5) == (y > 0.5) for p, ex in zip(probs, examples) for q, y in zip(p, ex.labels))
    sol_ok, found, chance, wrong = 0, 0, 0.0, 0
    for p, ex in zip(probs, examples):
        flagged = next((i for i, q in enumerate(p) if q <= 0.5), None)
        truth = ex.first_error()
        sol_ok += (flagged is None) == (truth is None)
        if truth is not None:
            wrong += 1
            found += flagged == truth
            chance += 1.0 / len(ex.steps)  # a uniform guess among the steps
    return {
        "step_accuracy": step_ok / max(steps, 1), "solution_accuracy": sol_ok / max(len(examples), 1),
        "first_error_rate": found / max(wrong, 1), "first_error_chance": chance / max(wrong, 1),
        "solutions_with_error": float(wrong),
    }  # fmt: skip


def train(cfg: TrainConfig) -> dict[str, float]:
    pc = cfg.prm
    if pc.head not in HEADS:
        raise ValueError(f"prm.head: {pc.head!r} is not one of {sorted(HEADS)}")
    examples = stepwise(cfg.task, "task")
    held_out = stepwise(cfg.eval.task, "eval.task") if cfg.eval.task.name else []
    steps_per_epoch = math.ceil(len(examples) / pc.batch_size)
    total = steps_per_epoch * pc.epochs if pc.max_steps <= 0 else min(pc.max_steps, steps_per_epoch * pc.epochs)
    rt = build_runtime(cfg, total_steps=total, load_model=lambda m: load_for_training(m, "prm", HEADS[pc.head]))
    acc, tok = rt.accelerator, rt.tokenizer
    sep = separator_id(tok, pc.separator, "prm.separator")
    data = encode_all(tok, examples, sep, pc.max_length, f"task {cfg.task.name}")
    scorer = RewardModel("prm", rt.policy, tok, token_budget=pc.micro_batch_size * pc.max_length,
                         max_length=pc.max_length, sep_id=sep)  # fmt: skip

    def micro_loss(part: list[Encoded], n_steps: float) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = pad_right([ids for ids, _, _ in part], tok.pad_token_id)
        logits = gather_steps(forward_model(rt.model, ids.to(acc.device), mask.to(acc.device)), [p for _, p, _ in part])
        loss, m = prm_loss(logits, torch.tensor([y for _, _, ys in part for y in ys], device=acc.device), denom=n_steps)
        return loss, torch.stack([m["correct"], m["positive"]])

    def evaluate() -> dict[str, float]:
        return step_metrics(scorer.step_probs([ex.prompt for ex in held_out], [ex.steps for ex in held_out]), held_out)

    return reward_loop.run(
        rt, data, batch_size=pc.batch_size, micro_batch_size=pc.micro_batch_size, total=total, desc="prm",
        count=lambda item: len(item[1]), micro_loss=micro_loss,
        summarize=lambda s, n: {"step_accuracy": s[0] / n, "positive_frac": s[1] / n, "steps": n},
        evaluate=evaluate if held_out else None,
        plot_keys=("loss", "step_accuracy", "eval/step_accuracy", "eval/first_error_rate"),
    )  # fmt: skip
