"""Critics on a real tiny model: value alignment, float32, HF export, initialisation and the mismatch errors."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoModelForTokenClassification

from rlvr.heads import ValueHead, capture_hidden, load_value_model, save_shared_critic
from rlvr.policy import load_tokenizer, token_logprobs
from rlvr.tiny_models import resolve_model_path

# two rows, the second left-padded by 2 (pad 0): prompt columns P = 4, completion columns C = 3
IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11], [0, 0, 7, 8, 9, 10, 11]])
ATTN = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]])
C = 3


@pytest.fixture(scope="module")
def policy_tok(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), load_tokenizer(str(tiny_model_dir))


def _load(path, policy_tok, key="ppo.critic.init", dtype="float32"):
    policy, tok = policy_tok
    return load_value_model(str(path), key=key, policy_config=policy.config, policy_tokenizer=tok, dtype=dtype)


def test_values_align_with_logprobs_and_export_as_a_token_classifier(policy_tok, tiny_model_dir, tmp_path):
    critic = _load(tiny_model_dir, policy_tok).eval()
    H = critic.lm.config.hidden_size
    w = critic.lm.score.weight
    assert w.shape == (1, H) and critic.lm.score.bias.abs().max() == 0
    assert abs(w.std().item() - 1 / math.sqrt(H + 1)) < 0.3 / math.sqrt(H + 1)  # N(0, 1/(H+1)), 128 draws
    with torch.no_grad():
        values = critic(IDS, ATTN, C + 1)  # (B, C + 1)
    assert values.shape == (2, C + 1) and values.dtype == torch.float32
    # left padding does not move a value (positions come from the mask)
    with torch.no_grad():
        torch.testing.assert_close(values[1], critic(IDS[1:, 2:], ATTN[1:, 2:], C + 1)[0], rtol=1e-5, atol=1e-5)
    critic.save_pretrained(str(tmp_path / "critic"))
    policy_tok[1].save_pretrained(tmp_path / "critic")
    hf = AutoModelForTokenClassification.from_pretrained(tmp_path / "critic").eval()
    assert hf.config.num_labels == 1 and hf.config.classifier_dropout == 0.0
    pos = (ATTN.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = hf(input_ids=IDS, attention_mask=ATTN, position_ids=pos).logits[..., 0]  # (B, P + C)
    # value j is read at the position before completion token j, as the log-prob of token j is
    torch.testing.assert_close(values, logits[:, -C - 1 :], rtol=1e-5, atol=1e-5)
    # and loaded back as our critic it keeps its head
    torch.testing.assert_close(_load(tmp_path / "critic", policy_tok).lm.score.weight, w)


def test_bf16_backbone_gives_float32_values(policy_tok, tiny_model_dir):
    critic = _load(tiny_model_dir, policy_tok, dtype="bfloat16")
    assert critic.lm.score.weight.dtype == torch.float32
    assert next(critic.backbone.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        assert critic(IDS, ATTN, C + 1).dtype == torch.float32


def test_a_reward_model_keeps_its_head(policy_tok, tiny_model_dir, tmp_path):
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    torch.nn.init.constant_(rm.score.weight, 0.25)
    rm.save_pretrained(tmp_path / "rm")
    policy_tok[1].save_pretrained(tmp_path / "rm")
    critic = _load(tmp_path / "rm", policy_tok)
    assert (critic.lm.score.weight == 0.25).all() and critic.lm.score.bias.abs().max() == 0


def test_shared_head_reads_the_policys_hidden_states_and_exports(policy_tok, tmp_path):
    policy, tok = policy_tok
    head = ValueHead(policy.config.hidden_size)
    with capture_hidden(policy) as seen:
        logp, _ = token_logprobs(policy, IDS, ATTN, C)
    values = head(seen[-1][:, -C - 1 :])  # (B, C + 1)
    assert len(seen) == 1 and values.shape == (2, C + 1) and logp.shape == (2, C)
    values.sum().backward()  # the graph reaches the backbone: a shared critic trains it
    assert policy.model.layers[0].mlp.up_proj.weight.grad is not None
    policy.zero_grad(set_to_none=True)
    save_shared_critic(policy, head, tok, tmp_path / "shared")
    exported = _load(tmp_path / "shared", policy_tok).eval()
    with torch.no_grad():
        torch.testing.assert_close(exported(IDS, ATTN, C + 1), values.detach(), rtol=1e-5, atol=1e-5)


def test_mismatched_critic_is_an_error_naming_the_key(policy_tok, tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match=r"ppo.critic.init=.*hidden size 64, the policy's is 128"):
        _load(resolve_model_path("tiny-qwen2-small"), policy_tok)
    other = tmp_path / "other_tokenizer"
    shutil.copytree(tiny_model_dir, other)
    tok = load_tokenizer(str(other))
    tok.add_tokens(["<tool>"])
    tok.save_pretrained(other)
    with pytest.raises(ValueError, match=r"ppo.critic.init=.*tokenizer differs from the policy's \(272 vs 271"):
        _load(other, policy_tok)
    with pytest.raises(FileNotFoundError, match="ppo.critic.init="):
        _load(tmp_path / "missing", policy_tok)
