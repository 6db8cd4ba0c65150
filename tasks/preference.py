"""Preference data, torch-free: rows in TRL's formats -> `PreferencePair` / `UnpairedExample`, bad rows as values.

Formats (TRL's `dataset_formats`), read from a local .jsonl/.json/.parquet file or a `datasets` hub name:
- explicit prompt: `prompt`, `chosen`, `rejected`;
- implicit prompt: `chosen`, `rejected` only; the prompt is their shared beginning (below);
- unpaired: `prompt`, `completion`, `label` (bool: desirable or not), for KTO.
Values are strings (raw text, no chat template) or lists of `{"role", "content"}` messages (rendered with the
chat template). If either side of a row is a message list, a string prompt becomes a user turn and a string
completion an assistant turn. Completions that repeat the prompt's messages first (HuggingFaceH4's
ultrafeedback_binarized) have them taken off.

Implicit prompt: for messages, the longest run of equal leading messages. For strings in HH-RLHF's form, the
text up to and including the last "\\n\\nAssistant:" both share (trl#1858 cut at the first); otherwise the longest
common prefix, backed off to the last whitespace when it is all of one side (("The sky", "The sky is blue") gives
prompt "The", completions " sky" and " sky is blue"), so neither completion is empty. Cutting mid-word is
harmless: the tokenizer boundary is found on tokens later (`rlvr.preference_data`).

A row that cannot be used (a missing or mistyped field, chosen identical to rejected, an empty completion, no
shared prompt) becomes a `BadRow` naming the file, row and field; `check_bad_rows` turns the list into an error,
or into a counted, logged skip when the config says so. No row is ever dropped silently. Tokenizer-level checks
(the rendered prompt is a prefix of the rendered conversation, the length limit) are `rlvr.preference_data`'s.

Also here: `unpair` (paired rows -> labelled rows for KTO, shuffled so batches mix labels) and the synthetic
`arithmetic_preference` task (a correct worked solution preferred over one with a slip; a held-out split).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, Iterator

from rlvr.types import Message, PreferencePair, UnpairedExample
from tasks.arithmetic import ArithmeticTask, trace_text
from tasks.base import register_task
from tasks.loading import source_rows

log = logging.getLogger("rlvr")

HH_MARKER = "\n\nAssistant:"
FORMATS = ("auto", "paired", "unpaired")
Content = str | list[Message]


@dataclass(frozen=True)
class BadRow:
    """Why one row (or one encoded row) cannot be used."""

    where: str  # "prefs.jsonl, line 3"
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: field {self.field!r}: {self.problem}"


@dataclass
class PreferenceData:
    """What a preference task yields: pairs or unpaired examples (one kind), and the rows that were bad."""

    name: str
    pairs: list[PreferencePair] = field(default_factory=list)
    examples: list[UnpairedExample] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)

    @property
    def paired(self) -> bool:
        return not self.examples

    def __len__(self) -> int:
        return len(self.pairs) + len(self.examples)


def check_bad_rows(bad: list[BadRow], skip: bool, what: str, skip_key: str) -> None:
    """Raise a ValueError listing the bad rows, or (with `skip`) log how many are skipped and which."""
    if not bad:
        return
    listing = "\n".join(f"  {b}" for b in bad[:10]) + (f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else "")
    if skip:
        log.warning("%s: skipping %d bad rows (%s is on):\n%s", what, len(bad), skip_key, listing)
        return
    raise ValueError(f"{what}: {len(bad)} bad rows (set {skip_key}: true to skip them, counted):\n{listing}")


class RowProblem(Exception):
    """A problem with one row's `field`, raised while reading or encoding it and turned into a BadRow by the loop."""

    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


