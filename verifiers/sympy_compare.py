"""Equality of two sympy expressions, bounded: exact first, then numbers at fixed points.

`expr_equal(g, p)` is true when the difference is 0 as built, or when both
agree to 20 significant digits at fixed points: three with every variable
positive, and two with variables negative that count only where both sides
are inside their real domain (so `\\sqrt{x^2}` is not `x`, yet `2\\ln x` is
`\\ln x^2`). `eq_equal` compares equations up to a nonzero factor. Never
`expand`, `simplify` or `eval`; precision and operation counts are bounded, and
a comparison past the caller's deadline (`deadline`) raises `OverBudget`.

Not here: parsing (`verifiers.latex_expr`), structures and grading policy
(`verifiers.math_equiv`).

    >>> x = sympy.Symbol("x")
    >>> expr_equal(2 * sympy.sin(x) * sympy.cos(x), sympy.sin(2 * x))
    True
    >>> expr_equal(sympy.sqrt(x**2), x)
    False
"""

from __future__ import annotations

import contextvars
import random
import time

import sympy

MAX_OPS = 300  # sympy operation count above which symbolic checks are skipped
_POINTS = [sympy.Rational(random.Random(k).randint(11, 97), 37) for k in range(3)]  # fixed: deterministic
# functions whose real domain is not all of R: at a negative point, a side that uses one outside it is skipped
_PARTIAL = (sympy.log, sympy.asin, sympy.acos, sympy.acosh, sympy.atanh, sympy.acot)

deadline: contextvars.ContextVar[float] = contextvars.ContextVar("math_deadline", default=float("inf"))


class OverBudget(Exception):
    """The comparison ran past its per-item budget (a soft deadline; the pool's timeout is the hard one)."""


def check_budget() -> None:
    if time.monotonic() > deadline.get():
        raise OverBudget("comparison took longer than its budget")


def value(e: sympy.Expr, pt: dict | None = None) -> sympy.Expr | None:
    """e at the point `pt`, to 30 digits, with bounded working precision; None when not a finite number."""
    check_budget()
    v = e.evalf(30, subs=pt, maxn=60)
    if not v.is_number or v.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        return None
    return v


def close(a: sympy.Expr | None, b: sympy.Expr | None) -> bool:
    if a is None or b is None:
        return False
    if a == 0 or b == 0:  # an exact zero against a sum that cancels numerically (to evalf's precision)
        return bool(abs(a - b) < sympy.Float("1e-50", 30))
    # relative: 1/2^99 and 1/2^98 are both tiny, and different
    return bool(abs(a - b) <= sympy.Float("1e-20", 30) * max(abs(a), abs(b)))


def points(syms: list[sympy.Symbol]) -> list[dict]:
    return [{s: _POINTS[(k + j) % len(_POINTS)] + j for j, s in enumerate(syms)} for k in range(len(_POINTS))]


def _negative_points(syms: list[sympy.Symbol]) -> list[dict]:
    return [{s: -(_POINTS[j % len(_POINTS)] + j) for j, s in enumerate(syms)},
            {s: (-1) ** (j + 1) * (_POINTS[(j + 1) % len(_POINTS)] + j) for j, s in enumerate(syms)}]  # fmt: skip


def _in_real_domain(e: sympy.Expr, pt: dict) -> bool:
    """Every root, log and inverse function inside `e` is real at `pt`."""
    for node in sympy.preorder_traversal(e):
        partial = isinstance(node, _PARTIAL) or (isinstance(node, sympy.Pow) and not node.exp.is_integer)
        if partial and node.free_symbols:
            v = value(node, pt)
            if v is None or not v.is_real:
                return False
    return True


def expr_equal(g: sympy.Expr, p: sympy.Expr, gold_decimals: int | None = None) -> bool:
    """Exact (or, for a decimal gold, to its rounding) equality of two sympy expressions."""
    check_budget()
    if g == p:
        return True
    if g.has(sympy.oo, -sympy.oo, sympy.zoo) or p.has(sympy.oo, -sympy.oo, sympy.zoo):
        return False
    if g.free_symbols != p.free_symbols:
        return False
    if g.has(sympy.Sum, sympy.Product) or p.has(sympy.Sum, sympy.Product):
        return False  # symbolic bounds: only the same sum as built (products reorder freely inside it)
    if sympy.count_ops(g) + sympy.count_ops(p) > MAX_OPS:
        return False
    if not g.free_symbols:
        gv, pv = value(g), value(p)
        if close(gv, pv):
            return True
        if gold_decimals is not None and gv is not None and pv is not None and pv.is_real:
            half = sympy.Rational(1, 2 * 10**gold_decimals)
            return bool(abs(gv - pv) <= half * (1 + sympy.Rational(1, 10**9)))
        return False
    syms = sorted(g.free_symbols, key=str)
    if not all(close(value(g, pt), value(p, pt)) for pt in points(syms)):
        return False
    for pt in _negative_points(syms):  # where both are defined over the reals there, they must agree
        if not (_in_real_domain(g, pt) and _in_real_domain(p, pt)):
            continue
        a, b = value(g, pt), value(p, pt)
        if a is not None and b is not None and not close(a, b):
            return False
    return True


def eq_equal(d1: sympy.Expr, d2: sympy.Expr) -> bool:
    """lhs1 - rhs1 and lhs2 - rhs2 describe the same equation: one is a nonzero constant times the other."""
    if d1.free_symbols != d2.free_symbols or sympy.count_ops(d1) + sympy.count_ops(d2) > MAX_OPS:
        return False
    ratios = []
    for pt in points(sorted(d1.free_symbols, key=str)):
        a, b = value(d1, pt), value(d2, pt)
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
