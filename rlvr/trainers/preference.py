"""What the DPO and KTO trainers share: rows ready for the model, the reference (cached log-probs, or a frozen
copy of the starting weights), sequence log-probs of a batch, metrics summed over micro-batches and processes,
held-out pair evaluation, and the loop around a step (progress bar, metrics, evaluation, checkpoints, final).

What it does not: any loss (`rlvr.losses.preference`), tokenization (`rlvr.preference_data`), or reading rows
(`tasks.preference`). Dropout is switched off in the policy (TRL's `disable_dropout` default): with it on, the
policy at step 0 would not score like its own reference.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from rlvr.checkpoint import is_peft
from rlvr.config import ComponentConfig, TrainConfig
from rlvr.losses.preference import dpo_loss, pair_metrics
from rlvr.policy import load_policy, load_tokenizer, token_logprobs
from rlvr.preference_data import EncodedExample, EncodedPair, collate, encode_all
from rlvr.reference_logps import (
    Row,
    cache_key,
    cached_logps,
    completion_logps,
    model_fingerprint,
    reference_mode,
    tokenizer_fingerprint,
)
from rlvr.trainers.runtime import PromptStream, Runtime, build_runtime, build_task
from tasks.preference import PreferenceData, check_bad_rows, unpair

log = logging.getLogger("rlvr")

PAIR_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "rewards/ties")


def load_rows(cfg_task: ComponentConfig, tokenizer, max_length: int, skip: bool, *, what: str, skip_key: str,
              unpaired_seed: int | None = None) -> tuple[list[EncodedPair] | list[EncodedExample], int]:
    """Encoded rows of the preference task `cfg_task` and how many were skipped. Pairs stay pairs unless
    `unpaired_seed` is given (KTO): then pairs are split into labelled rows, shuffled with that seed."""
    data = build_task(cfg_task, what)
    if not isinstance(data, PreferenceData):
        raise ValueError(f"{what}.name={cfg_task.name!r} gives {type(data).__name__}, not preference data; "
                         "name a preference task ('preference', 'arithmetic_preference')")  # fmt: skip
    if unpaired_seed is None and not data.paired:
        use = "they train with algorithm: kto" if what == "task" else "held-out evaluation compares pairs"
        raise ValueError(f"{what} {data.name}: unpaired rows (prompt/completion/label) give no pairs; {use}")
    rows = unpair(data.pairs, unpaired_seed) if unpaired_seed is not None and data.paired else data.pairs or data.examples
    encoded, bad = encode_all(tokenizer, rows, max_length)
    check_bad_rows(data.bad + bad, skip, f"{what} {data.name}", skip_key)
    if not encoded:
        raise ValueError(f"{what} {data.name}: no usable rows")
    return encoded, len(data.bad) + len(bad)


def total_steps(n_rows: int, batch_size: int, epochs: int, max_steps: int) -> int:
    per_epoch = math.ceil(n_rows / batch_size)
    return per_epoch * epochs if max_steps <= 0 else min(max_steps, per_epoch * epochs)


@dataclass
class Setup:
    rt: Runtime
    rows: list[EncodedPair] | list[EncodedExample]  # the training rows
    held_out: list[EncodedPair]  # eval.task's pairs ([] without one)
    skipped: int  # bad training rows skipped
    total: int  # optimizer steps
    fingerprint: str  # of the starting weights (the reference)


def setup(cfg: TrainConfig, *, batch_size: int, epochs: int, max_steps: int, max_length: int, skip_bad_rows: bool,
          unpaired_seed: int | None = None) -> Setup:
    """Rows of `task` and `eval.task` encoded (bad rows raised or skipped before any model is loaded), then the
    runtime with dropout off and the fingerprint of the weights the reference is."""
    tok = load_tokenizer(cfg.model.name_or_path)
    skip_key = f"{cfg.algorithm}.skip_bad_rows"
    rows, skipped = load_rows(cfg.task, tok, max_length, skip_bad_rows, what="task", skip_key=skip_key,
                              unpaired_seed=unpaired_seed)  # fmt: skip
    held_out = []
    if cfg.eval.task.name:
        held_out, _ = load_rows(cfg.eval.task, tok, max_length, skip_bad_rows, what="eval.task", skip_key=skip_key)
    total = total_steps(len(rows), batch_size, epochs, max_steps)
    rt = build_runtime(cfg, total_steps=total)
    disable_dropout(rt.policy)
    return Setup(rt, rows, held_out, skipped, total, reference_fingerprint(rt))


def disable_dropout(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def reference_fingerprint(rt: Runtime) -> str:
    """The fingerprint of the weights training started from: measured now at step 0, read back on resume."""
    if rt.start_step == 0:
        return model_fingerprint(rt.policy)
    if "reference_model" not in rt.state:
        raise ValueError("the checkpoint has no 'reference_model' fingerprint: it was not written by this trainer")
    return rt.state["reference_model"]


def frozen_initial_model(rt: Runtime, fingerprint: str) -> torch.nn.Module | None:
    """A frozen copy of the starting weights: the policy copied at step 0, loaded again from model.name_or_path on
    resume (the policy has trained since). None with LoRA: the policy with its adapters disabled is that model."""
    if is_peft(rt.policy):
        return None
    if rt.start_step == 0:
        model = copy.deepcopy(rt.policy)
    else:
        model, _ = load_policy(rt.cfg.model)
        if model_fingerprint(model) != fingerprint:
            raise ValueError(f"model.name_or_path={rt.cfg.model.name_or_path!r} no longer holds the weights this run "
                             "started from, so the reference cannot be rebuilt; start a new run_dir")  # fmt: skip
        model.to(rt.accelerator.device)
    disable_dropout(model)
    model.eval().requires_grad_(False)
    return model


def reference_logps(rt: Runtime, items: list[list[Row]], wheres: list[str], *, normalization: str, max_length: int,
                    name: str, micro_batch_size: int, fingerprint: str) -> Tensor:
    """Reference log-probs (N, k) of N items of k rows, read from the run's cache or computed once with the
    starting weights."""
    key = cache_key(fingerprint, tokenizer_fingerprint(rt.tokenizer), items, max_length, normalization)

    def compute() -> Tensor:
        frozen = frozen_initial_model(rt, fingerprint) if rt.start_step > 0 else None
        model = frozen if frozen is not None else rt.policy
        with reference_mode(model):
            return completion_logps(model, items, normalization, micro_batch_size, rt.tokenizer.pad_token_id, rt.accelerator)

    values, computed = cached_logps(rt.run_dir / "ref_logps", name, key, compute, rt.accelerator, wheres)
    log.info("reference log-probs for %s: %s", name, "computed" if computed else "read from the run's cache")
    return values


def pair_items(pairs: list[EncodedPair]) -> list[list[Row]]:
    return [[(p.prompt, p.chosen), (p.prompt, p.rejected)] for p in pairs]


def pair_reference(rt: Runtime, pairs: list[EncodedPair], name: str, *, normalization: str, max_length: int,
                   micro_batch_size: int, fingerprint: str) -> Tensor:
    """Reference log-probs (N, 2) of pairs: [:, 0] chosen, [:, 1] rejected, laid out as `evaluate_pairs` lays
    out the policy's (`micro_batch_size` pairs per forward)."""
    return reference_logps(rt, pair_items(pairs), [p.where for p in pairs], normalization=normalization,
                           max_length=max_length, name=name, micro_batch_size=micro_batch_size,
                           fingerprint=fingerprint)  # fmt: skip


