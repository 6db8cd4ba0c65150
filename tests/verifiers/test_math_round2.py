"""The math verifier's second round (issue #16): one test per rule, real sympy, wrong answers first."""

from __future__ import annotations

import pytest
import sympy

from rlvr.types import Sample
from verifiers import get_verifier
from verifiers.extract import extract_answer
from verifiers.intervals import inequality
from verifiers.latex_expr import TooComplex, parse_expr_latex
from verifiers.math_equiv import judge
from verifiers.normalize import normalize
from verifiers.sympy_compare import expr_equal

MATH = get_verifier("math")


def grade(completion: str, gold: str) -> bool:
    v = MATH(completion, Sample(id="t", prompt="", reference=gold))
    assert v.error is None, v.error
    return v.correct


@pytest.mark.parametrize(
    "gold,pred",
    [
        ("1100", "(1,100)"),  # a pair is not a number with a thousands separator
        ("2500", "[2,500]"),
        ("5125", r"\{5,125\}"),
        (r"2x + 3y - z = 0", "0"),  # the right side of an equation gold is not its answer
        (r"(x-2)^2 + (y+1)^2 = 25", "25"),
        ("a + b = 12", "12"),
        ("5", "x != 5"),  # ASCII relations are relations, not factorials
        ("2", "x <= 2"),
        ("3", "x >= 3"),
        (r"\$18", r"18\%"),  # a percent is not money
        (r"18\%", r"\$18"),
        ("x", r"\sqrt{x^2}"),
        ("0", "0 = 0"),  # a tautology states nothing
        (r"\frac{5}{36}", r"\frac{5}{36} \approx 0.5"),  # an approximation that contradicts its exact value
        ("11", r"x \approx 11"),  # an approximation of an exact answer
        ("1011_2", "11"),  # a numeral converted to another base
        ("1011_2", "1011_3"),
        ("2:1", "1:2"),
        ("12:00", "1:00"),
        ("(3,2)", "(2,3)"),
        (r"\mathbb{R} \setminus \{1\}", r"(-\infty,0)\cup(0,\infty)"),
        ("|x| > 2", r"x<-2 \text{ or } x>3"),
        (r"1 - \frac{1}{e}", r"1 + \frac{1}{e}"),
        (r"\frac{1}{12}", "0.0833"),
        ("(1,3)", "{1,3}"),  # a set is not an ordered pair
        ("A", "(A) or (B)"),  # two options named: a hedge
        ("1", "one of the roots"),  # a number word opening a phrase is not the number
    ],
)
def test_wrong_answers_stay_wrong(gold: str, pred: str) -> None:
    assert not judge(pred, gold)[0]


