"""From rows to summary: answers grouped as documented (real math verifier verdicts), errors kept out of every
metric but the error count, the breakdown by a meta field, and samples.jsonl read back exactly or refused."""

from __future__ import annotations

import json
import math

import pytest

from rlvr.evaluate.estimators import pass_at_k
from rlvr.evaluate.rows import EvalRow, read_rows, write_rows
from rlvr.evaluate.summary import EvalSpec, summarize
from rlvr.types import Sample
from verifiers.pool import VerifierPool


def spec(n: int, k: list[int], **kw) -> EvalSpec:
    gen = {"backend": "hf", "temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 16, "stop": [], "seed": 0}
    base = dict(model="m", task={"name": "t", "args": {}}, verifier={"name": "math", "args": {}}, n=n, k=k,
                generation=gen, bootstrap=200, seed=0, breakdown=["level"])  # fmt: skip
    return EvalSpec(**{**base, **kw})


def row(pid: str, j: int, correct: bool, answer: str | None = None, *, error: str | None = None, tokens: int = 5,
        finish: str = "stop", meta: dict | None = None) -> EvalRow:
    return EvalRow(pid, j, "h", "text", answer, correct, float(correct), error, tokens, finish, 0, "r", meta or {})


def test_maj_groups_correct_answers_together_and_wrong_ones_by_normalized_text():
    """Real verdicts of the math verifier: 0.5 and \\frac12 are both right (one group); "1/3" twice (one group,
    spacing normalized) and \\frac{1}{3} once (its own group: wrong answers are not compared for equivalence);
    an empty completion has no answer. maj@6: {correct: 2, "1/3": 2, "\\frac{1}{3}": 1} ties 2-2 -> 0.5."""
    completions = ["\\boxed{0.5}", "\\boxed{\\frac12}", "\\boxed{1/3}", "\\boxed{1/3 }", "\\boxed{\\frac{1}{3}}", ""]
    sample = Sample(id="half", prompt="?", reference="\\frac{1}{2}")
    with VerifierPool(num_workers=1) as pool:
        verdicts = pool.verify_batch("math", {}, completions, [sample] * len(completions))
    rows = [EvalRow("half", j, "h", c, v.info.get("pred"), v.correct, v.score, v.error, 4, "stop", 0, "\\frac{1}{2}")
            for j, (c, v) in enumerate(zip(completions, verdicts))]  # fmt: skip
    assert [r.correct for r in rows] == [True, True, False, False, False, False]
    res = summarize(rows, spec(6, [1, 2, 6]))
    m = res.metrics
    assert m["maj@6"] == 0.5
    assert m["pass@2"] == pytest.approx(pass_at_k(6, 2, 2))  # 1 - C(4,2)/C(6,2) = 0.6
    assert m["avg@6"] == m["accuracy"] == pytest.approx(1 / 3)
    assert m["no_answer"] == pytest.approx(1 / 6)


def test_verifier_errors_are_left_out_not_scored_zero():
    rows = [row("a", 0, True, "1"), row("a", 1, False, "2"), row("a", 2, False, error="boom"), row("a", 3, True, "1"),
            row("b", 0, False, error="x"), row("b", 1, False, error="y"), row("b", 2, False, error="z"),
            row("b", 3, False, error="w")]  # fmt: skip
    res = summarize(rows, spec(4, [1, 2, 4]))
    m = res.metrics
    # problem a: 3 scored samples, 2 right; problem b: none scored, so it counts in no metric
    assert m["avg@4"] == pytest.approx(2 / 3)
    assert m["pass@2"] == pytest.approx(pass_at_k(3, 2, 2))
    assert m["pass@4"] is None  # no problem has 4 scored samples
    assert m["verifier_errors"] == 5 and m["problems_unscored"] == 1
    assert res.uncertainty["avg@4"]["num_problems"] == 1
    assert res.first_error == "boom"
    assert math.isnan(res.log_metrics()["pass@4"])  # a logger gets NaN (JSON null), never a 0


def test_every_sample_errors_gives_no_accuracy():
    res = summarize([row("a", j, False, error="sympy exploded") for j in range(2)], spec(2, [1, 2]))
    assert res.metrics["accuracy"] is None and res.metrics["pass@1"] is None
    assert res.metrics["verifier_errors"] == 2
    assert json.loads(json.dumps(res.summary()))["metrics"]["accuracy"] is None


def test_breakdown_lengths_and_truncation():
    rows = []
    for i, (level, c) in enumerate([("1", 2), ("1", 1), ("2", 0)]):
        rows += [row(f"p{i}", j, j < c, str(j), tokens=10 * (j + 1), finish="length" if j == 1 else "stop",
                     meta={"level": level}) for j in range(2)]  # fmt: skip
    res = summarize(rows, spec(2, [1, 2]))
    by = res.breakdown["level"]
    assert by["1"]["num_problems"] == 2 and by["1"]["avg@2"] == pytest.approx(0.75)
    assert by["1"]["pass@2"] == 1.0 and by["2"]["pass@2"] == 0.0
    m = res.metrics
    assert m["completion_len"] == 15 and m["completion_len/p50"] == 15 and m["completion_len/max"] == 20
    assert m["truncated_frac"] == 0.5
    assert "difficulty" not in res.breakdown  # asked for, but no problem carries it


def test_rows_survive_a_round_trip_and_give_the_same_summary(tmp_path):
    rows = [row("a", 0, True, "1", meta={"level": 3}), row("a", 1, False, None, meta={"level": 3}),
            row("b", 0, False, "7", error=None, meta={"level": 5}), row("b", 1, False, "7", meta={"level": 5})]
    path = write_rows(rows, tmp_path / "samples.jsonl")
    back = read_rows(path)
    assert back == rows
    again = summarize(back, spec(2, [1, 2])).summary()
    assert json.dumps(again) == json.dumps(summarize(rows, spec(2, [1, 2])).summary())


@pytest.mark.parametrize(
    "line, needle",
    [
        ("{not json", "invalid JSON"),
        ('{"problem_id": "a"}', r"missing field\(s\) sample_index"),
        (None, "field 'correct' should be bool"),
    ],
)
def test_a_bad_line_names_file_line_and_field(tmp_path, line, needle):
    good = json.dumps({"problem_id": "a", "sample_index": 0, "prompt_hash": "h", "completion": "",
                       "extracted_answer": None, "correct": True, "score": 1, "verifier_error": None, "num_tokens": 1,
                       "finish_reason": "stop", "seed": 0})  # fmt: skip
    bad = line if line is not None else good.replace('"correct": true', '"correct": 1')
    path = tmp_path / "samples.jsonl"
    path.write_text(good + "\n" + bad + "\n")
    with pytest.raises(ValueError, match=needle) as e:
        read_rows(path)
    assert f"{path}, line 2" in str(e.value)


def test_missing_samples_of_a_problem_are_named():
    with pytest.raises(ValueError, match="problem 'a': sample indices \\[0, 2\\], expected 0..2"):
        summarize([row("a", 0, True), row("a", 2, True)], spec(3, [1]))
