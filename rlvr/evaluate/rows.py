"""`samples.jsonl`: one row per (problem, sample) of an evaluation, written and read back.

A row holds everything the summary is computed from (correctness, score, extracted answer, verifier error,
length, finish reason, the breakdown fields of the problem's `meta`) plus what a person needs to read it
(completion, reference answer, the verifier's `info`, the prompt's hash, the sampling seed). Reading checks
every line and names the file, line and field that is wrong; nothing is skipped.

What it does not do: generate or score (`rlvr.evaluate.run`), summarize (`rlvr.evaluate.summary`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.loading import read_file

SAMPLES_FILE = "samples.jsonl"


@dataclass
class EvalRow:
    problem_id: str
    sample_index: int  # 0 .. n-1 within the problem
    prompt_hash: str  # sha256 of the rendered prompt text (first 16 hex digits)
    completion: str
    extracted_answer: str | None  # the verifier's `info["pred"]`; None = no answer
    correct: bool
    score: float
    verifier_error: str | None  # not None: the sample could not be judged and counts in no metric but the errors
    num_tokens: int
    finish_reason: str  # "stop" | "length"
    seed: int | None  # the sampling seed of the evaluation (backends derive a stream per sequence from it)
    reference: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # the problem's breakdown fields (level, subject, ...)
    verifier_info: dict[str, Any] = field(default_factory=dict)


FIELDS = {f.name: f for f in dataclasses.fields(EvalRow)}
REQUIRED = [name for name, f in FIELDS.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]  # fmt: skip
# the JSON types each field accepts (bool is not an int here, an int is a float)
TYPES: dict[str, tuple[type, ...]] = {
    "problem_id": (str,), "sample_index": (int,), "prompt_hash": (str,), "completion": (str,),
    "extracted_answer": (str, type(None)), "correct": (bool,), "score": (float, int),
    "verifier_error": (str, type(None)), "num_tokens": (int,), "finish_reason": (str,),
    "seed": (int, type(None)), "reference": (str, type(None)), "meta": (dict,), "verifier_info": (dict,),
}  # fmt: skip


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_rows(rows: list[EvalRow], path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for r in rows:
            f.write(json.dumps(dataclasses.asdict(r), default=repr) + "\n")
    tmp.replace(path)  # a crash mid-write leaves the previous file, never half a file
    return path


def _row(obj: dict[str, Any], where: str) -> EvalRow:
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for key, value in obj.items():
        ok = isinstance(value, TYPES[key]) and not (isinstance(value, bool) and bool not in TYPES[key])
        if not ok:
            want = " or ".join("null" if t is type(None) else t.__name__ for t in TYPES[key])
            raise ValueError(f"{where}: field {key!r} should be {want}, got {value!r}")
    if obj["finish_reason"] not in ("stop", "length"):
        raise ValueError(f"{where}: field 'finish_reason' should be 'stop' or 'length', got {obj['finish_reason']!r}")
    return EvalRow(**{**obj, "score": float(obj["score"])})


def read_rows(path: str | Path) -> list[EvalRow]:
    """All rows of a samples.jsonl; a bad line is an error naming the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (an evaluation run directory holds {SAMPLES_FILE})")
    rows = [_row(obj, where) for where, obj in read_file(str(path))]
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows
