"""The "math" verifier: is the final answer of a completion equal to the gold answer?

Pipeline: `extract.extract_answer` (last box, `####`, "the answer is", final
sentence) -> `normalize.normalize` (wrappers, units, percent, degrees, hedges)
-> `math_answer.parse_answer` (structures, bounded sympy parsing) -> `equal`
below. Grading follows a careful human grader: exact values are compared
exactly (0.333 is not 1/3, 0.5 is 1/2, `0.\\overline{9}` is 1), a decimal gold
answer accepts values that round to it, a different unit is wrong, 0.4 is not
40% and 18% is not \\$18, tuples are ordered, sets and bare lists are not
(a repeated element is one element), intervals compare endpoints and brackets,
equations compare up to a nonzero factor, an equation gold `lhs = c` accepts
the bare `c` only when `lhs` names the asked-for quantity (`x`, `f(2)`, `AB`,
`A:B`; never `2x + z = 1`), ratios compare up to scale and times as written, a
numeral in a base (`1011_2`) may drop its subscript but not change base, and
`exact \\approx decimal` counts as the exact value when the two agree.

Differences from math-verify (and the peers built on it), on purpose: a
decimal comma is not read (`1,22` is a list, never 1.22); an approximation
that contradicts its exact value (`\\frac13 \\approx 1.3`) is wrong; a
set is not an ordered pair (`{1,3}` is not `(1,3)`); a gold that cannot be
parsed is an error verdict, never a zero.

Sympy work is bounded: cheap string and exact checks first, then numeric checks
at fixed points with bounded working precision; no `expand`, no `simplify`, no
`eval`, no `signal.alarm`. A comparison past `BUDGET_S` stops at its next check
and becomes an error verdict; the hard timeout is the pool's (`verifiers.pool`).

    >>> from rlvr.types import Sample
    >>> v = math_verifier("so \\\\boxed{\\\\dfrac{2}{4}}", Sample(id="0", prompt="", reference="\\\\frac{1}{2}"))
    >>> v.correct, v.info["pred"]
    (True, '\\\\dfrac{2}{4}')
    >>> math_verifier("\\\\boxed{0.333}", Sample(id="1", prompt="", reference="\\\\frac13")).correct
    False
"""

from __future__ import annotations

import functools
import re
import time

import sympy

from rlvr.types import Sample
from verifiers.base import Verdict, register_verifier
from verifiers.extract import boxed_all, extract_answer
from verifiers.latex_expr import ParseError, TooComplex
from verifiers.math_answer import Value, parse_answer
from verifiers.normalize import Norm, normalize
from verifiers.sympy_compare import deadline, eq_equal, expr_equal, value

MAX_COMPLETION = 200_000  # characters; a megabyte answer is rejected before anything else runs
MAX_PRED = 2000  # characters of an extracted answer; longer is not an answer a grader would read
BUDGET_S = 2.0  # soft per-item deadline for the comparison (first calls warm sympy up); past it: an error, counted


def _decimals(text: str) -> int | None:
    """Decimal places of an answer written as one decimal number, else None."""
    m = re.fullmatch(r"-?\d*\.(\d+)", text.strip())
    return len(m.group(1)) if m else None


def _dedupe(vs: tuple[Value, ...]) -> tuple[Value, ...]:
    return tuple(dict.fromkeys(vs))  # written the same way (a repeated solution), not merely equal in value


def _match_unordered(gs: tuple[Value, ...], ps: tuple[Value, ...], dec: int | None, dedupe: bool = True) -> bool:
    if len(gs) == len(ps):
        left = list(ps)
        for g in gs:
            k = next((k for k, p in enumerate(left) if equal(g, p, dec)), None)
            if k is None:
                break
            left.pop(k)
        else:
            return True
    if not dedupe:
        return False
    # a solution listed twice is still one solution: compare as sets
    g2, p2 = _dedupe(gs), _dedupe(ps)
    return (len(g2), len(p2)) != (len(gs), len(ps)) and _match_unordered(g2, p2, dec, dedupe=False)


def _intervals_equal(gs: tuple, ps: tuple) -> bool:
    def same(a: tuple, b: tuple) -> bool:
        return a[2] == b[2] and a[3] == b[3] and expr_equal(a[0], b[0]) and expr_equal(a[1], b[1])

    return len(gs) == len(ps) and all(any(same(g, p) for p in ps) for g in gs)


