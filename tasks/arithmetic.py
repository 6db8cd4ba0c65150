"""Synthetic integer arithmetic ("12+7-3="), seeded, with step-by-step traces.

Built for the CPU demo: a tiny model is warm-started with SFT on the traces
(`sft_text`), improved with GRPO on the "math" verifier, and evaluated on the
held-out split. Difficulty knobs: operand range, number of operands (fixed, or
drawn uniformly from [min_operands, num_operands]), operators.

Splits are decided by a hash of the canonical expression, not by the seed, so
a problem is in "train" or in "test" once and for all: the two splits never
share a problem, whatever seeds they are drawn with. Within one task problems
are distinct.

Operators: "+", "-", "*" with the usual precedence (products first, then left
to right). Operands are non-negative; results may be negative. No division,
no parentheses.

    >>> task = ArithmeticTask(num_samples=2, seed=0, max_value=9)
    >>> s = task[0]
    >>> s.prompt.endswith("=") and s.meta["trace"].endswith("\\\\boxed{" + s.reference + "}")
    True
"""

from __future__ import annotations

import hashlib
import random
import re

from rlvr.types import Sample
from tasks.base import ListTask, register_task

OPS = "+-*"
SPLITS = ("train", "test")
STEP = re.compile(r"(-?\d+)([+\-*])(\d+)=(-?\d+)")  # one step of a trace: "12+7=19", "-4-3=-7"


