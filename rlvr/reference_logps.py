"""Reference log-probs of a dataset, computed once before training and cached in the run directory.

What it does:
- `completion_logps`: sequence log-probs (`sum` or `mean`, see `rlvr.losses.preference.sequence_logps`) of items
  of (prompt ids, completion ids) rows (a pair's chosen and rejected stay in one forward) under a model, without
  gradient, in micro-batches sorted by length, each process taking every world-th item and the results gathered,
  so every process ends with all of them.
- `cached_logps`: the same, stored as `<cache_dir>/<name>-<key>.pt` under a key that hashes the reference model's
  weights, the tokenizer with its chat template, the encoded rows (the dataset content as the model sees it),
  `max_length` and the normalisation. A changed key recomputes; an unchanged one is read back (a resumed run
  reuses what its first start computed, rather than scoring with weights it has since trained).
- `reference_mode`: the policy as its own reference (no gradient, eval mode, LoRA adapters disabled: the base
  model), with no second copy.
What it does not: decide which model is the reference (`rlvr.trainers.preference`), or cache anything that
depends on how batches are drawn (KTO's mismatched pairs are scored live).

Differences from TRL and open-instruct, on purpose: TRL's key (`precompute_ref_log_probs`) is the dataset
fingerprint and the model hash, so a changed `max_length`/truncation reuses stale values; open-instruct keys on
the loss type; here the normalisation the loss declares is in the key, so a summed cache never feeds a per-token
loss. Values are checked finite after the pass (open-instruct fills with -inf and asserts the same).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from rlvr.losses.preference import sequence_logps
from rlvr.policy import token_logprobs
from rlvr.preference_data import collate

log = logging.getLogger("rlvr")

Row = tuple[list[int], list[int]]  # (prompt ids, completion ids)


@contextmanager
def reference_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`model` as the reference: no gradient, eval mode, LoRA adapters disabled (the base model)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), (model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()):
            yield model
    finally:
        model.train(was_training)


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@torch.no_grad()
def model_fingerprint(model: torch.nn.Module) -> str:
    """A hash of the model's weights without LoRA adapters (name, shape, dtype, float64 sum and norm, 16 strided
    values per tensor): cheap on any device, and different for any two checkpoints that are not the same."""
    parts = []
    for name, p in sorted(model.named_parameters()):
        if "lora_" in name:
            continue
        flat = p.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 16)][:16].double().tolist()
        norm = torch.linalg.vector_norm(flat, dtype=torch.float64).item()
        parts.append([name.removeprefix("base_model.model."), list(p.shape), str(p.dtype),
                      flat.sum(dtype=torch.float64).item(), norm, sample])  # fmt: skip
    return _sha(parts)


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the vocabulary, special tokens and chat template."""
    return _sha({
        "class": type(tokenizer).__name__, "vocab": sorted(tokenizer.get_vocab().items()),
        "specials": tokenizer.special_tokens_map, "chat_template": tokenizer.chat_template,
        "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id,
    })  # fmt: skip


def cache_key(model_fp: str, tokenizer_fp: str, items: list[list[Row]], max_length: int,
              normalization: str) -> dict[str, Any]:
    """The parts of a reference cache key, and their hash under "key"."""
    parts = {"model": model_fp, "tokenizer": tokenizer_fp, "rows": _sha(items), "max_length": max_length,
             "normalization": normalization}  # fmt: skip
    return {**parts, "key": _sha(parts)[:20]}


@torch.no_grad()
def completion_logps(model: torch.nn.Module, items: list[list[Row]], normalization: str, micro_batch_size: int,
                     pad_id: int, accelerator) -> Tensor:
    """Sequence log-probs (N, k) of N items of k rows each (a pair: chosen and rejected) under `model`, without
    gradient (the caller sets train/eval and reference mode). Each process takes items[rank::world], sorted by
    length, `micro_batch_size` items per forward (an item's rows always together); all processes get every value.
    The layout depends only on the items and `micro_batch_size`, so a policy scored the same way as its cached
    reference, with the same weights, gets the same bits (held-out evaluation relies on this at step 0)."""
    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    k = len(items[0])
    mine = list(range(rank, len(items), world))
    per_rank = -(-len(items) // world)  # ceil: every process contributes a tensor of one shape to the gather
    out = torch.zeros(per_rank, k, dtype=torch.float32, device=device)
    order = sorted(range(len(mine)), key=lambda i: sum(len(p) + len(c) for p, c in items[mine[i]]))  # less padding
    for start in range(0, len(order), micro_batch_size):
        local = order[start : start + micro_batch_size]
        rows = [items[mine[i]][j] for j in range(k) for i in local]  # (k*n,): all first rows, then all second rows
        batch = collate(rows, pad_id).to(device)
        logp, _ = token_logprobs(model, batch.input_ids, batch.attention_mask, batch.num_completion_tokens)
        out[torch.tensor(local, device=device)] = sequence_logps(logp, batch.completion_mask, normalization).view(k, -1).T
    gathered = accelerator.gather(out).view(world, per_rank, k)
    result = torch.empty(len(items), k, dtype=torch.float32, device=device)
    for r in range(world):
        idx = list(range(r, len(items), world))
        result[idx] = gathered[r, : len(idx)]
    return result


def cached_logps(cache_dir: Path, name: str, key: dict[str, Any], compute: Callable[[], Tensor], accelerator,
                 wheres: list[str]) -> tuple[Tensor, bool]:
    """(values, computed now?) for `key`: read from `cache_dir/<name>-<key>.pt`, or `compute()`d and saved there
    (the main process writes; all processes call this). `wheres` name the items (the first axis of the values) in
    the error a non-finite value raises."""
    path = Path(cache_dir) / f"{name}-{key['key']}.pt"
    stored = torch.load(path, map_location=accelerator.device) if path.is_file() else None
    usable = torch.tensor(float(stored is not None and stored["key"] == key), device=accelerator.device)
    # all processes or none read it: `compute` gathers, so a process that alone recomputed would wait forever
    if accelerator.reduce(usable, reduction="sum").item() == accelerator.num_processes:
        return stored["logps"], False
    values = compute()
    bad = (~torch.isfinite(values)).reshape(len(values), -1).any(-1).nonzero().flatten().tolist()
    if bad:
        rows = ", ".join(wheres[i] for i in bad[:5])
        raise ValueError(f"reference log-probs of {len(bad)} rows are not finite ({rows}): check the model's dtype")
    if accelerator.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"key": key, "logps": values.cpu()}, tmp)
        os.replace(tmp, path)  # a crash mid-write never leaves a half file under the real name
        log.info("reference log-probs of %d rows cached at %s", len(values), path)
    accelerator.wait_for_everyone()
    return values, True
