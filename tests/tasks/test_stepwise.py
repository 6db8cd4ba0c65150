"""Stepwise (PRM) data: converters from PRM800K, Math-Shepherd and TRL rows of the real schemas, bad rows named by
file and line, and the synthetic arithmetic solutions with one wrong step."""

from __future__ import annotations

import json
import re

import pytest

from tasks.arithmetic import ArithmeticTask, solve
from tasks.arithmetic_steps import arithmetic_pairs, arithmetic_steps, corrupted_steps
from tasks import get_task
from tasks.stepwise import StepwiseExample, write_stepwise

SHEPHERD = {
    "input": "Tom has 3 apples and buys 4 more. How many? Step 1: 3 + 4 = 7 apples. ки\nStep 2: The answer is: 7 ки",
    "label": "Tom has 3 apples and buys 4 more. How many? Step 1: 3 + 4 = 7 apples. +\nStep 2: The answer is: 7 -",
    "task": "GSM8K",
}


def prm800k_row(chosen_last: int | None) -> dict:
    """A PRM800K line (openai/prm800k README schema): two steps, the second with three rated alternatives."""
    return {
        "labeler": "x", "timestamp": "t", "generation": None, "is_quality_control_question": False,
        "is_initial_screening_question": False,
        "question": {"problem": "What is 2+3?", "ground_truth_answer": "5"},
        "label": {"steps": [
            {"completions": [{"text": "I add the numbers.", "rating": 0, "flagged": None}],
             "human_completion": None, "chosen_completion": 0},
            {"completions": [{"text": "2+3=6.", "rating": -1, "flagged": None},
                             {"text": "2+3=5.", "rating": 1, "flagged": None},
                             {"text": "Hmm.", "rating": 0, "flagged": None}],
             "human_completion": None, "chosen_completion": chosen_last},
        ], "total_time": 1, "finish_reason": "solution" if chosen_last is not None else "found_error"},
    }  # fmt: skip


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_math_shepherd(tmp_path):
    (ex,) = get_task("stepwise_file", path=write_jsonl(tmp_path / "ms.jsonl", [SHEPHERD]), format="math_shepherd")
    assert ex.prompt == "Tom has 3 apples and buys 4 more. How many?"
    assert ex.steps == ["Step 1: 3 + 4 = 7 apples.", "Step 2: The answer is: 7"]  # "+" inside a step is text
    assert ex.labels == [1.0, 0.0] and ex.first_error() == 1


def test_math_shepherd_bad_rows_name_the_line(tmp_path):
    no_marker = {**SHEPHERD, "input": SHEPHERD["input"].replace("Step 1:", "First:")}
    path = write_jsonl(tmp_path / "ms.jsonl", [SHEPHERD, no_marker])
    with pytest.raises(ValueError, match=r"ms.jsonl, line 2: field 'input' has no 'Step 1:' marker"):
        get_task("stepwise_file", path=path, format="math_shepherd")
    bad_label = {**SHEPHERD, "label": SHEPHERD["label"].replace("apples. +", "apples. ?")}
    with pytest.raises(ValueError, match=r"line 1: field 'label' has '\?' where step tag 0 stands"):
        get_task("stepwise_file", path=write_jsonl(tmp_path / "b.jsonl", [bad_label]), format="math_shepherd")
    # max_bad_rows: the load goes on past the bad row, which is counted and logged, not silently dropped
    (ex,) = get_task("stepwise_file", path=path, format="math_shepherd", max_bad_rows=1)
    assert ex.labels == [1.0, 0.0]


def test_prm800k_chosen_path_and_alternatives(tmp_path):
    path = write_jsonl(tmp_path / "prm800k.jsonl", [prm800k_row(chosen_last=1), prm800k_row(chosen_last=None)])
    out = get_task("stepwise_file", path=path, format="prm800k")
    # row 1: the two unchosen alternatives of step 2, then the chosen path; row 2 (found_error): three alternatives
    assert [(ex.steps[-1], ex.labels) for ex in out] == [
        ("2+3=6.", [1.0, 0.0]), ("Hmm.", [1.0, 1.0]), ("2+3=5.", [1.0, 1.0]),
        ("2+3=6.", [1.0, 0.0]), ("2+3=5.", [1.0, 1.0]), ("Hmm.", [1.0, 1.0]),
    ]  # fmt: skip
    assert all(ex.prompt == "What is 2+3?" and ex.steps[0] == "I add the numbers." for ex in out)
    neutral_bad = get_task("stepwise_file", path=path, format="prm800k", neutral=0.0, alternatives=False)
    assert [ex.labels for ex in neutral_bad] == [[0.0, 1.0], [0.0]]  # TRL's neutral mapping; row 2: the path so far
    with pytest.raises(ValueError, match=r"line 1, label.steps\[1\]: a completion's 'rating' is 7"):
        row = prm800k_row(1)
        row["label"]["steps"][1]["completions"][0]["rating"] = 7
        get_task("stepwise_file", path=write_jsonl(tmp_path / "bad.jsonl", [row]), format="prm800k")


