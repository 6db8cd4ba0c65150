"""DPO trainer (`algorithm: dpo`): a preference loss of `rlvr.losses.preference` on pairs, chosen by `dpo.loss_type`
(sigmoid, conservative DPO via label_smoothing, robust, hinge, ipo, ipo_sum, sigmoid_norm, simpo).

Each step takes `dpo.batch_size` pairs (split across processes) in micro-batches of `dpo.micro_batch_size` pairs,
chosen and rejected of a micro-batch in one forward. Sequence log-probs use the normalisation the loss declares.
The reference log-probs were computed once, before step 1, with the starting weights (with LoRA: the base model)
and cached in the run directory under a key of model, tokenizer, data, max_length and normalisation; SimPO has
none. Denominators are global, so N processes make the update one process makes on the same global batch.
Metrics (TRL's names): loss, rewards/{chosen,rejected,margins,accuracies,ties} (accuracies strict, ties apart),
logps/{chosen,rejected} (summed over completion tokens, as TRL), nll (with nll_coef), grad_norm, lr; held-out
pairs of `eval.task` under eval/.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext

import torch
from torch import Tensor

from rlvr.config import DPOConfig, TrainConfig
from rlvr.losses import sft_loss
from rlvr.losses.preference import LOSS_NORMALIZATION, NEEDS_REFERENCE, check_dpo_options, dpo_loss, sequence_logps
from rlvr.preference_data import EncodedPair
from rlvr.trainers.preference import (
    PAIR_KEYS,
    Sums,
    evaluate_pairs,
    forward_logps,
    pair_reference,
    setup,
    train_loop,
)
from rlvr.trainers.runtime import Runtime, clip_and_step

log = logging.getLogger("rlvr")

KEYS = PAIR_KEYS + ("logps/chosen", "logps/rejected", "nll")


def dpo_update(rt: Runtime, pairs: list[EncodedPair], ref: Tensor | None, dc: DPOConfig) -> dict[str, float]:
    """One optimizer step on the global batch `pairs` (every process passes the same list and takes
    pairs[rank::world]); `ref` (B, 2): their reference log-probs (chosen, rejected), None for simpo."""
    acc, model = rt.accelerator, rt.model
    norm = LOSS_NORMALIZATION[dc.loss_type]
    mine = list(range(acc.process_index, len(pairs), acc.num_processes))
    chosen_tokens = sum(len(p.chosen) for p in pairs)  # global: every process holds the whole batch
    sums = Sums(KEYS)
    loss_sum = 0.0
    parts = [mine[i : i + dc.micro_batch_size] for i in range(0, len(mine), dc.micro_batch_size)]
    for j, idx in enumerate(parts):
        n = len(idx)
        rows = [(pairs[i].prompt, pairs[i].chosen) for i in idx] + [(pairs[i].prompt, pairs[i].rejected) for i in idx]
        with nullcontext() if j == len(parts) - 1 else acc.no_sync(model):
            logp, mask = forward_logps(model, rows, rt.tokenizer.pad_token_id, acc.device)  # (2n, C): chosen, rejected
            pc, pr = sequence_logps(logp, mask, norm).chunk(2)
            rc, rr = (ref[idx, 0], ref[idx, 1]) if ref is not None else (None, None)
            loss, m = dpo_loss(pc, pr, rc, rr, loss_type=dc.loss_type, beta=dc.beta, label_smoothing=dc.label_smoothing,
                               simpo_gamma=dc.simpo_gamma, denom=len(pairs))  # fmt: skip
            if dc.nll_coef:
                nll, nm = sft_loss(logp[:n], mask[:n], denom=chosen_tokens)
                loss = loss + dc.nll_coef * nll
                sums.add("nll", nm["nll"], float(mask[:n].sum()))
            acc.backward(loss * acc.num_processes)  # DDP averages gradients; the denominator is already global
        summed_c, summed_r = sequence_logps(logp.detach(), mask, "sum").chunk(2)
        m["logps/chosen"], m["logps/rejected"] = summed_c.mean(), summed_r.mean()
        for k in KEYS[:-1]:
            sums.add(k, m[k], n)
        loss_sum += float(loss.detach())
    grad_norm = clip_and_step(rt)
    out = sums.reduce(acc)
    if not dc.nll_coef:
        del out["nll"]
    out["loss"] = acc.reduce(torch.tensor(loss_sum, device=acc.device), reduction="sum").item()
    out["grad_norm"] = grad_norm
    return out


def train(cfg: TrainConfig) -> dict[str, float]:
    dc = cfg.dpo
    check_dpo_options(dc.loss_type, dc.beta, dc.label_smoothing)  # before any model is loaded
    if dc.loss_type == "simpo" and dc.beta < 1:
        log.warning("dpo.beta=%g with simpo: SimPO's beta multiplies per-token averages (the paper uses 2-10); "
                    "below 1 it barely trains", dc.beta)  # fmt: skip
    st = setup(cfg, batch_size=dc.batch_size, epochs=dc.epochs, max_steps=dc.max_steps, max_length=dc.max_length,
               skip_bad_rows=dc.skip_bad_rows)  # fmt: skip
    rt, pairs, held_out = st.rt, st.rows, st.held_out
    norm = LOSS_NORMALIZATION[dc.loss_type]
    ref = ref_eval = None
    if dc.loss_type in NEEDS_REFERENCE:
        ref = pair_reference(rt, pairs, "train", normalization=norm, max_length=dc.max_length,
                             micro_batch_size=dc.micro_batch_size, fingerprint=st.fingerprint)  # fmt: skip
        if held_out:
            ref_eval = pair_reference(rt, held_out, "eval", normalization=norm, max_length=dc.max_length,
                                      micro_batch_size=dc.micro_batch_size, fingerprint=st.fingerprint)  # fmt: skip

    def step(idx: list[int]) -> dict[str, float]:
        return dpo_update(rt, [pairs[i] for i in idx], ref[idx] if ref is not None else None, dc)

    def run_eval() -> dict[str, float]:
        return evaluate_pairs(rt, held_out, ref_eval, normalization=norm, beta=dc.beta, loss_type=dc.loss_type,
                              micro_batch_size=dc.micro_batch_size)  # fmt: skip

    return train_loop(
        rt, len(pairs), dc.batch_size, st.total, step, run_eval if held_out else None,
        first_metrics={"data/rows": float(len(pairs)), "data/skipped_rows": float(st.skipped)},
        state={"reference_model": st.fingerprint},
        plot_keys=("loss", "rewards/margins", "rewards/accuracies", "eval/rewards/accuracies", "eval/rewards/margins"),
    )  # fmt: skip
