"""Per-token log-probs and entropies whose memory does not grow with the vocabulary.

What it does: runs the model's forward as usual (through DDP/FSDP/peft wrappers, so their hooks and gradient
sync see it), but taps the output head: the head is handed an empty slice, and the hidden states it would
have projected are projected here, only at the positions asked for (prompt tokens and padding cost no head
compute), a tile at a time. A tile's logits, their float32 softmax, the chosen token's log-prob and the
entropy exist only while that tile is computed; the backward recomputes them tile by tile instead of keeping
them. Peak memory for the head is a few tiles (about CHUNK_ELEMENTS float32 values each) instead of several
(B, C, V) tensors.
- A plain `nn.Linear` head (tied to the embedding or not, with or without bias) goes through `_LinearLogp`,
  an autograd Function over tiles of tokens x vocabulary rows (see there). A tied embedding gets its head
  gradient through the weight input, summed with its embedding gradient by autograd as usual.
- Any other head (peft LoRA on `lm_head`, `modules_to_save`, ...) is called per chunk of tokens under
  `torch.utils.checkpoint`, so its own autograd handles its parameters.
- `chunk_size=0` is the plain path (full logits, then log-softmax): the reference the tests compare against.
  The default (`None`) tiles unless the plain path's logits would fit in one tile anyway (tiny vocabularies).
  Models that transform logits after the head (Gemma 2/3 soft-capping, Cohere `logit_scale`, Granite
  `logits_scaling`) always take it; any other transform is caught (the model's output differs from what the
  head tap returned) and is an error, never a silent wrong log-prob.

What it does not: compute losses, or give the entropy a gradient (it is a metric here, as in TRL's GRPO).

Differences from TRL/verl, on purpose: TRL materialises the (B, C, V) logits (`selective_log_softmax` only
loops the log-softmax over rows; the backward keeps them). verl's `FusedLinearForPPO` chunks over tokens
only, so each chunk's backward reads and writes the whole (V, H) weight gradient, takes the entropy as
logsumexp(z) - sum(p z) (two numbers of size |z| cancelling), and is wired in by patching supported model
classes' forward. Here tiles run over the vocabulary too, the entropy is log S1 - S2 / S1 (see
`_LinearLogp`), and the head is tapped by hooks, so any causal LM whose head is its output embedding works.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from rlvr.losses import entropy_from_logits

# tokens per block and elements of one tile's float32 logits (tokens x vocabulary rows); see _LinearLogp
CHUNK_TOKENS = 2048
CHUNK_ELEMENTS = 2**22  # 16 MiB
VOCAB_CHUNK_MIN = 256
# config fields of models that change the logits after the head; those models take the plain path
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def _tiles(K: int, V: int, chunk_size: int) -> tuple[int, int]:
    """(tokens, vocabulary rows) per tile: `chunk_size` tokens (capped at K), and as many vocabulary rows as keep
    one tile's float32 logits near CHUNK_ELEMENTS (all of V when they fit)."""
    n = max(1, min(K, chunk_size))
    return n, min(V, max(VOCAB_CHUNK_MIN, CHUNK_ELEMENTS // n))


def _logits(h: Tensor, weight: Tensor, bias: Tensor | None, temperature: float) -> Tensor:
    z = torch.nn.functional.linear(h, weight, bias).float()  # (n, m)
    return z.div_(temperature) if temperature != 1.0 else z


def _in_chunk(targets: Tensor, v0: int, width: int) -> tuple[Tensor, Tensor]:
    """(column, inside): each target's column in vocabulary rows v0:v0+width (clamped into range) and whether it
    falls there. No data-dependent shapes, so no host sync on a GPU."""
    col = targets - v0
    inside = (col >= 0) & (col < width)
    return col.clamp(0, width - 1)[:, None], inside


class _LinearLogp(torch.autograd.Function):
    """log softmax((h W^T + b) / T)[target] per row, in tiles of (tokens x vocabulary rows); the entropy comes
    along without a gradient.

    Forward: per block of tokens, an online log-sum-exp over vocabulary chunks (as flash attention does over keys),
    keeping per token the running max M, S1 = sum exp(z - M) and S2 = sum exp(z - M) (z - M), so that
    lse = M + log S1 and the entropy H = lse - sum p z = log S1 - S2 / S1 (no cancellation of two numbers of
    size |z|). Backward: recomputes each tile's softmax from the saved lse; the weight's gradient for a
    vocabulary chunk and the hidden rows' gradient for a token block are each accumulated over the other axis
    only, so no (V, H) or (K, V) buffer is read and written per tile.
    """

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, temperature: float,
                chunk_size: int, with_entropy: bool) -> tuple[Tensor, Tensor]:  # fmt: skip
        K, V = hidden.shape[0], weight.shape[0]
        n, m = _tiles(K, V, chunk_size)
        f32 = dict(dtype=torch.float32, device=hidden.device)
        lse, zt = torch.empty(K, **f32), torch.zeros(K, **f32)
        ent = torch.empty(K if with_entropy else 0, **f32)
        for s in range(0, K, n):
            h, t = hidden[s : s + n], targets[s : s + n]
            M = torch.full((h.shape[0],), -torch.inf, **f32)
            S1, S2 = torch.zeros_like(M), torch.zeros_like(M)
            for v0 in range(0, V, m):
                z = _logits(h, weight[v0 : v0 + m], None if bias is None else bias[v0 : v0 + m], temperature)  # (n, m)
                col, inside = _in_chunk(t, v0, z.shape[1])
                zt[s : s + n] = torch.where(inside, z.gather(-1, col).squeeze(-1), zt[s : s + n])
                M_new = torch.maximum(M, z.amax(-1))
                z.sub_(M_new[:, None])  # z - M_new <= 0
                ez = z.exp()
                scale = (M - M_new).exp()  # 0 on the first chunk (M = -inf)
                if with_entropy:  # S2 moved to the new max: sum e^(z-M')(z-M') = scale * (S2 + (M - M') S1)
                    S2 = scale * (S2 + torch.where(S1 > 0, (M - M_new) * S1, 0.0)) + torch.linalg.vecdot(ez, z)
                S1 = scale * S1 + ez.sum(-1)
                M = M_new
            lse[s : s + n] = M + S1.log()
            if with_entropy:
                ent[s : s + n] = S1.log() - S2 / S1
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.temperature, ctx.tiles = temperature, (n, m)
        dev = hidden.device.type  # the backward recomputes the logits under the forward's autocast, if any
        ctx.autocast = (dev, torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev))
        ctx.mark_non_differentiable(ent)
        return zt - lse, ent

    @staticmethod
    def backward(ctx, g_logp: Tensor, _g_ent: Tensor):  # noqa: ANN205
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        T, (n, m) = ctx.temperature, ctx.tiles
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        K, V = hidden.shape[0], weight.shape[0]
        dh = torch.empty_like(hidden) if need_h else None
        # the weight's gradient is summed over token blocks: in float32 unless the weight is already
        dw = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        db = torch.zeros(V, dtype=torch.float32, device=weight.device) if need_b else None
        dev, on, dtype = ctx.autocast
        with torch.autocast(dev, dtype=dtype, enabled=on):
            for s in range(0, K, n):
                h, t, g = hidden[s : s + n], targets[s : s + n], g_logp[s : s + n].float()
                dh_block = torch.zeros(h.shape, dtype=torch.float32, device=h.device) if need_h else None
                for v0 in range(0, V, m):
                    w = weight[v0 : v0 + m]
                    # d logp_t / dz = onehot(t) - softmax(z); through z = (hW^T + b) / T a factor 1/T
                    dz = _logits(h, w, None if bias is None else bias[v0 : v0 + m], T)
                    dz = dz.sub_(lse[s : s + n, None]).exp_().mul_(-g[:, None])  # (n, m)
                    col, inside = _in_chunk(t, v0, dz.shape[1])
                    dz.scatter_add_(-1, col, torch.where(inside, g, 0.0)[:, None])
                    if T != 1.0:
                        dz.div_(T)
                    dz = dz.to(w.dtype)
                    if need_h:
                        dh_block += (dz @ w).float()
                    if need_w:
                        dw[v0 : v0 + m] += (dz.t() @ h).float()
                    if need_b:
                        db[v0 : v0 + m] += dz.sum(0).float()
                if need_h:
                    dh[s : s + n] = dh_block
        return (dh, dw.to(weight.dtype) if need_w else None, db.to(bias.dtype) if need_b else None,
                None, None, None, None)  # fmt: skip


