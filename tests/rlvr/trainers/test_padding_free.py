"""Padding-free micro-batches: the token-budget planner and the packed layout, and that an update through packed
rows makes the padded update's gradients, for every loss_agg_mode, in one process and in two (torchrun, gloo).

The GRPO comparison runs tests/rlvr/trainers/dist_update.py (the trainer's own prepare_batch + update on a fixed
rollout with prompts and completions of different lengths, an empty and a truncated completion, a verifier error,
KL to a reference, two iterations so the second is off-policy): padded and packed in one process, packed under
torchrun, where the two ranks' token loads differ so they must agree on a micro-batch count.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlvr.cli import main
from rlvr.losses import LOSS_AGG_MODES, sft_loss
from rlvr.packing import micro_batches, pack, part_logprobs
from rlvr.rollout import pad_pairs
from dist_update import BUDGET, assert_same_update
from test_distributed import load_updates, run_updates

TOL = dict(rtol=1e-4, atol=1e-6)


def test_micro_batches_keep_the_budget_and_agree_on_a_count():
    batch = pad_pairs([([1] * p, [2] * c) for p, c in [(3, 9), (2, 1), (5, 5), (1, 0), (4, 7), (2, 2)]], pad_id=0)
    lengths = batch.attention_mask.sum(-1).tolist()  # [12, 3, 10, 1, 11, 4]
    groups = micro_batches(batch, rows=4, max_tokens=14)
    assert sorted(i for g in groups for i in g.tolist()) == list(range(6))
    assert all(sum(lengths[i] for i in g.tolist()) <= 14 for g in groups)
    assert [g.tolist() for g in groups] == [[0, 3], [1, 4], [2, 5]]  # first-fit decreasing: 41 tokens in 3 groups
    more = micro_batches(batch, rows=4, max_tokens=14, agree=lambda n: 6)  # another process needs 6
    assert len(more) == 6 and sorted(i for g in more for i in g.tolist()) == list(range(6))
    assert [g.tolist() for g in micro_batches(batch, rows=4, max_tokens=0)] == [[0, 1, 2, 3], [4, 5]]  # padded path
    with pytest.raises(ValueError, match=r"grpo.max_tokens_per_micro_batch=11 is smaller than a sequence of 12"):
        micro_batches(batch, rows=4, max_tokens=11, what="grpo.max_tokens_per_micro_batch")


def test_pack_lays_sequences_end_to_end_with_restarting_positions():
    batch = pad_pairs([([5, 6], [7, 8, 9]), ([10], [11]), ([12, 13, 14], [])], pad_id=0)  # C = 3
    rows = pack(batch, one_row=False)  # rows as long as the longest sequence (5): [5] + [3, 2]
    assert rows.input_ids.tolist() == [[5, 6, 7, 8, 9], [12, 13, 14, 10, 11]]
    assert rows.position_ids.tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 0, 1]]
    # completion tokens 7, 8, 9 (row 0 of the batch) and 11 (row 1); the empty completion has none
    assert rows.input_ids.reshape(-1)[rows.positions].tolist() == [7, 8, 9, 11]
    assert rows.dst.tolist() == [0, 1, 2, 3]  # their places in the (3, C=3) padded layout
    one = pack(batch, one_row=True)
    assert one.input_ids.tolist() == [[5, 6, 7, 8, 9, 12, 13, 14, 10, 11]]
    assert one.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 0, 1]]
    short = pack(pad_pairs([([5, 6], [7, 8]), ([10], [11])], pad_id=0), one_row=False)  # 4 + 2 in rows of 4
    assert short.input_ids.tolist() == [[5, 6, 7, 8], [10, 11, 0, 0]]
    assert short.position_ids.tolist() == [[0, 1, 2, 3], [0, 1, 0, 1]]  # the tail is a segment of its own


@pytest.mark.parametrize("one_row", [False, True], ids=["rows", "one_row"])
def test_packed_sft_batch_has_the_padded_gradients(tiny_model_dir, one_row, monkeypatch):
    """Prompt + target examples of different lengths: masked NLL through packed rows equals it through padded rows,
    log-probs and every parameter's gradient, both through the tiled head."""
    import rlvr.logprobs
    import rlvr.packing

    monkeypatch.setattr(rlvr.packing, "one_row_attention", lambda model: one_row)  # the flash-attention layout, on sdpa
    monkeypatch.setattr(rlvr.logprobs, "CHUNK_ELEMENTS", 64)  # the tiled head on the tiny vocabulary: 2 chunks of it
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randint(5, 250, (p,), generator=g).tolist(), torch.randint(5, 250, (c,), generator=g).tolist())
             for p, c in [(6, 9), (3, 2), (8, 14), (4, 5), (5, 1)]]  # fmt: skip
    batch = pad_pairs(pairs, pad_id=0)
    out = {}
    for packed in (False, True):
        model.zero_grad(set_to_none=True)
        logp, _ = part_logprobs(model, batch, temperature=1.0, packed=packed)
        sft_loss(logp, batch.completion_mask)[0].backward()
        out[packed] = (logp.detach() * batch.completion_mask, {n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(out[True][0], out[False][0], **TOL)
    for name, grad in out[False][1].items():
        torch.testing.assert_close(out[True][1][name], grad, **TOL, msg=lambda m: f"{name}: {m}")


def test_a_budget_that_cannot_hold_a_completion_is_a_config_error(tiny_model_dir, tmp_path, capsys):
    config = Path(__file__).resolve().parents[3] / "configs" / "smoke_grpo.yaml"  # max_new_tokens 16
    rc = main(["train", str(config), f"model.name_or_path={tiny_model_dir}", f"run_dir={tmp_path}",
               "grpo.max_tokens_per_micro_batch=16"])  # fmt: skip
    assert rc == 2
    assert "grpo.max_tokens_per_micro_batch=16 cannot hold a prompt and a completion" in capsys.readouterr().err


@pytest.fixture(scope="module")
def runs(single_updates, tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    return run_updates(single_updates, tiny_model_dir, tmp_path_factory, [f"{m}@{BUDGET}" for m in LOSS_AGG_MODES])


@pytest.mark.slow
@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_padding_free_update_makes_the_padded_gradients(runs, mode):
    padded, r0, r1 = load_updates(runs, mode, f"{mode}@{BUDGET}")
    one = torch.load(runs[0] / f"{mode}@{BUDGET}.rank0.pt")
    assert padded["micro_batches"] == 6 and one["micro_batches"] >= 6  # 16 rows by 3; 234 tokens by 40
    assert r0["micro_batches"] == r1["micro_batches"] >= 4  # rank 1 holds 132 tokens, rank 0 102: they agree
    assert_same_update(padded, one, "1 process")
    assert_same_update(padded, r0, "2 processes")
    for pname, g in r0["grads"][1].items():  # DDP all-reduced: both ranks stepped on the same gradient
        torch.testing.assert_close(r1["grads"][1][pname], g, atol=0, rtol=0)