def _as_eq(v: Value) -> Value:
    inner = v.items[0]
    if inner.kind != "expr" or v.var is None or not re.fullmatch(r"[a-zA-Z](?:_\{?\w+\}?)?|\\[a-zA-Z]+", v.var):
        return v
    return Value("eq", (sympy.Symbol(v.var) - inner.items[0], None, False))


def _ratio_equal(g: tuple, p: tuple) -> bool:
    """a:b:c and d:e:f are the same ratio: proportional, with a nonzero part at the same place."""
    ref = next((k for k, x in enumerate(g) if not expr_equal(x, sympy.Integer(0))), None)
    if len(g) != len(p) or ref is None or expr_equal(p[ref], sympy.Integer(0)):
        return False
    return all(expr_equal(g[k] * p[ref], p[k] * g[ref]) for k in range(len(g)))


def equal(g: Value, p: Value, dec: int | None = None) -> bool:
    """Are two parsed answers equivalent? `g` is the gold one."""
    if {g.kind, p.kind} == {"assign", "eq"}:  # "x = 5-2y" against "x+2y=5"
        g, p = (_as_eq(v) if v.kind == "assign" else v for v in (g, p))
    if p.kind == "eq" and g.kind == "expr" and p.items[1] is not None:  # "180 \cdot 3 = 540" for 540
        return expr_equal(g.items[0], p.items[1], dec)
    if g.kind == "eq" and p.kind == "expr" and g.items[2]:  # a gold "180 \cdot 3 = 540", never "x + y = 1"
        return expr_equal(g.items[1], p.items[0], dec)
    if g.kind == "tuple" and p.kind == "list" and all(q.kind == "assign" for q in p.items):
        return equal(g, Value("tuple", tuple(q.items[0] for q in p.items)), dec)  # "x=3, y=4" for (3,4)
    if g.kind == "assign" and p.kind != "assign":
        return equal(g.items[0], p, dec)
    if p.kind == "assign" and g.kind != "assign":
        return equal(g, p.items[0], dec)
    if g.kind == "assign":
        return g.var == p.var and equal(g.items[0], p.items[0], dec)
    if g.kind == p.kind == "tuple" and g.var and p.var and sorted(g.var.split(",")) == sorted(p.var.split(",")):
        named = dict(zip(p.var.split(","), p.items))  # "y=4, x=3" for "(x,y) = (3,4)": matched by name
        return all(equal(a, named[k], dec) for k, a in zip(g.var.split(","), g.items))
    if {g.kind, p.kind} == {"tuple", "list"} and (g.var or p.var):  # "x=-5, p=14/3" read in order
        return len(g.items) == len(p.items) and all(equal(a, b, dec) for a, b in zip(g.items, p.items))
    if g.kind in ("set", "list") and p.kind in ("set", "list"):
        return _match_unordered(g.items, p.items, dec)
    if g.kind == "intervals" and p.kind == "tuple" and len(g.items) == 1 and len(p.items) == 2:
        lo, hi, lo_open, hi_open = g.items[0]  # "(1,2)" written for an open interval
        return lo_open and hi_open and all(q.kind == "expr" for q in p.items) and _intervals_equal(
            g.items, ((p.items[0].items[0], p.items[1].items[0], True, True),)
        )
    if p.kind == "intervals" and g.kind == "tuple":
        return equal(p, g, dec)
    if {g.kind, p.kind} == {"matrix", "tuple"}:  # a column (or row) vector written as a tuple
        m, t = (g, p) if g.kind == "matrix" else (p, g)
        flat = [x for row in m.items for x in row]
        if min(len(m.items), len(m.items[0])) != 1 or len(flat) != len(t.items):
            return False
        return all(q.kind == "expr" and expr_equal(x, q.items[0]) for x, q in zip(flat, t.items))
    if g.kind != p.kind:
        return False
    if g.kind == "expr":
        return expr_equal(g.items[0], p.items[0], dec)
    if g.kind == "tuple":
        return len(g.items) == len(p.items) and all(equal(a, b, dec) for a, b in zip(g.items, p.items))
    if g.kind == "intervals":
        return _intervals_equal(g.items, p.items)
    if g.kind == "eq":
        return eq_equal(g.items[0], p.items[0])
    if g.kind == "matrix":
        return len(g.items) == len(p.items) and all(
            len(a) == len(b) and all(expr_equal(x, y) for x, y in zip(a, b)) for a, b in zip(g.items, p.items)
        )
    if g.kind == "ratio":
        return _ratio_equal(g.items, p.items)
    if g.kind == "time":  # "3:45" and "3:45 pm": an am/pm on one side only is not a contradiction
        return g.items[:3] == p.items[:3] and (g.items[3] == p.items[3] or not g.items[3] or not p.items[3])
    return g.items == p.items  # text


