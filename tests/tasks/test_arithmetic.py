"""The arithmetic task: seeded, split-disjoint, traces that are right step by step, knobs respected."""

import re

import pytest

from rlvr.types import Sample
from tasks import get_task
from tasks.arithmetic import ArithmeticTask, sft_text, solve, split_of
from verifiers import get_verifier

STEP = re.compile(r"^(-?\d+)([+\-*])(\d+)=(-?\d+)$")


def _value(expr: str) -> int:
    """Independent evaluator for '12+7*3' (precedence via a sum of products)."""
    assert re.fullmatch(r"\d+([+\-*]\d+)*", expr)
    total = 0
    for sign, term in re.findall(r"([+-]?)(\d+(?:\*\d+)*)", expr):
        prod = 1
        for f in term.split("*"):
            prod *= int(f)
        total += -prod if sign == "-" else prod
    return total


def test_same_seed_same_samples_other_seed_other_samples():
    a = ArithmeticTask(num_samples=50, seed=3, max_value=30, num_operands=3, ops="+-*")
    b = ArithmeticTask(num_samples=50, seed=3, max_value=30, num_operands=3, ops="+-*")
    c = ArithmeticTask(num_samples=50, seed=4, max_value=30, num_operands=3, ops="+-*")
    assert [s.prompt for s in a] == [s.prompt for s in b]
    assert [s.meta for s in a] == [s.meta for s in b]
    assert [s.prompt for s in a] != [s.prompt for s in c]


def test_train_and_test_never_share_a_problem_whatever_the_seeds():
    # a small space (21*21*2 = 882 problems) so that clashes would surely show up
    train = {s.prompt for seed in range(3) for s in ArithmeticTask(num_samples=300, seed=seed, max_value=20)}
    tests = [ArithmeticTask(num_samples=100, seed=seed, max_value=20, split="test") for seed in range(3)]
    test = {s.prompt for t in tests for s in t}
    assert len(test) > 100  # different seeds drew different test problems
    assert not train & test
    assert all(split_of(p[:-1], 0.2) == "test" for p in test)


def test_problems_within_a_task_are_distinct_and_ids_unique():
    t = ArithmeticTask(num_samples=500, seed=0, max_value=20)
    assert len({s.prompt for s in t}) == 500
    assert len({s.id for s in t}) == 500


@pytest.mark.parametrize("ops,n", [("+-", 2), ("+-", 3), ("+-*", 3), ("*", 4)])
def test_every_trace_step_is_right_and_ends_in_the_reference(ops, n):
    verify = get_verifier("math")
    for s in ArithmeticTask(num_samples=200, seed=1, max_value=40, num_operands=n, ops=ops):
        trace = sft_text(s)
        *steps, boxed = trace.split(". ")
        assert boxed == f"\\boxed{{{s.reference}}}"
        assert len(steps) == n - 1
        for step in steps:
            a, op, b, c = STEP.match(step).groups()
            assert int(c) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op], step
        assert int(steps[-1].split("=")[1]) == int(s.reference) == _value(s.meta["expression"])
        assert verify(trace, s).correct


def test_products_come_first_in_the_trace():
    value, steps = solve([3, 4, 5, 2], ["+", "*", "-"])
    assert (value, steps) == (21, ["4*5=20", "3+20=23", "23-2=21"])
    assert solve([10, 2, 3], ["-", "*"]) == (4, ["2*3=6", "10-6=4"])


def test_knobs_are_respected():
    t = ArithmeticTask(num_samples=300, seed=2, min_value=10, max_value=25, num_operands=3, ops="-*")
    seen_ops = set()
    for s in t:
        assert len(s.meta["operands"]) == 3 and all(10 <= v <= 25 for v in s.meta["operands"])
        assert set(s.meta["ops"]) <= {"-", "*"}
        seen_ops |= set(s.meta["ops"])
        assert s.prompt == s.meta["expression"] + "="
        assert s.meta["split"] == "train"
    assert seen_ops == {"-", "*"}
    assert len(t) == 300 and t.default_verifier == "math"


def test_registered_and_built_by_name():
    t = get_task("arithmetic", num_samples=5, seed=0, split="test")
    assert len(t) == 5 and isinstance(t[0], Sample)
    assert t.sft_text(t[0]) == t[0].meta["trace"]


def test_without_trace_has_no_sft_text():
    t = ArithmeticTask(num_samples=3, seed=0, with_trace=False)
    assert "trace" not in t[0].meta
    with pytest.raises(ValueError, match="with_trace=True"):
        sft_text(t[0])


@pytest.mark.parametrize(
    "args,message",
    [
        ({"num_operands": 1}, "num_operands must be >= 2"),
        ({"ops": "+/"}, "ops must be"),
        ({"split": "valid"}, "split must be one of"),
        ({"min_value": 5, "max_value": 2}, "min_value <= max_value"),
        ({"max_value": 3, "num_samples": 100}, "found only"),  # 4*4*2 = 32 problems in all
    ],
)
def test_bad_knobs_say_what_is_wrong(args, message):
    with pytest.raises(ValueError, match=message):
        ArithmeticTask(**{"num_samples": 10, "seed": 0, **args})


def test_direct_fraction_mixes_bare_answers_into_the_sft_targets():
    task = ArithmeticTask(num_samples=2000, seed=4, num_operands=3, max_value=9, direct_fraction=0.7)
    direct = [s for s in task if s.meta["direct"]]
    assert 0.65 < len(direct) / len(task) < 0.75
    for s in direct[:50]:
        assert task.sft_text(s) == "\\boxed{" + s.reference + "}"
    steps = [s for s in task if not s.meta["direct"]]
    assert all(task.sft_text(s).count("=") == 2 for s in steps[:50])  # two steps for three operands
    assert not any(s.meta["direct"] for s in ArithmeticTask(num_samples=100, seed=4, max_value=9))


def test_min_operands_draws_every_count_in_the_range():
    task = ArithmeticTask(num_samples=600, seed=5, min_operands=2, num_operands=4, max_value=9)
    counts = [len(s.meta["operands"]) for s in task]
    assert set(counts) == {2, 3, 4}
    assert all(len(s.meta["ops"]) == len(s.meta["operands"]) - 1 for s in task)
    for s in task:  # the trace has one step per operator, whatever the count
        assert len(s.meta["trace"].split(". ")) == len(s.meta["operands"])


def test_a_fixed_count_draws_the_same_problems_as_before_min_operands_existed():
    # min_operands=0 (off) must not consume random numbers: seeds keep their problems
    assert [s.prompt for s in ArithmeticTask(num_samples=5, seed=0, max_value=9)] == [
        "6+6=", "4-8=", "8-2=", "2-1=", "8+9="
    ]  # fmt: skip


@pytest.mark.parametrize("args", [{"min_operands": 1, "num_operands": 3}, {"min_operands": 4, "num_operands": 3}])
def test_min_operands_out_of_range_is_an_error(args):
    with pytest.raises(ValueError, match="min_operands must be 0"):
        ArithmeticTask(num_samples=3, seed=0, **args)