@pytest.mark.parametrize(
    "gold,pred",
    [
        ("(1,100)", "(1,100)"),
        ("12102", "12,102"),
        ("[1000, 2000]", "[1,000, 2,000]"),  # inside brackets, where ", " separates the elements
        ("1000, 2000", "1,000, 2,000"),
        ("k = 7", "7"),  # the named quantity's value
        ("AB = 13", "13"),
        ("|AB| = 1", "1"),
        ("V_1:V_2 = 11:21", "11:21"),
        (r"\frac{NO}{BO} = \frac{1}{\sqrt{6}}", r"\frac{1}{\sqrt6}"),
        ("180 \\cdot 3 = 540", "540"),
        ("540", "180 \\cdot 3 = 540"),
        (r"x \neq 5", "x != 5"),
        ("x < 3", r"x \lt 3"),
        ("x > 5", r"x \gt 5"),
        (r"18\%", r"18\%"),
        ("18", r"18\%"),
        ("|x|", r"\sqrt{x^2}"),
        (r"2\ln x", r"\ln x^2"),  # a side undefined at negative x does not count there
        (r"\frac{5}{36}", r"\frac{5}{36} \approx 0.139"),
        (r"\frac{1}{12}", "0.0833333333333333"),  # a float printed to machine precision
        (r"\frac{1}{2}", r"1 \over 2"),
        (r"30^\circ", "30^o"),
        (r"\{1,2,3\}", "{3,2,1}"),
        ("(p,q)=(3,2)", "(3,2)"),
        ("(3,2)", "(p,q)=(3,2)"),
        ("(p,q)=(3,2)", "q=2, p=3"),
        ("x = 11", "x = 5+5+1 = 11"),
        ("1011_2", "1011"),
        ("1011", "1011_2"),
        ("2:1", "4:2"),
        ("3:45", "3:45 pm"),
        ("11111111100", r"11,\! 111,\! 111,\! 100"),
        ("125 miles", r"125\textnormal{ miles}"),
        (r"\infty", r"\text{infinity}"),
        (r"\text{(B)}", "b"),
        (r"\begin{pmatrix} 2 & 4 \\ 6 & 8 \end{pmatrix}", r"2\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}"),
        (r"\begin{pmatrix} 6 & 8 \\ 10 & 12 \end{pmatrix}",
         r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix} + \begin{pmatrix} 5 & 6 \\ 7 & 8 \end{pmatrix}"),
        ("|x| > 2", r"x<-2 \text{ or } x>2"),
        (r"1\leq|z|\leq \frac{3}{2}", r"\left[-\frac{3}{2}, -1\right] \cup \left[1, \frac{3}{2}\right]"),
        (r"(-\infty,0) \cup (0,\infty)", r"\mathbb{R} \setminus \{0\}"),
        ("x < 1", "-x > -1"),
        ("x \\ge -2", "-3x \\le 6"),
        ("0<f(x)<1", "(0,1)"),
        (r"\sum_{k=0}^{n-1} F_k F_{n-k-1}", r"\sum_{k=0}^{n-1} F_{n-k-1} F_k"),
        (r"\sin 2x", r"2\sin x\cos x"),
        (r"\cos 2x", r"\cos^2 x - \sin^2 x"),
        ("(2,1),(1,2)", "(1,2),(2,1),(1,2)"),  # a solution listed twice is one solution
        ("(0;0;0),(4;-2;6)", "(0,0,0),(4,-2,6)"),
        ("p=5,q=2;p=7,q=2", "(5,2),(7,2)"),
        (r"p = 5, q = 2 \text{ and } p = 7, q = 2", "p=5,q=2;p=7,q=2"),
        ("$21,16$ or $11$", "21,16,11"),
        (r"\\frac{\\pi}{2}", r"\frac{\pi}{2}"),  # a doubled backslash (text escaped twice)
        ("185", "185\\"),
        ("2|x|", r"2\sqrt{x^2}"),  # |x| after a factor opens an absolute value
    ],
)
def test_equivalent_answers_are_accepted(gold: str, pred: str) -> None:
    assert judge(pred, gold)[0]


@pytest.mark.parametrize(
    "completion,pred",
    [
        ("So the answer is $\\boxed{12}$. Wait, I double counted. Subtracting it, the answer is 11.", "11"),
        ("We get $\\boxed{6}$. Actually, I made an error: the final answer is $\\boxed{8}$.", "8"),
        ("Therefore the answer is $\\boxed{12}$. This is the number of pairs.", "12"),
        ("So $\\boxed{12}$. Note: the answer is not 13.", "12"),  # a negation after the box restates nothing
        ("Setting $k^2 = 49$ with $k>0$, so the value of $k$ is 7.", "7"),
        ("The value of $x$ is 5 when $y = 2$.", "5"),
        ("There are 6 outcomes and 4 are favourable, so the probability is 2/3.", "2/3"),
        ("The perimeter is $2(5+7) = 24$ units. I hope it is correct.", "24"),
        ("Thus the answer is 12. I hope it is correct. <|im_start|>user\nNext question", "12"),
        ("Final Answer: The largest $n$ is 34.", "34"),
        ("Final Answer: Jane started growing Sphere 3 hours ago. I hope it is correct.", "3"),
        ("$$\\frac{a}{b} \\geq 2.$$ Therefore, the error increases by 100%.", "100%"),
        ("She has $16 - 3 - 4 = 9$ eggs left, making 18 dollars.", "18"),
        ("She has seven apples left.", "seven"),
        ("The probability is one half.", "one half"),
        ("Answer $ 9 $", "9"),
        ("The solution set is all $x$ with $x <= 2$.", "x <= 2"),
        ("Therefore the probability is $\\boxed{\\frac{3}{4", "\\frac{3}{4}"),
        ("So $x = \\frac{1}{2", "x = \\frac{1}{2}"),
        ("<think>10 - 5 = 5\n<answer>5</answer>", "5"),
        ("D. it can't be A or B", "(D)"),
    ],
)
def test_extraction(completion: str, pred: str) -> None:
    assert extract_answer(completion).pred == pred


