"""Tasks from data: a local .jsonl / .json / .parquet file or a `datasets` hub name.

One registered task, "dataset", reads rows from `path` (local) or `hub`
(`datasets.load_dataset(hub, config, split=split)`, needs network or a warm HF
cache) and turns each row into a `Sample` with a `schema`:

- "gsm8k": `question`, `answer` (reference = the number after `####`), see tasks/gsm8k.py
- "math": `problem`, `solution` and/or `answer`, see tasks/hendrycks_math.py
- "generic": `prompt` (string or chat messages), `reference` (or `tests`), optional
  `id`, `tests`, `meta`; the prompt and reference field names are arguments.

The question text goes through `prompt_template` (its "{prompt}" is replaced;
other braces are kept, so "\\boxed{}" can be written as is), and a
`system_prompt` turns the prompt into chat messages. A row that lacks a field
raises a ValueError naming the file, the row (1-based; the line for .jsonl) and
the field; no row is ever skipped. Torch-free; `datasets` and `pyarrow` are
imported only when a hub name or a parquet file is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

from rlvr.types import Message, Sample
from tasks.base import ListTask, register_task

Row = dict[str, Any]
# (row, where, default_id) -> Sample whose prompt is the raw question (string or messages)
RowParser = Callable[[Row, str, str], Sample]

FILE_TYPES = (".jsonl", ".json", ".parquet")


# ---- reading rows ----------------------------------------------------------------


def read_file(path: str) -> Iterator[tuple[str, Row]]:
    """Rows of a local file, each with where it came from ("data.jsonl, line 3")."""
    p = Path(path)
    if p.suffix not in FILE_TYPES:
        raise ValueError(f"{path}: unsupported file type {p.suffix!r}; expected one of {', '.join(FILE_TYPES)}")
    if not p.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        for n, row in enumerate(pq.read_table(p).to_pylist(), start=1):
            yield f"{path}, row {n}", row
        return
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON ({e}); expected a list of objects") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
        for n, row in enumerate(data, start=1):
            yield _object(row, f"{path}, row {n}")
        return
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():  # a blank line holds no row (editors add a trailing one)
            continue
        where = f"{path}, line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: invalid JSON ({e})") from None
        yield _object(row, where)


def _object(row: Any, where: str) -> tuple[str, Row]:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return where, row


def read_hub(name: str, config: str | None, split: str, limit: int | None) -> Iterator[tuple[str, Row]]:
    """Rows of a `datasets` hub dataset (downloads on first use; cached by `datasets`)."""
    import datasets

    ds = datasets.load_dataset(name, config, split=split)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    label = f"{name}" + (f" ({config})" if config else "") + f" split {split!r}"
    for n, row in enumerate(ds, start=1):
        yield f"{label}, row {n}", dict(row)


# ---- field access and prompts --------------------------------------------------


def require(row: Row, field: str, where: str, expected: str) -> Any:
    """`row[field]`, or a ValueError naming where, the field and what was expected."""
    if field not in row or row[field] is None:
        raise ValueError(f"{where}: missing field {field!r} (expected {expected}); row has fields {sorted(row)}")
    return row[field]


def require_str(row: Row, field: str, where: str, expected: str) -> str:
    value = require(row, field, where, expected)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{where}: field {field!r} should be {expected}, got {type(value).__name__}")
    return str(value)


def _messages(value: Any, where: str, field: str) -> str | list[Message]:
    if isinstance(value, str):
        return value
    ok = isinstance(value, list) and value and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    )
    if not ok:
        raise ValueError(
            f"{where}: field {field!r} should be a string or a non-empty list of "
            f'{{"role": ..., "content": ...}} messages, got {str(value)[:80]!r}'
        )
    return [{"role": m["role"], "content": m["content"]} for m in value]


def build_prompt(
    prompt: str | list[Message], template: str, system_prompt: str | None, where: str
) -> str | list[Message]:
    """Apply the template to the (last) user turn and prepend the system prompt, if any."""
    if isinstance(prompt, str):
        messages: list[Message] = [{"role": "user", "content": template.replace("{prompt}", prompt)}]
    else:
        messages = [dict(m) for m in prompt]
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        if not users:
            raise ValueError(f"{where}: chat prompt has no user message to apply the prompt template to")
        last = messages[users[-1]]
        last["content"] = template.replace("{prompt}", last["content"])
        if system_prompt is not None and messages[0]["role"] == "system":
            raise ValueError(f"{where}: the row has its own system message and system_prompt was also given")
    if system_prompt is not None:
        messages.insert(0, {"role": "system", "content": system_prompt})
    if isinstance(prompt, str) and system_prompt is None:
        return messages[0]["content"]  # stays a plain string; the chat template wraps it later
    return messages


# ---- schemas -------------------------------------------------------------------


def generic_parser(prompt_field: str = "prompt", reference_field: str = "reference") -> RowParser:
    """Rows with a prompt, a reference and/or tests, and optional id and meta."""

    def parse(row: Row, where: str, default_id: str) -> Sample:
        prompt = _messages(require(row, prompt_field, where, "a string or chat messages"), where, prompt_field)
        reference = row.get(reference_field)
        tests = row.get("tests")
        if reference is None and tests is None:
            raise ValueError(
                f"{where}: missing field {reference_field!r} (expected the reference answer; "
                f"or 'tests' for code); row has fields {sorted(row)}"
            )
        if reference is not None:
            reference = require_str(row, reference_field, where, "the reference answer as a string or number")
        if tests is not None and not isinstance(tests, str):
            raise ValueError(f"{where}: field 'tests' should be a string of test code, got {type(tests).__name__}")
        meta = row.get("meta") or {}
        if not isinstance(meta, dict):
            raise ValueError(f"{where}: field 'meta' should be an object, got {type(meta).__name__}")
        sid = str(row["id"]) if row.get("id") is not None else default_id
        return Sample(id=sid, prompt=prompt, reference=reference, tests=tests, meta=dict(meta))

    return parse


SCHEMAS = ("generic", "gsm8k", "math")


def get_parser(schema: str, prompt_field: str, reference_field: str) -> RowParser:
    # imported here: those modules import this one for `require` and `load_task`
    from tasks.gsm8k import gsm8k_row
    from tasks.hendrycks_math import math_row

    if schema == "generic":
        return generic_parser(prompt_field, reference_field)
    if schema == "gsm8k":
        return gsm8k_row
    if schema == "math":
        return math_row
    raise ValueError(f"unknown schema {schema!r}; expected one of {', '.join(SCHEMAS)}")


# ---- the task ------------------------------------------------------------------


class DatasetTask(ListTask):
    """Samples loaded from a file or the hub; `sft_text` is the worked solution where the data has one."""

    def sft_text(self, sample: Sample) -> str:
        if "solution" not in sample.meta:
            raise ValueError(f"sample {sample.id!r} of task {self.name!r} has no worked solution for SFT")
        return sample.meta["solution"]


def load_task(
    rows: Iterator[tuple[str, Row]],
    parser: RowParser,
    name: str,
    limit: int | None,
    prompt_template: str,
    system_prompt: str | None,
    default_verifier: str,
) -> DatasetTask:
    """Parse `rows` (up to `limit`) into a task."""
    if "{prompt}" not in prompt_template:
        raise ValueError(f"prompt_template must contain '{{prompt}}', got {prompt_template!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    samples: list[Sample] = []
    for where, row in rows:
        if limit is not None and len(samples) >= limit:
            break
        s = parser(row, where, f"{name}-{len(samples)}")
        s.prompt = build_prompt(s.prompt, prompt_template, system_prompt, where)
        samples.append(s)
    return DatasetTask(samples, default_verifier=default_verifier, name=name)


def source_rows(
    path: str | None, hub: str | None, config: str | None, split: str, limit: int | None
) -> Iterator[tuple[str, Row]]:
    """Rows from exactly one of a local `path` or a `hub` name."""
    if (path is None) == (hub is None):
        raise ValueError(
            f"give exactly one of path (a local file) or hub (a datasets name); got path={path!r}, hub={hub!r}"
        )
    return read_file(path) if path is not None else read_hub(hub, config, split, limit)


@register_task("dataset")
def dataset_task(
    path: str | None = None,
    hub: str | None = None,
    config: str | None = None,
    split: str = "train",
    schema: str = "generic",
    limit: int | None = None,
    prompt_template: str = "{prompt}",
    system_prompt: str | None = None,
    prompt_field: str = "prompt",
    reference_field: str = "reference",
    default_verifier: str = "math",
) -> DatasetTask:
    """A task from a local file (`path`) or a hub dataset (`hub`, `config`, `split`) read with `schema`."""
    parser = get_parser(schema, prompt_field, reference_field)
    name = Path(path).stem if path is not None else str(hub)
    rows = source_rows(path, hub, config, split, limit)
    return load_task(rows, parser, name, limit, prompt_template, system_prompt, default_verifier)
