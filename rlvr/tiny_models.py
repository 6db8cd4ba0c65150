"""Tiny models by name, built offline: `model.name_or_path: tiny-qwen2` works on a machine with no network.

What it does: for a name in `TINY_MODELS` it builds, once, a byte-level BPE tokenizer trained here on a fixed
arithmetic corpus and a randomly initialised Qwen2 from a fixed config and seed, saves both as an ordinary HF
model directory under `$RLVR_CACHE/models/` (default `~/.cache/rlvr/models/`), and returns that directory.
Later uses load it from there. The directory name carries a hash of the spec, so changing a spec builds a new
one instead of reusing a stale one. Every model of the family shares one tokenizer (same vocabulary and
token-to-id map), so a `tiny-qwen2` teacher and a `tiny-qwen2-small` student can be distilled one into the other.

A build happens in a temporary directory renamed into place when complete, so a crash or a second process
never leaves a half-written model where a loader looks; a directory whose files do not match its manifest
(`rlvr_tiny.json`, written last, with a sha256 per file) is moved aside and rebuilt, never half-loaded.
What it does not: train the models (they are random; `rlvr demo` and the smoke configs train them), or
download anything. Hub names and local paths pass through `resolve_model_path` unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("rlvr")

# the chat template of the family: role markers as special tokens, nothing else
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
# <extra_0> is the step separator of Qwen2.5-Math-PRM; a PRM built on a tiny model can use it as one token
SPECIALS = ["<pad>", "<eos>", "<|user|>", "<|assistant|>", "<|system|>", "<extra_0>"]
TOKENIZER_SPEC = {"vocab_size": 320, "corpus": "arithmetic:2000:seed0:3ops:max99:+-*", "specials": SPECIALS, "v": 1}

# name -> Qwen2 architecture (vocabulary, pad/eos ids and context come from the shared tokenizer)
TINY_MODELS: dict[str, dict[str, int]] = {
    "tiny-qwen2": {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "seed": 0},
    "tiny-qwen2-small": {"hidden_size": 64, "intermediate_size": 192, "num_hidden_layers": 2,
                         "num_attention_heads": 2, "num_key_value_heads": 1, "seed": 0},
}  # fmt: skip
MAX_POSITIONS = 2048
MANIFEST = "rlvr_tiny.json"


def cache_root() -> Path:
    """`$RLVR_CACHE` or `~/.cache/rlvr`."""
    return Path(os.environ.get("RLVR_CACHE") or Path.home() / ".cache" / "rlvr").expanduser()


def is_tiny_name(name: str) -> bool:
    """True for names of the tiny family's form (`tiny-...`, no path separator), known or not."""
    return name.startswith("tiny-") and "/" not in name and not os.path.exists(name)


def _spec(name: str) -> dict:
    return {"name": name, "arch": TINY_MODELS[name], "tokenizer": TOKENIZER_SPEC, "max_positions": MAX_POSITIONS}


def model_dir(name: str) -> Path:
    """Where tiny model `name` lives in the cache (built or not)."""
    digest = hashlib.sha256(json.dumps(_spec(name), sort_keys=True).encode()).hexdigest()[:10]
    return cache_root() / "models" / f"{name}-{digest}"


def resolve_model_path(name_or_path: str) -> str:
    """A tiny model's cache directory (built on first use), or `name_or_path` unchanged for anything else.

    An unknown `tiny-*` name is an error that lists the known ones.
    """
    if not is_tiny_name(name_or_path):
        return name_or_path
    if name_or_path not in TINY_MODELS:
        raise ValueError(
            f"model.name_or_path: {name_or_path!r} is not a known tiny model; known: {', '.join(sorted(TINY_MODELS))}"
        )
    return str(ensure_tiny_model(name_or_path))


def _file_digests(d: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.iterdir())
        if p.is_file() and p.name != MANIFEST
    }


def check_model_dir(d: Path) -> str | None:
    """None when `d` holds a complete build, else what is wrong with it."""
    manifest = d / MANIFEST
    if not manifest.is_file():
        return f"no {MANIFEST} (an interrupted build?)"
    try:
        want = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError) as e:
        return f"unreadable {MANIFEST} ({e})"
    have = _file_digests(d)
    for fname, digest in want.items():
        if fname not in have:
            return f"missing {fname}"
        if have[fname] != digest:
            return f"{fname} does not match its checksum"
    return None


def ensure_tiny_model(name: str) -> Path:
    """The cache directory of tiny model `name`, built (or rebuilt, if corrupted) when needed."""
    d = model_dir(name)
    if d.is_dir():
        problem = check_model_dir(d)
        if problem is None:
            return d
        aside = d.with_name(f"{d.name}.corrupt-{os.getpid()}")
        log.warning("tiny model cache %s is not usable (%s): moved to %s and rebuilt", d, problem, aside)
        try:
            d.rename(aside)
        except OSError:  # another process moved or rebuilt it first
            pass
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=d.parent))
    try:
        build_tiny_model(name, tmp)
        files = _file_digests(tmp)
        (tmp / MANIFEST).write_text(json.dumps({"spec": _spec(name), "files": files}, indent=1, sort_keys=True))
        try:
            tmp.rename(d)
        except OSError:  # a concurrent build finished first; keep its copy if it is complete
            if check_model_dir(d) is not None:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return d


def _corpus() -> list[str]:
    from tasks import get_task

    # every symbol any arithmetic setting can produce, with step-by-step traces
    corpus = get_task("arithmetic", num_samples=2000, seed=0, num_operands=3, max_value=99, ops="+-*")
    return [s.prompt + s.meta["trace"] for s in corpus]


def build_tokenizer(texts: list[str]):
    """A small byte-level BPE tokenizer trained on `texts`; digits stay single tokens so arithmetic stays learnable."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # byte-level, so any text (code prompts too) round-trips
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_SPEC["vocab_size"], special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(name: str, out: Path) -> Path:
    """Tokenizer and freshly initialised weights of tiny model `name`, saved as an HF model directory at `out`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.policy import load_tokenizer

    arch = dict(TINY_MODELS[name])
    seed = arch.pop("seed")
    raw = build_tokenizer(_corpus())
    raw.save_pretrained(out)
    # size the model for the tokenizer as trainers load it: next to a qwen2 config, transformers loads it as a
    # Qwen2Tokenizer, which adds special tokens of its own
    Qwen2Config(vocab_size=len(raw)).save_pretrained(out)
    tok = load_tokenizer(str(out))
    cfg = Qwen2Config(
        vocab_size=len(tok), max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id, **arch,
    )  # fmt: skip
    with torch.random.fork_rng():  # do not disturb the caller's RNG stream
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    return out
