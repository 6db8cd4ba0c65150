"""Sets of real numbers written as relations, turned into unions of intervals.

Covers what final answers use: one-variable inequalities and chains of them
(`-2 \\le x < 3`), also when the variable side is a linear expression
(`-x > -1`, `2x \\le 8`), an absolute value of one (`|x| > 2`,
`1 \\le |z| \\le \\frac32`) or a named function value (`0 < f(x) < 1`);
`x \\neq a`; and a union of intervals minus finitely many points
(`\\mathbb{R} \\setminus \\{0\\}`). Each becomes a tuple of intervals
`(lo, hi, lo_open, hi_open)`, sorted, plus the variable's name.

Not here: comparing them (`verifiers.math_equiv`), inequalities in two
variables or of degree two and more (`x^2 < 4`: a grader expects the solved
form), and bounds that are not real numbers.

    >>> inequality("-x > -1", parse_expr_latex)
    (((-oo, 1, True, True),), 'x')
    >>> inequality("|x| \\\\ge 2", parse_expr_latex)
    (((-oo, -2, True, False), (2, oo, False, True)), 'x')
"""

from __future__ import annotations

import re
from typing import Callable

import sympy

from verifiers.latex_expr import parse_expr_latex  # noqa: F401 (the doctests use it)

Interval = tuple[sympy.Expr, sympy.Expr, bool, bool]  # (lo, hi, lo_open, hi_open)
REL = re.compile(r"\\leq?(?![a-zA-Z])|\\geq?(?![a-zA-Z])|\\leqslant|\\geqslant|<=|>=|<|>")
# a side that names the variable itself: x, x_1, \theta, f(x)
_NAME = re.compile(r"(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?(?:\([a-zA-Z]\))?")
ALL = (sympy.S.NegativeInfinity, sympy.S.Infinity, True, True)


def _linear(e: sympy.Expr, v: sympy.Symbol) -> tuple[sympy.Expr, sympy.Expr] | None:
    """(a, b) with e == a*v + b and a a nonzero real constant, else None."""
    try:
        poly = sympy.Poly(e, v)
    except sympy.PolynomialError:
        return None
    if poly.degree() != 1:
        return None
    a, b = poly.all_coeffs()
    if a.free_symbols or b.free_symbols or not a.is_real or a.is_zero:
        return None
    return a, b


def _map(iv: Interval, a: sympy.Expr, b: sympy.Expr) -> Interval:
    """The interval of v where a*v + b lies in `iv`."""
    lo, hi, lo_open, hi_open = iv
    nlo, nhi = (lo - b) / a, (hi - b) / a
    return (nlo, nhi, lo_open, hi_open) if a > 0 else (nhi, nlo, hi_open, lo_open)


def _abs_preimage(iv: Interval) -> list[Interval] | None:
    """The w with |w| in `iv`."""
    lo, hi, lo_open, hi_open = iv
    if hi.is_negative or (hi.is_zero and hi_open):
        return []
    if lo.is_negative or lo == sympy.S.NegativeInfinity or (lo.is_zero and not lo_open):
        return [(-hi, hi, hi_open, hi_open)]  # |w| < c: one interval through 0
    if not lo.is_positive and not lo.is_zero:
        return None  # a bound whose sign is unknown
    return [(-hi, -lo, hi_open, lo_open), (lo, hi, lo_open, hi_open)]


def inequality(s: str, parse: Callable[[str], sympy.Expr]) -> tuple[tuple[Interval, ...], str] | None:
    """The intervals that a one-variable inequality (or chain) describes, and the variable; None if it is not one."""
    parts = [p.strip() for p in REL.split(s)]
    ops = REL.findall(s)
    if not ops or len(parts) not in (2, 3):
        return None
    exprs = [None if _NAME.fullmatch(p) else parse(p) for p in parts]
    var_idx = [k for k, (p, e) in enumerate(zip(parts, exprs)) if e is None or e.free_symbols]
    if len(var_idx) != 1:
        return None
    vi = var_idx[0]
    if len(parts) == 3 and vi != 1:
        return None  # "x < 1 < 2" is not a chain around the variable
    lo, hi, lo_open, hi_open = ALL
    for k, op in enumerate(ops):
        less = op.startswith("<") or op.startswith("\\le")
        strict = op in ("<", ">")
        if k + 1 == vi:  # bound < side  or  bound > side
            b = exprs[k]
            lo, lo_open, hi, hi_open = (b, strict, hi, hi_open) if less else (lo, lo_open, b, strict)
        else:  # side < bound  or  side > bound
            b = exprs[k + 1]
            lo, lo_open, hi, hi_open = (lo, lo_open, b, strict) if less else (b, strict, hi, hi_open)
    if not all(x.is_real or x.is_infinite for x in (lo, hi)):
        return None
    side = exprs[vi]
    if side is None or side.is_Symbol:  # "x", "f(x)": the side is the variable itself
        return ((lo, hi, lo_open, hi_open),), parts[vi]
    syms = side.free_symbols
    if len(syms) != 1:
        return None
    v = next(iter(syms))
    core, ivs = side, [(lo, hi, lo_open, hi_open)]
    if isinstance(side, sympy.Abs):
        core = side.args[0]
        ivs = _abs_preimage(ivs[0])
        if ivs is None:
            return None
    lin = _linear(core, v)
    if lin is None:
        return None
    out = sorted((_map(iv, *lin) for iv in ivs), key=lambda iv: float(iv[0]) if iv[0].is_finite else -1e308)
    return tuple(out), str(v)


def not_equal(point: sympy.Expr) -> tuple[Interval, ...]:
    """`x \\neq a`: everything but one point."""
    return ((sympy.S.NegativeInfinity, point, True, True), (point, sympy.S.Infinity, True, True))


def minus_points(ivs: tuple[Interval, ...], points: list[sympy.Expr]) -> tuple[Interval, ...] | None:
    """A union of intervals with finitely many real points removed (`\\mathbb{R} \\setminus \\{0\\}`)."""
    out = list(ivs)
    for p in points:
        if p.free_symbols or not p.is_real:
            return None
        nxt = []
        for lo, hi, lo_open, hi_open in out:
            inside = (lo < p < hi) == sympy.true
            if inside:
                nxt += [(lo, p, lo_open, True), (p, hi, True, hi_open)]
            elif p == lo and not lo_open:
                nxt.append((lo, hi, True, hi_open))
            elif p == hi and not hi_open:
                nxt.append((lo, hi, lo_open, True))
            else:
                nxt.append((lo, hi, lo_open, hi_open))
        out = nxt
    return tuple(out)


def split_setminus(s: str) -> tuple[str, str] | None:
    """`A \\setminus B` (or `A - \\{...\\}`) -> (A, B)."""
    m = re.fullmatch(r"(.+?)\s*(?:\\setminus|\\backslash|-)\s*(\\\{.*\\\})", s)
    return (m.group(1), m.group(2)) if m else None