def _gold_text(reference: str) -> str:
    """The answer in a gold given as a worked solution: its final box (boxes joined by "and" or commas are one
    multi-part answer, `\\boxed{1} and \\boxed{-2}`), its `####` line, or its stated final answer."""
    boxes = [(m.start(), m.end()) for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", reference)]
    contents, _ = boxed_all(reference)
    if len(boxes) > 1 and len(contents) == len(boxes):
        group = [contents[-1]]
        for k in range(len(boxes) - 1, 0, -1):
            between = reference[boxes[k - 1][1] + len(contents[k - 1]) + 1 : boxes[k][0]]
            words = re.findall(r"[A-Za-z]+", re.sub(r"\\[a-zA-Z]+", " ", between))
            if len(words) > 2 or (words and not {"and", "or"} & set(words)):
                break
            group.insert(0, contents[k - 1])
        return ", ".join(dict.fromkeys(group))  # "\boxed{004} ... \boxed{004}": one answer
    prose = len(reference) > 100 and re.search(r"[.:]\s+[A-Z]", reference)
    if boxes or "####" in reference or prose or re.search(r"\banswer\b\s*(?:is|:)", reference, re.I):
        return extract_answer(reference).pred or reference
    return reference


@functools.lru_cache(maxsize=4096)
def _gold(reference: str) -> tuple[Norm, Value | None, str | None]:
    """Normalised and parsed gold answer, cached: the same gold is checked for every completion of a group."""
    norm = normalize(_gold_text(reference))
    try:
        return norm, parse_answer(norm.text), None
    except (ParseError, TooComplex) as e:
        return norm, None, f"{type(e).__name__}: {e}"


def _text_key(n: Norm) -> str:
    return re.sub(r"\s+", "", n.text).lower()


def _choice_in_prose(pred: str) -> str | None:
    """The option letter a prose answer names first: "for sure D, it can't be A or B" -> "D"."""
    m = re.search(r"(?<![\w\\])\(?([A-E])\)?(?=[,.;:)]|\s*$)", pred)
    return m.group(1) if m else None


def judge(pred: str, reference: str) -> tuple[bool, str]:
    """(correct, reason) for an extracted answer against a gold answer."""
    gn, gv, gerr = _gold(reference)
    pn = normalize(pred)
    if pn.hedged and not gn.hedged:
        return False, "hedged"
    if pn.approx and _decimals(gn.text) is None:  # "about 3.14" for pi, "approximately 5" for 5: not committed
        return False, "approximate"
    if gn.unit and pn.unit and gn.unit != pn.unit:
        return False, "wrong_unit"
    if (gn.percent and pn.currency) or (gn.currency and pn.percent):
        return False, "percent_vs_currency"
    if gn.choice is not None:
        letters = set(re.findall(r"(?<![A-Za-z\\])\(?([A-E])\)?(?![A-Za-z])", pred))
        if len(letters) > 1 and not re.search(r"n't|\bnot\b", pred):
            return False, "hedged"  # "(A) or (B)" names two options (but "D, it can't be A or B" names one)
        with_value = re.fullmatch(r"\(?[A-E]\)\s*(\S.*)", gn.text)
        if pn.choice is None and with_value:  # "18" for "(D) 18"
            return judge(pred, with_value.group(1))[0], "choice_value"
        letter = pn.choice or _choice_in_prose(pn.text) or (pn.text.upper() if re.fullmatch(r"[a-e]", pn.text) else None)
        return letter == gn.choice or _text_key(pn) == _text_key(gn), "choice"
    if gn.base or pn.base:  # numerals in a base: the same digits, and no other base named
        same = gn.text.lstrip("0") == pn.text.lstrip("0") and (gn.base == pn.base or not (gn.base and pn.base))
        return same, "base"
    if _text_key(pn) == _text_key(gn) and pn.percent == gn.percent:
        return _approximation_agrees(pn), "string"
    if gv is None:
        raise ValueError(f"gold answer {reference!r} cannot be parsed ({gerr})")
    try:
        pv = parse_answer(pn.text)
    except TooComplex:
        return False, "rejected_too_complex"
    except (ParseError, RecursionError):
        return False, "unparsable"
    # a decimal gold is a rounded value: an exact answer that rounds to it counts (1/3 for 0.33), but a decimal
    # answer must be the same decimal (4.49 is not 4.5: it was not rounded as asked), unless it is a float printed
    # to machine precision (0.0833333333333333 for 1/12): then to within its last digit
    pdec = _decimals(pn.text)
    if pdec is not None:
        dec = pdec - 1 if len(pn.text.strip("-0.")) >= 12 else None
    else:
        dec = _decimals(gn.text) if not re.search(r"\d\.\d", pn.text) else None
    ok = bool(equal(gv, pv, dec))
    if ok and not _approximation_agrees(pn):
        return False, "approximation_disagrees"
    return ok, "sympy"


def _approximation_agrees(pn: Norm) -> bool:
    """"\frac{5}{36} \approx 0.139" agrees (to within the last digit written); "\frac13 \approx 1.3" does not."""
    if pn.approx_of is None:
        return True
    try:
        pv = parse_answer(pn.text)
    except (ParseError, TooComplex, RecursionError):
        return False
    exact = value(pv.items[0]) if pv.kind == "expr" else None
    places = _decimals(pn.approx_of) or 0
    return exact is not None and bool(abs(exact - sympy.Float(pn.approx_of, 30)) <= sympy.Rational(1, 10**places))


def warm_up() -> None:
    """Run each comparison path once (sympy builds caches and imports lazily: a cold first call is slow)."""
    for pred, gold in (
        ("\\frac{1}{2}+\\sqrt{2}x", "x\\sqrt{2}+0.5"), ("\\sqrt{3}/2", "0.866"), ("x+y=2", "2x+2y=4"),
        ("0 \\le x < 1", "[0,1)"), ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "(1,2)"), ("\\sin^2 x", "1-\\cos^2 x"),
        ("e^{i\\pi}", "-1"), ("\\{1,2\\}", "2, 1"), ("(x+1)^2", "x^2+2x+1"), ("-x > -1", "x < 1"), ("\\ln x^2", "2\\ln x"),
    ):  # fmt: skip
        judge(pred, gold)


