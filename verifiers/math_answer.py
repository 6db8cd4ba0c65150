"""Parse a normalised answer into a comparable value: expression, tuple, set,
unordered list, intervals (also from one-variable inequalities), equation,
matrix, or plain text.

Structures are split here (top-level commas, brackets, `\\cup`, `or`,
comparison signs); each leaf goes through `verifiers.latex_expr`. Nothing is
compared here; `verifiers.math_equiv` does that.

    >>> parse_answer("[0,1)").kind
    'intervals'
    >>> parse_answer("\\\\{1,2\\\\}").kind
    'set'
    >>> parse_answer("x=3").kind
    'assign'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sympy

from verifiers.latex_expr import MAX_LEN, ParseError, TooComplex, parse_expr_latex

_OPEN = {"(": ")", "[": "]", "{": "}"}
_REL = re.compile(r"\\leq?(?![a-zA-Z])|\\geq?(?![a-zA-Z])|\\leqslant|\\geqslant|<=|>=|<|>")
_TEXTY = re.compile(r"[a-zA-Z]{3,}")
_KNOWN_WORDS = re.compile(
    r"\\?(?:frac|sqrt|pi|infty|cdot|times|div|sin|cos|tan|cot|sec|csc|arcsin|arccos|arctan|sinh|cosh|"
    r"tanh|log|ln|exp|binom|theta|alpha|beta|gamma|left|right|begin|end|matrix|pmatrix|bmatrix|cup|in|"
    r"le|ge|leq|geq|text|emptyset|varnothing|circ|lfloor|rfloor|lceil|rceil|i)(?![a-zA-Z])"
)


# what a grader reads as "the thing being asked for = value": x, x_1, f(x), f^{-1}(x), \theta, P(A)
_ASSIGNABLE = re.compile(r"(?:[a-zA-Z]|\\[a-zA-Z]+)(?:\^\{-1\}|')?(?:_\{?\w+\}?)?(?:\([^()=]*\))?")


@dataclass(frozen=True)
class Value:
    # "expr", "assign" (var = value), "eq" (lhs - rhs), "tuple", "set", "list", "intervals",
    # "matrix", "text"
    kind: str
    items: tuple[Any, ...]
    var: str | None = None  # the symbol of "assign" and of inequalities


def split_top(s: str, seps: tuple[str, ...]) -> list[str]:
    """Split `s` on any of `seps` where they are not inside brackets."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(s):
        c = s[i]
        if s.startswith("\\{", i) or s.startswith("\\}", i):
            depth += 1 if s[i + 1] == "{" else -1
            cur.append(s[i : i + 2])
            i += 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if depth == 0:
            sep = next((x for x in seps if s.startswith(x, i)), None)
            if sep is not None:
                parts.append("".join(cur))
                cur = []
                i += len(sep)
                continue
        cur.append(c)
        i += 1
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _wrapped(s: str) -> tuple[str, str, str] | None:
    """(open, inner, close) when all of `s` is one bracketed group, e.g. `[0,1)`."""
    if s.startswith("\\{") and s.endswith("\\}"):
        return "\\{", s[2:-2], "\\}"
    if len(s) < 2 or s[0] not in "([" or s[-1] not in ")]":
        return None
    depth = 0
    for k, c in enumerate(s):
        depth += c in "([{"
        depth -= c in ")]}"
        if depth == 0 and k < len(s) - 1:
            return None
    return s[0], s[1:-1], s[-1]


def _is_texty(s: str) -> bool:
    return bool(_TEXTY.search(_KNOWN_WORDS.sub(" ", s)))


def _expr(s: str) -> sympy.Expr:
    return parse_expr_latex(s)


def _matrix(s: str) -> Value | None:
    m = re.fullmatch(r"\\begin\{([pbBvV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}", s, re.DOTALL)
    if not m:
        return None
    rows = [r for r in re.split(r"\\\\", m.group(2)) if r.strip()]
    cells = tuple(tuple(_expr(c) for c in r.split("&")) for r in rows)
    if len({len(r) for r in cells}) != 1:
        raise ParseError("ragged matrix")
    return Value("matrix", cells)


def _interval(lo: str, hi: str, lb: str, rb: str) -> tuple[Any, Any, bool, bool]:
    return (_expr(lo), _expr(hi), lb == "(", rb == ")")


def _inequality(s: str) -> Value | None:
    parts = _REL.split(s)
    ops = _REL.findall(s)
    if not ops or len(parts) not in (2, 3):
        return None
    parts = [p.strip() for p in parts]
    var_idx = [k for k, p in enumerate(parts) if re.fullmatch(r"[a-zA-Z](?:_\{?\w+\}?)?", p)]
    if len(var_idx) != 1:
        return None
    vi = var_idx[0]
    lo, hi, lopen, ropen = sympy.S.NegativeInfinity, sympy.S.Infinity, True, True
    for k, op in enumerate(ops):
        left, right = parts[k], parts[k + 1]
        less = op.startswith("<") or op.startswith("\\le")
        strict = op in ("<", ">")
        if k + 1 == vi:  # bound < var  or  bound > var
            b = _expr(left)
            if less:
                lo, lopen = b, strict
            else:
                hi, ropen = b, strict
        elif k == vi:  # var < bound  or  var > bound
            b = _expr(right)
            if less:
                hi, ropen = b, strict
            else:
                lo, lopen = b, strict
        else:
            return None
    return Value("intervals", ((lo, hi, lopen, ropen),), parts[vi])