def _content(row: dict[str, Any], name: str) -> Content:
    value = row.get(name)
    if value is None:
        raise RowProblem(name, f"missing (expected a string or a list of role/content messages); row has fields {sorted(row)}")
    if isinstance(value, str):
        return value
    ok = isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    )
    if not ok:
        raise RowProblem(name, f"should be a string or a list of role/content messages, got {str(value)[:80]!r}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _check_completion(name: str, value: Content) -> None:
    text = value if isinstance(value, str) else "".join(m["content"] for m in value)
    if not text.strip():
        raise RowProblem(name, "empty completion")


def _as_messages(value: Content, role: str) -> list[Message]:
    return [{"role": role, "content": value}] if isinstance(value, str) else value


def _implicit_prompt(chosen: Content, rejected: Content) -> tuple[Content, Content, Content]:
    if isinstance(chosen, str) != isinstance(rejected, str):
        raise RowProblem("rejected", "chosen and rejected must both be strings or both be message lists")
    if chosen == rejected:
        raise RowProblem("rejected", "identical to chosen")
    k = 0
    while k < min(len(chosen), len(rejected)) and chosen[k] == rejected[k]:
        k += 1
    if isinstance(chosen, list):
        if k in (len(chosen), len(rejected)):
            raise RowProblem("rejected", "one conversation is the start of the other: no completion left to compare")
        cut = k
    else:
        marker = chosen.rfind(HH_MARKER, 0, k)
        if marker >= 0:
            cut = marker + len(HH_MARKER)
        elif k in (len(chosen), len(rejected)):  # one side is the start of the other: back off to a word boundary
            cut = max(chosen.rfind(c, 0, k) for c in " \n\t")
        else:
            cut = k
    if cut <= 0:
        raise RowProblem("chosen", "chosen and rejected share no prompt (no common beginning); give a 'prompt' field")
    return chosen[:cut], chosen[cut:], rejected[cut:]


def _strip_prompt(prompt: list[Message], completion: list[Message]) -> list[Message]:
    n = len(prompt)
    return completion[n:] if len(completion) > n and completion[:n] == prompt else completion


def parse_pair(row: dict[str, Any]) -> PreferencePair:
    """One paired row (explicit or implicit prompt); raises RowProblem."""
    chosen, rejected = _content(row, "chosen"), _content(row, "rejected")
    if row.get("prompt") is None:
        prompt, chosen, rejected = _implicit_prompt(chosen, rejected)
    else:
        prompt = _content(row, "prompt")
        if any(isinstance(v, list) for v in (prompt, chosen, rejected)):
            prompt = _as_messages(prompt, "user")
            chosen = _strip_prompt(prompt, _as_messages(chosen, "assistant"))
            rejected = _strip_prompt(prompt, _as_messages(rejected, "assistant"))
    if not prompt:
        raise RowProblem("prompt", "empty prompt")
    _check_completion("chosen", chosen)
    _check_completion("rejected", rejected)
    if chosen == rejected:
        raise RowProblem("rejected", "identical to chosen")
    return PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected)


def parse_unpaired(row: dict[str, Any]) -> UnpairedExample:
    """One unpaired row; raises RowProblem."""
    prompt, completion = _content(row, "prompt"), _content(row, "completion")
    label = row.get("label")
    if isinstance(label, int) and not isinstance(label, bool) and label in (0, 1):
        label = bool(label)
    if not isinstance(label, bool):
        raise RowProblem("label", f"should be true (desirable) or false (undesirable), got {label!r}")
    if isinstance(prompt, list) or isinstance(completion, list):
        prompt = _as_messages(prompt, "user")
        completion = _strip_prompt(prompt, _as_messages(completion, "assistant"))
    if not prompt:
        raise RowProblem("prompt", "empty prompt")
    _check_completion("completion", completion)
    return UnpairedExample(prompt=prompt, completion=completion, label=label)


def _detect(row: dict[str, Any], where: str) -> str:
    if "chosen" in row or "rejected" in row:
        return "paired"
    if "completion" in row or "label" in row:
        return "unpaired"
    raise ValueError(f"{where}: cannot tell the format: expected chosen/rejected (paired) or completion/label "
                     f"(unpaired) fields; row has fields {sorted(row)}")


def load_preference_rows(rows: Iterator[tuple[str, dict[str, Any]]], name: str, fmt: str = "auto",
                         limit: int | None = None) -> PreferenceData:
    """Parse `rows` ((where, row) pairs) into PreferenceData; the first row decides the format under "auto"."""
    if fmt not in FORMATS:
        raise ValueError(f"preference: format must be one of {FORMATS}, got {fmt!r}")
    data = PreferenceData(name=name)
    seen = 0
    for where, row in rows:
        if limit is not None and seen >= limit:
            break
        seen += 1
        if fmt == "auto":
            fmt = _detect(row, where)
        try:
            item = parse_pair(row) if fmt == "paired" else parse_unpaired(row)
        except RowProblem as bad:
            data.bad.append(BadRow(where, bad.field, bad.problem))
            continue
        item.meta["where"] = where
        (data.pairs if fmt == "paired" else data.examples).append(item)
    if seen == 0:
        raise ValueError(f"preference data {name!r} has no rows")
    return data