def _boxes_as_parts(boxes: list[str], reference: str) -> bool:
    """Do the boxes, in order, make up a gold answer with that many parts?"""
    gold = _gold(reference)[1]
    if gold is None or gold.kind not in ("list", "set", "tuple") or len(gold.items) != len(boxes):
        return False
    joined = ", ".join(boxes)
    return judge(f"({joined})" if gold.kind == "tuple" else joined, reference)[0]


@register_verifier("math")
def math_verifier(completion: str, sample: Sample) -> Verdict:
    """1.0 when the completion's final answer equals `sample.reference` (see module doc)."""
    if sample.reference is None:
        return Verdict.failure("sample has no reference answer")
    if len(completion) > MAX_COMPLETION:
        return Verdict(0.0, False, info={"reason": "too_long"})
    ex = extract_answer(completion)
    if ex.pred is None:
        return Verdict(0.0, False, info={"reason": ex.reason})
    info = {"pred": ex.pred[:MAX_PRED], "extracted_by": ex.reason}
    if len(ex.pred) > MAX_PRED:
        return Verdict(0.0, False, info={**info, "reason": "rejected_too_long"})
    if len(ex.others) > 4:
        return Verdict(0.0, False, info={**info, "reason": "multiple_boxed"})
    token = deadline.set(time.monotonic() + BUDGET_S)
    try:
        ok, reason = judge(ex.pred, sample.reference)
        # several boxes written differently: correct if every one of them is (1/2 and 0.5), or if together
        # they are the parts of a multi-part gold ("x = \boxed{2}, y = \boxed{3}" for (2, 3)); else a hedge
        if ex.others and not (ok and all(judge(o, sample.reference)[0] for o in ex.others)):
            ok = _boxes_as_parts(list(ex.others) + [ex.pred], sample.reference)
            reason = "boxed_parts" if ok else "multiple_boxed"
    except Exception as e:  # an unreadable gold or a sympy failure: an error to count, never a wrong answer
        return Verdict.failure(f"{type(e).__name__}: {e}", **info)
    finally:
        deadline.reset(token)
    info["reason"] = reason
    return Verdict(float(ok), ok, info=info)
