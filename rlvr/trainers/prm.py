"""PRM trainer (`algorithm: prm`): a token-classification head trained on step labels at the separator tokens.

Each solution is encoded by `rlvr.reward_models.encode_steps`, the function scoring uses too: the rendered
prompt, then each step's tokens followed by the separator token id. The loss is the binary cross-entropy of
each step's label (a float in [0, 1]) at its separator, over the global number of steps of the optimizer step
(`rlvr.losses.reward.prm_loss`); nothing else in the sequence carries loss. The head is 2-class (TRL's
PRMTrainer, Qwen2.5-Math-PRM) or a single logit; both read P(good) = sigmoid(step logit) and take soft labels.
The result is an HF `*ForTokenClassification` in `run_dir/final` that `reward_model: {kind: prm}` loads.

Held-out evaluation (`prm.eval_data`, every `prm.eval_every` steps and at the end) scores through the same
`RewardModel.step_probs` path and reports step accuracy, solution accuracy (any step below 0.5 = flagged),
and how often the first step below 0.5 is the first wrong step (`eval/first_error_rate`) next to the rate a
uniform guess over the steps gets (`eval/first_error_chance`).
Not here: truncating long solutions (an error naming the example instead: a cut solution has fewer scored
positions than labels) or `train_on_last_step_only` (label only the last step in the data instead).
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from rlvr.config import TrainConfig
from rlvr.losses.reward import prm_loss
from rlvr.reward_models import RewardModel, encode_steps, forward_model, gather_steps, load_for_training, pad_right, separator_id
from rlvr.trainers.runtime import PromptStream, build_runtime, clip_and_step
from tasks.stepwise import StepwiseExample, get_stepwise

HEADS = {"two_class": 2, "one_logit": 1}
Encoded = tuple[list[int], list[int], list[float]]  # ids, separator positions, labels


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
    if not pc.data.name:
        raise ValueError("prm.data.name is empty: name a stepwise source (stepwise_file, arithmetic_steps)")
    examples = get_stepwise(pc.data.name, **pc.data.args)
    held_out = get_stepwise(pc.eval_data.name, **pc.eval_data.args) if pc.eval_data.name else []
    steps_per_epoch = math.ceil(len(examples) / pc.batch_size)
    total = steps_per_epoch * pc.epochs if pc.max_steps <= 0 else min(pc.max_steps, steps_per_epoch * pc.epochs)
    rt = build_runtime(cfg, total_steps=total, load_model=lambda m: load_for_training(m, "prm", HEADS[pc.head]))
    acc, model, tok = rt.accelerator, rt.model, rt.tokenizer
    sep = separator_id(tok, pc.separator, "prm.separator")
    data = encode_all(tok, examples, sep, pc.max_length, f"prm.data ({pc.data.name})")
    stream = PromptStream(data, cfg.seed, rt.state.get("data_position", 0))
    scorer = RewardModel("prm", rt.policy, tok, token_budget=pc.micro_batch_size * pc.max_length,
                         max_length=pc.max_length, sep_id=sep)  # fmt: skip
    result: dict[str, float] = {}

    def run_eval(step: int) -> None:
        if not held_out:
            return
        model.eval()
        if acc.is_main_process:  # the unwrapped model: no collective inside
            m = step_metrics(scorer.step_probs([ex.prompt for ex in held_out], [ex.steps for ex in held_out]), held_out)
            rt.logger.log(step, {f"eval/{k}": v for k, v in m.items()})
            result.update({f"eval/{k}": v for k, v in m.items()})
        acc.wait_for_everyone()
        model.train()

    model.train()
    bar = tqdm(range(rt.start_step, total), initial=rt.start_step, total=total, disable=not acc.is_main_process, desc="prm")
    for step in bar:
        batch = stream.take(pc.batch_size)[acc.process_index :: acc.num_processes]
        n_steps = acc.reduce(torch.tensor(float(sum(len(p) for _, p, _ in batch)), device=acc.device), reduction="sum").item()
        sums = torch.zeros(3, device=acc.device)  # loss, correct, positive: this process's share
        parts = [batch[i : i + pc.micro_batch_size] for i in range(0, len(batch), pc.micro_batch_size)]
        for j, part in enumerate(parts):
            ids, mask = pad_right([ids for ids, _, _ in part], tok.pad_token_id)
            labels = torch.tensor([y for _, _, ys in part for y in ys], device=acc.device)
            with acc.no_sync(model) if j < len(parts) - 1 else torch.enable_grad():
                logits = gather_steps(forward_model(model, ids.to(acc.device), mask.to(acc.device)), [p for _, p, _ in part])
                loss, m = prm_loss(logits, labels, denom=n_steps)
                acc.backward(loss * acc.num_processes)  # DDP averages gradients; the denominator is already global
            sums += torch.stack([loss.detach(), m["correct"], m["positive"]])
        loss_sum, correct, positive = acc.reduce(sums, reduction="sum").tolist()
        grad_norm = clip_and_step(rt)
        m = {"loss": loss_sum, "step_accuracy": correct / n_steps, "positive_frac": positive / n_steps,
             "steps": n_steps, "grad_norm": grad_norm, "lr": rt.scheduler.get_last_lr()[0]}  # fmt: skip
        rt.logger.log(step + 1, m)
        bar.set_postfix(loss=f"{m['loss']:.4f}", acc=f"{m['step_accuracy']:.3f}")
        result.update(m)
        if pc.eval_every and (step + 1) % pc.eval_every == 0 and step + 1 < total:
            run_eval(step + 1)
        if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step + 1 == total:
            rt.save(step + 1, {"data_position": stream.position})
    run_eval(total)
    rt.finish(plot_keys=("loss", "step_accuracy", "eval/step_accuracy", "eval/first_error_rate"))
    return result
