"""`rlvr eval CONFIG` and `rlvr eval --rescore RUN_DIR`: an evaluation from a config, start to finish.

`run(cfg)` evaluates `model` on `eval.task` (or, when that is empty, `task`) with the `eval` block's n, k and
sampling, and writes its outputs (`rlvr.evaluate.report`) to `run_dir` for an `algorithm: eval` config, or to
`run_dir/eval` for a training config. The model may be a tiny model's name, a local directory, a hub name or
a LoRA adapter directory (`adapter_config.json`: loaded onto its base model and merged), generated from with
HF `generate` or vLLM (`generation.backend`). `train = run`, so `rlvr train` runs an `algorithm: eval` config.
What can be checked before any generation is: k against n, greedy sampling with n > 1, the output directory
(created and written to), the task (registered, not empty, unique ids) and the model.

`rescore(run_dir)` recomputes summary.json, summary.md and the plots from samples.jsonl and eval_spec.json
without generating; with `reverify`, it first runs the verifier again on the stored completions (after a
verifier fix), checking each row's problem against the task.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import torch

from rlvr.config import TrainConfig, to_dict
from rlvr.evaluate.report import markdown, prepare_output_dir, read_spec, write_outputs, write_summary
from rlvr.evaluate.rows import SAMPLES_FILE, read_rows, write_rows
from rlvr.evaluate.run import check_samples, evaluate, spec_from_config
from rlvr.evaluate.summary import EvalResult, EvalSpec, summarize
from rlvr.generation import build_generator
from rlvr.policy import LoraConfig, ModelConfig, load_policy, load_tokenizer
from rlvr.tiny_models import resolve_model_path
from rlvr.types import Sample
from tasks.base import get_task
from verifiers.pool import VerifierPool


def output_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.run_dir) if cfg.algorithm == "eval" else Path(cfg.run_dir) / "eval"


def _device() -> torch.device:
    acc = getattr(torch, "accelerator", None)  # torch >= 2.6 knows CUDA, XPU, MPS, ...
    if acc is not None and acc.is_available():
        return acc.current_accelerator()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(mc: ModelConfig, backend: str) -> tuple[torch.nn.Module | None, object, str, bool]:
    """(model, tokenizer, path the generation engine loads, whether weights must be pushed into it).

    A LoRA adapter directory is loaded onto its base and merged; vLLM then starts from the base and gets the
    merged weights pushed. Plain vLLM needs no HF model in this process (None)."""
    path = resolve_model_path(mc.name_or_path) if mc.name_or_path else ""
    plain = replace(mc, lora=LoraConfig(r=0))  # a training config's LoRA settings mean nothing here
    adapter = Path(os.path.expanduser(path)) / "adapter_config.json" if path else None
    if adapter is not None and adapter.is_file():
        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        if not base:
            raise ValueError(f"{adapter}: no base_model_name_or_path; cannot tell which model the adapter is for")
        from peft import PeftModel

        model, tok = load_policy(replace(plain, name_or_path=base))
        if (adapter.parent / "tokenizer_config.json").is_file():
            tok = load_tokenizer(str(adapter.parent))
        model = PeftModel.from_pretrained(model, str(adapter.parent)).merge_and_unload()
        return model.to(_device()).eval(), tok, resolve_model_path(base), backend == "vllm"
    if backend == "vllm" and path:
        try:
            return None, load_tokenizer(path), path, False
        except OSError as e:
            raise FileNotFoundError(f"model.name_or_path={path!r}: no tokenizer there ({e})") from e
    model, tok = load_policy(plain)
    return model.to(_device()).eval(), tok, path, False


def _max_positions(model: torch.nn.Module | None, path: str) -> int:
    if model is not None:
        config = model.config
    else:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path)
    return getattr(config, "max_position_embeddings", None) or 10**9


def _task_samples(spec: EvalSpec) -> tuple[list[Sample], str]:
    task = get_task(spec.task["name"], **spec.task["args"])
    return [task[i] for i in range(len(task))], task.default_verifier


def run(cfg: TrainConfig) -> dict[str, float]:
    task_cfg = cfg.eval.task if cfg.eval.task.name else cfg.task
    if not task_cfg.name:
        raise ValueError("eval.task.name (or task.name) is empty: name a registered task (see `rlvr list`)")
    spec = spec_from_config(cfg, task=task_cfg, verifier=cfg.verifier.name, model=cfg.model.name_or_path)
    out = prepare_output_dir(output_dir(cfg))
    samples, default_verifier = _task_samples(spec)
    spec = replace(spec, verifier={**spec.verifier, "name": cfg.verifier.name or default_verifier})
    check_samples(samples, spec)
    (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    model, tok, engine_path, push = load_model(cfg.model, cfg.generation.backend)
    generator = build_generator(cfg.generation, model, tok, engine_path)
    if push:
        generator.update_weights(model)
    max_prompt_len = _max_positions(model, engine_path) - spec.generation["max_new_tokens"]
    with _pool(spec) as pool:
        result = evaluate(samples, generator, tok, pool, spec, max_prompt_len=max_prompt_len)
    write_outputs(result, out)
    print(markdown(result))
    print(f"outputs: {out}")
    _raise_if_nothing_scored(result, out)
    return result.log_metrics()


train = run  # `rlvr train` dispatches `algorithm: eval` here


def _pool(spec: EvalSpec) -> VerifierPool:
    v = spec.verifier
    return VerifierPool(num_workers=v.get("num_workers", 2), timeout_s=v.get("timeout_s", 5.0),
                        preload=tuple(v.get("preload", ())))  # fmt: skip


def _raise_if_nothing_scored(result: EvalResult, out: Path) -> None:
    if result.metrics["accuracy"] is None:
        n = int(result.metrics["verifier_errors"])
        raise ValueError(f"verifier {result.spec.verifier['name']!r} returned an error on all {n} samples of task "
                         f"{result.spec.task['name']!r}, so nothing could be scored (not an accuracy of 0); "
                         f"first error: {result.first_error!r}; the samples are in {out / SAMPLES_FILE}")  # fmt: skip


def reverify(rows: list, spec: EvalSpec, pool: VerifierPool) -> list:
    """The rows with the verifier run again on their completions; each row's problem must be in the task."""
    samples, _ = _task_samples(spec)
    by_id = {s.id: s for s in samples}
    for r in rows:
        s = by_id.get(r.problem_id)
        if s is None:
            raise ValueError(f"problem {r.problem_id!r} of samples.jsonl is not in task {spec.task['name']!r} "
                             f"(args {spec.task['args']}) any more")  # fmt: skip
        ref = None if s.reference is None else str(s.reference)
        if ref != r.reference:
            raise ValueError(f"problem {r.problem_id!r}: the task's reference is now {ref!r}, samples.jsonl has "
                             f"{r.reference!r}; the task changed since the evaluation")  # fmt: skip
    verdicts = pool.verify_batch(spec.verifier["name"], spec.verifier["args"], [r.completion for r in rows],
                                 [by_id[r.problem_id] for r in rows])  # fmt: skip
    out = []
    for r, vd in zip(rows, verdicts):
        pred = vd.info.get("pred")
        out.append(replace(r, extracted_answer=None if pred is None else str(pred), correct=bool(vd.correct),
                           score=float(vd.score), verifier_error=vd.error,
                           verifier_info={k: x for k, x in vd.info.items() if k != "verify_s"}))  # fmt: skip
    return out


def rescore(run_dir: str | Path, *, reverify_rows: bool = False) -> EvalResult:
    d = Path(run_dir)
    spec = read_spec(d)
    rows = read_rows(d / SAMPLES_FILE)
    if reverify_rows:
        with _pool(spec) as pool:
            new = reverify(rows, spec, pool)
        write_rows(rows, d / "samples.before_reverify.jsonl")  # kept, to diff what the fix changed
        write_rows(new, d / SAMPLES_FILE)
        rows = new
    result = summarize(rows, spec)
    write_summary(result, d)
    print(markdown(result))
    _raise_if_nothing_scored(result, d)
    return result

