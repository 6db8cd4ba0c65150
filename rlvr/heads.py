"""Value heads: the critic PPO learns, as a separate model or as a head on the policy's own backbone.

What it does:
- `ValueModel`: a separate critic, an HF `*ForTokenClassification` with `num_labels=1` (backbone + `score`,
  a `Linear(hidden, 1)`), returning one value per position in float32. Loaded from the policy's weights, a
  reward model (`*ForSequenceClassification`: its `score` is kept), a saved critic, or any causal LM
  (`load_value_model`); a fresh head is initialised N(0, 1/(hidden+1)) with a zero bias (Stiennon et al.).
- `ValueHead`: the same scalar head on hidden states the policy's forward already computed
  (`capture_hidden`), so policy and critic share one backbone (one model in memory, one forward).
- `save_shared_critic`: exports a shared head with the policy's backbone as the same `*ForTokenClassification`.
What it does not: reward-model heads (they come next to this), losses (`rlvr.losses.value_loss`) or GAE.

Why `*ForTokenClassification` (as verl's critic): a value is a per-token scalar, which is what that class
computes, so `AutoModelForTokenClassification.from_pretrained(dir)` gives `logits[..., 0]` = our values
(pass `position_ids = attention_mask.cumsum(-1) - 1` for left-padded rows, as we do). The saved config has
`classifier_dropout = 0`, so a loaded critic is deterministic in train mode too.
Values are computed in float32 whatever the backbone's dtype: the head's weights are float32 and the hidden
state is cast up before it (a bf16 value of a return near 10 is only good to ~0.06).
Value for completion token t reads the hidden state before t (the same alignment as log-probs, and as TRL,
verl and OpenRLHF); `num_values = C + 1` also returns the value of the state after the last column, which
`truncation: bootstrap` needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from rlvr.policy import DTYPES, load_tokenizer
from rlvr.tiny_models import resolve_model_path


def init_value_head_(score: nn.Linear) -> None:
    """N(0, std 1/sqrt(hidden + 1)) weights and a zero bias (Stiennon et al. 2020, as open-instruct)."""
    nn.init.normal_(score.weight, std=1.0 / math.sqrt(score.in_features + 1))
    if score.bias is not None:
        nn.init.zeros_(score.bias)


def _position_ids(attention_mask: Tensor) -> Tensor:
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)  # left padding does not shift positions


class ValueModel(nn.Module):
    """A separate critic around an HF `*ForTokenClassification` (num_labels=1) with a float32 `score`."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        self.lm.score.float()

    @property
    def backbone(self) -> nn.Module:
        return getattr(self.lm, self.lm.base_model_prefix)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, num_values: int) -> Tensor:
        """Values (B, num_values) float32 of the last `num_values` positions of (B, P + C) left/right-padded rows."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            position_ids=_position_ids(attention_mask), use_cache=False)  # fmt: skip
        hidden = out.last_hidden_state[:, -num_values:]        # (B, num_values, H)
        return self.lm.score(hidden.float()).squeeze(-1)

    def save_pretrained(self, save_directory: str, state_dict: dict[str, Tensor] | None = None) -> None:
        """Save as the plain HF token classifier (what `rlvr.checkpoint.save_pretrained` calls)."""
        if state_dict is not None:
            state_dict = {k.removeprefix("lm."): v for k, v in state_dict.items()}
        self.lm.save_pretrained(save_directory, state_dict=state_dict)


class ValueHead(nn.Module):
    """The scalar head on the policy's own last hidden states (critic mode `shared`)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.score = nn.Linear(hidden_size, 1, dtype=torch.float32)
        init_value_head_(self.score)

    def forward(self, hidden: Tensor) -> Tensor:
        """hidden (B, T, H) -> values (B, T) float32."""
        return self.score(hidden.float()).squeeze(-1)


@contextmanager
def capture_hidden(policy: nn.Module) -> Iterator[list[Tensor]]:
    """Collect the last hidden state (B, L, H) of every forward of `policy`'s backbone inside the block.

    A hook on the backbone module, so whatever calls the model (`token_logprobs`, however it computes the
    logits) hands the critic the very hidden states, with their autograd graph, that its logits came from.
    """
    backbone = policy.base_model
    if backbone is policy:
        raise ValueError(f"{type(policy).__name__} exposes no backbone (`base_model`) to put a value head on")
    seen: list[Tensor] = []
    handle = backbone.register_forward_hook(lambda mod, args, out: seen.append(out.last_hidden_state))
    try:
        yield seen
    finally:
        handle.remove()


def load_value_model(path: str, *, key: str, policy_config, policy_tokenizer, dtype: str,
                     trust_remote_code: bool = False) -> ValueModel:
    """A `ValueModel` from a local dir / hub name / tiny model name: a causal LM (new head), a reward model
    (its head kept) or a saved critic. A tokenizer or hidden size unlike the policy's is an error naming `key`."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    resolved = resolve_model_path(path)
    try:
        tok = load_tokenizer(resolved)
        config = AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    except OSError as e:
        raise FileNotFoundError(f"{key}={path!r}: no model with a tokenizer there ({e})") from e
    if tok.get_vocab() != policy_tokenizer.get_vocab():
        raise ValueError(f"{key}={path!r}: its tokenizer differs from the policy's ({len(tok)} vs "
                         f"{len(policy_tokenizer)} tokens, or the same size with other ids); the critic reads "
                         "the policy's token ids, so it needs the same tokenizer")  # fmt: skip
    hidden = config.get_text_config().hidden_size
    want = policy_config.get_text_config().hidden_size
    if hidden != want:
        raise ValueError(f"{key}={path!r}: hidden size {hidden}, the policy's is {want}")
    config.num_labels = 1
    config.classifier_dropout = 0.0
    config.pad_token_id = policy_tokenizer.pad_token_id
    lm, info = AutoModelForTokenClassification.from_pretrained(
        resolved, config=config, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code, output_loading_info=True
    )
    missing = set(info["missing_keys"])
    if "score.weight" in missing:  # a causal LM (or a base model): a fresh head
        init_value_head_(lm.score)
    elif "score.bias" in missing and lm.score.bias is not None:  # a reward model's head has no bias
        nn.init.zeros_(lm.score.bias)
    return ValueModel(lm)


def save_shared_critic(policy: nn.Module, head: ValueHead, tokenizer, out_dir: str | Path) -> Path:
    """Write the policy's backbone plus `head` as an HF `*ForTokenClassification` (num_labels=1) at `out_dir`."""
    from transformers import AutoModelForTokenClassification

    config = policy.config.__class__.from_dict(policy.config.to_dict())
    config.num_labels, config.classifier_dropout = 1, 0.0
    critic = AutoModelForTokenClassification.from_config(config)
    prefix = critic.base_model_prefix + "."
    state = {k: v for k, v in policy.state_dict().items() if k.startswith(prefix)}
    state.update({f"score.{k}": v for k, v in head.score.state_dict().items()})
    critic.load_state_dict(state, strict=True)
    out = Path(out_dir)
    critic.save_pretrained(str(out))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out
