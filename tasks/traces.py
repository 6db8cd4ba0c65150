"""Reasoning-trace datasets (distillation): the trace schema, a checked reader, and the `traces` task.

A trace row is one teacher completion of one problem. `rlvr distill` writes them as parquet (readable by
`datasets.load_dataset("parquet", data_files=...)`); traces made elsewhere enter stage 2 (filter) or 3 (SFT)
if they carry the fields below. `read_traces(path)` reads a .parquet or .jsonl file, or a folder of
`*.parquet` shards (in name order), and checks every row: a missing or mistyped field is a ValueError naming
the file, the row (1-based) and the field; no row is skipped. The `traces` task (`task: {name: traces, args:
{path: ...}}`) turns rows into samples whose SFT target is the trace, for `algorithm: sft`.

| field | type | required | meaning |
| --- | --- | --- | --- |
| sample_id | string | yes | the problem's id (traces of one problem share it) |
| prompt | chat messages, or a string | yes | the problem as the teacher was asked it |
| completion | string | yes | the teacher's text after the prompt (the trace, final answer included) |
| reference / tests | string | for `verified` | the gold answer (math) or test code (code tasks) |
| finish_reason | "stop" or "length" | for `complete` | "length" = cut at max_new_tokens |
| num_tokens | int | for `length` | completion tokens (the teacher's tokenizer) |
| id, sample_index | string, int | no | the trace's id (default sample_id/row) and its index among the problem's |
| meta | JSON string or object | no | the problem's metadata |
| messages | chat messages | no | prompt + the assistant's completion (TRL's conversational format) |
| teacher, teacher_revision, backend, sampling, task, task_args, rlvr_version | | no | provenance (generate) |

Torch-free; pyarrow is imported only when a parquet file is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlvr.types import Message, Sample
from tasks.base import ListTask, register_task
from tasks.loading import Row, read_file, require, require_str

REQUIRED = {"sample_id": "the problem's id", "prompt": "chat messages or a string", "completion": "the trace text"}
# fields a filter reads, and what it expects there
FILTER_NEEDS = {
    "complete": {"finish_reason": "'stop' or 'length'"},
    "length": {"num_tokens": "the completion's token count"},
}
FINISH_REASONS = ("stop", "length")


def trace_files(path: str) -> list[Path]:
    """The files of a trace dataset: `path` itself, or the `*.parquet` files of a folder in name order."""
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.glob("*.parquet") if not f.name.startswith("."))
        if not files:
            raise FileNotFoundError(f"trace folder {path} holds no *.parquet files")
        return files
    if not p.is_file():
        raise FileNotFoundError(f"trace file not found: {path}")
    return [p]


def prompt_messages(value: Any, where: str) -> list[Message]:
    """The `prompt` field as chat messages (a string is one user turn)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    ok = isinstance(value, list) and value and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    )
    if not ok:
        raise ValueError(f"{where}: field 'prompt' should be a string or a non-empty list of "
                         f'{{"role": ..., "content": ...}} messages, got {str(value)[:80]!r}')  # fmt: skip
    return [{"role": m["role"], "content": m["content"]} for m in value]


def meta_of(row: Row, where: str) -> dict[str, Any]:
    meta = row.get("meta")
    if meta is None:
        return {}
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: field 'meta' is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: field 'meta' should be an object (or its JSON), got {type(meta).__name__}")
    return meta


def check_row(row: Row, where: str, needs: dict[str, str]) -> None:
    """The fields every trace has, plus `needs` (field -> what is expected), are present and well typed."""
    for field, expected in {**REQUIRED, **needs}.items():
        require(row, field, where, expected)
    require_str(row, "sample_id", where, REQUIRED["sample_id"])
    if not isinstance(row["completion"], str):
        raise ValueError(f"{where}: field 'completion' should be a string, got {type(row['completion']).__name__}")
    prompt_messages(row["prompt"], where)
    if "finish_reason" in needs and row["finish_reason"] not in FINISH_REASONS:
        raise ValueError(f"{where}: field 'finish_reason' should be one of {FINISH_REASONS}, got {row['finish_reason']!r}")
    if "num_tokens" in needs and (isinstance(row["num_tokens"], bool) or not isinstance(row["num_tokens"], int)):
        raise ValueError(f"{where}: field 'num_tokens' should be an integer, got {row['num_tokens']!r}")


def read_traces(path: str, needs: dict[str, str] | None = None) -> list[tuple[str, Row]]:
    """Every row of the trace dataset at `path` with where it came from ("traces/shard-00000.parquet, row 3"),
    each checked for the required fields and `needs`."""
    rows = []
    for f in trace_files(path):
        for where, row in read_file(str(f)):
            check_row(row, where, needs or {})
            rows.append((where, row))
    return rows


def trace_id(row: Row, n: int) -> str:
    """The row's own id, else sample_id/sample_index, else sample_id/#n (n = its place in the dataset)."""
    if row.get("id") is not None:
        return str(row["id"])
    if row.get("sample_index") is not None:
        return f"{row['sample_id']}/{row['sample_index']}"
    return f"{row['sample_id']}/#{n}"


def trace_sample(row: Row, where: str) -> Sample:
    """The problem a trace answers, as the verifier reads it (id = the problem's id)."""
    ref = row.get("reference")
    return Sample(id=str(row["sample_id"]), prompt=prompt_messages(row["prompt"], where),
                  reference=None if ref is None else str(ref), tests=row.get("tests"), meta=meta_of(row, where))  # fmt: skip


class TraceTask(ListTask):
    """One sample per trace (id = the trace's id); its SFT target is the trace."""

    def sft_text(self, sample: Sample) -> str:
        return sample.meta["trace"]


@register_task("traces")
def traces_task(path: str, default_verifier: str = "math") -> TraceTask:
    """The traces at `path` (a file or a folder of parquet shards) as SFT examples: prompt -> completion."""
    samples = []
    seen: dict[str, str] = {}
    for n, (where, row) in enumerate(read_traces(path)):
        s = trace_sample(row, where)
        tid = trace_id(row, n)
        if tid in seen:
            raise ValueError(f"{where}: trace id {tid!r} is also at {seen[tid]}; trace ids must be unique")
        seen[tid] = where
        samples.append(Sample(id=tid, prompt=s.prompt, reference=s.reference, tests=s.tests,
                              meta={**s.meta, "trace": row["completion"], "sample_id": s.id}))  # fmt: skip
    return TraceTask(samples, default_verifier=default_verifier, name=f"traces:{path}")