@register_task("preference")
def preference_task(path: str | None = None, hub: str | None = None, config: str | None = None, split: str = "train",
                    limit: int | None = None, format: str = "auto") -> PreferenceData:
    """Preference rows from a local file (`path`) or a hub dataset (`hub`, `config`, `split`) in TRL's formats."""
    name = path if path is not None else str(hub)
    return load_preference_rows(source_rows(path, hub, config, split, limit), name, format, limit)


def unpair(pairs: list[PreferencePair], seed: int) -> list[UnpairedExample]:
    """Each pair as a desirable (chosen) and an undesirable (rejected) example, shuffled by `seed` so that
    consecutive rows mix labels (TRL emits all chosen rows of a map batch, then all rejected ones)."""
    out = []
    for p in pairs:
        where = p.meta.get("where", "?")
        out.append(UnpairedExample(p.prompt, p.chosen, True, {**p.meta, "where": f"{where} (chosen)"}))
        out.append(UnpairedExample(p.prompt, p.rejected, False, {**p.meta, "where": f"{where} (rejected)"}))
    random.Random(seed).shuffle(out)
    return out


MISTAKES = ("step", "answer")


def slipped_trace(operands: list[int], ops: list[str], rng: random.Random, mistake: str) -> str:
    """A worked solution with one slip: a step result off by 1-3 and carried on ("step"), or correct steps and a
    boxed answer off by 1-3 ("answer"). Left to right, so "+" and "-" only."""
    delta = rng.choice([-3, -2, -1, 1, 2, 3])
    slip_at = rng.randrange(len(ops)) if mistake == "step" else -1
    acc, steps = operands[0], []
    for i, (op, b) in enumerate(zip(ops, operands[1:])):
        c = acc + b if op == "+" else acc - b
        c += delta if i == slip_at else 0
        steps.append(f"{acc}{op}{b}={c}")
        acc = c
    return trace_text(steps, acc + (delta if mistake == "answer" else 0))


@register_task("arithmetic_preference")
def arithmetic_preference(num_samples: int = 1000, seed: int = 0, min_value: int = 0, max_value: int = 9,
                          num_operands: int = 2, ops: str = "+-", split: str = "train", test_fraction: float = 0.2,
                          mistake: str = "step", chat: bool = True) -> PreferenceData:
    """Arithmetic problems ("3+4=") with a correct worked solution ("3+4=7. \\boxed{7}") preferred over one with a
    slip (`slipped_trace`). The split is the arithmetic task's (a hash of the problem), so train and test never
    share a problem. `chat`: prompt and completions as messages (the chat template applies), else raw strings."""
    if mistake not in MISTAKES:
        raise ValueError(f"arithmetic_preference: mistake must be one of {MISTAKES}, got {mistake!r}")
    if not ops or any(o not in "+-" for o in ops):
        raise ValueError(f"arithmetic_preference: ops must be made of '+' and '-', got {ops!r}")
    task = ArithmeticTask(num_samples=num_samples, seed=seed, min_value=min_value, max_value=max_value,
                          num_operands=num_operands, ops=ops, split=split, test_fraction=test_fraction)  # fmt: skip
    rng = random.Random(f"arithmetic_preference:{seed}:{split}")
    data = PreferenceData(name=f"arithmetic_preference ({split})")
    for s in task:
        chosen, rejected = s.meta["trace"], slipped_trace(s.meta["operands"], s.meta["ops"], rng, mistake)
        prompt: Content = s.prompt
        if chat:
            prompt, chosen, rejected = _as_messages(s.prompt, "user"), _as_messages(chosen, "assistant"), _as_messages(rejected, "assistant")
        data.pairs.append(PreferencePair(prompt, chosen, rejected, {"where": f"{data.name}, {s.id}", "id": s.id}))
    return data