def _open_interval(v: Value) -> Value:
    if v.kind == "tuple" and len(v.items) == 2 and all(x.kind == "expr" for x in v.items):
        return Value("intervals", ((v.items[0].items[0], v.items[1].items[0], True, True),))
    return v


def parse_answer(s: str) -> Value:
    """The structured value of a normalised answer string (see module doc)."""
    s = s.strip()
    if len(s) > MAX_LEN:
        raise TooComplex(f"answer of {len(s)} characters (limit {MAX_LEN})")
    if not s:
        raise ParseError("empty answer")
    s = re.sub(r"^[a-zA-Z]\s*\\in\s*", "", s)  # "x \in [0,1)" -> "[0,1)"
    if (mat := _matrix(s)) is not None:
        return mat
    if s in ("\\emptyset", "\\varnothing", "\\{\\}", "\\{ \\}"):
        return Value("set", ())
    if s in ("\\mathbb{R}", "\\mathbb R", "all real numbers", "(-\\infty,\\infty)"):
        return Value("intervals", ((sympy.S.NegativeInfinity, sympy.S.Infinity, True, True),))
    pm = split_top(s, ("\\pm",))
    if len(pm) == 2:  # "1 \pm \sqrt{2}" is the list of both values
        head = pm[0] if pm[0] else "0"
        return Value("list", (parse_answer(f"{head}+({pm[1]})"), parse_answer(f"{head}-({pm[1]})")))
    # lists first: "1, 2", "x=1 or x=2", "(0,1) \cup (2,3)"
    for seps, kind in (((",", ";"), "list"), (("\\cup", "\\text{ or }", " or ", " and "), "union")):
        parts = split_top(s, seps)
        if len(parts) > 1:
            if len(parts) > 50:
                raise TooComplex("more than 50 elements")
            # "19, 46, and 82": the last element's "and" is English, not math
            vals = [parse_answer(re.sub(r"^(?:and|or)\s+", "", p)) for p in parts if p]
            if "\\cup" in s:  # in a union, "(a,b)" is an open interval, not a pair
                vals = [_open_interval(v) for v in vals]
            if all(v.kind == "intervals" for v in vals):
                return Value("intervals", tuple(iv for v in vals for iv in v.items))
            return Value("list", tuple(vals))
    w = _wrapped(s)
    if w is not None:
        lb, inner, rb = w
        parts = split_top(inner, (",",))
        if lb == "\\{":
            return Value("set", tuple(parse_answer(p) for p in parts) if inner.strip() else ())
        if len(parts) == 2 and (lb, rb) != ("(", ")"):
            return Value("intervals", (_interval(parts[0], parts[1], lb, rb),))
        if len(parts) >= 2:
            return Value("tuple", tuple(parse_answer(p) for p in parts))
        if lb in ("(", "[") and inner.strip().startswith("\\begin"):
            return parse_answer(inner)  # "(\begin{pmatrix}...\end{pmatrix})"
    m = re.fullmatch(r"([a-zA-Z])\s*\\neq?\s*(.+)", s)
    if m:  # "x \neq 0": everything but one point
        a = _expr(m.group(2))
        return Value("intervals", ((sympy.S.NegativeInfinity, a, True, True), (a, sympy.S.Infinity, True, True)), m.group(1))
    eq = split_top(s, ("=",))
    if len(eq) == 2 and not _REL.search(s):
        lhs, rhs = eq
        if _ASSIGNABLE.fullmatch(lhs) and not re.fullmatch(r"[a-zA-Z]", rhs):
            # "x = 3", "f(x) = 2x+1": the value is what the variable equals
            return Value("assign", (parse_answer(rhs),), lhs)
        left, right = _expr(lhs), _expr(rhs)
        # items[1]: the stated value when the right side is a constant ("a+b+c = 12", "180 * 3 = 540")
        return Value("eq", (left - right, right if not right.free_symbols else None))
    if len(eq) > 2:  # "2 \cdot 3 = 6 = 6": a chain of computations states its last value
        last = parse_answer(eq[-1])
        if last.kind != "expr" or last.items[0].free_symbols:
            raise ParseError("chained equation")
        return Value("eq", (sympy.Integer(0), last.items[0]))
    if _REL.search(s):
        iv = _inequality(s)
        if iv is None:
            raise ParseError("inequality not in one variable")
        return iv
    if _is_texty(s):
        return Value("text", (re.sub(r"[\s{}\\]+", " ", s).strip().lower(),))
    return Value("expr", (_expr(s),))