def unit_hash(text: str) -> float:
    """A number in [0, 1) that depends only on `text`."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 2**32


def split_of(expression: str, test_fraction: float) -> str:
    """The split a problem belongs to: a pure function of its text."""
    return "test" if unit_hash(expression) < test_fraction else "train"


def _apply(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    return a * b


def solve(operands: list[int], ops: list[str], error_step: int | None = None, delta: int = 0) -> tuple[int, list[str]]:
    """The value of the expression and its steps ("4*5=20"), products first, then left to right.

    With `error_step`, that step's result is off by `delta` and later steps carry the wrong value on (the
    solutions with one wrong step that reward models learn from, `tasks.arithmetic_steps`)."""
    vals, rest = list(operands), list(ops)
    steps: list[str] = []

    def step(a: int, op: str, b: int) -> int:
        c = _apply(a, op, b) + (delta if len(steps) == error_step else 0)
        steps.append(f"{a}{op}{b}={c}")
        return c

    # products first, leftmost first, so the steps follow the precedence a reader expects
    while "*" in rest:
        i = rest.index("*")
        vals[i : i + 2] = [step(vals[i], "*", vals[i + 1])]
        del rest[i]
    acc = vals[0]
    for op, b in zip(rest, vals[1:]):
        acc = step(acc, op, b)
    return acc, steps


def read_steps(text: str) -> list[str]:
    """The steps a completion writes, in order, in the form `solve` gives them ("19-3=16").

    >>> read_steps("12+7=19. 19-3=16. \\\\boxed{16}")
    ['12+7=19', '19-3=16']
    """
    return [m.group(0) for m in STEP.finditer(text)]


def step_is_right(step: str) -> bool:
    """Whether one step ("19-3=16") is right arithmetic, whatever problem it came from."""
    a, op, b, c = STEP.fullmatch(step).groups()
    return _apply(int(a), op, int(b)) == int(c)


def trace_text(steps: list[str], answer: int) -> str:
    """'12+7=19. 19-3=16. \\boxed{16}': one short, regular sentence per step."""
    return "".join(f"{s}. " for s in steps) + f"\\boxed{{{answer}}}"


@register_task("arithmetic")
class ArithmeticTask(ListTask):
    """`num_samples` distinct problems of the `split`, drawn from `random.Random(seed)`."""

    def __init__(
        self,
        num_samples: int = 1000,
        seed: int = 0,
        min_value: int = 0,
        max_value: int = 50,
        num_operands: int = 2,
        ops: str = "+-",
        min_operands: int = 0,
        split: str = "train",
        with_trace: bool = True,
        test_fraction: float = 0.2,
        direct_fraction: float = 0.0,
    ):
        if split not in SPLITS:
            raise ValueError(f"arithmetic: split must be one of {SPLITS}, got {split!r}")
        if num_operands < 2:
            raise ValueError(f"arithmetic: num_operands must be >= 2, got {num_operands}")
        if min_operands and not 2 <= min_operands <= num_operands:
            raise ValueError(
                f"arithmetic: min_operands must be 0 (off) or in [2, num_operands={num_operands}], got {min_operands}"
            )
        if not 0 <= min_value <= max_value:
            raise ValueError(f"arithmetic: need 0 <= min_value <= max_value, got {min_value}, {max_value}")
        if not ops or any(o not in OPS for o in ops):
            raise ValueError(f"arithmetic: ops must be a non-empty string of {OPS!r}, got {ops!r}")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"arithmetic: test_fraction must be in (0, 1), got {test_fraction}")
        if not 0.0 <= direct_fraction <= 1.0:
            raise ValueError(f"arithmetic: direct_fraction must be in [0, 1], got {direct_fraction}")
        if num_samples < 0:
            raise ValueError(f"arithmetic: num_samples must be >= 0, got {num_samples}")
        self.seed, self.split, self.with_trace = seed, split, with_trace
        op_choices = sorted(set(ops))

        rng = random.Random(seed)
        seen: set[str] = set()
        samples: list[Sample] = []
        # a small problem space runs out of distinct problems: stop and say so rather than loop forever
        max_draws = 1000 + 50 * num_samples
        draws = 0
        while len(samples) < num_samples and draws < max_draws:
            draws += 1
            # the count is drawn only when it varies, so a fixed count keeps the problems it always drew
            n = rng.randint(min_operands, num_operands) if min_operands else num_operands
            operands = [rng.randint(min_value, max_value) for _ in range(n)]
            chosen = [rng.choice(op_choices) for _ in range(n - 1)]
            expr = str(operands[0]) + "".join(f"{o}{v}" for o, v in zip(chosen, operands[1:]))
            if expr in seen or split_of(expr, test_fraction) != split:
                continue
            seen.add(expr)
            answer, steps = solve(operands, chosen)
            meta = {"operands": operands, "ops": chosen, "expression": expr, "split": split}
            if with_trace:
                # a `direct_fraction` of the targets skip the steps: SFT then teaches two habits, and RL
                # can find out which one earns the reward (the demo's story)
                direct = unit_hash(f"direct:{seed}:{expr}") < direct_fraction
                meta["trace"] = f"\\boxed{{{answer}}}" if direct else trace_text(steps, answer)
                meta["direct"] = direct
            digest = hashlib.sha256(expr.encode()).hexdigest()[:12]
            samples.append(Sample(id=f"arith-{digest}", prompt=f"{expr}=", reference=str(answer), meta=meta))
        if len(samples) < num_samples:
            counts = range(min_operands or num_operands, num_operands + 1)
            space = sum((max_value - min_value + 1) ** n * len(op_choices) ** (n - 1) for n in counts)
            raise ValueError(
                f"arithmetic: found only {len(samples)} distinct {split!r} problems in {draws} draws "
                f"(about {space} problems in all, {test_fraction:.0%} of them in 'test'); "
                f"lower num_samples or widen max_value/num_operands/ops"
            )
        super().__init__(samples, default_verifier="math", name="arithmetic")

    def sft_text(self, sample: Sample) -> str:
        return sft_text(sample)


def sft_text(sample: Sample) -> str:
    """The SFT target of an arithmetic sample: its step-by-step trace."""
    if "trace" not in sample.meta:
        raise ValueError(f"sample {sample.id!r} has no trace; build the task with with_trace=True")
    return sample.meta["trace"]