def forward_logps(model: torch.nn.Module, rows: list[Row], pad_id: int, device) -> tuple[Tensor, Tensor]:
    """Per-token log-probs (B, C) of the completions and their mask (B, C), in one forward."""
    batch = collate(rows, pad_id).to(device)
    logp, _ = token_logprobs(model, batch.input_ids, batch.attention_mask, batch.num_completion_tokens)
    return logp, batch.completion_mask


class Sums:
    """Per-micro-batch metric means weighted by how many rows each covers, summed over processes into global
    means. Every process must `add` the same keys (in any order) before `reduce`."""

    def __init__(self, keys: tuple[str, ...]):
        self.keys = keys
        self.sums = torch.zeros(2, len(keys), dtype=torch.float64)  # [weighted sums; weights]

    def add(self, key: str, mean: Tensor | float, weight: float) -> None:
        value = float(mean)
        if weight > 0 and not math.isnan(value):
            i = self.keys.index(key)
            self.sums[0, i] += value * weight
            self.sums[1, i] += weight

    def reduce(self, accelerator) -> dict[str, float]:
        total = accelerator.reduce(self.sums.to(accelerator.device), reduction="sum").cpu()
        return {k: (float(total[0, i] / total[1, i]) if total[1, i] > 0 else float("nan")) for i, k in enumerate(self.keys)}


