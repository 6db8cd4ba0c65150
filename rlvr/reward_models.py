"""Reward models: load them, tokenize their inputs, run them; one code path for training and for scoring.

- Outcome RM (ORM): an HF `*ForSequenceClassification` with `num_labels=1` and a pad token distinct from EOS.
  Its input is a preference row's encoding (`rlvr.preference_data`, shared with DPO): prompt then completion,
  ended at EOS (the end-of-turn token of Qwen/Llama chat templates); in RL a policy's prompt and completion are
  passed as the conversation it was (`conversation`). The score is the head's output at the last real token, whatever the padding side:
  position ids come from the attention mask, and transformers pools the rightmost token that is not the pad
  token, which is the last real one exactly because pad != EOS (`check_orm` refuses a model where they match).
- Process RM (PRM): an HF `*ForTokenClassification` with 1 or 2 labels (trained here with `algorithm: prm`), or
  a remote-code `*ForProcessRewardModel` of the Qwen2.5-Math-PRM kind (`trust_remote_code`). Its input is the
  rendered prompt followed by each step's tokens and then the separator token, inserted by id
  (`encode_steps`), so the separator is never re-tokenized and the number of scored positions always equals
  the number of steps. P(step good) = sigmoid(`step_logits`) gathered at those positions by index (the Qwen
  card's `probs[probs != 0]` shifts every later step when a bf16 probability underflows to 0).
- `RewardModel.score` / `.step_probs` batch by a token budget (longest first, order restored, right padding),
  so a score does not depend on which other texts share its batch. An input longer than the model's context
  scores NaN: unscorable, reported by the caller, never a silent 0.

What it does not: combine scores with verifier verdicts or cut completions into steps (`rlvr.rewards`), or
train anything (`rlvr.trainers.reward_model`, `rlvr.trainers.prm`). It runs in the trainer's process on its
device, never in the torch-free verifier pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rlvr.losses.reward import step_logits
from rlvr.policy import DTYPES, load_tokenizer, render_prompt
from rlvr.preference_data import encode_example
from rlvr.tiny_models import resolve_model_path
from rlvr.types import Message, UnpairedExample
from tasks.preference import BadRow

KINDS = ("orm", "prm")


def token_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def orm_input_ids(tokenizer, prompt: str | list[Message], completion: str | list[Message]) -> list[int] | None:
    """What an outcome RM reads: the pair's encoding of `rlvr.preference_data` (the one the RM trained on), for
    one completion: prompt then completion ended at EOS. Plain strings are raw text, messages take the chat
    template. None when the row cannot be encoded (a chat template that rewrites earlier turns)."""
    enc = encode_example(tokenizer, UnpairedExample(prompt, completion, True), max_length=10**9)
    return None if isinstance(enc, BadRow) else enc.prompt + enc.completion


def conversation(tokenizer, prompt: str | list[Message], completion: str) -> tuple[str | list[Message], str | list[Message]]:
    """A policy's (prompt, completion) as the RM should read it: the conversation the policy had (chat template)
    when the RM's tokenizer has one, else raw text, as a preference row of that shape is encoded."""
    if not tokenizer.chat_template:
        return prompt, completion
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return messages, [{"role": "assistant", "content": completion}]


def separator_id(tokenizer, separator: str, key: str) -> int:
    """The id of `separator`, which must be exactly one token of `tokenizer` (else an error naming `key`)."""
    ids = token_ids(tokenizer, separator)
    if len(ids) != 1:
        raise ValueError(
            f"{key}: the separator {separator!r} is {len(ids)} tokens for this tokenizer ({ids}); a PRM separator "
            "must be one token (add it as a special token, as Qwen2.5-Math-PRM's <extra_0> is)"
        )
    return ids[0]


def encode_steps(tokenizer, prompt: str | list[Message], steps: list[str], sep_id: int) -> tuple[list[int], list[int]]:
    """(ids, positions): rendered prompt, then each step's tokens followed by the separator id; positions are the
    separators' indices, one per step."""
    ids = token_ids(tokenizer, render_prompt(tokenizer, prompt))
    positions = []
    for step in steps:
        ids += token_ids(tokenizer, step)
        positions.append(len(ids))
        ids.append(sep_id)
    return ids, positions


