"""Answer extraction, normalisation and the bounded expression parser."""

from __future__ import annotations

import pytest
import sympy

from verifiers.extract import boxed_all, extract_answer
from verifiers.latex_expr import ParseError, TooComplex, parse_expr_latex
from verifiers.normalize import normalize, words_to_number


@pytest.mark.parametrize(
    "completion,pred",
    [
        ("x \\boxed{\\frac{\\sqrt{\\frac{1}{4}}}{2}} y", "\\frac{\\sqrt{\\frac{1}{4}}}{2}"),  # nested braces
        ("\\boxed{\\boxed{8}}", "8"),
        ("It is $\\boxed 5$.", "5"),
        ("Natalia sold 72 clips.\n#### 72", "72"),
        ("**Answer:** 64", "64"),
        ("The final answer is $\\frac{7}{2}$. I hope it is correct.", "\\frac{7}{2}"),
        ("The answer is 3.5.", "3.5"),
        ("First the answer is 20. Rechecking, the answer is 18.", "18"),
        ("So she has 18 apples left.", "18"),
        ("The correct option is (C).", "(C)"),
        ("Weng earned $10 for 50 minutes of babysitting.", "$10"),  # the stated number, not trailing context
        ("She has 3 red and 5 blue marbles, so 8 marbles in total.", "8"),  # the concluding clause
        ("So she has 7 apples left after giving 2 away.", "7"),
        ("Total: 7", "7"),
        ("12", "12"),
        ("The answer is\n\\[\n\\frac{1}{2}\n\\]", "\\frac{1}{2}"),  # display math over lines
        ("9 * 2 = 18\n#### 18\n\nQuestion: Tom has 5 apples.\nAnswer: 25\n#### 25", "18"),  # few-shot ramble
    ],
)
def test_extracts_the_final_answer(completion: str, pred: str) -> None:
    assert extract_answer(completion).pred == pred


@pytest.mark.parametrize(
    "completion",
    [
        "so \\boxed{\\frac{1}{",  # cut inside the box
        "First, 16 - 3 - 4 = 9 eggs remain. Then each sells for",
        "Let me compute 6 * 7 = 42, and then we add the remaining",
        "So she has 18 apples left.\n\nNow let me double check: 16 - 3",
        "The answer is",
        "",
    ],
)
def test_truncated_completions_have_no_answer(completion: str) -> None:
    assert extract_answer(completion).pred is None


def test_boxed_all_reports_unclosed() -> None:
    assert boxed_all("\\boxed{1} \\fbox{2} \\boxed{3") == (["1", "2"], True)


@pytest.mark.parametrize(
    "raw,text",
    [
        ("\\$1,000", "1000"),
        ("\\left( 1, 2 \\right)", "( 1, 2 )"),
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("10,\\!080", "10080"),
        ("0.\\overline{3}", "\\frac{1}{3}"),
        ("0.1\\overline{6}", "\\frac{1}{6}"),
        ("0.333\\ldots", "\\frac{1}{3}"),
        ("2\\frac{1}{2}", "(2+\\frac{1}{2})"),
        ("twenty-one", "21"),
        ("\\mathrm{5}", "5"),
    ],
)
def test_normalised_text(raw: str, text: str) -> None:
    assert normalize(raw).text == text


def test_flags() -> None:
    assert normalize("5\\%").percent and normalize("90^\\circ").degrees
    assert normalize("10 \\text{ cm}").unit == "cm" and normalize("3 square feet").unit == "ft^2"
    assert normalize("\\text{(B)}").choice == "B" and normalize("not 5").hedged
    assert normalize("\\approx 3.14").approx and normalize("18 apples").unit is None


def test_words_to_number() -> None:
    assert words_to_number("one hundred five") == 105 and words_to_number("two thousand and twenty") == 2020
    assert words_to_number("apple") is None


@pytest.mark.parametrize(
    "text,value",
    [
        ("\\frac12", sympy.Rational(1, 2)),
        ("0.125", sympy.Rational(1, 8)),
        ("\\sqrt[3]{27}", sympy.Integer(3)),
        ("\\log_2 8", sympy.Integer(3)),
        ("5!", sympy.Integer(120)),
        ("\\binom{5}{2}", sympy.Integer(10)),
        ("e^{i\\pi}", sympy.Integer(-1)),
        ("2\\pi r", 2 * sympy.pi * sympy.Symbol("r")),
        ("\\sin^2 x", sympy.sin(sympy.Symbol("x")) ** 2),
        ("|-3|", sympy.Integer(3)),
    ],
)
def test_parser_values(text: str, value: sympy.Expr) -> None:
    assert sympy.simplify(parse_expr_latex(text) - value) == 0


@pytest.mark.parametrize("text", ["10^{10^{10}}", "10000000!", "(" * 100 + "1" + ")" * 100, "x^{5000}", "1" * 100])
def test_parser_refuses_blowups(text: str) -> None:
    with pytest.raises(TooComplex):
        parse_expr_latex(text)


@pytest.mark.parametrize("text", ["__import__('os')", "1 +", "\\unknown{3}", "a;b"])
def test_parser_refuses_non_math(text: str) -> None:
    with pytest.raises((ParseError, TooComplex)):
        parse_expr_latex(text)
