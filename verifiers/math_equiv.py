"""The "math" verifier: is the final answer of a completion equal to the gold answer?

Pipeline: `extract.extract_answer` (last box, `####`, "the answer is", final
sentence) -> `normalize.normalize` (wrappers, units, percent, degrees, hedges)
-> `math_answer.parse_answer` (structures, bounded sympy parsing) -> `equal`
below. Grading follows a careful human grader: exact values are compared
exactly (0.333 is not 1/3, 0.5 is 1/2, `0.\\overline{9}` is 1), a decimal gold
answer accepts values that round to it, a different unit is wrong, 0.4 is not
40%, tuples are ordered, sets and bare lists are not, intervals compare
endpoints and brackets, equations compare up to a nonzero factor.

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

import contextvars
import functools
import random
import re
import time

import sympy

from rlvr.types import Sample
from verifiers.base import Verdict, register_verifier
from verifiers.extract import extract_answer
from verifiers.latex_expr import ParseError, TooComplex
from verifiers.math_answer import Value, parse_answer
from verifiers.normalize import Norm, normalize

MAX_COMPLETION = 200_000  # characters; a megabyte answer is rejected before anything else runs
MAX_PRED = 2000  # characters of an extracted answer; longer is not an answer a grader would read
MAX_OPS = 300  # sympy operation count above which symbolic checks are skipped
BUDGET_S = 2.0  # soft per-item deadline for the comparison (first calls warm sympy up); past it: an error, counted
_POINTS = [sympy.Rational(random.Random(k).randint(11, 97), 37) for k in range(3)]  # fixed: deterministic


def _decimals(gold_text: str) -> int | None:
    """Decimal places of a gold answer written as one decimal number (a rounded value), else None."""
    m = re.fullmatch(r"-?\d*\.(\d+)", gold_text.strip())
    return len(m.group(1)) if m else None


class OverBudget(Exception):
    """The comparison ran past its per-item budget (a soft deadline; the pool's timeout is the hard one)."""


_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("math_deadline", default=float("inf"))


def _check_budget() -> None:
    if time.monotonic() > _DEADLINE.get():
        raise OverBudget(f"comparison took longer than {BUDGET_S}s")


def _value(e: sympy.Expr, pt: dict | None = None) -> sympy.Expr | None:
    """e at the point `pt`, to 30 digits, with bounded working precision; None when not a finite number."""
    _check_budget()
    v = e.evalf(30, subs=pt, maxn=60)
    if not v.is_number or v.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        return None
    return v


def _close(a: sympy.Expr | None, b: sympy.Expr | None) -> bool:
    if a is None or b is None:
        return False
    if a == 0 or b == 0:  # an exact zero against a sum that cancels numerically (to evalf's precision)
        return bool(abs(a - b) < sympy.Float("1e-50", 30))
    # relative: 1/2^99 and 1/2^98 are both tiny, and different
    return bool(abs(a - b) <= sympy.Float("1e-20", 30) * max(abs(a), abs(b)))


def _points(syms: list[sympy.Symbol]) -> list[dict]:
    return [{s: _POINTS[(k + j) % len(_POINTS)] + j for j, s in enumerate(syms)} for k in range(len(_POINTS))]


def expr_equal(g: sympy.Expr, p: sympy.Expr, gold_decimals: int | None = None) -> bool:
    """Exact (or, for a decimal gold, to its rounding) equality of two sympy expressions.

    Never expands or simplifies: two expressions are equal when their difference is 0 as built, or
    when they agree to 20 digits at fixed points (a constant is one point). Bounded precision.
    """
    _check_budget()
    if g == p:
        return True
    if g.has(sympy.oo, -sympy.oo, sympy.zoo) or p.has(sympy.oo, -sympy.oo, sympy.zoo):
        return False
    if g.free_symbols != p.free_symbols:
        return False
    if sympy.count_ops(g) + sympy.count_ops(p) > MAX_OPS:
        return False
    if not g.free_symbols:
        gv, pv = _value(g), _value(p)
        if _close(gv, pv):
            return True
        if gold_decimals is not None and gv is not None and pv is not None and pv.is_real:
            half = sympy.Rational(1, 2 * 10**gold_decimals)
            return bool(abs(gv - pv) <= half * (1 + sympy.Rational(1, 10**9)))
        return False
    return all(_close(_value(g, pt), _value(p, pt)) for pt in _points(sorted(g.free_symbols, key=str)))


def _eq_equal(d1: sympy.Expr, d2: sympy.Expr) -> bool:
    """lhs1 - rhs1 and lhs2 - rhs2 describe the same equation: one is a nonzero constant times the other."""
    if d1.free_symbols != d2.free_symbols or sympy.count_ops(d1) + sympy.count_ops(d2) > MAX_OPS:
        return False
    ratios = []
    for pt in _points(sorted(d1.free_symbols, key=str)):
        a, b = _value(d1, pt), _value(d2, pt)
        if a is None or b is None:
            return False
        if abs(b) < 1e-25:
            if abs(a) > 1e-25:
                return False
            continue
        ratios.append(a / b)
    return bool(ratios) and all(abs(r - ratios[0]) < 1e-15 * max(1, abs(ratios[0])) for r in ratios) and (
        abs(ratios[0]) > 1e-25
    )


def _match_unordered(gs: tuple[Value, ...], ps: tuple[Value, ...], dec: int | None) -> bool:
    if len(gs) != len(ps):
        return False
    left = list(ps)
    for g in gs:
        k = next((k for k, p in enumerate(left) if equal(g, p, dec)), None)
        if k is None:
            return False
        left.pop(k)
    return True


def _intervals_equal(gs: tuple, ps: tuple) -> bool:
    def same(a: tuple, b: tuple) -> bool:
        return a[2] == b[2] and a[3] == b[3] and expr_equal(a[0], b[0]) and expr_equal(a[1], b[1])

    return len(gs) == len(ps) and all(any(same(g, p) for p in ps) for g in gs)


def _as_eq(v: Value) -> Value:
    inner = v.items[0]
    if inner.kind != "expr" or v.var is None or "(" in v.var:
        return v
    return Value("eq", (sympy.Symbol(v.var) - inner.items[0],))


def equal(g: Value, p: Value, dec: int | None = None) -> bool:
    """Are two parsed answers equivalent? `g` is the gold one."""
    if {g.kind, p.kind} == {"assign", "eq"}:  # "x = 5-2y" against "x+2y=5"
        g, p = (_as_eq(v) if v.kind == "assign" else v for v in (g, p))
    if p.kind == "eq" and g.kind == "expr" and p.items[1] is not None:  # "a+b+c = 12" for 12
        return expr_equal(g.items[0], p.items[1], dec)
    if g.kind == "eq" and p.kind == "expr" and g.items[1] is not None:
        return expr_equal(g.items[1], p.items[0], dec)
    if g.kind == "tuple" and p.kind == "list" and all(q.kind == "assign" for q in p.items):
        return equal(g, Value("tuple", tuple(q.items[0] for q in p.items)), dec)  # "x=3, y=4" for (3,4)
    if g.kind == "assign" and p.kind != "assign":
        return equal(g.items[0], p, dec)
    if p.kind == "assign" and g.kind != "assign":
        return equal(g, p.items[0], dec)
    if g.kind == "assign":
        return g.var == p.var and equal(g.items[0], p.items[0], dec)
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
        return _eq_equal(g.items[0], p.items[0])
    if g.kind == "matrix":
        return len(g.items) == len(p.items) and all(
            len(a) == len(b) and all(expr_equal(x, y) for x, y in zip(a, b)) for a, b in zip(g.items, p.items)
        )
    return g.items == p.items  # text


@functools.lru_cache(maxsize=4096)
def _gold(reference: str) -> tuple[Norm, Value | None, str | None]:
    """Normalised and parsed gold answer, cached: the same gold is checked for every completion of a group."""
    if "\\boxed" in reference or "####" in reference:  # a whole worked solution given as the gold
        reference = extract_answer(reference).pred or reference
    norm = normalize(reference)
    try:
        return norm, parse_answer(norm.text), None
    except (ParseError, TooComplex) as e:
        return norm, None, f"{type(e).__name__}: {e}"


def _text_key(n: Norm) -> str:
    return re.sub(r"\s+", "", n.text).lower()


def judge(pred: str, reference: str) -> tuple[bool, str]:
    """(correct, reason) for an extracted answer against a gold answer."""
    gn, gv, gerr = _gold(reference)
    pn = normalize(pred)
    if pn.hedged and not gn.hedged:
        return False, "hedged"
    if pn.approx and _decimals(gn.text) is None:  # "about 3.14" for pi: an approximation of an exact value
        return False, "approximate"
    if gn.unit and pn.unit and gn.unit != pn.unit:
        return False, "wrong_unit"
    if gn.choice is not None:
        with_value = re.fullmatch(r"\(?[A-E]\)\s*(\S.*)", gn.text)
        if pn.choice is None and with_value:  # "18" for "(D) 18"
            return judge(pred, with_value.group(1))[0], "choice_value"
        return pn.choice == gn.choice or _text_key(pn) == _text_key(gn), "choice"
    if _text_key(pn) == _text_key(gn) and pn.percent == gn.percent:
        return True, "string"
    if gv is None:
        raise ValueError(f"gold answer {reference!r} cannot be parsed ({gerr})")
    try:
        pv = parse_answer(pn.text)
    except TooComplex:
        return False, "rejected_too_complex"
    except (ParseError, RecursionError):
        return False, "unparsable"
    # a decimal gold is a rounded value: an exact answer that rounds to it counts (1/3 for 0.33), but a decimal
    # answer must be the same decimal (4.49 is not 4.5: it was not rounded as asked)
    dec = _decimals(gn.text) if not re.search(r"\d\.\d", pn.text) else None
    return bool(equal(gv, pv, dec)), "sympy"


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
    token = _DEADLINE.set(time.monotonic() + BUDGET_S)
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
        _DEADLINE.reset(token)
    info["reason"] = reason
    return Verdict(float(ok), ok, info=info)