@torch.no_grad()
def evaluate_pairs(rt: Runtime, pairs: list[EncodedPair], ref: Tensor | None, *, normalization: str, beta: float,
                   loss_type: str | None, micro_batch_size: int) -> dict[str, float]:
    """Held-out pair metrics under `eval/`: TRL's reward metrics (strict accuracy, margin, ties) and, given a DPO
    `loss_type`, its loss. Rewards are beta * (policy - reference) under `normalization` (beta * policy with no
    reference, SimPO). The policy is scored in the very layout its reference was (`pair_reference` with the same
    `micro_batch_size`), so before any update every pair ties exactly."""
    model = rt.policy
    was_training = model.training
    model.eval()
    policy = completion_logps(model, pair_items(pairs), normalization, micro_batch_size, rt.tokenizer.pad_token_id,
                              rt.accelerator)  # fmt: skip
    model.train(was_training)
    pc, pr = policy[:, 0], policy[:, 1]
    rc, rr = (ref[:, 0], ref[:, 1]) if ref is not None else (None, None)
    if loss_type:
        loss, m = dpo_loss(pc, pr, rc, rr, loss_type=loss_type, beta=beta)
        m["loss"] = loss
    else:
        m = pair_metrics(beta * (pc - rc), beta * (pr - rr))
    return {f"eval/{k}": float(v) for k, v in m.items()}


def train_loop(rt: Runtime, n_rows: int, batch_size: int, total: int, step_fn: Callable[[list[int]], dict[str, float]],
               eval_fn: Callable[[], dict[str, float]] | None, *, first_metrics: dict[str, float],
               state: dict, plot_keys: tuple[str, ...]) -> dict[str, float]:
    """Steps `rt.start_step`..`total`: each takes the next `batch_size` row indices (reshuffled every epoch; the
    position is saved with every checkpoint) and calls `step_fn(indices)`. `first_metrics` are logged at step 0
    of a fresh run with the evaluation, which also runs every `eval.every` steps and at the end."""
    cfg, acc = rt.cfg, rt.accelerator
    if batch_size % acc.num_processes:
        raise ValueError(f"batch_size={batch_size} must divide by the {acc.num_processes} processes")
    stream = PromptStream(list(range(n_rows)), cfg.seed, rt.state.get("data_position", 0))
    result: dict[str, float] = {}

    def run_eval(step: int, extra: dict[str, float]) -> None:
        m = {**extra, **(eval_fn() if eval_fn else {})}
        if m:
            rt.logger.log(step, m)
        if eval_fn:
            result.update({k: v for k, v in m.items() if k.startswith("eval/")})
            if step == 0:
                result["eval/rewards/accuracies_before"] = m["eval/rewards/accuracies"]
                result["eval/rewards/margins_before"] = m["eval/rewards/margins"]

    if rt.start_step == 0:
        run_eval(0, first_metrics)
    rt.model.train()
    bar = tqdm(range(rt.start_step, total), initial=rt.start_step, total=total, disable=not acc.is_main_process,
               desc=cfg.algorithm, dynamic_ncols=True)  # fmt: skip
    for step in bar:
        t0 = time.perf_counter()
        m = step_fn(stream.take(batch_size))
        m.update({"lr": rt.scheduler.get_last_lr()[0], "time/step": time.perf_counter() - t0})
        rt.logger.log(step + 1, m)
        bar.set_postfix(loss=f"{m['loss']:.4f}", margin=f"{m['rewards/margins']:.3f}")
        result.update(m)
        if eval_fn and cfg.eval.every and (step + 1) % cfg.eval.every == 0 and step + 1 < total:
            run_eval(step + 1, {})
        if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step + 1 == total:
            rt.save(step + 1, {"data_position": stream.position, **state})
    if eval_fn:
        run_eval(total, {})
    rt.finish(plot_keys=plot_keys)
    return result
