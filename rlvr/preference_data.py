"""Preference rows -> token ids, split at the prompt/completion token boundary; padded batches for the model.

What it does:
- Renders a row once: raw text for strings (prompt + completion), the chat template for messages (the prompt
  with the generation prompt, and the whole conversation). The rendered prompt must be a prefix of the rendered
  conversation (a template that rewrites earlier turns breaks this: a bad row, not a warning).
- Tokenizes the prompt and the whole conversation, and puts the boundary at their longest common token prefix,
  so a token the tokenizer merged across the boundary (" $46" after "is", trl#1153) goes with the completion;
  the completion is never tokenized apart. A pair takes the smaller of its two boundaries, so chosen and
  rejected are scored after the very same prompt tokens.
- Ends every completion at EOS the same way for strings and chat: cut after the last EOS the rendering holds
  (template text after it, e.g. Qwen's "\\n" after <|im_end|>, is never generated), else one EOS appended.
- A row longer than `max_length` tokens is a bad row naming file, row and field, never cut.
- `collate` lays rows out as `rlvr.policy.token_logprobs` reads them: left-padded prompts, then right-padded
  completions starting at one column.
What it does not: read files or validate fields (`tasks.preference`), compute log-probs, or decide between
raising and skipping (`tasks.preference.check_bad_rows`). Used by the DPO/KTO trainers and reward models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlvr.rollout import PaddedBatch
from rlvr.types import PreferencePair, UnpairedExample
from tasks.preference import BadRow, Content, RowProblem


@dataclass(frozen=True)
class EncodedPair:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    where: str


@dataclass(frozen=True)
class EncodedExample:
    prompt: list[int]
    completion: list[int]
    label: bool  # desirable
    where: str


def render(tokenizer, prompt: Content, completion: Content) -> tuple[str, str]:
    """(prompt text, whole text): raw concatenation for strings, the chat template for messages."""
    if isinstance(prompt, str) and isinstance(completion, str):
        return prompt, prompt + completion
    if not tokenizer.chat_template:
        raise ValueError("conversational preference rows need a tokenizer with a chat template; this one has none")
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    whole = tokenizer.apply_chat_template(list(prompt) + list(completion), tokenize=False)
    return head, whole


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def end_at_eos(completion: list[int], eos_id: int) -> list[int]:
    """The completion up to and including its last EOS, or with one EOS appended when it holds none."""
    if eos_id in completion:
        return completion[: len(completion) - completion[::-1].index(eos_id)]
    return completion + [eos_id]


def _full_ids(tokenizer, prompt: Content, completion: Content, name: str) -> tuple[list[int], list[int]]:
    """(prompt ids, whole-conversation ids) from one rendering."""
    head, whole = render(tokenizer, prompt, completion)
    if not whole.startswith(head):
        raise RowProblem("prompt", f"the rendered prompt is not a prefix of the rendered conversation with {name!r} (the "
                             f"chat template changes earlier turns?): prompt ends {head[-40:]!r}")
    return _ids(tokenizer, head), _ids(tokenizer, whole)


def _split(tokenizer, whole: list[int], cut: int, name: str, max_length: int) -> list[int]:
    completion = end_at_eos(whole[cut:], tokenizer.eos_token_id)
    if cut == 0:
        raise RowProblem("prompt", "the prompt renders to no token of its own: nothing to condition the completion on")
    if cut + len(completion) > max_length:
        raise RowProblem(name, f"{cut + len(completion)} tokens (prompt {cut} + completion {len(completion)}) over "
                         f"max_length={max_length}; raise max_length (rows are never cut)")
    return completion


def encode_pair(tokenizer, pair: PreferencePair, max_length: int) -> EncodedPair | BadRow:
    """Token ids of a pair, both completions after the same prompt tokens, or the BadRow saying why not."""
    where = pair.meta.get("where", "?")
    try:
        prompt_c, whole_c = _full_ids(tokenizer, pair.prompt, pair.chosen, "chosen")
        _, whole_r = _full_ids(tokenizer, pair.prompt, pair.rejected, "rejected")
        cut = min(_common_prefix(prompt_c, whole_c), _common_prefix(prompt_c, whole_r))
        chosen = _split(tokenizer, whole_c, cut, "chosen", max_length)
        rejected = _split(tokenizer, whole_r, cut, "rejected", max_length)
        if chosen == rejected:
            raise RowProblem("rejected", "tokenizes the same as chosen (up to EOS)")
    except RowProblem as bad:
        return BadRow(where, bad.field, bad.problem)
    return EncodedPair(prompt_c[:cut], chosen, rejected, where)


def encode_example(tokenizer, ex: UnpairedExample, max_length: int) -> EncodedExample | BadRow:
    """Token ids of an unpaired example, or the BadRow saying why not."""
    where = ex.meta.get("where", "?")
    try:
        prompt, whole = _full_ids(tokenizer, ex.prompt, ex.completion, "completion")
        cut = _common_prefix(prompt, whole)
        completion = _split(tokenizer, whole, cut, "completion", max_length)
    except RowProblem as bad:
        return BadRow(where, bad.field, bad.problem)
    return EncodedExample(prompt[:cut], completion, ex.label, where)


def encode_all(tokenizer, rows: list, max_length: int) -> tuple[list, list[BadRow]]:
    """Encode pairs or unpaired examples; (encoded rows in order, bad rows)."""
    good, bad = [], []
    for row in rows:
        enc = encode_pair(tokenizer, row, max_length) if isinstance(row, PreferencePair) else encode_example(tokenizer, row, max_length)
        (bad if isinstance(enc, BadRow) else good).append(enc)
    return good, bad


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> PaddedBatch:
    """(prompt ids, completion ids) rows as one batch: prompts left-padded to P, completions right-padded to C."""
    P = max(len(p) for p, _ in rows)
    C = max(len(c) for _, c in rows)
    ids = torch.full((len(rows), P + C), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), P + C), dtype=torch.long)
    cmask = torch.zeros((len(rows), C), dtype=torch.float32)
    for r, (p, c) in enumerate(rows):
        ids[r, P - len(p) : P] = torch.tensor(p)
        ids[r, P : P + len(c)] = torch.tensor(c)
        attn[r, P - len(p) : P + len(c)] = 1
        cmask[r, : len(c)] = 1.0
    return PaddedBatch(ids, attn, cmask, C)


def kl_partners(prompts: list[list[int]]) -> list[int]:
    """For each row g of a batch, the next row (cyclically) whose prompt differs from g's: g's prompt with that
    row's completion is a mismatched pair for KTO's KL reference point. Never g itself (TRL's reversed batch paired
    the middle row of an odd batch with itself, trl#1911). A batch whose rows all share one prompt has no
    mismatched pair: a ValueError."""
    out = []
    for g, prompt in enumerate(prompts):
        for k in range(1, len(prompts)):
            h = (g + k) % len(prompts)
            if prompts[h] != prompt:
                out.append(h)
                break
        else:
            raise ValueError(f"all {len(prompts)} rows of this batch share one prompt: no mismatched pair for KTO's "
                             "KL reference point (raise kto.batch_size)")
    return out