def test_trl_and_our_format_and_label_count_errors(tmp_path):
    trl = {"prompt": "1+1=", "completions": ["1+1=2", "\\boxed{2}"], "labels": [True, False]}
    (ex,) = get_task("stepwise_file", path=write_jsonl(tmp_path / "trl.jsonl", [trl]), format="trl")
    assert ex.labels == [1.0, 0.0]
    ours = [{"prompt": [{"role": "user", "content": "1+1="}], "steps": ["a", "b"], "labels": [0.75, 1]},
            {"prompt": "1+1=", "steps": ["a", "b"], "labels": [1.0]}]  # fmt: skip
    path = write_jsonl(tmp_path / "ours.jsonl", ours)
    with pytest.raises(ValueError, match=r"ours.jsonl, line 2: 1 labels for 2 steps"):
        get_task("stepwise_file", path=path)
    with pytest.raises(ValueError, match=r"line 1: label 1 is 1.5; expected a number in \[0, 1\]"):
        get_task("stepwise_file", path=write_jsonl(tmp_path / "r.jsonl", [{"prompt": "p", "steps": ["a", "b"], "labels": [0, 1.5]}]))
    # write -> read round trip
    exs = [StepwiseExample("p", ["x", "y"], [1.0, 0.25], {"k": 1})]
    assert get_task("stepwise_file", path=str(write_stepwise(exs, tmp_path / "rt.jsonl"))) == exs


def _step_is_right(step: str) -> bool:
    a, op, b, c = re.fullmatch(r"(-?\d+)([+*-])(-?\d+)=(-?\d+)\.", step).groups()
    return solve([int(a), int(b)], [op])[0] == int(c)


def test_arithmetic_steps_have_one_wrong_step_then_consistent_ones():
    examples = arithmetic_steps(num_samples=300, seed=3, num_operands=4, ops="+-*", max_value=9)
    wrong = [ex for ex in examples if ex.first_error() is not None]
    assert 100 < len(wrong) < 200  # error_fraction 0.5
    for ex in examples:
        k = ex.first_error()
        n = len(ex.steps) - 1  # computation steps before the boxed answer
        assert ex.labels == [1.0 if k is None or i < k else 0.0 for i in range(n + 1)]
        ok = [_step_is_right(s) for s in ex.steps[:-1]]
        assert ok == [i != k for i in range(n)]  # the wrong step is wrong, every other one is arithmetic done right
        boxed = int(ex.steps[-1][len("\\boxed{") : -1])
        if k is None or k == n:  # (a wrong step times 0 can still end right: that step is labelled wrong all the same)
            assert (boxed == int(ex.meta["reference"])) == (k is None)
    assert {ex.first_error() for ex in wrong} == {0, 1, 2, 3}  # the boxed answer (index 3) is wrong too, sometimes
    assert corrupted_steps([7, 2, 5], ["+", "-"], 2, -1) == (["7+2=9.", "9-5=4.", "\\boxed{3}"], 3)


def test_arithmetic_pairs_and_splits():
    pairs = arithmetic_pairs(num_samples=50, seed=0, chat=False).pairs
    assert all(p.chosen != p.rejected and p.chosen.endswith("}") for p in pairs)
    task = ArithmeticTask(num_samples=50, seed=0, max_value=9, num_operands=3)  # the policy's own trace format
    assert {p.chosen for p in pairs} == {s.meta["trace"] for s in task}
    chat = arithmetic_pairs(num_samples=2, seed=0).pairs[0]
    assert chat.prompt[0]["role"] == "user" and chat.chosen[0]["role"] == chat.rejected[0]["role"] == "assistant"
    train = {ex.prompt for ex in arithmetic_steps(num_samples=200, split="train")}
    test = {ex.prompt for ex in arithmetic_steps(num_samples=200, split="test")}
    assert not train & test
