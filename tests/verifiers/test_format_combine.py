"""Format verifiers and their composition by registry name."""

from __future__ import annotations

import pytest

from rlvr.types import Sample
from verifiers import Verdict, get_verifier, register_verifier

S = Sample(id="t", prompt="", reference="4")


@register_verifier("test_always_error")
def _always_error(completion: str, sample: Sample) -> Verdict:
    return Verdict.failure("cannot judge")


@register_verifier("test_raises")
def _raises(completion: str, sample: Sample) -> Verdict:
    raise RuntimeError("verifier bug")


@pytest.mark.parametrize(
    "completion,answer_tag,ok",
    [
        ("<think>2+2</think> so \\boxed{4}", False, True),
        ("<think>2+2</think><answer>4</answer>", True, True),
        ("<think>2+2</think> 4", True, False),  # no answer tags
        ("<think></think> 4", False, False),  # empty reasoning
        ("<think>a</think><think>b</think> 4", False, False),  # tag twice
        ("4 <think>late</think>", False, False),  # does not start with think
        ("<think>2+2</think>", False, False),  # nothing after
    ],
)
def test_think_format(completion: str, answer_tag: bool, ok: bool) -> None:
    assert get_verifier("think_format", answer_tag=answer_tag)(completion, S).correct is ok


@pytest.mark.parametrize("completion,ok", [("\\boxed{4}", True), ("\\boxed{4} \\boxed{4}", False), ("4", False), ("\\boxed{4", False)])
def test_one_box(completion: str, ok: bool) -> None:
    assert get_verifier("one_box")(completion, S).correct is ok


def test_length_limit() -> None:
    v = get_verifier("length_limit", max_chars=5, min_chars=2)
    assert [v(c, S).correct for c in ("a", "abc", "abcdef")] == [False, True, False]


def test_weighted_sums_component_scores() -> None:
    v = get_verifier(
        "weighted",
        components=[{"name": "math", "weight": 1.0}, {"name": "think_format", "weight": 0.5}],
    )
    good = v("<think>2+2</think> \\boxed{4}", S)
    assert good.score == 1.5 and good.correct and good.info["pred"] == "4"
    no_format = v("\\boxed{4}", S)
    assert no_format.score == 1.0 and not no_format.correct
    assert v("<think>x</think> \\boxed{5}", S).score == 0.5


def test_all_of_needs_every_component() -> None:
    v = get_verifier("all_of", components=[{"name": "math"}, {"name": "one_box"}])
    assert v("\\boxed{4}", S).score == 1.0
    assert v("The answer is 4.", S).score == 0.0  # right answer, no box


def test_gate_zeroes_the_answer_when_format_fails() -> None:
    v = get_verifier("gate", gate={"name": "think_format"}, then={"name": "math"})
    assert v("<think>2+2</think> \\boxed{4}", S).score == 1.0
    failed = v("\\boxed{4}", S)
    assert failed.score == 0.0 and failed.error is None and "gate" in failed.info["reason"]


@pytest.mark.parametrize("bad", ["test_always_error", "test_raises"])
def test_component_error_is_an_error_of_the_whole(bad: str) -> None:
    specs = [{"name": "math", "weight": 1.0}, {"name": bad, "weight": 1.0}]
    assert get_verifier("weighted", components=specs)("\\boxed{4}", S).error is not None
    assert get_verifier("all_of", components=[{"name": "math"}, {"name": bad}])("\\boxed{4}", S).error is not None
    assert get_verifier("gate", gate={"name": "one_box"}, then={"name": bad})("\\boxed{4}", S).error is not None
    assert get_verifier("gate", gate={"name": bad}, then={"name": "math"})("\\boxed{4}", S).error is not None


def test_component_args_reach_the_component() -> None:
    v = get_verifier("all_of", components=[{"name": "length_limit", "args": {"max_chars": 3}}])
    assert v("abc", S).correct and not v("abcd", S).correct


@pytest.mark.parametrize(
    "components,match",
    [
        ([{"name": "math", "wieght": 1.0}], "unknown key"),
        ([{"args": {}}], "string 'name'"),
        ([{"name": "math", "args": [1]}], "args"),
        ([{"name": "math", "weight": "high"}], "weight"),
        ([], "non-empty"),
    ],
)
def test_bad_component_specs_are_clear_errors(components: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        get_verifier("weighted", components=components)


def test_unknown_component_name_suggests_the_nearest() -> None:
    with pytest.raises(KeyError, match="did you mean 'math'"):
        get_verifier("all_of", components=[{"name": "maht"}])
