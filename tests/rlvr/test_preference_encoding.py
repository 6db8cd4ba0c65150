"""rlvr.preference_data on the real tiny tokenizer: one rendering, the boundary on tokens, EOS the same for
strings and chat, bad rows for templates that rewrite turns and for rows over max_length, KTO's mismatched pairs,
the padded layout token_logprobs reads."""

from __future__ import annotations

import copy

import pytest
import torch

from rlvr.policy import load_tokenizer
from rlvr.preference_data import EncodedPair, collate, encode_all, encode_example, encode_pair, end_at_eos, kl_partners
from rlvr.types import PreferencePair, UnpairedExample
from tasks.preference import BadRow

USER = [{"role": "user", "content": "3+4="}]


def assistant(text):
    return [{"role": "assistant", "content": text}]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


def pair(prompt, chosen, rejected):
    return PreferencePair(prompt, chosen, rejected, {"where": "prefs.jsonl, line 7"})


def test_chat_pair_is_split_after_the_generation_prompt(tok):
    enc = encode_pair(tok, pair(USER, assistant("3+4=7. \\boxed{7}"), assistant("3+4=8. \\boxed{8}")), 64)
    assert isinstance(enc, EncodedPair) and enc.where == "prefs.jsonl, line 7"
    assert tok.convert_ids_to_tokens(enc.prompt)[-1] == "<|assistant|>"
    assert tok.decode(enc.prompt + enc.chosen) == "<|user|>3+4=<|assistant|>3+4=7. \\boxed{7}<eos>"
    assert enc.chosen[-1] == enc.rejected[-1] == tok.eos_token_id and enc.chosen.count(tok.eos_token_id) == 1


def test_strings_are_raw_text_with_the_same_eos(tok):
    enc = encode_pair(tok, pair("3+4=", "7", "8"), 64)
    assert tok.decode(enc.prompt) == "3+4=" and tok.decode(enc.chosen) == "7<eos>" and tok.decode(enc.rejected) == "8<eos>"


def test_a_token_merged_across_the_boundary_goes_with_the_completion(tok):
    # "Answer: " + "\boxed{7}" tokenizes as "Answer:" "Ġ\\" "boxed"...: the prompt's trailing space merges into the
    # completion's first token, while "Answer: " + "7" keeps "Ġ" apart (digits split). Both completions must
    # still follow the very same prompt tokens (trl#1153), and nothing is tokenized apart.
    enc = encode_pair(tok, pair("Answer: ", "\\boxed{7}", "7"), 64)
    assert tok.convert_ids_to_tokens(enc.prompt)[-1] == ":"
    assert tok.convert_ids_to_tokens(enc.chosen)[:2] == ["Ġ\\", "boxed"]
    assert tok.convert_ids_to_tokens(enc.rejected) == ["Ġ", "7", "<eos>"]
    assert enc.prompt + enc.chosen[:-1] == tok("Answer: \\boxed{7}", add_special_tokens=False)["input_ids"]
    assert enc.prompt + enc.rejected[:-1] == tok("Answer: 7", add_special_tokens=False)["input_ids"]


def test_template_text_after_eos_is_not_part_of_the_completion(tok):
    # a Qwen-like template ends each turn with EOS and a newline; the model stops at EOS and never generates "\n"
    t = copy.deepcopy(tok)
    t.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>\n{% endfor %}"
                       "{% if add_generation_prompt %}<|assistant|>{% endif %}")  # fmt: skip
    enc = encode_pair(t, pair(USER, assistant("7"), assistant("8")), 64)
    assert t.convert_ids_to_tokens(enc.chosen) == ["7", "<eos>"]
    assert end_at_eos([5, 1, 9, 1, 13], eos_id=1) == [5, 1, 9, 1] and end_at_eos([5, 9], eos_id=1) == [5, 9, 1]


def test_a_template_that_rewrites_the_prompt_is_a_bad_row(tok):
    t = copy.deepcopy(tok)  # drops the user turn once an assistant turn follows (as templates that hide reasoning do)
    t.chat_template = ("{% for m in messages %}{% if m['role'] == 'assistant' or messages|length == 1 %}"
                       "<|{{ m['role'] }}|>{{ m['content'] }}{% endif %}{% endfor %}"
                       "{% if add_generation_prompt %}<|assistant|>{% endif %}")  # fmt: skip
    bad = encode_pair(t, pair(USER, assistant("7"), assistant("8")), 64)
    assert isinstance(bad, BadRow) and (bad.where, bad.field) == ("prefs.jsonl, line 7", "prompt")
    assert "not a prefix of the rendered conversation" in bad.problem


def test_rows_over_max_length_are_bad_rows_never_cut(tok):
    p = pair(USER, assistant("3+4=7. \\boxed{7}"), assistant("8"))
    whole = len(encode_pair(tok, p, 64).prompt) + len(encode_pair(tok, p, 64).chosen)
    assert isinstance(encode_pair(tok, p, whole), EncodedPair)
    bad = encode_pair(tok, p, whole - 1)
    assert isinstance(bad, BadRow) and bad.field == "chosen" and f"{whole} tokens" in bad.problem
    assert f"max_length={whole - 1}" in bad.problem
    ex = encode_example(tok, UnpairedExample(USER, assistant("3+4=7. \\boxed{7}"), True, {"where": "u.jsonl, line 2"}), 5)
    assert isinstance(ex, BadRow) and (ex.where, ex.field) == ("u.jsonl, line 2", "completion")
    good, bad_rows = encode_all(tok, [p, pair(USER, assistant("9"), assistant("8"))], whole - 1)
    assert len(good) == 1 and len(bad_rows) == 1


def test_completions_equal_after_tokenization_are_a_bad_row(tok):
    bad = encode_pair(tok, pair("q", "7<eos>x", "7<eos>y"), 64)  # they differ only after EOS, which is cut
    assert isinstance(bad, BadRow) and "same as chosen" in bad.problem


def test_unpaired_example(tok):
    ex = encode_example(tok, UnpairedExample(USER, assistant("7"), False, {"where": "u"}), 64)
    assert ex.label is False and tok.decode(ex.completion) == "7<eos>"


@pytest.mark.parametrize("prompts", [
    [[1], [2], [3]],
    [[1], [2], [3], [4], [5]],
    [[1], [1], [2], [2], [1]],  # unpaired from pairs: chosen and rejected of one prompt can sit side by side
])  # fmt: skip
def test_kl_partners_are_mismatched(prompts):
    partners = kl_partners(prompts)
    assert len(partners) == len(prompts)
    for g, h in enumerate(partners):
        assert h != g and prompts[h] != prompts[g]
    assert kl_partners([[1], [2], [3]]) == [1, 2, 0]  # the next row, cyclically


def test_kl_partners_need_two_prompts():
    with pytest.raises(ValueError, match="share one prompt"):
        kl_partners([[1], [1]])


def test_collate_layout():
    b = collate([([5, 6], [7, 8, 9]), ([4], [3])], pad_id=0)
    assert b.input_ids.tolist() == [[5, 6, 7, 8, 9], [0, 4, 3, 0, 0]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 0, 0]]
    assert b.completion_mask.tolist() == [[1, 1, 1], [1, 0, 0]] and b.num_completion_tokens == 3
    assert b.input_ids.dtype == torch.long
