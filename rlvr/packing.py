"""Micro-batches whose compute follows the real tokens: a token budget instead of a row count, and sequences
packed into rows instead of padded to the longest.

What it does: `micro_batches` splits the rows of a `PaddedBatch` (prompt + completion per row) into groups,
either `rows` at a time (the padded path) or first-fit-decreasing into groups of at most `max_tokens` real
tokens (the padding-free path), as many groups on every process (FSDP gathers weights in every forward, so
a process with one micro-batch fewer would hang the others). `pack` lays one group's sequences end to end
in rows with position ids restarting at 0 per sequence and no attention mask, which transformers turns into
attention kept within each sequence (a block-diagonal mask for sdpa/eager, varlen kernels for flash
attention). `part_logprobs` computes a group's completion log-probs either way and returns them in the
padded (n, C) layout, so the losses and their global denominators do not change: the gradients are the
padded path's, up to float round-off.

Row layout: with flash attention all sequences go in one row (transformers finds sequence boundaries from
position ids only for a batch of one row, and packing several rows would silently attend across sequences);
with sdpa/eager they are packed first-fit-decreasing into rows as long as the group's longest sequence, since
those kernels cost (row length)^2 with a block-diagonal mask and skip nothing.

What it does not: change which tokens carry loss, or drop sequences whose completion mask is all zero
(they still cost a forward; the loss gives them no gradient).

Differences from TRL/verl, on purpose: TRL's `padding_free` (SFT and DPO; its GRPOTrainer has none)
flattens a batch into one row and is documented as supported with flash attention 2/3 only, and verl's
`use_remove_padding` also rests on flash attention's varlen kernels. Here sdpa and eager work as well (a
block-diagonal causal mask per row, built by transformers from the position ids), so a CPU or a plain GPU
install gets it too. As with verl's `use_dynamic_bsz`, micro-batches come from a token budget and their
count is made equal across data-parallel processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from rlvr.logprobs import selected_logprobs, token_logprobs, unwrap
from rlvr.rollout import PaddedBatch


def first_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` in bins of at most `capacity` (each length <= capacity): longest first, each into the
    first bin it fits (at most 11/9 of the fewest bins possible, plus one)."""
    bins: list[list[int]] = []
    loads: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        b = next((b for b, load in enumerate(loads) if load + lengths[i] <= capacity), len(bins))
        if b == len(bins):
            bins.append([])
            loads.append(0)
        bins[b].append(i)
        loads[b] += lengths[i]
    return bins


def micro_batches(batch: PaddedBatch, *, rows: int, max_tokens: int, agree: Callable[[int], int] = lambda n: n,
                  what: str = "max_tokens_per_micro_batch") -> list[Tensor]:  # fmt: skip
    """Row indices (into `batch`) of each micro-batch. max_tokens <= 0: `rows` rows at a time, in order.
    Otherwise groups of at most `max_tokens` prompt + completion tokens, first-fit decreasing, and then split
    until there are `agree(count)` of them (the maximum over processes; identity in one process).
    A sequence longer than `max_tokens` is an error naming `what`."""
    if max_tokens <= 0:
        return list(torch.arange(len(batch)).split(rows))
    lengths = batch.attention_mask.sum(-1).tolist()  # (N,) real tokens per row
    longest = max(lengths)
    if longest > max_tokens:
        raise ValueError(f"{what}={max_tokens} is smaller than a sequence of {longest} tokens (prompt + completion): "
                         f"raise it to at least the longest prompt plus the generation budget")  # fmt: skip
    groups = first_fit_decreasing(lengths, max_tokens)
    want = agree(len(groups))
    while len(groups) < want:  # splitting a group never breaks the budget
        k = max(range(len(groups)), key=lambda g: len(groups[g]))
        if len(groups[k]) < 2:
            raise ValueError(f"cannot form {want} micro-batches from {len(lengths)} sequences on this process")
        groups.append(groups[k][1::2])
        groups[k] = groups[k][0::2]
    return [torch.tensor(sorted(g)) for g in groups]


def max_over_processes(accelerator) -> Callable[[int], int]:  # noqa: ANN001
    """`agree` for `micro_batches` under accelerate: the largest count any process proposes."""
    return lambda n: int(accelerator.gather(torch.tensor([n], device=accelerator.device)).max())


@dataclass
class PackedRows:
    """One micro-batch's sequences laid end to end; what `selected_logprobs` needs plus where results go."""

    input_ids: Tensor  # (R, W)
    position_ids: Tensor  # (R, W) restarting at 0 for each sequence (and for the padding tail of a row)
    positions: Tensor  # (K,) flat indices into (R * W) of the completion tokens
    dst: Tensor  # (K,) flat indices into (n * C) of the same tokens in the padded layout


def one_row_attention(model: torch.nn.Module) -> bool:
    """True when the attention kernel reads sequence boundaries from position ids only in a single row."""
    return "flash" in str(getattr(getattr(unwrap(model), "config", None), "_attn_implementation", ""))


def pack(part: PaddedBatch, *, one_row: bool) -> PackedRows:
    """The sequences of `part` (left-padded prompt, right-padded completion per row) packed into rows."""
    ids, attn = part.input_ids.cpu(), part.attention_mask.cpu()  # laid out on the host: no device sync per row
    C = part.num_completion_tokens
    P = ids.shape[1] - C
    plen, clen = attn[:, :P].sum(-1).tolist(), attn[:, P:].sum(-1).tolist()
    if 0 in plen:
        raise ValueError("pack: a row has an empty prompt, so nothing predicts its first completion token")
    lengths = [p + c for p, c in zip(plen, clen)]
    rows = first_fit_decreasing(lengths, sum(lengths) if one_row else max(lengths))
    W = max(sum(lengths[i] for i in row) for row in rows)
    # the tail of a short row holds token 0 (any valid id): its own segment, never scored
    out_ids = torch.zeros((len(rows), W), dtype=ids.dtype)
    pos = torch.zeros((len(rows), W), dtype=torch.long)
    positions, dst = [], []
    for r, members in enumerate(rows):
        o = 0
        for i in members:
            L = lengths[i]
            out_ids[r, o : o + L] = ids[i, P - plen[i] : P + clen[i]]
            pos[r, o : o + L] = torch.arange(L)
            positions.append(torch.arange(clen[i]) + (r * W + o + plen[i]))
            dst.append(torch.arange(clen[i]) + i * C)
            o += L
        pos[r, o:] = torch.arange(W - o)
    dev = part.input_ids.device
    return PackedRows(out_ids.to(dev), pos.to(dev), torch.cat(positions).to(dev), torch.cat(dst).to(dev))


def part_logprobs(model: torch.nn.Module, part: PaddedBatch, *, temperature: float, with_entropy: bool = False,
                  packed: bool) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    """Completion log-probs (n, C) of a micro-batch and, if asked, entropies (n, C): through the padded rows
    (`token_logprobs`) or, if `packed`, through `pack` (zeros where the padded layout has padding)."""
    C = part.num_completion_tokens
    if not packed:
        return token_logprobs(model, part.input_ids, part.attention_mask, C, temperature=temperature,
                              with_entropy=with_entropy)  # fmt: skip
    rows = pack(part, one_row=one_row_attention(model))
    logp, ent = selected_logprobs(model, rows.input_ids, None, rows.position_ids, rows.positions,
                                  temperature=temperature, with_entropy=with_entropy)  # fmt: skip
    n = len(part)
    logp = logp.new_zeros(n * C).index_put((rows.dst,), logp).view(n, C)
    return logp, ent.new_zeros(n * C).index_put((rows.dst,), ent).view(n, C) if with_entropy else None
