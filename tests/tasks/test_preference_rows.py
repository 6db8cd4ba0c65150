"""tasks.preference: TRL's preference formats read from real files, the implicit prompt, bad rows as values,
unpairing for KTO, and the synthetic arithmetic preference task."""

from __future__ import annotations

import json
import logging
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks import get_task
from tasks.preference import BadRow, check_bad_rows, load_preference_rows, unpair

HH_CHOSEN = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: what is 2+2?\n\nAssistant: It is 4."
HH_REJECTED = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: what is 2+2?\n\nAssistant: It is 5."
USER = {"role": "user", "content": "2+2?"}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def rows_of(*rows):
    return load_preference_rows(iter((f"mem, row {i}", r) for i, r in enumerate(rows, start=1)), "mem")


def test_explicit_prompt_strings_and_messages(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "2+2=", "chosen": "4", "rejected": "5"},
        {"prompt": [USER], "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]},
    ])  # fmt: skip
    data = get_task("preference", path=path)
    assert data.paired and len(data) == 2 and not data.bad
    a, b = data.pairs
    assert (a.prompt, a.chosen, a.rejected) == ("2+2=", "4", "5")
    assert b.prompt == [USER] and b.chosen == [{"role": "assistant", "content": "4"}]
    assert a.meta["where"] == f"{path}, line 1"


def test_mixed_kinds_become_messages_and_repeated_prompt_is_taken_off():
    # HuggingFaceH4/ultrafeedback_binarized: a string prompt, completions that repeat it as the first user turn
    conv = lambda a: [USER, {"role": "assistant", "content": a}]  # noqa: E731
    (p,) = rows_of({"prompt": "2+2?", "chosen": conv("4"), "rejected": conv("5")}).pairs
    assert p.prompt == [USER]
    assert p.chosen == [{"role": "assistant", "content": "4"}] and p.rejected == [{"role": "assistant", "content": "5"}]
    (p,) = rows_of({"prompt": [USER], "chosen": "4", "rejected": "5"}).pairs
    assert p.chosen == [{"role": "assistant", "content": "4"}]


@pytest.mark.parametrize("chosen, rejected, prompt, c, r", [
    # HH-RLHF: up to and including the LAST "\n\nAssistant:" (trl#1858 took the first turn)
    (HH_CHOSEN, HH_REJECTED, HH_CHOSEN[: HH_CHOSEN.rindex("Assistant:") + len("Assistant:")], " It is 4.", " It is 5."),
    # one side is the start of the other: back off to a word boundary so neither completion is empty
    ("The sky", "The sky is blue", "The", " sky", " sky is blue"),
    ("2+2=4", "2+2=5", "2+2=", "4", "5"),  # a plain common prefix; the token boundary is found later
])  # fmt: skip
def test_implicit_prompt_strings(chosen, rejected, prompt, c, r):
    (p,) = rows_of({"chosen": chosen, "rejected": rejected}).pairs
    assert (p.prompt, p.chosen, p.rejected) == (prompt, c, r)


def test_implicit_prompt_messages():
    a4, a5 = {"role": "assistant", "content": "4"}, {"role": "assistant", "content": "5"}
    (p,) = rows_of({"chosen": [USER, a4], "rejected": [USER, a5]}).pairs
    assert (p.prompt, p.chosen, p.rejected) == ([USER], [a4], [a5])


@pytest.mark.parametrize("row, field, problem", [
    ({"prompt": "q", "rejected": "x"}, "chosen", "missing"),
    ({"prompt": "q", "chosen": "x"}, "rejected", "missing"),
    ({"prompt": "q", "chosen": "same", "rejected": "same"}, "rejected", "identical to chosen"),
    ({"chosen": "same", "rejected": "same"}, "rejected", "identical to chosen"),
    ({"prompt": "q", "chosen": "  ", "rejected": "x"}, "chosen", "empty completion"),
    ({"prompt": [USER], "chosen": [{"role": "assistant", "content": ""}], "rejected": "x"}, "chosen", "empty completion"),
    ({"chosen": "a b ", "rejected": "x"}, "chosen", "share no prompt"),
    ({"chosen": [USER], "rejected": [USER, {"role": "assistant", "content": "x"}]}, "rejected", "start of the other"),
    ({"prompt": "q", "chosen": 7, "rejected": "x"}, "chosen", "should be a string"),
    ({"prompt": "", "chosen": "a", "rejected": "b"}, "prompt", "empty prompt"),
])  # fmt: skip
def test_bad_paired_rows_are_values_naming_row_and_field(row, field, problem):
    data = rows_of({"prompt": "ok", "chosen": "a", "rejected": "b"}, row)
    assert len(data.pairs) == 1
    (bad,) = data.bad
    assert (bad.where, bad.field) == ("mem, row 2", field) and problem in bad.problem


def test_unpaired_rows_and_labels(tmp_path):
    path = write_jsonl(tmp_path / "u.jsonl", [
        {"prompt": "2+2=", "completion": "4", "label": True},
        {"prompt": "2+2=", "completion": "5", "label": 0},
        {"prompt": "2+2=", "completion": "6", "label": "no"},
        {"prompt": "2+2=", "label": False},
    ])  # fmt: skip
    data = get_task("preference", path=path)
    assert not data.paired and [e.label for e in data.examples] == [True, False]
    assert [(b.where, b.field) for b in data.bad] == [(f"{path}, line 3", "label"), (f"{path}, line 4", "completion")]


