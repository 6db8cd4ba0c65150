"""The "code" verifier: extraction, all-pass, pass fraction, and errors that are not zeros."""

from __future__ import annotations

import os

from rlvr.types import Sample
from tasks import get_task
from verifiers import get_verifier
from verifiers.code import build_program, extract_code

MBPP = os.path.join(os.path.dirname(__file__), "..", "tasks", "data", "mbpp_tiny.jsonl")


def test_extracts_the_fenced_block_that_defines_the_entry_point():
    text = "Use this:\n```python\ndef helper():\n    pass\n```\nand\n```python\ndef f(x):\n    return x\n```\nUsage:\n```\nf(1)\n```"
    assert extract_code(text, "f") == "def f(x):\n    return x\n"
    assert extract_code(text) == "f(1)\n"  # no entry point known: the last block


def test_extracts_raw_code_and_unclosed_fences():
    body = "    return x + 1\n"
    assert extract_code(body) == body  # indentation kept: a body continues the prompt
    assert extract_code("```python\ndef f(x):\n    return 1") == "def f(x):\n    return 1"
    assert extract_code("```text\nnot code\n```") == "```text\nnot code\n```"  # not a code fence: raw
    assert extract_code("   \n") is None


def test_a_body_goes_behind_the_prompt_and_a_whole_function_gets_only_its_imports():
    s = Sample(id="0", prompt="", tests="", meta={"entry_point": "f", "code_prefix": "import math\n\ndef f(x):\n    \"\"\"doc\"\"\"\n"})
    assert build_program("    return math.floor(x)\n", s).startswith("import math\n\ndef f(x):")
    assert build_program("def f(x):\n    return 1\n", s) == "import math\ndef f(x):\n    return 1\n"


def test_humaneval_correct_chat_answer_and_base_model_body():
    task = get_task("humaneval", limit=3)
    s = task[2]  # truncate_number
    code = get_verifier("code", timeout_s=5)
    chat = f"Sure!\n```python\n{s.meta['code_prefix']}{s.reference}```"
    assert code(chat, s).correct
    assert code(s.reference, s).score == 1.0
    wrong = code("    return 0.0\n", s)
    assert (wrong.score, wrong.correct, wrong.error, wrong.info["status"]) == (0.0, False, None, "failed")


def test_pass_fraction_counts_the_asserts_that_pass():
    s = get_task("mbpp", path=MBPP)[1]  # is_not_prime, 4 asserts: False, True, True, False
    always_true = "def is_not_prime(n):\n    return True\n"
    strict = get_verifier("code", timeout_s=5)
    partial = get_verifier("code", timeout_s=5, partial_credit=True)
    v = partial(always_true, s)
    assert (v.score, v.correct, v.info["tests_passed"], v.info["tests_total"]) == (0.5, False, 2, 4)
    assert strict(always_true, s).score == 0.0 and strict(s.reference, s).score == 1.0


def test_exiting_early_is_a_wrong_answer_not_a_pass():
    s = get_task("mbpp", path=MBPP)[0]
    v = get_verifier("code", timeout_s=5)("```python\nimport sys\nsys.exit(0)\n```", s)
    assert (v.correct, v.error, v.info["status"]) == (False, None, "exited")


def test_no_code_and_no_tests():
    code = get_verifier("code")
    assert code("", Sample(id="a", prompt="", tests="assert True")).info["status"] == "no_code"
    v = code("x = 1", Sample(id="b", prompt=""))
    assert v.error and "no tests" in v.error and not v.correct
