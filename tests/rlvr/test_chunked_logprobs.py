"""The chunked (memory-flat) log-prob path against the plain one, on real tiny models: log-probs, entropies and
every gradient (backbone, tied embedding, LoRA on the head) within float32 round-off, at temperature 1 and 0.7,
with and without padding; packed rows against their sequences alone; and no (B, C, V) tensor ever allocated."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoModelForCausalLM

import rlvr.logprobs as lp
from rlvr.logprobs import head_logprobs, hidden_states, output_head, selected_logprobs, token_logprobs

TOL = dict(rtol=1e-4, atol=2e-5)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    m = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert m.config.tie_word_embeddings and m.lm_head.weight is m.model.embed_tokens.weight
    return m


@pytest.fixture
def small_tiles(monkeypatch):
    # force two vocabulary chunks per tile on the tiny vocabulary (271 rows): 3 tokens x 256 rows
    monkeypatch.setattr(lp, "CHUNK_ELEMENTS", 64)


def batch(padded: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Two rows, prompt then completion (C = 5); with padding: a left-padded prompt and a right-padded completion."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 250, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    if padded:
        ids[0, :2], mask[0, :2] = 0, 0  # left padding in the prompt
        ids[1, -2:], mask[1, -2:] = 0, 0  # right padding in the completion
    return ids, mask, 5


def grads_of(model, fn) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(logp, entropy, grads) of a weighted sum of `fn()`'s log-probs; weights fixed so every token's gradient differs."""
    model.zero_grad(set_to_none=True)
    logp, ent = fn()
    w = torch.linspace(-1.0, 2.0, logp.numel()).view_as(logp)
    (logp * w).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return logp.detach(), ent, grads


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_equals_plain_with_tied_embedding(model, small_tiles, padded, temperature):
    ids, mask, C = batch(padded)
    kw = dict(temperature=temperature, with_entropy=True)
    ref = grads_of(model, lambda: token_logprobs(model, ids, mask, C, chunk_size=0, **kw))
    got = grads_of(model, lambda: token_logprobs(model, ids, mask, C, chunk_size=3, **kw))
    torch.testing.assert_close(got[0], ref[0], **TOL)
    torch.testing.assert_close(got[1], ref[1], **TOL)
    assert ref[1].min() > 0 and not got[1].requires_grad
    assert set(got[2]) == set(ref[2]) and "model.embed_tokens.weight" in ref[2]  # the tied head's gradient lands here
    for name, g in ref[2].items():
        assert g.abs().max() > 0, name
        torch.testing.assert_close(got[2][name], g, **TOL, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_equals_plain_with_lora_on_the_head(tiny_model_dir, temperature):
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "lm_head"], init_lora_weights=False)
    model = get_peft_model(base, cfg)
    assert type(output_head(model)).__module__.startswith("peft"), "the head must be the LoRA-wrapped one"
    ids, mask, C = batch(padded=True)
    kw = dict(temperature=temperature, with_entropy=True)
    ref = grads_of(model, lambda: token_logprobs(model, ids, mask, C, chunk_size=0, **kw))
    got = grads_of(model, lambda: token_logprobs(model, ids, mask, C, chunk_size=3, **kw))
    torch.testing.assert_close(got[0], ref[0], **TOL)
    torch.testing.assert_close(got[1], ref[1], **TOL)
    head_lora = [n for n in ref[2] if "lm_head" in n]
    assert len(head_lora) == 2 and set(got[2]) == set(ref[2])  # lora_A and lora_B of the head, and only LoRA trains
    for name, g in ref[2].items():
        assert g.abs().max() > 0, name
        torch.testing.assert_close(got[2][name], g, **TOL, msg=lambda m: f"{name}: {m}")


def test_linear_head_with_bias_against_hand_rolled_log_softmax(monkeypatch):
    monkeypatch.setattr(lp, "CHUNK_ELEMENTS", 8)  # 256 vocabulary rows per tile: 4 chunks of a 1000-row head
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 1000)
    h = torch.randn(7, 16, requires_grad=True)
    t = torch.tensor([0, 999, 255, 256, 511, 512, 3])  # targets at both edges of the vocabulary chunks
    w = torch.linspace(-1, 1, 7)
    z = head(h) / 0.7
    logz = torch.log_softmax(z, -1)
    ((logz.gather(-1, t[:, None]).squeeze(-1)) * w).sum().backward()
    ref = [x.grad.clone() for x in (h, head.weight, head.bias)]
    ent_ref = -(logz.exp() * logz).sum(-1).detach()
    logp_ref = logz.gather(-1, t[:, None]).squeeze(-1).detach()
    for x in (h, head.weight, head.bias):
        x.grad = None
    logp, ent = head_logprobs(head, h, t, temperature=0.7, with_entropy=True, chunk_size=2)
    (logp * w).sum().backward()
    torch.testing.assert_close(logp, logp_ref, **TOL)
    torch.testing.assert_close(ent, ent_ref, **TOL)
    for got, want in zip((h.grad, head.weight.grad, head.bias.grad), ref):
        torch.testing.assert_close(got, want, **TOL)


