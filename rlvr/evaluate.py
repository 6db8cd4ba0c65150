"""Evaluation of a policy on a task: accuracy, mean reward, verifier errors.

Generates `samples_per_problem` completions per sample (greedy by default)
through any `Generator` and scores them in the verification pool; accuracy is
the mean over all completions (pass@1). No gradients, no training state.
"""

from __future__ import annotations

from rlvr.generation.base import Generator, SamplingParams
from rlvr.rollout import generate_and_verify, tokenize_prompts
from rlvr.types import Sample
from verifiers.pool import VerifierPool


def evaluate(
    samples: list[Sample],
    generator: Generator,
    tokenizer,
    pool: VerifierPool,
    verifier: tuple[str, dict],
    *,
    max_new_tokens: int,
    max_prompt_len: int = 10**9,
    temperature: float = 0.0,
    samples_per_problem: int = 1,
) -> dict[str, float]:
    if not samples:
        raise ValueError("evaluation task has no samples")
    prompt_ids = tokenize_prompts(tokenizer, samples, max_prompt_len)
    sampling = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens)
    ro = generate_and_verify(samples, prompt_ids, generator, pool, verifier, samples_per_problem, sampling)
    n = len(samples) * samples_per_problem
    return {
        "accuracy": float(ro.correct().sum()) / n,
        "reward": float(ro.rewards().sum()) / n,
        "verifier_errors": float(ro.errors().sum()),
        "completion_len": sum(len(c.token_ids) for g in ro.completions for c in g) / n,
        "num_samples": float(n),
    }
