"""rlvr.distill.filters on rows written by hand: each filter's decision, the counts per filter, and the report of
problems left without a trace."""

import pytest

from rlvr.distill import filters as F
from verifiers.base import Verdict


def row(sid, completion, finish="stop", tokens=5, prompt="What is 2+3?"):
    return {"sample_id": sid, "prompt": [{"role": "user", "content": prompt}], "completion": completion,
            "finish_reason": finish, "num_tokens": tokens}


def rows_by_hand():
    return [
        row("p1", "2 plus 3 is 5. \\boxed{5}"),
        row("p1", "2 plus 3  is 5.\n\\boxed{5}"),  # same as the first up to whitespace
        row("p1", "2 plus 3 is 5 so \\boxed{5}"),  # near duplicate of the first
        row("p1", "2 plus 3 is", finish="length", tokens=16),  # cut at max_new_tokens
        row("p2", "7 \\boxed{8}", prompt="What is 3+4?"),  # wrong
        row("p3", "long but right \\boxed{2}", tokens=40, prompt="What is 1+1?"),
    ]


def by_answer(rows):  # the math verifier's decision on these rows: the boxed answer equals the sum
    gold = {"p1": "5", "p2": "7", "p3": "2"}
    return [Verdict(1.0 if r["completion"].endswith(f"{{{gold[r['sample_id']]}}}") else 0.0,
                    r["completion"].endswith(f"{{{gold[r['sample_id']]}}}")) for r in rows]


def test_each_filter_decides_row_by_row():
    rows = rows_by_hand()
    assert F.complete(rows) == [True, True, True, False, True, True]
    assert F.length(16)(rows) == [True, True, True, True, True, False]
    assert F.dedup(rows) == [True, False, True, True, True, True]
    # word 3-grams: the third and the first share 6 of their 12 distinct grams (Jaccard 0.5)
    assert F.near_dedup(3, 0.5)(rows) == [True, False, False, True, True, True]
    # at threshold 0.6 only the exact (whitespace) duplicate goes; different problems never collide
    assert F.near_dedup(3, 0.6)(rows) == [True, False, True, True, True, True]
    contaminated = F.decontaminate(["Q: what is 3+4? Answer briefly."], 4, "arithmetic")
    assert contaminated(rows) == [True, True, True, True, False, True]
    assert rows[4]["decontam"] == {"task": "arithmetic", "ngram": 4, "hit": True}
    v = F.verified(by_answer, "math", "verifiers@abc")
    assert v(rows) == [True, True, True, False, False, True]
    assert rows[0]["verifier"] == {"name": "math", "version": "verifiers@abc", "score": 1.0, "correct": True, "error": None}


def test_a_verifier_error_is_not_a_pass_and_is_reported_apart():
    rows = [row("p1", "x"), row("p1", "y")]
    v = F.verified(lambda rs: [Verdict(0.0, False, error="timeout"), Verdict(1.0, True)], "math", "v")
    kept, rejected, report = F.apply_filters(rows, [F.Filter("verified", v)])
    assert [r["completion"] for r in kept] == ["y"] and rejected[0]["verifier"]["error"] == "timeout"


def test_apply_filters_counts_each_step_and_reports_problems_left_without_a_trace():
    rows = rows_by_hand()
    chain = [F.Filter("complete", F.complete), F.Filter("verified", F.verified(by_answer, "math", "v")),
             F.Filter("dedup", F.dedup), F.Filter("length", F.length(16))]
    kept, rejected, report = F.apply_filters(rows, chain)
    assert [(s["filter"], s["rows_in"], s["rows_out"]) for s in report.steps] == [
        ("complete", 6, 5), ("verified", 5, 4), ("dedup", 4, 3), ("length", 3, 2)]
    assert [r["completion"] for r in kept] == [rows[0]["completion"], rows[2]["completion"]]
    assert sorted(r["rejected_by"] for r in rejected) == ["complete", "dedup", "length", "verified"]
    assert (report.prompts_in, report.prompts_out) == (3, 1)
    lost = {p["sample_id"]: p for p in report.prompts_without_trace}
    assert lost["p2"]["removed_by"] == "verified" and lost["p2"]["wrong"] == 1
    assert lost["p3"]["removed_by"] == "length" and lost["p3"]["correct"] == 1
    md = F.report_markdown(report)
    assert "| verified | 5 | 4 | 1 |" in md and "| p2 | verified | 1 | 0 | 1 | 0 | 0 |" in md


def test_keep_best_takes_the_highest_score_then_the_fewest_tokens():
    rows = [row("p1", "a", tokens=9), row("p1", "b", tokens=4), row("p1", "c", tokens=2), row("p2", "d")]
    for r, s in zip(rows, [1.0, 1.0, 0.5, 0.0]):
        r["verifier"] = {"score": s}
    assert F.keep_best(rows) == [False, True, False, True]
    with pytest.raises(ValueError, match="put 'verified' in distill.filters"):
        F.keep_best([row("p1", "a")])
