"""Evaluation: what a checkpoint can do on a task, with numbers you can trust.

`evaluate(samples, generator, tokenizer, pool, spec) -> EvalResult` generates n samples per problem, verifies
them and summarizes: unbiased pass@k, maj@k, avg@n, mean reward, verifier errors, lengths, truncation, each
with a standard error over problems and a 95% two-level bootstrap interval; `write_outputs(result, dir)`
leaves samples.jsonl, summary.json, summary.md and plots. `rlvr eval` (`command.run`) and every trainer's
periodic evaluation use these; `command.rescore` recomputes a summary from samples.jsonl.

Modules: `estimators` (pure pass@k, maj@k, stderr), `bootstrap` (intervals), `rows` (samples.jsonl),
`summary` (rows -> metrics), `run` (generate + verify -> rows), `report` (files, plots), `command` (CLI).
"""

from rlvr.evaluate.estimators import default_ks, maj_at_k, mean_stderr, pass_at_k
from rlvr.evaluate.report import write_outputs
from rlvr.evaluate.rows import EvalRow, read_rows
from rlvr.evaluate.run import check_samples, evaluate, spec_from_config
from rlvr.evaluate.summary import EvalResult, EvalSpec, summarize

__all__ = [
    "EvalResult", "EvalRow", "EvalSpec", "check_samples", "default_ks", "evaluate", "maj_at_k", "mean_stderr",
    "pass_at_k", "read_rows", "spec_from_config", "summarize", "write_outputs",
]  # fmt: skip
