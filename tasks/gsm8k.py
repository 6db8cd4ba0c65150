"""GSM8K grade-school word problems: the row schema and the "gsm8k" task.

A row has `question` and `answer`; the answer is a rationale with calculator
annotations ("48/2 = <<48/2=24>>24") ending in "#### 72". The reference is the
text after "####" with thousands commas stripped; the rationale goes to
`meta["rationale"]`, and `meta["solution"]` (the SFT target) is the rationale
without the annotations, ending in \\boxed{answer}. Does not download anything
unless the hub is asked for (the default when no `path` is given).

    >>> s = gsm8k_row({"question": "1+1?", "answer": "1+1=<<1+1=2>>2\\n#### 2"}, "row 1", "g-0")
    >>> s.reference, s.meta["solution"]
    ('2', '1+1=2\\n\\\\boxed{2}')
"""

from __future__ import annotations

import re

from rlvr.types import Sample
from tasks.base import register_task
from tasks.loading import DatasetTask, Row, load_task, require_str, source_rows

HUB_NAME, HUB_CONFIG = "openai/gsm8k", "main"
MATH_TEMPLATE = "{prompt}\nPlease reason step by step, and put your final answer within \\boxed{}."

_CALC = re.compile(r"<<[^<>]*>>")  # calculator annotations: the model is not expected to write them


def gsm8k_row(row: Row, where: str, default_id: str) -> Sample:
    """A GSM8K row as a Sample (prompt = the question)."""
    question = require_str(row, "question", where, "the word problem as a string")
    answer = require_str(row, "answer", where, "a rationale ending in '#### <number>'")
    if "####" not in answer:
        raise ValueError(f"{where}: field 'answer' has no '####' (expected a rationale ending in '#### <number>')")
    rationale, final = answer.rsplit("####", 1)
    reference = final.strip().replace(",", "")
    if not reference:
        raise ValueError(f"{where}: field 'answer' has nothing after '####' (expected '#### <number>')")
    rationale = rationale.strip()
    solution = _CALC.sub("", rationale) + f"\n\\boxed{{{reference}}}"
    sid = str(row["id"]) if row.get("id") is not None else default_id
    return Sample(
        id=sid,
        prompt=question,
        reference=reference,
        meta={"rationale": rationale, "solution": solution},
    )


@register_task("gsm8k")
def gsm8k_task(
    split: str = "train",
    path: str | None = None,
    limit: int | None = None,
    prompt_template: str = MATH_TEMPLATE,
    system_prompt: str | None = None,
) -> DatasetTask:
    """GSM8K from the hub (openai/gsm8k, main) or from a local file of the same schema (`path`)."""
    rows = source_rows(path, None if path is not None else HUB_NAME, HUB_CONFIG, split, limit)
    return load_task(rows, gsm8k_row, "gsm8k", limit, prompt_template, system_prompt, "math")
