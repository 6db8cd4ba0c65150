"""KTO trainer (`algorithm: kto`): `rlvr.losses.preference.kto_loss` on examples labelled desirable or not.

Unpaired rows train as they are; paired rows are split into a desirable (chosen) and an undesirable (rejected)
example each and shuffled, so batches mix labels. Each step takes `kto.batch_size` examples (split across
processes). First the KL reference point: every example's prompt with the completion of the next example of the
step's global batch whose prompt differs (`rlvr.preference_data.kl_partners`), scored by the policy and the
reference without gradient, averaged over the whole batch on all processes (clamped at 0 in the loss). Then the
loss in micro-batches of `kto.micro_batch_size`. The matched examples' reference log-probs come from the run's
cache (computed once before step 1); the mismatched pairs depend on how the batch was drawn, so the reference
scores them live: with LoRA the adapter-disabled policy, otherwise a frozen copy of the starting weights.
Metrics (TRL's names): loss, kl (z0), rewards/chosen and rewards/rejected (means of beta*h over the batch's
desirable / undesirable examples), rewards/margins (their difference, as TRL: not a per-pair margin),
logps/chosen, logps/rejected (summed), frac_desirable, grad_norm, lr; held-out pairs of `eval.task` under eval/
(accuracy and margin of beta*h, KTO's implicit reward).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext

import torch
from torch import Tensor

from rlvr.config import KTOConfig, TrainConfig
from rlvr.losses.preference import kto_loss, kto_weight_ratio, sequence_logps
from rlvr.preference_data import EncodedExample, kl_partners
from rlvr.reference_logps import reference_mode
from rlvr.trainers.preference import (
    Sums,
    evaluate_pairs,
    forward_logps,
    frozen_initial_model,
    pair_reference,
    reference_logps,
    setup,
    train_loop,
)
from rlvr.trainers.runtime import Runtime, clip_and_step

log = logging.getLogger("rlvr")

KEYS = ("rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected", "frac_desirable")


@torch.no_grad()
def kl_reference_point(rt: Runtime, batch: list[EncodedExample], ref_model: torch.nn.Module | None,
                       micro_batch_size: int) -> Tensor:
    """mean over the global batch of logp_policy(y'|x) - logp_ref(y'|x) on mismatched pairs, unclamped (a scalar)."""
    acc = rt.accelerator
    partners = kl_partners([e.prompt for e in batch])
    rows = [(batch[g].prompt, batch[partners[g]].completion) for g in range(acc.process_index, len(batch), acc.num_processes)]
    total = torch.zeros((), dtype=torch.float64, device=acc.device)
    for start in range(0, len(rows), micro_batch_size):
        part = rows[start : start + micro_batch_size]
        logp, mask = forward_logps(rt.policy, part, rt.tokenizer.pad_token_id, acc.device)
        with reference_mode(ref_model if ref_model is not None else rt.policy) as ref:
            ref_logp, _ = forward_logps(ref, part, rt.tokenizer.pad_token_id, acc.device)
        total += (sequence_logps(logp, mask, "sum") - sequence_logps(ref_logp, mask, "sum")).sum()
    return (acc.reduce(total, reduction="sum") / len(batch)).float()


def kto_update(rt: Runtime, batch: list[EncodedExample], ref: Tensor, ref_model: torch.nn.Module | None,
               kc: KTOConfig) -> dict[str, float]:
    """One optimizer step on the global batch (every process passes the same list and takes batch[rank::world]);
    `ref` (B,): the examples' cached reference log-probs; `ref_model`: the reference for the mismatched pairs
    (None: the policy with LoRA adapters disabled)."""
    acc, model = rt.accelerator, rt.model
    kl = kl_reference_point(rt, batch, ref_model, kc.micro_batch_size)
    mine = list(range(acc.process_index, len(batch), acc.num_processes))
    sums = Sums(KEYS)
    loss_sum = 0.0
    parts = [mine[i : i + kc.micro_batch_size] for i in range(0, len(mine), kc.micro_batch_size)]
    for j, idx in enumerate(parts):
        desirable = torch.tensor([batch[i].label for i in idx], device=acc.device)
        with nullcontext() if j == len(parts) - 1 else acc.no_sync(model):
            logp, mask = forward_logps(model, [(batch[i].prompt, batch[i].completion) for i in idx],
                                       rt.tokenizer.pad_token_id, acc.device)  # fmt: skip
            policy = sequence_logps(logp, mask, "sum")  # (n,)
            loss, m = kto_loss(policy, ref[idx], desirable, kl, beta=kc.beta, desirable_weight=kc.desirable_weight,
                               undesirable_weight=kc.undesirable_weight, denom=len(batch))  # fmt: skip
            acc.backward(loss * acc.num_processes)  # DDP averages gradients; the denominator is already global
        n_d = int(desirable.sum())
        n_u = len(idx) - n_d
        policy = policy.detach()
        sums.add("rewards/chosen", m["rewards/chosen"], n_d)
        sums.add("rewards/rejected", m["rewards/rejected"], n_u)
        sums.add("logps/chosen", policy[desirable].mean() if n_d else 0.0, n_d)
        sums.add("logps/rejected", policy[~desirable].mean() if n_u else 0.0, n_u)
        sums.add("frac_desirable", m["frac_desirable"], len(idx))
        loss_sum += float(loss.detach())
    grad_norm = clip_and_step(rt)
    out = sums.reduce(acc)
    out["rewards/margins"] = out["rewards/chosen"] - out["rewards/rejected"]
    out["kl"] = max(float(kl), 0.0)
    out["loss"] = acc.reduce(torch.tensor(loss_sum, device=acc.device), reduction="sum").item()
    out["grad_norm"] = grad_norm
    return out


def train(cfg: TrainConfig) -> dict[str, float]:
    kc = cfg.kto
    if kc.beta <= 0:
        raise ValueError(f"kto.beta must be > 0, got {kc.beta}")
    if kc.batch_size < 2:
        raise ValueError(f"kto.batch_size must be >= 2 (the KL reference point pairs examples up), got {kc.batch_size}")
    st = setup(cfg, batch_size=kc.batch_size, epochs=kc.epochs, max_steps=kc.max_steps, max_length=kc.max_length,
               skip_bad_rows=kc.skip_bad_rows, unpaired_seed=cfg.seed)  # fmt: skip
    rt, examples, held_out = st.rt, st.rows, st.held_out
    n_d = sum(e.label for e in examples)
    ratio = kto_weight_ratio(n_d, len(examples) - n_d, kc.desirable_weight, kc.undesirable_weight)
    if not 1.0 <= ratio <= 4 / 3:
        log.warning("kto: desirable_weight*n_desirable / (undesirable_weight*n_undesirable) = %.3f (%d desirable, %d "
                    "undesirable); the KTO paper recommends [1, 4/3]", ratio, n_d, len(examples) - n_d)  # fmt: skip
    ref = reference_logps(rt, [[(e.prompt, e.completion)] for e in examples], [e.where for e in examples],
                          normalization="sum", max_length=kc.max_length, name="train",
                          micro_batch_size=2 * kc.micro_batch_size, fingerprint=st.fingerprint)[:, 0]  # fmt: skip
    ref_eval = None
    if held_out:
        ref_eval = pair_reference(rt, held_out, "eval", normalization="sum", max_length=kc.max_length,
                                  micro_batch_size=kc.micro_batch_size, fingerprint=st.fingerprint)  # fmt: skip
    ref_model = frozen_initial_model(rt, st.fingerprint)

    def step(idx: list[int]) -> dict[str, float]:
        return kto_update(rt, [examples[i] for i in idx], ref[idx], ref_model, kc)

    def run_eval() -> dict[str, float]:
        return evaluate_pairs(rt, held_out, ref_eval, normalization="sum", beta=kc.beta, loss_type=None,
                              micro_batch_size=kc.micro_batch_size)  # fmt: skip

    return train_loop(
        rt, len(examples), kc.batch_size, st.total, step, run_eval if held_out else None,
        first_metrics={"data/rows": float(len(examples)), "data/skipped_rows": float(st.skipped),
                       "data/frac_desirable": n_d / len(examples)},
        state={"reference_model": st.fingerprint},
        plot_keys=("loss", "kl", "rewards/margins", "eval/rewards/accuracies", "eval/rewards/margins"),
    )  # fmt: skip
