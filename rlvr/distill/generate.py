"""Stage 1 of `rlvr distill`: K traces per prompt from a teacher, in parquet shards a killed run resumes.

What it does: takes the problems of `task` in order, cuts them into shards of `distill.shard_size` problems,
and for each shard not yet on disk samples `generation.num_generations` completions per problem from
`distill.teacher` (a tiny model's name, a local directory, a hub name, or a LoRA adapter directory) through
HF `generate` or vLLM (`generation.backend`), then writes the shard whole: a temporary file, fsync, rename.
A shard on disk is therefore complete, and a run killed at any moment (SIGKILL included) continues with
the first missing shard, never writing a trace twice. Shard i samples under seed `seed * 1_000_003 + i`, so
a resumed run writes what an uninterrupted one would have (HF backend; vLLM's batching may differ).
Every row carries its provenance (`tasks.traces` lists the fields): teacher and revision, backend, sampling
parameters and the shard's seed, finish reason, token count, task and problem id, rlvr's version.
`.generate.json` records what was asked; resuming into a folder made with another teacher, revision, task,
sampling or seed is an error naming what differs (mixing them would make one dataset of two experiments).

What it does not: verify or filter (stage 2, `rlvr.distill.filters`), or shard generation across processes
(one process; vLLM's `tensor_parallel_size` spreads a large teacher over GPUs).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import rlvr
from rlvr.config import TrainConfig
from rlvr.distill.provenance import teacher_revision
from rlvr.types import Completion, Sample

SHARD = "shard-{:05d}.parquet"
MANIFEST = ".generate.json"  # hidden, so `datasets` and pyarrow read the folder as parquet shards only
SEED_STRIDE = 1_000_003


def shard_seed(seed: int, index: int) -> int:
    return seed * SEED_STRIDE + index


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    """`rows` as one parquet file at `path`, written whole: a killed writer leaves only a hidden temporary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(f".tmp-{path.name}")
    with tmp.open("wb") as fh:
        pq.write_table(pa.Table.from_pylist(rows), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def identity(cfg: TrainConfig, revision: str) -> dict[str, Any]:
    """What the traces in one folder must share (.generate.json)."""
    g = cfg.generation
    return {
        "teacher": cfg.distill.teacher,
        "teacher_revision": revision,
        "task": {"name": cfg.task.name, "args": dict(cfg.task.args)},
        "backend": g.backend,
        "num_generations": g.num_generations,
        "sampling": sampling_record(cfg, None),
        "seed": cfg.seed,
        "shard_size": cfg.distill.shard_size,
    }


def sampling_record(cfg: TrainConfig, seed: int | None) -> dict[str, Any]:
    g = cfg.generation
    return {"temperature": g.temperature, "top_p": g.top_p, "top_k": g.top_k, "max_new_tokens": g.max_new_tokens,
            "stop": list(g.stop), "seed": seed}  # fmt: skip


def check_manifest(out: Path, want: dict[str, Any]) -> None:
    path = out / MANIFEST
    if path.is_file():
        have = json.loads(path.read_text())
        diff = [k for k in want if have.get(k) != want[k]]
        if diff:
            lines = "; ".join(f"{k}: {have.get(k)!r} there, {want[k]!r} now" for k in diff)
            raise ValueError(f"{out} holds traces of another generation ({lines}); give another run_dir or "
                             f"distill.traces, or delete the folder to start again")  # fmt: skip
        return
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(want, indent=2) + "\n")
    os.replace(tmp, path)


def trace_rows(cfg: TrainConfig, samples: list[Sample], groups: list[list[Completion]], revision: str,
               seed: int) -> list[dict[str, Any]]:
    """One row per (problem, completion), with its provenance."""
    rows = []
    for s, group in zip(samples, groups):
        prompt = s.messages()
        for j, c in enumerate(group):
            rows.append({
                "id": f"{s.id}/{j}", "sample_id": s.id, "sample_index": j,
                "prompt": prompt, "completion": c.text,
                "messages": prompt + [{"role": "assistant", "content": c.text}],
                "reference": None if s.reference is None else str(s.reference), "tests": s.tests,
                "meta": json.dumps(s.meta, sort_keys=True, default=str),
                "task": cfg.task.name, "task_args": json.dumps(cfg.task.args, sort_keys=True),
                "teacher": cfg.distill.teacher, "teacher_revision": revision, "backend": cfg.generation.backend,
                "sampling": sampling_record(cfg, seed),
                "finish_reason": c.finish_reason, "num_tokens": len(c.token_ids),
                "rlvr_version": rlvr.__version__,
            })  # fmt: skip
    return rows


def generate(cfg: TrainConfig, out: Path, *, progress: bool = True) -> dict[str, int]:
    """Write the missing shards of `cfg`'s traces into `out`; returns counts (shards, written, rows)."""
    from rlvr.evaluate.command import _max_positions, load_model
    from rlvr.generation import build_generator
    from rlvr.rollout import tokenize_prompts
    from rlvr.trainers.runtime import build_task

    dc = cfg.distill
    if not dc.teacher:
        raise ValueError("distill.teacher is empty: name the model that writes the traces (a tiny model, a local "
                         "directory or a hub name)")  # fmt: skip
    if dc.shard_size < 1:
        raise ValueError(f"distill.shard_size must be >= 1, got {dc.shard_size}")
    samples = list(build_task(cfg.task, "task"))
    if not samples:
        raise ValueError(f"task {cfg.task.name!r} (args {cfg.task.args}) has no samples to generate traces for")
    seen: dict[str, int] = {}
    for i, s in enumerate(samples):
        if s.id in seen:
            raise ValueError(f"task {cfg.task.name!r}: samples {seen[s.id]} and {i} share the id {s.id!r}")
        seen[s.id] = i
    out.mkdir(parents=True, exist_ok=True)
    n_shards = math.ceil(len(samples) / dc.shard_size)
    todo = [i for i in range(n_shards) if not (out / SHARD.format(i)).is_file()]
    counts = {"shards": n_shards, "written": 0, "traces": len(samples) * cfg.generation.num_generations}
    if not todo:
        return counts
    revision = teacher_revision(dc.teacher)
    check_manifest(out, identity(cfg, revision))
    mc = replace(cfg.model, name_or_path=dc.teacher, dtype=dc.teacher_dtype or cfg.model.dtype)
    model, tok, engine_path, push = load_model(mc, cfg.generation.backend)
    generator = build_generator(cfg.generation, model, tok, engine_path)
    if push:
        generator.update_weights(model)
    max_prompt_len = _max_positions(model, engine_path) - cfg.generation.max_new_tokens
    bar = tqdm(todo, desc="generate", unit="shard", disable=not progress, dynamic_ncols=True)
    for i in bar:
        part = samples[i * dc.shard_size : (i + 1) * dc.shard_size]
        seed = shard_seed(cfg.seed, i)
        sampling = cfg.generation.sampling(seed=seed)
        groups = generator.generate(tokenize_prompts(tok, part, max_prompt_len), cfg.generation.num_generations, sampling)
        write_parquet(trace_rows(cfg, part, groups, revision, seed), out / SHARD.format(i))
        counts["written"] += 1
    return counts
