"""Synthetic step-labelled arithmetic solutions, some with one wrong step: data a tiny reward model can learn.

A solution is the arithmetic task's trace ("7+2=9. 9-5=4. \\boxed{4}", see `tasks.arithmetic`) cut into steps
at " ": ["7+2=9.", "9-5=4.", "\\boxed{4}"], so a PRM reads exactly the text the policy writes
(`reward_model.step_delimiter: " "`). A corrupted solution gets one wrong step: a computation whose result
is off by a non-zero `delta` (later steps then compute correctly from the wrong value, as a model that slipped
once would), or a boxed answer that differs from the last result. Labels follow Math-Shepherd: a step is good
(1.0) while every step up to it is right, so the wrong step and all after it are 0.0.

- "arithmetic_steps" (a task of step-labelled solutions, for `algorithm: prm`): one solution per problem, corrupted with
  probability `error_fraction`; `meta` carries the reference answer and the index of the wrong step.
- "arithmetic_pairs" (a preference task, for `algorithm: rm` or DPO): per problem, the right solution as chosen
  and a corrupted one as rejected. Unlike `tasks.preference`'s "arithmetic_preference" (slips of 1-3, "+-",
  left to right), slips have a size range (`min_delta`..`max_delta`), products are allowed, and a problem may
  give several pairs: the knobs the reward-model benchmark needs.

Problems come from `tasks.arithmetic.ArithmeticTask` with the same arguments, so `split` keeps train and
test problems apart exactly as the policy's task does. Torch-free.

    >>> ex = corrupted_steps([7, 2, 5], ["+", "-"], error_step=1, delta=3)
    >>> ex
    (['7+2=9.', '9-5=7.', '\\\\boxed{7}'], 7)
"""

from __future__ import annotations

import random

from rlvr.types import PreferencePair
from tasks.arithmetic import ArithmeticTask, solve
from tasks.base import register_task
from tasks.preference import PreferenceData
from tasks.stepwise import StepwiseExample

STEP_DELIMITER = " "  # joins the steps into `trace_text`'s form; a reward model config splits completions on it


def corrupted_steps(operands: list[int], ops: list[str], error_step: int | None = None,
                    delta: int = 0) -> tuple[list[str], int]:
    """(steps, boxed answer) of the trace, with step `error_step` off by `delta` (None: the right solution).

    The steps are the computations in `tasks.arithmetic.solve`'s order (products first, then left to right)
    followed by the boxed answer; `error_step == len(ops)` corrupts the boxed answer only.
    """
    value, steps = solve(operands, ops, error_step, delta)
    answer = value + (delta if error_step == len(steps) else 0)
    return [f"{s}." for s in steps] + [f"\\boxed{{{answer}}}"], answer


def _problems(num_samples: int, seed: int, min_value: int, max_value: int, num_operands: int, ops: str,
              split: str) -> ArithmeticTask:
    return ArithmeticTask(num_samples=num_samples, seed=seed, min_value=min_value, max_value=max_value,
                          num_operands=num_operands, ops=ops, split=split, with_trace=False)  # fmt: skip


def _delta(rng: random.Random, min_delta: int, max_delta: int) -> int:
    """A slip of min_delta..max_delta either way."""
    if not 1 <= min_delta <= max_delta:
        raise ValueError(f"arithmetic_steps: need 1 <= min_delta <= max_delta, got {min_delta}, {max_delta}")
    return rng.choice([s * d for d in range(min_delta, max_delta + 1) for s in (1, -1)])


@register_task("arithmetic_steps")
def arithmetic_steps(
    num_samples: int = 1000, seed: int = 0, min_value: int = 0, max_value: int = 9, num_operands: int = 3,
    ops: str = "+-", split: str = "train", error_fraction: float = 0.5, min_delta: int = 1, max_delta: int = 5,
    per_problem: int = 1,
) -> list[StepwiseExample]:
    """`per_problem` solutions of each of `num_samples` distinct problems; a fraction `error_fraction` of them
    has one wrong step, chosen uniformly among its steps (the boxed answer included)."""
    if not 0.0 <= error_fraction <= 1.0:
        raise ValueError(f"arithmetic_steps: error_fraction must be in [0, 1], got {error_fraction}")
    task = _problems(num_samples, seed, min_value, max_value, num_operands, ops, split)
    rng = random.Random(f"arithmetic_steps:{seed}:{split}")
    out = []
    for s in (s for s in task for _ in range(per_problem)):
        n_steps = len(s.meta["ops"]) + 1
        wrong = rng.randrange(n_steps) if rng.random() < error_fraction else None
        steps, answer = corrupted_steps(s.meta["operands"], s.meta["ops"], wrong, _delta(rng, min_delta, max_delta))
        labels = [1.0 if wrong is None or i < wrong else 0.0 for i in range(n_steps)]
        meta = {"id": s.id, "reference": s.reference, "first_error": wrong, "answer": str(answer)}
        out.append(StepwiseExample(s.prompt, steps, labels, meta))
    return out


@register_task("arithmetic_pairs")
def arithmetic_pairs(
    num_samples: int = 1000, seed: int = 0, min_value: int = 0, max_value: int = 9, num_operands: int = 3,
    ops: str = "+-", split: str = "train", min_delta: int = 1, max_delta: int = 5, per_problem: int = 1,
    chat: bool = True,
) -> PreferenceData:
    """`per_problem` pairs per problem: the right solution (chosen) and one with a wrong step (rejected), as a
    conversation (`chat`, the chat template applies, as in RL) or raw strings."""
    task = _problems(num_samples, seed, min_value, max_value, num_operands, ops, split)
    rng = random.Random(f"arithmetic_pairs:{seed}:{split}")
    data = PreferenceData(name=f"arithmetic_pairs ({split})")
    for s in (s for s in task for _ in range(per_problem)):
        n_steps = len(s.meta["ops"]) + 1
        good, _ = corrupted_steps(s.meta["operands"], s.meta["ops"])
        wrong = rng.randrange(n_steps)
        bad, _ = corrupted_steps(s.meta["operands"], s.meta["ops"], wrong, _delta(rng, min_delta, max_delta))
        prompt, chosen, rejected = s.prompt, STEP_DELIMITER.join(good), STEP_DELIMITER.join(bad)
        if chat:
            prompt = [{"role": "user", "content": prompt}]
            chosen, rejected = [{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}]
        meta = {"where": f"{data.name}, {s.id}", "id": s.id, "first_error": wrong}
        data.pairs.append(PreferencePair(prompt, chosen, rejected, meta))
    return data