def test_format_is_decided_by_the_first_row(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"},
                                              {"prompt": "q", "completion": "a", "label": True}])  # fmt: skip
    data = get_task("preference", path=path)
    assert [b.field for b in data.bad] == ["chosen"]
    with pytest.raises(ValueError, match=r"line 1: cannot tell the format"):
        get_task("preference", path=write_jsonl(tmp_path / "x.jsonl", [{"question": "q"}]))


def test_parquet_and_limit(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": f"{i}+1=", "chosen": str(i + 1), "rejected": str(i)} for i in range(5)]), path)
    data = get_task("preference", path=str(path), limit=3)
    assert [p.chosen for p in data.pairs] == ["1", "2", "3"] and data.pairs[2].meta["where"] == f"{path}, row 3"


def test_ultrafeedback_schema_from_parquet(tmp_path):
    # trl-lib/ultrafeedback_binarized's schema: whole conversations as chosen/rejected (implicit prompt), scores
    conv = lambda a: [USER, {"role": "assistant", "content": a}]  # noqa: E731
    path = tmp_path / "uf.parquet"
    pq.write_table(pa.Table.from_pylist([{"chosen": conv("4"), "rejected": conv("5"), "score_chosen": 9.0,
                                          "score_rejected": 2.0}]), path)  # fmt: skip
    (p,) = get_task("preference", path=str(path)).pairs
    assert (p.prompt, p.chosen, p.rejected) == ([USER], conv("4")[1:], conv("5")[1:])


def test_check_bad_rows_raises_or_skips(caplog):
    bad = [BadRow("f.jsonl, line 2", "chosen", "missing"), BadRow("f.jsonl, line 9", "rejected", "identical to chosen")]
    check_bad_rows([], skip=False, what="task", skip_key="dpo.skip_bad_rows")
    with pytest.raises(ValueError) as err:
        check_bad_rows(bad, skip=False, what="task f.jsonl", skip_key="dpo.skip_bad_rows")
    msg = str(err.value)
    assert "2 bad rows" in msg and "dpo.skip_bad_rows" in msg
    assert "f.jsonl, line 2: field 'chosen': missing" in msg and "f.jsonl, line 9: field 'rejected'" in msg
    with caplog.at_level(logging.WARNING, logger="rlvr"):
        check_bad_rows(bad, skip=True, what="task f.jsonl", skip_key="dpo.skip_bad_rows")
    assert "skipping 2 bad rows" in caplog.text and "line 9" in caplog.text


def test_unpair_gives_both_labels_shuffled():
    data = rows_of(*({"prompt": f"q{i}", "chosen": "good", "rejected": "bad"} for i in range(20)))
    ex = unpair(data.pairs, seed=0)
    assert len(ex) == 40 and sum(e.label for e in ex) == 20
    assert all((e.completion == "good") == e.label for e in ex)
    assert ex[0].meta["where"].endswith(("(chosen)", "(rejected)"))
    labels = [e.label for e in ex]
    assert labels != [True, False] * 20 and labels != [True] * 20 + [False] * 20  # shuffled, not in blocks
    assert [e.meta["where"] for e in unpair(data.pairs, seed=0)] == [e.meta["where"] for e in ex]  # seeded


def _value(trace: str) -> int:
    return int(re.search(r"\\boxed\{(-?\d+)\}", trace).group(1))


def _calc(expr: str) -> int:
    """A chain of + and - on integers, left to right ("-4+5-3"); no eval of text."""
    return sum(int(t) for t in re.findall(r"[+-]?\d+", expr))


@pytest.mark.parametrize("mistake", ["step", "answer"])
def test_arithmetic_preference(mistake):
    train = get_task("arithmetic_preference", num_samples=50, num_operands=3, mistake=mistake)
    test = get_task("arithmetic_preference", num_samples=20, num_operands=3, mistake=mistake, split="test")
    for p in train.pairs:
        question = p.prompt[0]["content"].rstrip("=")
        c, r = p.chosen[0]["content"], p.rejected[0]["content"]
        assert _value(c) == _calc(question) and _value(r) != _calc(question)
        steps_c, steps_r = c.split(". ")[:-1], r.split(". ")[:-1]
        if mistake == "answer":
            assert steps_c == steps_r  # same worked steps, a wrong boxed answer
        else:
            assert all(_calc(s.split("=")[0]) == int(s.split("=")[1]) for s in steps_c)
            assert sum(_calc(s.split("=")[0]) != int(s.split("=")[1]) for s in steps_r) == 1  # one slip, carried on
            assert _value(r) == int(steps_r[-1].split("=")[1])
    assert not {p.prompt[0]["content"] for p in train.pairs} & {p.prompt[0]["content"] for p in test.pairs}
    raw = get_task("arithmetic_preference", num_samples=5, chat=False)
    assert isinstance(raw.pairs[0].prompt, str) and raw.pairs[0].prompt.endswith("=")
    with pytest.raises(ValueError, match="'\\+' and '-'"):
        get_task("arithmetic_preference", ops="+*")
