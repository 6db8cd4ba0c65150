"""Step-labelled solutions for process reward models (PRMs): one schema, converters, and named sources.

The schema (`StepwiseExample`, and the "stepwise" file format) is a prompt (string or chat messages), its
solution cut into `steps` (strings), and one label per step, a float in [0, 1] (1 = the step is good,
0 = it is wrong; soft labels in between). Converters read the public formats into it:

- "stepwise": our own rows, `{"prompt", "steps", "labels"}` (labels may be booleans).
- "trl": TRL's stepwise rows, `{"prompt", "completions", "labels"}` (booleans).
- "math_shepherd": peiyi9979/Math-Shepherd rows, `{"input", "label"}`: `input` is the problem and its solution
  with the step tag "ки" after each step; `label` is the same text with "+" or "-" where the tags are. The
  prompt is the text before the first step marker ("Step 1:", any case); a row without one is an error, not a
  guess (TRL's converter splits at the first "?" and hard-codes 12 known bad rows).
- "prm800k": openai/prm800k rows (one labelled solution each). The chosen path gives one example; with
  `alternatives` (the default, as TRL's converter) every rated alternative completion of a step gives one more
  (the path so far plus that alternative). Ratings map 1 -> 1.0, -1 -> 0.0 and 0 (neutral) -> `neutral`,
  default 1.0: OpenAI and Qwen count a neutral step as positive; TRL maps it to False.

A row that does not fit is a `ValueError` naming the file and row (`where`) and the field; `max_bad_rows`
lets a load go on past that many bad rows, each logged with its location and counted, never dropped silently.
Sources are registered tasks that return a list of `StepwiseExample` (a PRM config names them as `task:` and
`eval.task:`, as preference data is named for DPO): "stepwise_file" here, "arithmetic_steps" (synthetic) in
`tasks.arithmetic_steps`. Torch-free; nothing here tokenizes (the PRM's separator token is inserted by id in
`rlvr.reward_models`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from rlvr.types import Message
from tasks.base import register_task
from tasks.loading import Row, _messages, require, source_rows

log = logging.getLogger("rlvr")

FORMATS = ("stepwise", "trl", "math_shepherd", "prm800k")
SHEPHERD_TAG = "ки"
_FIRST_STEP = re.compile(r"step 1:", re.IGNORECASE)


@dataclass
class StepwiseExample:
    prompt: str | list[Message]
    steps: list[str]
    labels: list[float]  # one per step, in [0, 1]
    meta: dict[str, Any] = field(default_factory=dict)

    def first_error(self) -> int | None:
        """Index of the first step labelled below 0.5, or None when every step is good."""
        return next((i for i, y in enumerate(self.labels) if y < 0.5), None)


def check_example(ex: StepwiseExample, where: str) -> StepwiseExample:
    """`ex` unchanged, or a ValueError naming `where` when steps and labels do not fit together."""
    if not ex.steps:
        raise ValueError(f"{where}: no steps")
    if not all(isinstance(s, str) for s in ex.steps):
        raise ValueError(f"{where}: every step must be a string")
    if len(ex.labels) != len(ex.steps):
        raise ValueError(f"{where}: {len(ex.labels)} labels for {len(ex.steps)} steps (expected one label per step)")
    for i, y in enumerate(ex.labels):
        if isinstance(y, bool) or not isinstance(y, (int, float)) or not 0.0 <= y <= 1.0:
            raise ValueError(f"{where}: label {i} is {y!r}; expected a number in [0, 1] (or a boolean)")
    return ex


def _label(y: Any, where: str, i: int) -> float:
    if isinstance(y, bool):
        return float(y)
    if not isinstance(y, (int, float)):
        raise ValueError(f"{where}: label {i} is {y!r}; expected a number in [0, 1] or a boolean")
    return float(y)


def _str_list(value: Any, where: str, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError(f"{where}: field {name!r} should be a list of strings, got {str(value)[:80]!r}")
    return value


def from_stepwise(row: Row, where: str) -> list[StepwiseExample]:
    prompt = _messages(require(row, "prompt", where, "a string or chat messages"), where, "prompt")
    steps = _str_list(require(row, "steps", where, "a list of step strings"), where, "steps")
    labels = require(row, "labels", where, "a list with one label per step")
    if not isinstance(labels, list):
        raise ValueError(f"{where}: field 'labels' should be a list, got {type(labels).__name__}")
    ex = StepwiseExample(prompt, steps, [_label(y, where, i) for i, y in enumerate(labels)], dict(row.get("meta") or {}))
    return [check_example(ex, where)]


def from_trl(row: Row, where: str) -> list[StepwiseExample]:
    prompt = _messages(require(row, "prompt", where, "a string or chat messages"), where, "prompt")
    steps = _str_list(require(row, "completions", where, "a list of step strings"), where, "completions")
    labels = require(row, "labels", where, "a list of booleans, one per step")
    if not isinstance(labels, list):
        raise ValueError(f"{where}: field 'labels' should be a list, got {type(labels).__name__}")
    return [check_example(StepwiseExample(prompt, steps, [_label(y, where, i) for i, y in enumerate(labels)]), where)]


def from_math_shepherd(row: Row, where: str, tag: str = SHEPHERD_TAG) -> list[StepwiseExample]:
    text = require(row, "input", where, f"the solution text with {tag!r} after each step")
    marked = require(row, "label", where, f"the solution text with '+' or '-' at each {tag!r}")
    if not isinstance(text, str) or not isinstance(marked, str):
        raise ValueError(f"{where}: fields 'input' and 'label' should be strings")
    tags = [m.start() for m in re.finditer(re.escape(tag), text)]
    if not tags:
        raise ValueError(f"{where}: field 'input' has no step tag {tag!r}")
    first = _FIRST_STEP.search(text)
    if first is None:
        raise ValueError(f"{where}: field 'input' has no 'Step 1:' marker to split the prompt from the solution")
    if tags[0] < first.start():
        raise ValueError(f"{where}: a step tag {tag!r} stands before 'Step 1:' (a mislabelled row)")
    # `label` is `input` with each tag replaced by one character: the k-th tag moves left by k * (len(tag) - 1)
    labels, steps, start = [], [], first.start()
    for k, pos in enumerate(tags):
        at = pos - k * (len(tag) - 1)
        sign = marked[at] if at < len(marked) else ""
        if sign not in ("+", "-"):
            raise ValueError(f"{where}: field 'label' has {sign!r} where step tag {k} stands; expected '+' or '-'")
        labels.append(1.0 if sign == "+" else 0.0)
        steps.append(text[start:pos].strip())
        start = pos + len(tag)
    return [check_example(StepwiseExample(text[: first.start()].strip(), steps, labels), where)]


def _prm800k_rating(completion: Any, where: str, neutral: float) -> float:
    rating = completion.get("rating") if isinstance(completion, dict) else None
    if rating not in (-1, 0, 1):
        raise ValueError(f"{where}: a completion's 'rating' is {rating!r}; expected -1, 0 or 1")
    return {1: 1.0, 0: neutral, -1: 0.0}[rating]


def _text(completion: Any, where: str) -> str:
    text = completion.get("text") if isinstance(completion, dict) else completion
    if not isinstance(text, str):
        raise ValueError(f"{where}: a step completion has no 'text' string: {str(completion)[:80]!r}")
    return text


def from_prm800k(row: Row, where: str, neutral: float = 1.0, alternatives: bool = True) -> list[StepwiseExample]:
    question = require(row, "question", where, "an object with the 'problem'")
    if not isinstance(question, dict) or not isinstance(question.get("problem"), str):
        raise ValueError(f"{where}: field 'question' should be an object with a 'problem' string")
    label = require(row, "label", where, "an object with the labelled 'steps'")
    steps_in = label.get("steps") if isinstance(label, dict) else None
    if not isinstance(steps_in, list):
        raise ValueError(f"{where}: field 'label' should be an object with a 'steps' list")
    prompt, out = question["problem"], []
    steps: list[str] = []
    labels: list[float] = []
    for j, step in enumerate(steps_in):
        at = f"{where}, label.steps[{j}]"
        completions, human, chosen = step.get("completions"), step.get("human_completion"), step.get("chosen_completion")
        if completions is None and human is None and chosen is None:
            break  # an empty step closes some phase-1 solutions
        completions = completions or []
        if alternatives:
            for i, c in enumerate(completions):
                if i != chosen:
                    out.append(StepwiseExample(prompt, steps + [_text(c, at)], labels + [_prm800k_rating(c, at, neutral)]))
        if chosen is not None:
            if not isinstance(chosen, int) or not 0 <= chosen < len(completions):
                raise ValueError(f"{at}: chosen_completion {chosen!r} is not an index into its {len(completions)} completions")
            steps.append(_text(completions[chosen], at))
            labels.append(_prm800k_rating(completions[chosen], at, neutral))
        elif human is not None:  # a labeller's own step, written because every completion was wrong: good
            steps.append(_text(human, at))
            labels.append(1.0)
        else:  # the labeller stopped here (found_error); the alternatives above already hold the path as prefix
            steps = [] if alternatives else steps
            break
    if steps:
        out.append(StepwiseExample(prompt, steps, labels))
    if not out:
        raise ValueError(f"{where}: no labelled step in field 'label.steps'")
    return [check_example(ex, where) for ex in out]


def converter(fmt: str, neutral: float = 1.0, alternatives: bool = True) -> Callable[[Row, str], list[StepwiseExample]]:
    """The row converter for format `fmt` (one of FORMATS)."""
    if fmt == "stepwise":
        return from_stepwise
    if fmt == "trl":
        return from_trl
    if fmt == "math_shepherd":
        return from_math_shepherd
    if fmt == "prm800k":
        if not 0.0 <= neutral <= 1.0:
            raise ValueError(f"prm800k: neutral must be in [0, 1], got {neutral}")
        return lambda row, where: from_prm800k(row, where, neutral, alternatives)
    raise ValueError(f"unknown stepwise format {fmt!r}; expected one of {', '.join(FORMATS)}")


def convert_rows(
    rows: Iterator[tuple[str, Row]], fmt: str, *, neutral: float = 1.0, alternatives: bool = True,
    limit: int | None = None, max_bad_rows: int = 0,
) -> tuple[list[StepwiseExample], list[str]]:
    """(examples, bad-row messages) from `rows` in format `fmt`; more than `max_bad_rows` bad rows is an error."""
    convert = converter(fmt, neutral, alternatives)
    examples: list[StepwiseExample] = []
    bad: list[str] = []
    for where, row in rows:
        if limit is not None and len(examples) >= limit:
            break
        try:
            examples.extend(convert(row, where))
        except ValueError as e:
            bad.append(str(e))
            if len(bad) > max_bad_rows:
                raise ValueError(f"{e} (bad rows so far: {len(bad)}; max_bad_rows={max_bad_rows})") from None
            log.warning("skipping bad row %d of at most %d: %s", len(bad), max_bad_rows, e)
    return examples[:limit] if limit is not None else examples, bad


@register_task("stepwise_file")
def stepwise_file(
    path: str | None = None, hub: str | None = None, config: str | None = None, split: str = "train",
    format: str = "stepwise", neutral: float = 1.0, alternatives: bool = True, limit: int | None = None,
    max_bad_rows: int = 0,
) -> list[StepwiseExample]:
    """Examples from a local .jsonl/.json/.parquet file (`path`) or a hub dataset (`hub`), read as `format`."""
    examples, _bad = convert_rows(source_rows(path, hub, config, split, None), format, neutral=neutral,
                                  alternatives=alternatives, limit=limit, max_bad_rows=max_bad_rows)  # fmt: skip
    if not examples:
        raise ValueError(f"{path or hub}: no stepwise examples")
    return examples


def write_stepwise(examples: list[StepwiseExample], path: str | Path) -> Path:
    """Write `examples` as a "stepwise" .jsonl file (the format `stepwise_file` reads back)."""
    import json

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as f:
        for ex in examples:
            row = {"prompt": ex.prompt, "steps": ex.steps, "labels": ex.labels}
            if ex.meta:
                row["meta"] = ex.meta
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return p
