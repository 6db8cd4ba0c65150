"""The policy core every algorithm stands on.

Loads a causal LM and its tokenizer (local dir or hub name, optional LoRA),
renders chat prompts, and computes per-token log-probs with one function,
`token_logprobs` (chunked, memory-flat: `rlvr.logprobs`), that GRPO, PPO, DPO,
SFT and the reference model all use.
It does not know about rewards, rollouts or any particular loss.
"""

from __future__ import annotations

import copy
import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import Tensor

from rlvr.logprobs import token_logprobs
from rlvr.tiny_models import TINY_MODELS, resolve_model_path
from rlvr.types import Message

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoraConfig:
    r: int = 0  # 0 = LoRA off (full fine-tuning)
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class ModelConfig:
    name_or_path: str = ""  # local dir, hub name, or a tiny model built offline (`tiny-qwen2`, see rlvr.tiny_models)
    dtype: str = "float32"  # float32 | bfloat16 | float16
    lora: LoraConfig = field(default_factory=LoraConfig)
    gradient_checkpointing: bool = False
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False


def _looks_local(path: str) -> bool:
    # hub names are "name" or "org/name"; anything else is meant as a directory
    return path.startswith((".", "/", "~")) or path.count("/") > 1


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))
    if tok.pad_token_id is None:  # decoder-only models often ship without one; padding is masked anyway
        tok.pad_token = tok.eos_token
    return tok


def load_policy(cfg: ModelConfig):
    """(model, tokenizer) for `cfg`. A missing local path is an error naming it."""
    from transformers import AutoModelForCausalLM

    if not cfg.name_or_path:
        raise ValueError(
            "model.name_or_path is empty: give a local model directory, a hub name or a tiny model "
            f"({', '.join(sorted(TINY_MODELS))})"
        )
    path = resolve_model_path(cfg.name_or_path)
    if _looks_local(path) and not os.path.isdir(os.path.expanduser(path)):
        raise FileNotFoundError(f"model.name_or_path: no model directory at {path!r}")
    if cfg.dtype not in DTYPES:
        raise ValueError(f"model.dtype: {cfg.dtype!r} is not one of {sorted(DTYPES)}")
    try:
        tok = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=DTYPES[cfg.dtype],
            attn_implementation=cfg.attn_implementation,
            trust_remote_code=cfg.trust_remote_code,
        )
    except OSError as e:
        raise FileNotFoundError(f"model.name_or_path={path!r}: not a local model directory nor a reachable hub model ({e})") from e
    model.generation_config.pad_token_id = tok.pad_token_id
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora.r > 0:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        peft_cfg = PeftLoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=list(cfg.lora.target_modules),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, peft_cfg)
    return model, tok


def render_prompt(tokenizer, prompt: str | list[Message]) -> str:
    """The text the model is prompted with: the chat template with a generation
    prompt when the tokenizer has one, else the plain prompt."""
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if isinstance(prompt, str):
        return prompt
    return "\n".join(m["content"] for m in prompt) + "\n"


class Reference:
    """The frozen reference policy for the KL term.

    With LoRA it is the base model (the policy with its adapters disabled), so
    no second copy is held; otherwise a frozen deep copy. Build it only when
    the KL coefficient is non-zero.
    """

    def __init__(self, policy: torch.nn.Module):
        self._is_peft = hasattr(policy, "disable_adapter")
        if self._is_peft:
            self.model = policy
        else:
            self.model = copy.deepcopy(policy).eval()
            for p in self.model.parameters():
                p.requires_grad_(False)

    @contextmanager
    def active(self) -> Iterator[None]:
        """No grad, LoRA adapters off: wrap any forward of `self.model` as the reference in it."""
        with torch.no_grad(), (self.model.disable_adapter() if self._is_peft else nullcontext()):
            yield

    def logprobs(self, input_ids: Tensor, attention_mask: Tensor, num_completion_tokens: int, temperature: float) -> Tensor:
        with self.active():
            logp, _ = token_logprobs(self.model, input_ids, attention_mask, num_completion_tokens, temperature=temperature)
        return logp
