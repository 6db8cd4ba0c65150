"""`rlvr distill CONFIG`: off-policy distillation in three stages, each runnable alone.

1. generate (`rlvr.distill.generate`): K traces per problem of `task` from `distill.teacher` into
   `run_dir/traces/` (or `distill.traces`), parquet shards with provenance, resumable;
2. filter (`rlvr.distill.filters`): the configured filters in order over those traces (or any trace file of
   the schema in `tasks.traces`), leaving `run_dir/filtered/{kept,rejected}.parquet` and
   `filter_report.{json,md}` (rows in and out per filter; every problem left without a trace);
3. train: the SFT trainer (`rlvr.trainers.sft`: prompt-masked, `sft.packing`) on the kept traces, in
   `run_dir/sft/`, with the student's held-out accuracy on `eval.task` before (`run_dir/eval_before/`) and
   after (`run_dir/eval_after/`) through `rlvr.evaluate`. It reads `filtered/kept.parquet` when the
   configured stages include filter, else the traces themselves (`distill.stages: [train]` with
   `distill.traces: elsewhere.parquet` is SFT on traces made elsewhere).
`distill_summary.json` gathers each stage's numbers. `rlvr train` runs an `algorithm: distill` config through
`train(cfg)` (all configured stages). Checked before any stage runs: stage and filter names, the options a
filter needs, and that the student's tokenizer has a chat template (without one the student would be
trained on prompts rendered unlike the teacher's; that is an error, not a silent plain-text default).

What it does not: on-policy distillation (`algorithm: opd`, `rlvr.trainers.opd`), or logit distillation.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rlvr.config import ComponentConfig, TrainConfig
from rlvr.distill import filters as F
from rlvr.distill.generate import generate, write_parquet
from tasks.traces import FILTER_NEEDS, read_traces

STAGES = ("generate", "filter", "train")
FILTERS = ("complete", "verified", "length", "dedup", "near_dedup", "decontaminate")
KEEP = ("all", "best")


def traces_path(cfg: TrainConfig) -> Path:
    return Path(cfg.distill.traces) if cfg.distill.traces else Path(cfg.run_dir) / "traces"


def filtered_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.run_dir) / "filtered"


def sft_input(cfg: TrainConfig) -> Path:
    return filtered_dir(cfg) / "kept.parquet" if "filter" in cfg.distill.stages else traces_path(cfg)


def check_config(cfg: TrainConfig, stages: list[str]) -> None:
    dc = cfg.distill
    for s in list(dc.stages) + stages:
        if s not in STAGES:
            raise ValueError(f"distill stage {s!r} is not one of {STAGES}")
    for f in dc.filters:
        if f not in FILTERS:
            raise ValueError(f"distill.filters: {f!r} is not one of {FILTERS}")
    if dc.keep not in KEEP:
        raise ValueError(f"distill.keep: {dc.keep!r} is not one of {KEEP}")
    if dc.keep == "best" and "verified" not in dc.filters:
        raise ValueError("distill.keep: best ranks traces by their verifier score; put 'verified' in distill.filters")
    if "length" in dc.filters and dc.max_tokens <= 0:
        raise ValueError("distill.filters has 'length' but distill.max_tokens is not set (> 0)")
    if "decontaminate" in dc.filters and not (dc.decontaminate.name or cfg.eval.task.name):
        raise ValueError("distill.filters has 'decontaminate' but names no task: set distill.decontaminate.name "
                         "(or eval.task)")  # fmt: skip
    if "train" in stages:
        from rlvr.policy import load_tokenizer
        from rlvr.tiny_models import resolve_model_path

        if not cfg.model.name_or_path:
            raise ValueError("model.name_or_path is empty: name the student model")
        tok = load_tokenizer(resolve_model_path(cfg.model.name_or_path))
        if not tok.chat_template:
            raise ValueError(f"student model.name_or_path={cfg.model.name_or_path!r}: its tokenizer has no chat "
                             "template, so the traces' chat prompts cannot be rendered as the teacher saw them; use "
                             "a student whose tokenizer_config.json has a chat_template (an instruct model, or "
                             "add one)")  # fmt: skip


def _verifier_name(cfg: TrainConfig) -> str:
    if cfg.verifier.name:
        return cfg.verifier.name
    if cfg.task.name:
        from rlvr.trainers.runtime import build_task

        return build_task(cfg.task, "task").default_verifier
    raise ValueError("the 'verified' filter needs a verifier: set verifier.name (or task, whose default it uses)")


def build_filters(cfg: TrainConfig, pool) -> list[F.Filter]:
    """The configured filters in order (the verifier's work goes through `pool`)."""
    from rlvr.distill.provenance import verifier_version
    from rlvr.trainers.runtime import build_task
    from tasks.traces import trace_sample

    dc = cfg.distill
    out = []
    for name in dc.filters:
        if name == "complete":
            out.append(F.Filter(name, F.complete))
        elif name == "length":
            out.append(F.Filter(name, F.length(dc.max_tokens)))
        elif name == "dedup":
            out.append(F.Filter(name, F.dedup))
        elif name == "near_dedup":
            out.append(F.Filter(name, F.near_dedup(dc.near_dup_ngram, dc.near_dup_threshold)))
        elif name == "decontaminate":
            task_cfg = dc.decontaminate if dc.decontaminate.name else cfg.eval.task
            prompts = [F.prompt_text(s.prompt) for s in build_task(task_cfg, "distill.decontaminate")]
            label = f"{task_cfg.name} {json.dumps(task_cfg.args, sort_keys=True)}"
            out.append(F.Filter(name, F.decontaminate(prompts, dc.decontam_ngram, label)))
        else:  # verified
            vname = _verifier_name(cfg)
            args = dict(cfg.verifier.args)

            def verify(rows: list[F.Row], vname: str = vname, args: dict = args) -> list:
                samples = [trace_sample(r, r["_where"]) for r in rows]
                return pool.verify_batch(vname, args, [r["completion"] for r in rows], samples)

            out.append(F.Filter(name, F.verified(verify, vname, verifier_version(vname))))
    if dc.keep == "best":
        out.append(F.Filter("keep_best", F.keep_best))
    return out


def run_filter(cfg: TrainConfig) -> dict[str, Any]:
    from verifiers.pool import VerifierPool

    dc = cfg.distill
    needs = {k: v for f in dc.filters for k, v in FILTER_NEEDS.get(f, {}).items()}
    rows = []
    for where, row in read_traces(str(traces_path(cfg)), needs):
        if "verified" in dc.filters and row.get("reference") is None and row.get("tests") is None:
            raise ValueError(f"{where}: missing field 'reference' (expected the gold answer; or 'tests' for code), "
                             f"which the 'verified' filter checks the trace against")  # fmt: skip
        rows.append({**row, "_where": where})
    with VerifierPool(num_workers=cfg.verifier.num_workers, timeout_s=cfg.verifier.timeout_s,
                      preload=tuple(cfg.verifier.preload)) as pool:  # fmt: skip
        kept, rejected, report = F.apply_filters(rows, build_filters(cfg, pool))
    out = filtered_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("kept.parquet", kept), ("rejected.parquet", rejected)):
        write_parquet([{k: v for k, v in r.items() if k != "_where"} for r in part], out / name)
    (out / "filter_report.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    (out / "filter_report.md").write_text(F.report_markdown(report))
    print(F.report_markdown(report), end="")
    print(f"kept traces: {out / 'kept.parquet'}  report: {out / 'filter_report.md'}")
    return {"rows_in": len(rows), "rows_kept": len(kept), "prompts_in": report.prompts_in,
            "prompts_kept": report.prompts_out, "prompts_without_trace": len(report.prompts_without_trace)}  # fmt: skip


def evaluate_model(cfg: TrainConfig, model_path: str, out_dir: Path) -> dict[str, float]:
    """`rlvr.evaluate` of the model at `model_path` on `eval.task`, outputs in `out_dir`; its log metrics."""
    from rlvr.evaluate import evaluate, spec_from_config, write_outputs
    from rlvr.evaluate.command import _max_positions, load_model
    from rlvr.generation import build_generator
    from rlvr.trainers.runtime import build_task
    from verifiers.pool import VerifierPool

    task = build_task(cfg.eval.task, "eval.task")
    spec = spec_from_config(cfg, task=cfg.eval.task, verifier=cfg.verifier.name or task.default_verifier, model=model_path)
    model, tok, engine_path, push = load_model(replace(cfg.model, name_or_path=model_path), cfg.generation.backend)
    generator = build_generator(cfg.generation, model, tok, engine_path)
    if push:
        generator.update_weights(model)
    max_prompt_len = _max_positions(model, engine_path) - spec.generation["max_new_tokens"]
    with VerifierPool(num_workers=cfg.verifier.num_workers, timeout_s=cfg.verifier.timeout_s,
                      preload=tuple(cfg.verifier.preload)) as pool:  # fmt: skip
        result = evaluate(list(task), generator, tok, pool, spec, max_prompt_len=max_prompt_len, progress=False)
    write_outputs(result, out_dir, plots=False)
    return result.log_metrics()


def run_train(cfg: TrainConfig) -> dict[str, Any]:
    from rlvr.trainers import sft

    run_dir = Path(cfg.run_dir)
    data = sft_input(cfg)
    if data.is_file() and not read_traces(str(data)):
        raise ValueError(f"{data} holds no trace: nothing survived the filters (see {filtered_dir(cfg)}/filter_report.md)")
    out: dict[str, Any] = {}
    if cfg.eval.task.name:
        out["accuracy_before"] = evaluate_model(cfg, cfg.model.name_or_path, run_dir / "eval_before")["accuracy"]
    sft_cfg = replace(cfg, algorithm="sft", run_dir=str(run_dir / "sft"), task=ComponentConfig("traces", {"path": str(data)}))
    out["sft"] = sft.train(sft_cfg)
    final = run_dir / "sft" / "final"
    out["student"] = str(final)
    if cfg.eval.task.name:
        out["accuracy_after"] = evaluate_model(cfg, str(final), run_dir / "eval_after")["accuracy"]
        print(f"student held-out accuracy: {out['accuracy_before']:.3f} -> {out['accuracy_after']:.3f}  "
              f"({cfg.eval.task.name}, {run_dir / 'eval_after'})")  # fmt: skip
    return out


def run(cfg: TrainConfig, stages: list[str] | None = None) -> dict[str, Any]:
    """Run `stages` (default: `distill.stages`) in pipeline order; returns and saves each stage's numbers."""
    stages = list(stages or cfg.distill.stages)
    check_config(cfg, stages)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary_file = run_dir / "distill_summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    for stage in [s for s in STAGES if s in stages]:
        t0 = time.perf_counter()
        if stage == "generate":
            print(f"[generate] {cfg.generation.num_generations} traces per problem from {cfg.distill.teacher} "
                  f"-> {traces_path(cfg)}")  # fmt: skip
            result = generate(cfg, traces_path(cfg))
        elif stage == "filter":
            print(f"[filter] {', '.join(cfg.distill.filters)} (keep {cfg.distill.keep}) on {traces_path(cfg)}")
            result = run_filter(cfg)
        else:
            print(f"[train] SFT of {cfg.model.name_or_path} on {sft_input(cfg)}")
            result = run_train(cfg)
        summary[stage] = {**result, "seconds": round(time.perf_counter() - t0, 1)}
        summary_file.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def train(cfg: TrainConfig) -> dict[str, float]:
    """`rlvr train` with `algorithm: distill`: every configured stage; the numbers a trainer returns."""
    summary = run(cfg)
    flat = {}
    for stage, numbers in summary.items():
        flat.update({f"{stage}/{k}": float(v) for k, v in numbers.items() if isinstance(v, (int, float))})
    return flat
