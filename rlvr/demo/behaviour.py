"""What a model does on held-out arithmetic problems, beyond its accuracy: the demo's before/after table.

`measure` samples completions from a checkpoint for the problems (greedy by default, through the same
`Generator`, rollout and verifier pool the trainers use) and `summarize` turns them into the numbers that
explain an accuracy: how often a completion shows its steps, how many steps it writes against how many
the problem needs, how many of those steps are right arithmetic, how often it carries out the whole
worked solution, and how long it is.

What it does not: replace `rlvr eval` (pass@k, intervals, samples.jsonl; the two are to be unified), or
read traces other than the arithmetic task's ("12+7=19. 19-3=16. \\boxed{16}").
"""

from __future__ import annotations

from rlvr.types import Completion, Sample
from tasks.arithmetic import read_steps, solve, step_is_right
from verifiers.base import Verdict

# name -> what the demo prints for it
COUNTS = ("steps", "steps_needed")  # printed with 2 decimals, "length" with none, the fractions with 3
LABELS = {
    "accuracy": "accuracy (the verifier's verdict)",
    "shows_steps": "completions that show steps",
    "steps": "steps written per completion",
    "steps_needed": "steps the problems need",
    "steps_right": "steps that are right arithmetic",
    "worked": "completions that carry out every step",
    "length": "completion length (tokens)",
}


def summarize(
    samples: list[Sample], completions: list[list[Completion]], verdicts: list[list[Verdict]]
) -> dict[str, float]:
    """Means over all completions (`completions[i]` are the answers to `samples[i]`), except `steps_right`,
    a fraction of all steps written. A verifier error counts as not correct, and is counted in `errors`."""
    n = steps_total = steps_right = 0
    sums = dict.fromkeys(("accuracy", "shows_steps", "steps", "steps_needed", "worked", "length", "errors"), 0.0)
    for sample, group, verdict_group in zip(samples, completions, verdicts, strict=True):
        _, solution = solve(sample.meta["operands"], sample.meta["ops"])
        for c, v in zip(group, verdict_group, strict=True):
            steps = read_steps(c.text)
            n += 1
            steps_total += len(steps)
            steps_right += sum(step_is_right(s) for s in steps)
            sums["accuracy"] += v.correct
            sums["errors"] += v.error is not None
            sums["shows_steps"] += bool(steps)
            sums["steps"] += len(steps)
            sums["steps_needed"] += len(solution)
            sums["worked"] += steps == solution
            sums["length"] += len(c.token_ids)
    if n == 0:
        raise ValueError("summarize: no completions")
    out = {k: v / n for k, v in sums.items()}
    out["errors"] = sums["errors"]
    out["steps_right"] = steps_right / steps_total if steps_total else 0.0
    return out


def measure(
    model_dir: str,
    samples: list[Sample],
    pool,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    samples_per_problem: int = 1,
    verifier: tuple[str, dict] = ("math", {}),
) -> dict[str, float]:
    """`summarize` of the checkpoint at `model_dir` answering `samples` (greedy when `temperature` is 0)."""
    from rlvr.generation.base import SamplingParams
    from rlvr.generation.hf import HFGenerator
    from rlvr.policy import ModelConfig, load_policy
    from rlvr.rollout import generate_and_verify, tokenize_prompts

    model, tok = load_policy(ModelConfig(name_or_path=model_dir))
    model.eval()
    sampling = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens)
    ro = generate_and_verify(
        samples, tokenize_prompts(tok, samples, 10**9), HFGenerator(model, tok), pool, verifier,
        samples_per_problem, sampling,
    )  # fmt: skip
    return summarize(ro.samples, ro.completions, ro.verdicts)


def table(columns: dict[str, dict[str, float]]) -> str:
    """The behaviour lines, one column per model ("after SFT", "after GRPO")."""
    width = max(len(v) for v in LABELS.values()) + 2
    lines = [" " * width + "".join(f"{name:>14}" for name in columns)]
    for key, label in LABELS.items():
        fmt = "{:>14.0f}" if key == "length" else "{:>14.2f}" if key in COUNTS else "{:>14.3f}"
        lines.append(f"{label:<{width}}" + "".join(fmt.format(col[key]) for col in columns.values()))
    return "\n".join(lines)