def test_packed_rows_score_each_sequence_as_if_alone(model, small_tiles):
    """Two sequences laid end to end in one row (position ids restarting, no attention mask) get, tiled, the
    log-probs the plain path gives them alone: attention stays within each sequence."""
    a, b = torch.tensor([7, 8, 9, 10, 11]), torch.tensor([20, 21, 22, 23])
    row = torch.cat([a, b, torch.tensor([0, 0])])[None]  # (1, 11): a tail of padding
    pos = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1]])
    positions = torch.tensor([2, 3, 4, 6, 7, 8])  # the last 3 tokens of each
    logp, ent = selected_logprobs(model, row, None, pos, positions, with_entropy=True, chunk_size=2)
    alone_a, ent_a = token_logprobs(model, a[None], torch.ones(1, 5, dtype=torch.long), 3, with_entropy=True, chunk_size=0)
    alone_b, ent_b = token_logprobs(model, b[None], torch.ones(1, 4, dtype=torch.long), 3, with_entropy=True, chunk_size=0)
    torch.testing.assert_close(logp, torch.cat([alone_a[0], alone_b[0]]), **TOL)
    torch.testing.assert_close(ent, torch.cat([ent_a[0], ent_b[0]]), **TOL)
    with pytest.raises(ValueError, match="column 0"):
        selected_logprobs(model, row, None, pos, torch.tensor([0]))


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any op returns, except those shaped like a parameter (gradients, accumulators)."""

    def __init__(self, skip_shapes: set[tuple[int, ...]]):
        super().__init__()
        self.largest, self.skip = 0, skip_shapes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and tuple(t.shape) not in self.skip:
                self.largest = max(self.largest, t.numel())
        return out


def test_no_tensor_of_the_full_logits_is_ever_made(monkeypatch):
    """On a model whose logits outweigh everything else (vocabulary 4096, hidden 16), forward + backward of the
    chunked path make no tensor larger than a small fraction of the (B, C, V) logits, parameter-shaped ones
    (gradients) aside; the plain path, measured the same way, makes them."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    monkeypatch.setattr(lp, "CHUNK_ELEMENTS", 2048)  # tiles of 8 tokens x 256 vocabulary rows
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=4096, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)  # fmt: skip
    model = Qwen2ForCausalLM(cfg)
    ids = torch.randint(0, 4096, (4, 40))
    mask = torch.ones_like(ids)
    B, C, V = 4, 32, 4096
    param_shapes = {s for p in model.parameters() for s in (tuple(p.shape), tuple(p.shape)[::-1])}  # and transposed views
    for chunk_size in (0, 8):
        with _LargestTensor(param_shapes) as seen:
            logp, _ = token_logprobs(model, ids, mask, C, with_entropy=True, chunk_size=chunk_size)
            logp.sum().backward()
        model.zero_grad(set_to_none=True)
        if chunk_size == 0:  # the measurement sees the plain path's logits
            assert seen.largest >= B * C * V
        else:
            assert seen.largest <= B * C * V // 20, seen.largest


def test_hidden_states_are_what_the_head_reads(model):
    ids, mask, _ = batch(padded=True)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    want = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True).hidden_states[-1]
    got = hidden_states(model, ids, mask)
    assert got.shape == (2, 9, model.config.hidden_size)
    torch.testing.assert_close(got, want, **TOL)


def test_a_model_that_changes_the_logits_after_the_head_is_an_error_or_the_plain_path(model, tiny_model_dir):
    ids, mask, C = batch(padded=False)
    handle = model.register_forward_hook(lambda m, a, out: out.__class__(logits=out.logits * 2))
    try:
        with pytest.raises(RuntimeError, match="changes the logits after its output head"):
            token_logprobs(model, ids, mask, C, chunk_size=3)
    finally:
        handle.remove()
    capped = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    capped.config.final_logit_softcapping = 30.0  # as Gemma 2 declares it: the plain path is taken
    assert output_head(capped) is None and output_head(model) is model.lm_head


def test_default_tiles_only_logits_bigger_than_a_tile(model, monkeypatch):
    """chunk_size=None takes the plain path when its logits fit in one tile (tiny vocabularies), else tiles."""
    ids, mask, C = batch(padded=False)  # plain logits: 2 x 6 x 271 = 3252 values
    calls, tiled = [], lp.head_logprobs
    monkeypatch.setattr(lp, "head_logprobs", lambda *a, **k: calls.append(1) or tiled(*a, **k))
    token_logprobs(model, ids, mask, C)
    assert calls == []
    monkeypatch.setattr(lp, "CHUNK_ELEMENTS", 3000)
    token_logprobs(model, ids, mask, C)
    assert calls == [1]
