"""Generate, score, and lay out rows: `evaluate(samples, generator, tokenizer, pool, spec) -> EvalResult`.

The one evaluation every caller uses (`rlvr eval`, GRPO's periodic evaluation, later trainers): `spec.n`
completions per problem through any `Generator` (HF or vLLM), verified in the `VerifierPool` with the
spec's verifier, one `EvalRow` per (problem, sample), then `summarize`. With a sampling seed, generation runs
under a forked torch RNG, so an evaluation in the middle of training neither reads nor moves the trainer's
random stream (and two evaluations of the same weights sample alike).

What it does not do: load models or tasks (`rlvr.evaluate.command`), write files (`rlvr.evaluate.report`),
shard problems across processes (each process that calls it evaluates every problem).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from tqdm.auto import tqdm

from rlvr.config import ComponentConfig, TrainConfig
from rlvr.evaluate.estimators import default_ks
from rlvr.evaluate.rows import EvalRow, prompt_hash
from rlvr.evaluate.summary import EvalResult, EvalSpec, check_spec, summarize
from rlvr.generation.base import Generator, SamplingParams
from rlvr.policy import render_prompt
from rlvr.rollout import generate_and_verify, tokenize_prompts
from rlvr.types import Sample
from verifiers.pool import VerifierPool

SEQUENCES_PER_CHUNK = 1024  # completions generated and verified per progress-bar step


def spec_from_config(cfg: TrainConfig, *, task: ComponentConfig, verifier: str, model: str) -> EvalSpec:
    """The evaluation a config asks for (its `eval` block; stop strings and backend from `generation`; the
    verifier named `verifier` with `cfg.verifier`'s arguments and pool settings), checked."""
    e, v = cfg.eval, cfg.verifier
    spec = EvalSpec(
        model=model,
        task={"name": task.name, "args": dict(task.args)},
        verifier={"name": verifier, "args": dict(v.args), "num_workers": v.num_workers, "timeout_s": v.timeout_s,
                  "preload": list(v.preload)},
        n=e.samples_per_problem,
        k=list(e.k) if e.k else default_ks(max(e.samples_per_problem, 1)),
        generation={
            "backend": cfg.generation.backend,
            "temperature": e.temperature,
            "top_p": e.top_p,
            "top_k": e.top_k,
            "max_new_tokens": e.max_new_tokens or cfg.generation.max_new_tokens,
            "stop": list(cfg.generation.stop),
            "seed": cfg.seed,
        },
        bootstrap=e.bootstrap,
        seed=cfg.seed,
        breakdown=list(e.breakdown),
    )
    check_spec(spec)
    return spec


def sampling_of(spec: EvalSpec) -> SamplingParams:
    g = spec.generation
    return SamplingParams(
        temperature=g["temperature"], top_p=g["top_p"], top_k=g["top_k"], max_new_tokens=g["max_new_tokens"],
        stop=tuple(g["stop"]), seed=g["seed"], logprobs=False,
    )  # fmt: skip


@contextmanager
def _own_rng(seeded: bool) -> Iterator[None]:
    """Fork torch's RNG (CPU and the current accelerator) when the evaluation seeds its own sampling."""
    if not seeded:
        yield
        return
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        yield


def check_samples(samples: list[Sample], spec: EvalSpec) -> None:
    if not samples:
        raise ValueError(f"eval task {spec.task['name']!r} (args {spec.task['args']}) has no samples")
    seen: dict[str, int] = {}
    for i, s in enumerate(samples):
        if s.id in seen:
            raise ValueError(f"eval task {spec.task['name']!r}: samples {seen[s.id]} and {i} share the id {s.id!r}; "
                             "problem ids must be unique")  # fmt: skip
        seen[s.id] = i


def evaluate(
    samples: list[Sample],
    generator: Generator,
    tokenizer,
    pool: VerifierPool,
    spec: EvalSpec,
    *,
    max_prompt_len: int,
    progress: bool = True,
) -> EvalResult:
    check_spec(spec)
    check_samples(samples, spec)
    verifier = (spec.verifier["name"], spec.verifier["args"])
    hashes = [prompt_hash(render_prompt(tokenizer, s.prompt)) for s in samples]
    prompt_ids = tokenize_prompts(tokenizer, samples, max_prompt_len)
    sampling = sampling_of(spec)
    per_chunk = max(1, SEQUENCES_PER_CHUNK // spec.n)
    rows: list[EvalRow] = []
    bar = tqdm(total=len(samples), desc="eval", unit="problem", disable=not progress, dynamic_ncols=True)
    with _own_rng(sampling.seed is not None), bar:
        for start in range(0, len(samples), per_chunk):
            part = slice(start, start + per_chunk)
            ro = generate_and_verify(samples[part], prompt_ids[part], generator, pool, verifier, spec.n, sampling)
            for s, h, group, verdicts in zip(ro.samples, hashes[part], ro.completions, ro.verdicts):
                rows += [_row(s, h, j, c, v, spec) for j, (c, v) in enumerate(zip(group, verdicts))]
            bar.update(len(ro.samples))
    return summarize(rows, spec)


def _row(s: Sample, h: str, j: int, c, v, spec: EvalSpec) -> EvalRow:
    pred = v.info.get("pred")
    return EvalRow(
        problem_id=s.id,
        sample_index=j,
        prompt_hash=h,
        completion=c.text,
        extracted_answer=None if pred is None else str(pred),
        correct=bool(v.correct),
        score=float(v.score),
        verifier_error=v.error,
        num_tokens=len(c.token_ids),
        finish_reason=c.finish_reason,
        seed=spec.generation["seed"],
        reference=None if s.reference is None else str(s.reference),
        meta={f: s.meta[f] for f in spec.breakdown if f in s.meta},
        verifier_info={k: x for k, x in v.info.items() if k != "verify_s"},  # timing noise out
    )