def _module_logp(head: torch.nn.Module, h: Tensor, targets: Tensor, temperature: float, with_entropy: bool) -> Tensor:
    """(n, 2): log-prob of `targets` and (without gradient) the entropy, for one chunk through any head module."""
    logz = torch.log_softmax(head(h).float() / temperature, dim=-1)  # (n, V)
    logp = logz.gather(-1, targets[:, None]).squeeze(-1)
    with torch.no_grad():
        ent = -torch.linalg.vecdot(logz.exp(), logz) if with_entropy else torch.zeros_like(logp)
    return torch.stack([logp, ent], -1)


def head_logprobs(head: torch.nn.Module, hidden: Tensor, targets: Tensor, *, temperature: float = 1.0,
                  with_entropy: bool = False, chunk_size: int | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Log-probs (K,) of `targets` (K,) under softmax(head(hidden) / temperature), hidden (K, H), chunked, and the
    entropies (K,) (zeros unless `with_entropy`; never with a gradient). Both float32.
    `chunk_size`: tokens per block; None = CHUNK_TOKENS for a plain Linear head (tiled over the vocabulary too),
    else as many tokens as keep one chunk's float32 logits near CHUNK_ELEMENTS."""
    if type(head) is torch.nn.Linear:
        logp, ent = _LinearLogp.apply(hidden, head.weight, head.bias, targets, float(temperature),
                                      chunk_size or CHUNK_TOKENS, with_entropy)  # fmt: skip
        return logp, ent if with_entropy else torch.zeros_like(logp)
    vocab = unwrap_linear(head).weight.shape[0]
    chunk = chunk_size or max(1, CHUNK_ELEMENTS // vocab)
    parts = []
    for s in range(0, hidden.shape[0], chunk):
        args = (head, hidden[s : s + chunk], targets[s : s + chunk], float(temperature), with_entropy)
        parts.append(checkpoint(_module_logp, *args, use_reentrant=False) if torch.is_grad_enabled() else _module_logp(*args))
    out = torch.cat(parts) if parts else hidden.new_zeros((0, 2), dtype=torch.float32)  # (K, 2)
    return out[:, 0], out[:, 1].detach()


def unwrap_linear(head: torch.nn.Module) -> torch.nn.Linear:
    """The innermost Linear of a wrapped head (peft's `base_layer`, `modules_to_save`'s original module)."""
    for m in head.modules():
        if isinstance(m, torch.nn.Linear):
            return m
    raise ValueError(f"output head {type(head).__name__} holds no Linear layer")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model under DDP / FSDP1 / DeepSpeed (`.module`) and torch.compile (`._orig_mod`) wrappers.
    FSDP2 and peft do not wrap: their modules answer `get_output_embeddings` themselves."""
    while not hasattr(model, "get_output_embeddings"):
        inner = getattr(model, "_orig_mod", getattr(model, "module", None))
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner
    return model


def output_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The module that maps hidden states to logits, or None when the chunked path cannot stand in for it
    (no output embedding, or the model transforms the logits after it)."""
    inner = unwrap(model)
    cfg = getattr(inner, "config", None)
    cfg = getattr(cfg, "get_text_config", lambda: cfg)()
    if any(getattr(cfg, k, None) not in (None, 1, 1.0) for k in _LOGIT_TRANSFORMS):
        return None
    get = getattr(inner, "get_output_embeddings", None)
    head = get() if get is not None else None
    return head if isinstance(head, torch.nn.Module) else None


@contextmanager
def _tap_head(head: torch.nn.Module, compute: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """While open, a call of `head(h)` runs the head on an empty slice of `h` (so the model's forward and its
    wrappers' hooks go on as usual) and returns `compute(h)` instead of its logits."""
    tapped: list[Tensor] = []  # the hidden states of the call in flight; compute() may call the head itself
    # (the checkpointed path): those inner calls find it non-empty and pass through untouched

    def pre(module, args):  # noqa: ANN001, ANN202
        if tapped:
            return None
        tapped.append(args[0])
        return (args[0][..., :0, :], *args[1:])

    def post(module, args, output):  # noqa: ANN001, ANN202
        if len(tapped) != 1 or args[0].shape[-2] != 0:
            return None
        try:
            return compute(tapped[0])
        finally:
            tapped.clear()

    # prepended, so they run inside any hooks that gather or release sharded weights (DeepSpeed ZeRO-3)
    handles = [head.register_forward_pre_hook(pre, prepend=True), head.register_forward_hook(post, prepend=True)]
    try:
        yield
    finally:
        for hd in handles:
            hd.remove()


def _tiled_head(model: torch.nn.Module, chunk_size: int | None, plain_logits: int) -> torch.nn.Module | None:
    """The head to tile, or None for the plain path: asked for (chunk_size=0), needed (see `output_head`), or
    chosen by default (chunk_size=None) when the plain path's logits (`plain_logits` values) fit in one tile
    anyway, where it is as small and a little faster (3% on the tiny models' 271-row vocabulary)."""
    if chunk_size == 0:
        return None
    head = output_head(model)
    if head is None or chunk_size is not None:
        return head
    return head if plain_logits * unwrap_linear(head).weight.shape[0] > CHUNK_ELEMENTS else None


def _positions(attention_mask: Tensor | None, position_ids: Tensor | None) -> Tensor | None:
    if position_ids is None and attention_mask is not None:  # from the mask, so left padding does not shift positions
        return (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return position_ids


def selected_logprobs(model: torch.nn.Module, input_ids: Tensor, attention_mask: Tensor | None, position_ids: Tensor | None,
                      positions: Tensor, *, temperature: float = 1.0, with_entropy: bool = False,
                      chunk_size: int | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Log-probs (K,) of the tokens at flat `positions` (K,) of `input_ids` (R, W), each predicted from the
    position before it in the same row (so no position may be in column 0), and their entropies (K,) (zeros
    unless `with_entropy`, no gradient). Packed rows pass `position_ids` restarting at 0 per sequence and no
    attention mask. `chunk_size`: tokens per chunk (see `head_logprobs`), 0 = the plain path."""
    R, W = input_ids.shape
    targets = input_ids.reshape(-1)[positions]  # (K,)
    rows, cols = positions // W, positions % W
    if bool((cols == 0).any()):
        raise ValueError("selected_logprobs: a position in column 0 has no preceding token to predict it from")
    prev = rows * W + cols - 1  # (K,) flat index of the predicting position
    kw = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=_positions(attention_mask, position_ids),
              use_cache=False, logits_to_keep=0)  # fmt: skip
    head = _tiled_head(model, chunk_size, R * W)
    if head is None:
        logits = model(**kw).logits.reshape(R * W, -1)[prev].float() / temperature  # (K, V)
        logp = torch.log_softmax(logits, -1).gather(-1, targets[:, None]).squeeze(-1)
        with torch.no_grad():
            ent = entropy_from_logits(logits) if with_entropy else torch.zeros_like(logp)
        return logp, ent

    computed: list[Tensor] = []

    def compute(h: Tensor) -> Tensor:  # h (R, W, H): the final hidden states, all positions (logits_to_keep=0)
        logp, ent = head_logprobs(head, h.reshape(R * W, -1)[prev], targets, temperature=temperature,
                                  with_entropy=with_entropy, chunk_size=chunk_size)  # fmt: skip
        computed.append(torch.stack([logp, ent], -1)[None])  # (1, K, 2)
        return computed[-1]

    with _tap_head(head, compute):
        out = model(**kw).logits  # (1, K, 2): what compute() returned, passed through the wrappers' outputs
    if out.shape != computed[0].shape or not torch.equal(out.detach(), computed[0].detach()):
        raise RuntimeError(f"{type(unwrap(model)).__name__} changes the logits after its output head, so chunked "
                           "log-probs cannot stand in for them: pass chunk_size=0")  # fmt: skip
    return out[0, :, 0], out[0, :, 1].detach()


def token_logprobs(model: torch.nn.Module, input_ids: Tensor, attention_mask: Tensor, num_completion_tokens: int, *,
                   temperature: float = 1.0, with_entropy: bool = False, position_ids: Tensor | None = None,
                   chunk_size: int | None = None) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    """Log-probs of the last C = `num_completion_tokens` tokens of each row.

    input_ids, attention_mask (B, P + C): left-padded prompts followed by right-padded completions, so every
    completion starts at column P. Returns logp (B, C) and, if asked, the entropy of each predictive
    distribution (B, C), computed without gradient. Padded positions get values too (callers mask them).
    Packed rows (several examples per row) pass `position_ids` restarting at 0 per example and no attention
    mask; transformers then keeps attention within each example.
    `chunk_size`: tokens per chunk of the memory-flat head (see `head_logprobs`); 0 = the plain path, which
    materialises the (B, C, V) logits (`logits_to_keep`) and is kept as the reference for tests."""
    C = num_completion_tokens
    position_ids = _positions(attention_mask, position_ids)
    head = _tiled_head(model, chunk_size, input_ids.shape[0] * (C + 1))
    if head is None:
        out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False,
                    logits_to_keep=C + 1)  # fmt: skip
        logits = out.logits[:, :-1, :]  # (B, C, V): the logit at t predicts token t + 1
        if temperature != 1.0:
            logits = logits / temperature
        logits = logits.float()
        logp = logits.gather(-1, input_ids[:, -C:].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)  # (B, C)
        entropy = None
        if with_entropy:
            with torch.no_grad():
                entropy = entropy_from_logits(logits)  # (B, C)
        return logp, entropy
    B, W = input_ids.shape
    positions = (torch.arange(B, device=input_ids.device)[:, None] * W + torch.arange(W - C, W, device=input_ids.device)).reshape(-1)
    logp, ent = selected_logprobs(model, input_ids, attention_mask, position_ids, positions, temperature=temperature,
                                  with_entropy=with_entropy, chunk_size=chunk_size)  # fmt: skip
    return logp.view(B, C), ent.view(B, C) if with_entropy else None


def hidden_states(model: torch.nn.Module, input_ids: Tensor, attention_mask: Tensor | None, *,
                  position_ids: Tensor | None = None) -> Tensor:  # fmt: skip
    """The final hidden states (B, T, H) the output head would read (after the last norm), through the model's own
    forward (so DDP/FSDP hooks run), without computing any logits: for a value head on the policy's backbone."""
    head = output_head(model)
    if head is None:
        raise ValueError(f"{type(unwrap(model)).__name__}: no output head to read the hidden states at")
    with _tap_head(head, lambda h: h):
        return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=_positions(attention_mask, position_ids),
                     use_cache=False, logits_to_keep=0).logits  # fmt: skip
