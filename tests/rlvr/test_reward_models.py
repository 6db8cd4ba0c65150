"""Reward models on real tiny checkpoints: pooling whatever the padding, batch independence, step readout, and
the loading errors (wrong head, tokenizer that does not fit, separator of several tokens)."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from rlvr.reward_models import (
    encode_steps,
    forward_model,
    load_reward_model,
    orm_input_ids,
    separator_id,
    token_budget_batches,
)

TEXTS = [("3+4=", "3+4=7. \\boxed{7}"), ("12-5+1=", "12-5=7. 7+1=8. \\boxed{8}"), ("2=", "\\boxed{2}"),
         ("9*9=", "9*9=81. \\boxed{81}")]  # fmt: skip


@torch.no_grad()
def test_orm_scores_one_text_the_same_alone_left_and_right_padded(tiny_orm_dir):
    rm = load_reward_model(str(tiny_orm_dir), "orm")
    tok, pad = rm.tokenizer, rm.tokenizer.pad_token_id
    short = orm_input_ids(tok, *TEXTS[2])
    long = orm_input_ids(tok, *TEXTS[1])
    assert short[-1] == tok.eos_token_id != pad
    alone = forward_model(rm.model, torch.tensor([short]), torch.ones(1, len(short), dtype=torch.long))[0, 0]
    n = len(long) - len(short)
    right = torch.tensor([long, short + [pad] * n])
    left = torch.tensor([long, [pad] * n + short])
    mask_r = torch.tensor([[1] * len(long), [1] * len(short) + [0] * n])
    mask_l = torch.tensor([[1] * len(long), [0] * n + [1] * len(short)])
    r = forward_model(rm.model, right, mask_r)[1, 0]
    le = forward_model(rm.model, left, mask_l)[1, 0]
    assert abs(float(r - alone)) < 1e-5 and abs(float(le - alone)) < 1e-5
    # and the score is not the pad position's: a different last token changes it
    other = forward_model(rm.model, torch.tensor([short[:-1] + [tok.pad_token_id + 7]]), torch.ones(1, len(short), dtype=torch.long))
    assert abs(float(other[0, 0] - alone)) > 1e-4


def test_scores_do_not_depend_on_batch_composition(tiny_orm_dir):
    prompts, completions = [p for p, _ in TEXTS], [c for _, c in TEXTS]
    one_by_one = load_reward_model(str(tiny_orm_dir), "orm", token_budget=1)  # every text alone
    batched = load_reward_model(str(tiny_orm_dir), "orm", token_budget=10_000)
    ref = one_by_one.score(prompts, completions)
    assert len({round(s, 4) for s in ref}) == 4  # distinct texts, distinct scores
    order = [2, 0, 3, 1]
    permuted = batched.score([prompts[i] for i in order], [completions[i] for i in order])
    for k, i in enumerate(order):
        assert abs(permuted[k] - ref[i]) < 1e-5
    assert max(abs(a - b) for a, b in zip(batched.score(prompts, completions), ref)) < 1e-5


def test_token_budget_batches_longest_first_and_complete():
    batches = token_budget_batches([3, 10, 4, 9, 1], budget=20)
    assert batches == [[1, 3], [2, 0, 4]]  # 2 x 10 = 20; then widths of 4: three rows = 12
    assert sorted(i for b in batches for i in b) == list(range(5))
    assert token_budget_batches([50, 2], budget=10) == [[0], [1]]  # an over-long text gets a batch of its own


def test_orm_input_too_long_is_nan_not_zero(tiny_orm_dir):
    rm = load_reward_model(str(tiny_orm_dir), "orm", max_length=12)
    scores = rm.score(["1="], ["1+1+1+1+1+1+1+1+1+1=10"])
    assert math.isnan(scores[0])


@torch.no_grad()
def test_prm_step_probs_gathered_at_separators(tiny_prm_dir):
    rm = load_reward_model(str(tiny_prm_dir), "prm")
    steps = [["12-5=7", "7+1=8", "\\boxed{8}"], ["\\boxed{2}"]]
    probs = rm.step_probs(["12-5+1=", "2="], steps)
    assert [len(p) for p in probs] == [3, 1]
    ids, positions = encode_steps(rm.tokenizer, "12-5+1=", steps[0], rm.sep_id)
    assert [ids[p] for p in positions] == [rm.sep_id] * 3
    logits = AutoModelForTokenClassification.from_pretrained(tiny_prm_dir)(torch.tensor([ids])).logits[0]
    want = torch.softmax(logits[positions], -1)[:, 1]  # a plain transformers load, read the Qwen card's way
    assert torch.allclose(torch.tensor(probs[0]), want, atol=1e-5)
    # the separator is inserted by id: the same ids as tokenizing the joined text with the special token
    text = "<|user|>12-5+1=<|assistant|>" + "".join(s + "<extra_0>" for s in steps[0])
    assert rm.tokenizer(text, add_special_tokens=False)["input_ids"] == ids


def test_separator_of_several_tokens_is_an_error_naming_the_key(tiny_prm_dir):
    rm = load_reward_model(str(tiny_prm_dir), "prm")
    with pytest.raises(ValueError, match=r"reward_model.separator: the separator '\\n\\n' is 2 tokens"):
        load_reward_model(str(tiny_prm_dir), "prm", separator="\n\n")
    assert separator_id(rm.tokenizer, "<extra_0>", "k") == rm.sep_id


def test_wrong_head_is_an_error_naming_the_model(tiny_orm_dir, tiny_prm_dir, tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match=r"head does not match: the checkpoint is a Qwen2ForTokenClassification"):
        load_reward_model(str(tiny_prm_dir), "orm")
    with pytest.raises(ValueError, match=r"head does not match: the checkpoint is a Qwen2ForSequenceClassification"):
        load_reward_model(str(tiny_orm_dir), "prm")
    with pytest.raises(ValueError, match=rf"{tiny_model_dir}: head does not match: the checkpoint is a Qwen2ForCausalLM"):
        load_reward_model(str(tiny_model_dir), "orm")
    two = tmp_path / "two-labels"
    AutoModelForSequenceClassification.from_pretrained(tiny_orm_dir, num_labels=2, ignore_mismatched_sizes=True).save_pretrained(two)
    shutil.copy(tiny_orm_dir / "tokenizer.json", two)
    shutil.copy(tiny_orm_dir / "tokenizer_config.json", two)
    with pytest.raises(ValueError, match="num_labels=1, got Qwen2ForSequenceClassification with num_labels=2"):
        load_reward_model(str(two), "orm")


def test_tokenizer_that_does_not_fit_is_an_error(tiny_orm_dir, tmp_path):
    from transformers import AutoTokenizer

    bad = tmp_path / "pad-is-eos"
    shutil.copytree(tiny_orm_dir, bad)
    tok = AutoTokenizer.from_pretrained(bad)
    tok.pad_token = tok.eos_token
    tok.save_pretrained(bad)
    with pytest.raises(ValueError, match="tokenizer does not match: its pad token must differ from EOS"):
        load_reward_model(str(bad), "orm")
    big = tmp_path / "big-vocab"
    shutil.copytree(tiny_orm_dir, big)
    tok = AutoTokenizer.from_pretrained(big)
    tok.add_tokens([f"<new_{i}>" for i in range(200)])
    tok.save_pretrained(big)
    with pytest.raises(ValueError, match=r"tokenizer does not match: \d+ tokens for an embedding of \d+ rows"):
        load_reward_model(str(big), "orm")


VLLM_SCORE = """
import json, os, sys
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
from vllm import LLM
llm = LLM(model=sys.argv[1], runner="pooling", max_model_len=256, kv_cache_memory_bytes=2**28, enforce_eager=True,
          dtype="float32")
outs = llm.classify([{"prompt_token_ids": ids} for ids in json.loads(sys.argv[2])])
print("SCORES", json.dumps([o.outputs.probs[0] for o in outs]))
"""


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_loads_the_orm_and_scores_it_the_same(tiny_orm_dir, tmp_path):
    """vLLM serves the checkpoint as a classifier (last-token pooling); its `classify` applies a sigmoid."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("vllm")
    rm = load_reward_model(str(tiny_orm_dir), "orm")
    rows = [orm_input_ids(rm.tokenizer, p, c) for p, c in TEXTS]
    ours = rm.score_ids(rows)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", VLLM_SCORE, str(tiny_orm_dir), json.dumps(rows)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=300)  # in its own process: vLLM reseeds and pins threads
    assert out.returncode == 0, out.stderr[-3000:]
    vllm_probs = json.loads(out.stdout.split("SCORES", 1)[1])
    assert vllm_probs == pytest.approx([1 / (1 + math.exp(-s)) for s in ours], abs=1e-5)
