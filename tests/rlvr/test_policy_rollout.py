"""Policy core and rollout on a real tiny model: log-probs, padding, generation, masks, prompt errors."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlvr.generation.base import SamplingParams
from rlvr.generation.hf import HFGenerator
from rlvr.policy import ModelConfig, load_policy, load_tokenizer, token_logprobs
from rlvr.rollout import Rollout, pad_rollout, tokenize_prompts
from rlvr.types import Completion, Sample
from verifiers import Verdict


@pytest.fixture(scope="module")
def model_tok(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), load_tokenizer(str(tiny_model_dir))


def test_token_logprobs_equal_full_log_softmax_and_ignore_left_padding(model_tok):
    model, _ = model_tok
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    full = torch.log_softmax(model(ids).logits.float(), -1)[0, :-1].gather(-1, ids[0, 1:, None]).squeeze(-1)
    logp, ent = token_logprobs(model, ids, torch.ones_like(ids), 3, with_entropy=True)
    torch.testing.assert_close(logp[0], full[-3:], rtol=1e-5, atol=1e-5)
    assert ent.shape == (1, 3) and (ent > 0).all()
    padded = torch.tensor([[0, 0, 5, 6, 7, 8, 9, 10]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]])
    logp_pad, _ = token_logprobs(model, padded, mask, 3)
    torch.testing.assert_close(logp_pad, logp, rtol=1e-5, atol=1e-5)


def test_hf_generator_groups_and_stops_on_eos(model_tok):
    model, tok = model_tok
    prompts = [tok("<|user|>1+2=<|assistant|>")["input_ids"], tok("<|user|>3+4+5=<|assistant|>")["input_ids"]]
    groups = HFGenerator(model, tok).generate(prompts, 3, SamplingParams(max_new_tokens=6, seed=0))
    assert [len(g) for g in groups] == [3, 3]
    for c in (c for g in groups for c in g):
        assert 1 <= len(c.token_ids) <= 6
        assert (c.finish_reason == "stop") == (c.token_ids[-1] == tok.eos_token_id)
        assert c.finish_reason == "stop" or len(c.token_ids) == 6


def test_pad_rollout_layout_and_masks():
    s = Sample(id="a", prompt="p")
    ro = Rollout(
        [s, s],
        [[Completion("x", [7, 8, 1], "stop"), Completion("y", [7], "length")],
         [Completion("z", [9, 9], "stop"), Completion("w", [4, 4], "stop")]],
        [[Verdict(1.0, True), Verdict(0.0, False)], [Verdict(0.0, False), Verdict.failure("boom")]],
        [[2, 3], [4]],
    )  # fmt: skip
    b = pad_rollout(ro, pad_id=0, mask_truncated=True)
    assert b.input_ids.tolist()[0] == [2, 3, 7, 8, 1] and b.input_ids.tolist()[2] == [0, 4, 9, 9, 0]
    assert b.attention_mask.tolist()[2] == [0, 1, 1, 1, 0]
    # truncated (row 1) and errored (row 3) completions carry no loss; the others cover exactly their tokens
    assert b.completion_mask.tolist() == [[1, 1, 1], [0, 0, 0], [1, 1, 0], [0, 0, 0]]
    assert pad_rollout(ro, pad_id=0, mask_truncated=False).completion_mask.tolist()[1] == [1, 0, 0]


def test_too_long_prompt_and_missing_model_are_clear_errors(model_tok, tmp_path):
    _, tok = model_tok
    with pytest.raises(ValueError, match=r"sample 'long-1': prompt is \d+ tokens, longer than the 8"):
        tokenize_prompts(tok, [Sample(id="long-1", prompt="1+2+3+4+5+6+7+8+9=")], 8)
    with pytest.raises(FileNotFoundError, match="no model directory"):
        load_policy(ModelConfig(name_or_path=str(tmp_path / "missing")))
