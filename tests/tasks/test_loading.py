"""Loaders on local fixtures (jsonl, json, parquet) of GSM8K, MATH and generic schema; bad input errors."""

import json
from pathlib import Path

import pytest

from tasks import get_task
from tasks.hendrycks_math import last_boxed

DATA = Path(__file__).parent / "data"
TEMPLATE = "Please reason step by step, and put your final answer within \\boxed{}."


def _write_jsonl(path: Path, rows: list) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_gsm8k_reference_is_the_number_after_hashes_without_commas(suffix):
    t = get_task("gsm8k", path=str(DATA / f"gsm8k.{suffix}"))
    assert [s.reference for s in t] == ["72", "10", "5", "3000", "18"]
    s = t[0]
    assert s.prompt.startswith("Natalia sold clips") and s.prompt.endswith(TEMPLATE)
    assert s.meta["rationale"].endswith("72 clips altogether in April and May.")
    # the SFT target drops the calculator annotations and ends in the boxed answer
    assert t.sft_text(s) == (
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.\n\\boxed{72}"
    )
    assert t.default_verifier == "math"


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_math_reference_is_the_last_balanced_boxed(suffix):
    t = get_task("hendrycks_math", path=str(DATA / f"hendrycks_math.{suffix}"))
    assert [s.reference for s in t] == ["2", "11", "\\frac{7}{12}", "\\sqrt{2}", "3"]
    assert [s.meta["level"] for s in t][:3] == ["Level 3", "Level 1", "Level 1"]
    assert t[4].meta["type"] == "Number Theory"
    assert t.sft_text(t[1]).endswith("\\boxed{11}.\\]")


def test_math500_uses_the_answer_field_and_unique_id():
    t = get_task("math500", path=str(DATA / "math500.json"))
    assert t[0].id == "test/precalculus/807.json"
    assert t[0].reference == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert [s.meta["type"] for s in t] == ["Precalculus", "Algebra", "Prealgebra"]
    assert [s.meta["level"] for s in t] == [2, 1, 4]


def test_math_alias_and_dataset_task_agree():
    a = get_task("math", path=str(DATA / "hendrycks_math.jsonl"))
    path = str(DATA / "hendrycks_math.jsonl")
    b = get_task("dataset", path=path, schema="math", prompt_template="{prompt}\n" + TEMPLATE)
    assert [(s.prompt, s.reference) for s in a] == [(s.prompt, s.reference) for s in b]


def test_system_prompt_makes_chat_messages_and_limit_cuts():
    t = get_task("gsm8k", path=str(DATA / "gsm8k.jsonl"), system_prompt="You are a careful tutor.", limit=2)
    assert len(t) == 2
    system, user = t[1].prompt
    assert system == {"role": "system", "content": "You are a careful tutor."}
    assert user["role"] == "user" and user["content"].startswith("Weng earns $12")


def test_generic_schema_string_chat_and_code_rows():
    t = get_task("dataset", path=str(DATA / "generic.jsonl"), prompt_template="Q: {prompt}")
    assert t[0].id == "cap-1" and t[0].prompt == "Q: What is the capital of France?" and t[0].reference == "Paris"
    assert t[0].meta == {"source": "handwritten"}
    # a chat prompt keeps its own system turn; the template applies to the last user turn
    assert t[1].prompt == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Q: 2+3?"}]
    assert t[1].reference == "5"  # numbers become strings
    assert t[2].id == "generic-2" and t[2].reference is None and t[2].tests.startswith("assert add")


def test_generic_schema_with_custom_field_names(tmp_path):
    path = _write_jsonl(tmp_path / "qa.jsonl", [{"q": "1+1?", "a": "2"}, {"q": "2+2?", "a": "4"}])
    t = get_task("dataset", path=path, prompt_field="q", reference_field="a")
    assert [(s.prompt, s.reference) for s in t] == [("1+1?", "2"), ("2+2?", "4")]