def pad_right(rows: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """(input_ids, attention_mask), both (B, T), right-padded."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def forward_model(model: torch.nn.Module, ids: Tensor, mask: Tensor) -> Tensor:
    """The head's logits with position ids from the mask (so left padding does not shift RoPE positions):
    (B, num_labels) for a sequence classifier, (B, T, num_labels) for a token classifier or PRM."""
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False)
    return out.logits if hasattr(out, "logits") else out[0]  # remote-code PRMs return a tuple


def gather_steps(logits: Tensor, positions: list[list[int]]) -> Tensor:
    """Logits (B, T, K) at each row's scored positions, by index: (S, K), S = all positions in row order."""
    rows = torch.tensor([b for b, pos in enumerate(positions) for _ in pos], dtype=torch.long, device=logits.device)
    cols = torch.tensor([p for pos in positions for p in pos], dtype=torch.long, device=logits.device)
    return logits[rows, cols]


def token_budget_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Indices grouped into batches of at most `budget` padded tokens, longest first (one over-long item
    still gets a batch of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        # sorted longest first, so a batch's padded width is its first item's length
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _architecture(model_config) -> str:
    archs = getattr(model_config, "architectures", None) or ["(none)"]
    return archs[0]


def check_orm(model, tokenizer, path: str) -> None:
    """A ValueError naming `path` unless `model` is a 1-label sequence classifier whose tokenizer fits it."""
    cfg = model.config
    if not type(model).__name__.endswith("ForSequenceClassification") or cfg.num_labels != 1:
        raise ValueError(
            f"reward model {path}: head does not match: an outcome RM is a *ForSequenceClassification with "
            f"num_labels=1, got {type(model).__name__} with num_labels={cfg.num_labels}"
        )
    _check_tokenizer(model, tokenizer, path)
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError(
            f"reward model {path}: tokenizer does not match: its pad token must differ from EOS (the score is "
            f"read at the last non-pad token), got pad={tokenizer.pad_token_id} eos={tokenizer.eos_token_id}"
        )
    if cfg.pad_token_id != tokenizer.pad_token_id:
        raise ValueError(
            f"reward model {path}: tokenizer does not match: config.pad_token_id={cfg.pad_token_id} but the "
            f"tokenizer's pad token is {tokenizer.pad_token_id}"
        )


def _check_tokenizer(model, tokenizer, path: str) -> None:
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ValueError(
            f"reward model {path}: tokenizer does not match: {len(tokenizer)} tokens for an embedding of {rows} rows"
        )


def check_prm(model, tokenizer, path: str) -> None:
    name = type(model).__name__
    labels = getattr(model.config, "num_labels", 2)
    if not (name.endswith("ForTokenClassification") and labels in (1, 2)) and not name.endswith("ForProcessRewardModel"):
        raise ValueError(
            f"reward model {path}: head does not match: a process RM is a *ForTokenClassification with 1 or 2 "
            f"labels or a *ForProcessRewardModel (Qwen2.5-Math-PRM), got {name} with num_labels={labels}"
        )
    _check_tokenizer(model, tokenizer, path)


@dataclass
class RewardModel:
    """A loaded ORM or PRM in eval mode on one device."""

    kind: str
    model: torch.nn.Module
    tokenizer: object
    token_budget: int
    max_length: int
    sep_id: int | None = None  # PRMs

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _run(self, rows: list[list[int]], read) -> list:
        """`read(logits, batch_indices)` over token-budget batches of the rows that fit; None for the others."""
        out: list = [None] * len(rows)
        fit = [i for i, r in enumerate(rows) if 0 < len(r) <= self.max_length]
        for batch in token_budget_batches([len(rows[i]) for i in fit], self.token_budget):
            idx = [fit[j] for j in batch]
            ids, mask = pad_right([rows[i] for i in idx], self.tokenizer.pad_token_id)
            with torch.no_grad():
                logits = forward_model(self.model, ids.to(self.device), mask.to(self.device))
            for i, value in zip(idx, read(logits.float(), idx)):
                out[i] = value
        return out

    def score(self, prompts: list[str | list[Message]], completions: list[str | list[Message]]) -> list[float]:
        """ORM score of each (prompt, completion) as given (see `conversation` for a policy's text); NaN where
        the input cannot be encoded or does not fit the model's context."""
        return self.score_ids([orm_input_ids(self.tokenizer, p, c) for p, c in zip(prompts, completions)])

    def score_ids(self, rows: list[list[int] | None]) -> list[float]:
        """ORM score of each encoded input (`orm_input_ids`); NaN for None and for inputs over the context."""
        if self.kind != "orm":
            raise ValueError("score() needs an outcome RM; a PRM gives step_probs()")
        out = self._run([r or [] for r in rows], lambda logits, idx: logits[:, 0].tolist())
        return [math.nan if v is None or not r else v for v, r in zip(out, rows)]

    def step_probs(self, prompts: list[str | list[Message]], steps: list[list[str]]) -> list[list[float] | None]:
        """P(step good) for every step of each solution; None where the input does not fit the context."""
        if self.kind != "prm":
            raise ValueError("step_probs() needs a process RM; an outcome RM gives score()")
        encoded = [encode_steps(self.tokenizer, p, s, self.sep_id) for p, s in zip(prompts, steps)]

        def read(logits: Tensor, idx: list[int]) -> list[list[float]]:
            positions = [encoded[i][1] for i in idx]
            probs = torch.sigmoid(step_logits(gather_steps(logits, positions))).tolist()
            sizes = [len(p) for p in positions]
            return [probs[sum(sizes[:k]) : sum(sizes[: k + 1])] for k in range(len(sizes))]

        return self._run([ids for ids, _ in encoded], read)


def load_reward_model(path: str, kind: str, *, device: torch.device | str = "cpu", dtype: str = "float32",
                      separator: str = "<extra_0>", token_budget: int = 8192, max_length: int = 0,
                      trust_remote_code: bool = False) -> RewardModel:
    """Load and check a reward model (`kind` "orm" or "prm"); any mismatch is a ValueError naming `path`."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

    if kind not in KINDS:
        raise ValueError(f"reward_model.kind: {kind!r} is not one of {KINDS}")
    if dtype not in DTYPES:
        raise ValueError(f"reward_model.dtype: {dtype!r} is not one of {sorted(DTYPES)}")
    local = resolve_model_path(path)
    try:
        config = AutoConfig.from_pretrained(local, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ValueError(f"reward model {path}: cannot read its config ({e})") from e
    arch = _architecture(config)
    heads = ("ForSequenceClassification",) if kind == "orm" else ("ForTokenClassification", "ForProcessRewardModel")
    if not arch.endswith(heads):
        # loading anyway would put a freshly initialised head on it: scores from random weights
        raise ValueError(f"reward model {path}: head does not match: the checkpoint is a {arch}, a {kind.upper()} "
                         f"is a {' or a '.join('*' + h for h in heads)}")
    if arch.endswith("ForProcessRewardModel") and not trust_remote_code:
        raise ValueError(f"reward model {path}: {arch} is remote code; set reward_model.trust_remote_code: true")
    loader = {"ForSequenceClassification": AutoModelForSequenceClassification,
              "ForTokenClassification": AutoModelForTokenClassification}.get(arch[arch.rfind("For"):], AutoModel)
    model = loader.from_pretrained(local, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code).to(device).eval()
    tok = load_tokenizer(local)
    sep = None
    if kind == "orm":
        check_orm(model, tok, path)
    else:
        check_prm(model, tok, path)
        sep = separator_id(tok, separator, "reward_model.separator")
    context = max_length or getattr(model.config, "max_position_embeddings", None) or 10**9
    return RewardModel(kind, model, tok, token_budget, context, sep)


def load_for_training(cfg, kind: str, num_labels: int = 1):
    """(model, tokenizer) to train an ORM (`*ForSequenceClassification`, 1 label) or a PRM
    (`*ForTokenClassification`, `num_labels` 1 or 2) from `cfg` (a `ModelConfig`): a causal LM gets a fresh
    head, N(0, 1/(H+1)) as in Stiennon et al. (OpenRLHF draws it with that as the std: ~64x smaller at
    H=4096), with dropout off; a checkpoint that already is such a classifier keeps its head. An ORM whose
    tokenizer has no pad token distinct from EOS gets one (the embedding grows by a row)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification

    if not cfg.name_or_path:
        raise ValueError("model.name_or_path is empty: name the base model (a causal LM) or reward model to train")
    path = resolve_model_path(cfg.name_or_path)
    if cfg.dtype not in DTYPES:
        raise ValueError(f"model.dtype: {cfg.dtype!r} is not one of {sorted(DTYPES)}")
    try:
        tok = load_tokenizer(path)
        base_cfg = AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    except OSError as e:
        raise FileNotFoundError(f"model.name_or_path={path!r}: not a local model directory nor a reachable hub model ({e})") from e
    auto = AutoModelForSequenceClassification if kind == "orm" else AutoModelForTokenClassification
    head = auto.__name__.removeprefix("AutoModel")  # ForSequenceClassification | ForTokenClassification
    if _architecture(base_cfg).endswith(head) and base_cfg.num_labels != num_labels:
        raise ValueError(f"model.name_or_path={path!r}: head does not match: it has {base_cfg.num_labels} labels, "
                         f"this run trains {num_labels}")  # fmt: skip
    base_cfg.num_labels = num_labels
    if kind == "prm":
        base_cfg.classifier_dropout = 0.0  # token-classification heads default to dropout 0.1
    model, info = auto.from_pretrained(
        path, config=base_cfg, dtype=DTYPES[cfg.dtype], attn_implementation=cfg.attn_implementation,
        trust_remote_code=cfg.trust_remote_code, output_loading_info=True,
    )  # fmt: skip
    if any(k.startswith("score.") for k in info["missing_keys"]):  # a new head
        hidden = model.score.in_features
        torch.nn.init.normal_(model.score.weight, std=1.0 / math.sqrt(hidden + 1))
        if model.score.bias is not None:
            torch.nn.init.zeros_(model.score.bias)
    if kind == "orm" and (tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id):
        tok.add_special_tokens({"pad_token": "<|rm_pad|>"})
        model.resize_token_embeddings(len(tok))
    model.config.pad_token_id = tok.pad_token_id
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora.r > 0:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
            target_modules=list(cfg.lora.target_modules), task_type="SEQ_CLS" if kind == "orm" else "TOKEN_CLS",
        ))  # fmt: skip
    return model, tok
