"""HumanEval and MBPP tasks: samples the "code" verifier can judge, canonical solutions pass."""

from __future__ import annotations

import json
import os

import pytest

from sandbox import Limits, SandboxPool
from tasks import get_task
from tasks.code import humaneval_program

DATA = os.path.join(os.path.dirname(__file__), "data")
MBPP = os.path.join(DATA, "mbpp_tiny.jsonl")


def test_humaneval_has_all_164_problems_with_tests_and_a_prefix():
    task = get_task("humaneval")
    assert len(task) == 164 and task.default_verifier == "code"
    s = task[0]
    assert s.id == "HumanEval/0" and s.meta["entry_point"] == "has_close_elements"
    assert s.prompt == s.meta["code_prefix"] and "def has_close_elements" in s.prompt
    assert s.tests.rstrip().endswith("check(has_close_elements)")


def test_humaneval_chat_prompt_is_one_user_message_with_the_header():
    s = get_task("humaneval", chat=True, limit=2)[1]
    (msg,) = s.messages()
    assert msg["role"] == "user" and s.meta["code_prefix"] in msg["content"] and "```python" in msg["content"]


def test_humaneval_canonical_solutions_pass_in_the_sandbox():
    task = get_task("humaneval", limit=12)
    with SandboxPool(workers=2) as pool:
        results = pool.map([(humaneval_program(s, s.reference), "") for s in task], Limits(timeout_s=5))
    assert [r.status for r in results] == ["passed"] * 12


def test_mbpp_from_a_local_file_of_the_hub_schema():
    task = get_task("mbpp", path=MBPP)
    assert len(task) == 3 and task.default_verifier == "code"
    s = task[2]
    assert s.id == "mbpp/4" and s.meta["test_setup"] == "import heapq as hq"
    assert len(s.meta["test_units"]) == 2 and all(u in s.prompt for u in s.meta["test_units"])
    assert s.tests.startswith("import heapq as hq\n")


def test_mbpp_reference_solutions_pass_in_the_sandbox():
    task = get_task("mbpp", path=MBPP)
    with SandboxPool(workers=2) as pool:
        results = pool.map([(s.reference, s.tests) for s in task], Limits(timeout_s=5))
    assert [r.status for r in results] == ["passed"] * 3


def test_mbpp_bad_row_names_the_row_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": 1, "text": "x", "code": "", "test_list": []}) + "\n")
    with pytest.raises(ValueError, match=r"row 0: 'test_list' must be a non-empty list"):
        get_task("mbpp", path=str(bad))