def test_last_boxed_balances_braces_and_takes_the_last():
    assert last_boxed("$\\boxed{\\frac{a}{b^{2}}}$") == "\\frac{a}{b^{2}}"
    assert last_boxed("\\boxed{1} then \\boxed{2}") == "2"
    assert last_boxed("so the answer is $\\boxed 5$.") == "5"
    assert last_boxed("\\fbox{7}") == "7"
    assert last_boxed("\\boxed{unclosed") is None
    assert last_boxed("no answer") is None


# ---- bad input -------------------------------------------------------------------


def test_missing_field_names_file_line_and_field(tmp_path):
    good = json.loads((DATA / "gsm8k.jsonl").read_text().splitlines()[0])
    path = _write_jsonl(tmp_path / "bad.jsonl", [good, good, {"question": "No answer here?"}])
    with pytest.raises(ValueError) as e:
        get_task("gsm8k", path=path)
    msg = str(e.value)
    assert "bad.jsonl, line 3" in msg and "'answer'" in msg and "####" in msg


def test_blank_lines_count_in_the_line_number(tmp_path):
    path = tmp_path / "gaps.jsonl"
    path.write_text('{"problem": "p", "solution": "\\\\boxed{1}"}\n\n{"problem": "q"}\n')
    with pytest.raises(ValueError, match=r"gaps\.jsonl, line 3: missing field 'solution'"):
        get_task("math", path=str(path))


def test_parquet_bad_row_names_the_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "m.parquet"
    rows = [{"problem": "p", "solution": "\\boxed{1}"}, {"problem": "q", "solution": "none"}]
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(ValueError, match=r"m\.parquet, row 2: field 'solution' has no \\boxed"):
        get_task("math", path=str(path))


def test_gsm8k_answer_without_hashes_is_an_error(tmp_path):
    path = _write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "it is 4"}])
    with pytest.raises(ValueError, match=r"g\.jsonl, line 1: field 'answer' has no '####'"):
        get_task("gsm8k", path=path)


def test_generic_bad_prompt_and_missing_reference(tmp_path):
    path = _write_jsonl(tmp_path / "a.jsonl", [{"prompt": {"text": "hi"}, "reference": "1"}])
    with pytest.raises(ValueError, match=r"a\.jsonl, line 1: field 'prompt' should be a string or"):
        get_task("dataset", path=path)
    path = _write_jsonl(tmp_path / "b.jsonl", [{"prompt": "hi"}])
    with pytest.raises(ValueError, match=r"b\.jsonl, line 1: missing field 'reference'"):
        get_task("dataset", path=path)


def test_invalid_json_line_is_named(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"prompt": "a", "reference": "1"}\n{"prompt": "b", \n')
    with pytest.raises(ValueError, match=r"broken\.jsonl, line 2: invalid JSON"):
        get_task("dataset", path=str(path))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        get_task("gsm8k", path=str(tmp_path / "nowhere.jsonl"))


def test_unknown_schema_and_file_type_list_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown schema 'gsm'; expected one of generic, gsm8k, math"):
        get_task("dataset", path=str(DATA / "gsm8k.jsonl"), schema="gsm")
    with pytest.raises(ValueError, match=r"unsupported file type '\.csv'; expected one of \.jsonl, \.json, \.parquet"):
        get_task("dataset", path=str(tmp_path / "x.csv"))


def test_path_or_hub_exactly_one_and_template_needs_placeholder():
    with pytest.raises(ValueError, match="exactly one of path"):
        get_task("dataset", schema="gsm8k")
    with pytest.raises(ValueError, match="must contain"):
        get_task("gsm8k", path=str(DATA / "gsm8k.jsonl"), prompt_template="Solve it.")


def test_importing_tasks_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, tasks; tasks.list_tasks(); tasks.get_task('gsm8k', path=%r); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code % str(DATA / "gsm8k.parquet")], check=True)