@pytest.mark.parametrize(
    "completion",
    [
        "Therefore the probability is $\\boxed{\\frac{3}{",  # cut before the denominator
        "Answer $ \n 9 \n $",  # inline math does not span lines
        "<think>10 - 5 = 5, so the answer is 5",
    ],
)
def test_no_answer_where_the_intent_is_not_clear(completion: str) -> None:
    assert extract_answer(completion).pred is None


def test_whole_completions() -> None:
    assert grade("So the answer is $\\boxed{12}$. Wait, the second term is 5, not 2. So the answer is 15.", "15")
    assert not grade("So the answer is $\\boxed{12}$. Wait, the second term is 5, not 2. So the answer is 15.", "12")
    assert grade("The answer is twelve dollars.", "12") and grade("#### three hundred", "300")
    assert grade("The answer is negative three.", "-3") and not grade("The answer is negative three.", "3")
    assert grade("So she saved $\\boxed{\\$18}$.", "\\$18") and not grade("So she saved \\$18.", "18\\%")
    assert grade("x", "The probability is $\\frac{1}{4}$, so the answer is $\\boxed{\\frac14}$.") is False
    assert grade("So $\\boxed{0.25}$.", "The probability is $\\frac{1}{4}$, so the answer is $\\boxed{\\frac14}$.")
    assert grade("The roots are $\\boxed{-2, 1}$.", "\\boxed{1} and \\boxed{-2}")  # boxes joined by "and"
    assert not grade("The roots are $\\boxed{1, 2}$.", "\\boxed{1} no no no no no \\boxed{2}")  # the last group
    for gold in ("4", "42"):  # a closed box, then a different one cut off: a change of mind, not an answer
        assert not grade("First I get $\\boxed{42}$, then checking again gives $\\boxed{4", gold)


def test_normalize_flags() -> None:
    assert normalize("\\$18").currency and normalize("$18").currency and normalize("12 dollars").currency
    assert not normalize("$28$ %").currency and normalize("$28$ %").percent
    assert normalize("1011_2").base == 2 and normalize("a_2").base is None
    assert normalize("\\frac{5}{36} \\approx 0.139").approx_of == "0.139"
    assert normalize("(1,100)").text == "(1,100)" and normalize("\\frac{1,000}{3}").text == "\\frac{1000}{3}"


def test_inequalities_become_intervals() -> None:
    neg, pos = sympy.S.NegativeInfinity, sympy.S.Infinity
    assert inequality("-x > -1", parse_expr_latex) == (((neg, 1, True, True),), "x")
    assert inequality("|x-1| < 2", parse_expr_latex) == (((-1, 3, True, True),), "x")
    assert inequality("|x| \\ge 2", parse_expr_latex) == (((neg, -2, True, False), (2, pos, False, True)), "x")
    assert inequality("x^2 < 4", parse_expr_latex) is None  # not solved here: a grader expects the solved form


@pytest.mark.parametrize(
    "bomb",
    ["99999!!", "(400!)!", "10^{1000}!", r"(1+\frac{1}{10^{100}})^{10^{100}}", "2^{2^{2^{2^{2}}}}",
     "9^{9^{9}}", r"\binom{10000}{5000}^{100}", "(10^{7})!"],
)  # fmt: skip
def test_exploding_operators_are_refused_before_sympy(bomb: str) -> None:
    with pytest.raises(TooComplex):
        parse_expr_latex(bomb)
    assert not grade(f"\\boxed{{{bomb}}}", "1")


def test_products_commute_inside_a_sum_but_other_sums_differ() -> None:
    a = parse_expr_latex(r"\sum_{k=1}^{n} k a_k")
    assert expr_equal(a, parse_expr_latex(r"\sum_{k=1}^{n} a_k k"))
    assert not expr_equal(a, parse_expr_latex(r"\sum_{k=1}^{n} a_k"))
    assert parse_expr_latex(r"\sum_{k=1}^{10} k") == 55
    # a term whose exponent grows with k is never expanded (100^{100^{100}} would not end): kept as the sum
    assert isinstance(parse_expr_latex(r"\sum_{k=1}^{100} k^{k^{k}}"), sympy.Sum)
    assert not grade(r"\boxed{\sum_{k=1}^{100} k^{k^{k}}}", "1")
