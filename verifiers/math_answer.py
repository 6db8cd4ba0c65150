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

from verifiers import intervals
from verifiers.intervals import REL as _REL
from verifiers.latex_expr import MAX_LEN, ParseError, TooComplex, parse_expr_latex

_TEXTY = re.compile(r"[a-zA-Z]{3,}")
_KNOWN_WORDS = re.compile(
    r"\\?(?:frac|sqrt|pi|infty|cdot|times|div|sin|cos|tan|cot|sec|csc|arcsin|arccos|arctan|sinh|cosh|"
    r"tanh|log|ln|exp|binom|theta|alpha|beta|gamma|left|right|begin|end|matrix|pmatrix|bmatrix|cup|in|"
    r"le|ge|leq|geq|text|emptyset|varnothing|circ|lfloor|rfloor|lceil|rceil|sum|prod|limits|i)(?![a-zA-Z])"
)


# what a grader reads as "the thing being asked for = value": x, x_1, f(x), f^{-1}(x), \theta, P(A)
_ASSIGNABLE = re.compile(r"(?:[a-zA-Z]|\\[a-zA-Z]+)(?:\^\{-1\}|')?(?:_\{?\w+\}?)?(?:\([^()=]*\))?")
# a named quantity whose stated value is the answer: a segment AB, |AB|, a ratio A:B or V_1:V_2, \frac{NO}{BO};
# never an expression ("2x + z = 1" is an equation, and its right side alone is not its answer)
_NAME = r"(?:[A-Z]+|[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?"
_QUANTITY = rf"(?:\|{_NAME}\||\\overline\{{{_NAME}\}}|(?:m\s*)?\\angle\s*{_NAME}|{_NAME})"
_NAMED = re.compile(rf"{_QUANTITY}(?:\s*[:/]\s*{_QUANTITY})?|\\frac\{{{_QUANTITY}\}}\{{{_QUANTITY}\}}")


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
    """(open, inner, close) when all of `s` is one bracketed group, e.g. `[0,1)`, `\\{1\\}`, `{1,2}`."""
    esc = s.startswith("\\{") and s.endswith("\\}")
    if not esc and (len(s) < 2 or s[0] not in "([{" or s[-1] not in ")]}" or (s[0] == "{") != (s[-1] == "}")):
        return None
    depth, k = 0, 0
    while k < len(s):
        step = 2 if s.startswith("\\{", k) or s.startswith("\\}", k) else 1
        depth += s[k + step - 1] in "([{"
        depth -= s[k + step - 1] in ")]}"
        if depth == 0 and k + step < len(s):
            return None
        k += step
    return ("\\{", s[2:-2], "\\}") if esc else (s[0], s[1:-1], s[-1])


def _is_texty(s: str) -> bool:
    return bool(_TEXTY.search(_KNOWN_WORDS.sub(" ", s)))


def _expr(s: str) -> sympy.Expr:
    return parse_expr_latex(s)


def _matrix(s: str) -> Value | None:
    m = re.fullmatch(r"\\begin\{([pbBvV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}", s, re.DOTALL)
    if not m or "\\begin" in m.group(2):  # "A + B": two matrices, not one
        return None
    rows = [r for r in re.split(r"\\\\", m.group(2)) if r.strip()]
    cells = tuple(tuple(_expr(c) for c in r.split("&")) for r in rows)
    if len({len(r) for r in cells}) != 1:
        raise ParseError("ragged matrix")
    return Value("matrix", cells)


def _interval(lo: str, hi: str, lb: str, rb: str) -> tuple[Any, Any, bool, bool]:
    return (_expr(lo), _expr(hi), lb == "(", rb == ")")


def _open_interval(v: Value) -> Value:
    if v.kind == "tuple" and len(v.items) == 2 and all(x.kind == "expr" for x in v.items):
        return Value("intervals", ((v.items[0].items[0], v.items[1].items[0], True, True),))
    return v


def _named_tuple(vals: list[Value]) -> Value | None:
    """"x=3, y=4" (distinct names) is the ordered pair (3, 4) with its names."""
    names = [v.var for v in vals if v.kind == "assign"]
    if len(vals) < 2 or len(names) != len(vals) or len(set(names)) != len(names) or not all(
        re.fullmatch(r"[a-zA-Z](?:_\{?\w+\}?)?", n or "") for n in names
    ):
        return None
    return Value("tuple", tuple(v.items[0] for v in vals), ",".join(names))


def _ratio_or_time(s: str) -> Value | None:
    """"12:00" / "3:45 pm" is a time (compared as written); "2:1" and "A:B:C" values a ratio (up to scale)."""
    t = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?", s, re.IGNORECASE)
    if t:
        return Value("time", (int(t.group(1)), int(t.group(2)), int(t.group(3) or 0), (t.group(4) or "")[:1].lower()))
    parts = split_top(s, (":",))
    if len(parts) < 2 or not all(parts):
        return None
    return Value("ratio", tuple(_expr(p) for p in parts))


def _matrix_expr(s: str) -> Value | None:
    """Sums, differences and products of matrices and scalars: `2\\begin{pmatrix}..\\end{pmatrix}`, `A + B`, `A B`."""
    mats = list(re.finditer(r"\\begin\{([pbBvV]?matrix|array)\}.*?\\end\{\1\}", s, re.DOTALL))
    if not mats or len(mats) > 6 or (len(mats) == 1 and mats[0].group(0) == s):
        return None
    pieces: list[Any] = []  # alternating text and sympy matrices, in order
    pos = 0
    for m in mats:
        pieces += [s[pos : m.start()], sympy.Matrix(_matrix(m.group(0)).items)]  # type: ignore[union-attr]
        pos = m.end()
    pieces.append(s[pos:])
    try:
        total = _combine(pieces)
    except (ParseError, TypeError, ValueError, sympy.ShapeError):
        return None  # "(\begin{pmatrix}..\end{pmatrix})", a list of vectors: not arithmetic
    if not isinstance(total, sympy.MatrixBase) or max(total.shape) > 10:
        return None
    return Value("matrix", tuple(tuple(total.row(r)) for r in range(total.rows)))


def _combine(pieces: list[Any]) -> Any:
    """Evaluate alternating text (scalars, + - \\cdot) and matrices, left to right with * before + and -."""
    total, term, sign = None, sympy.Integer(1), 1
    for piece in pieces:
        chunks = re.split(r"(?<![\^_{(])([+-])", piece) if isinstance(piece, str) else [piece]
        for c in chunks:
            if isinstance(c, str) and c in ("+", "-"):
                if not (total is None and isinstance(term, sympy.Integer) and term == 1 and sign == 1):
                    total = sign * term if total is None else total + sign * term
                    term = sympy.Integer(1)
                sign = -1 if c == "-" else 1
                continue
            if isinstance(c, str):
                c = re.sub(r"\\cdot|\\times|\*", " ", c).strip()
                if not c:
                    continue
                c = _expr(c)
            term = term * c  # sympy raises ShapeError for matrices that do not multiply
    return sign * term if total is None else total + sign * term


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
        return Value("intervals", (intervals.ALL,))
    if (diff := intervals.split_setminus(s)) is not None:  # "\mathbb{R} \setminus \{0\}"
        whole, removed = parse_answer(diff[0]), parse_answer(diff[1])
        if whole.kind == "intervals" and removed.kind == "set" and all(x.kind == "expr" for x in removed.items):
            ivs = intervals.minus_points(whole.items, [x.items[0] for x in removed.items])
            if ivs is not None:
                return Value("intervals", ivs, whole.var)
        raise ParseError("set difference of other than intervals and points")
    if "\\begin" in s and (mexpr := _matrix_expr(s)) is not None:
        return mexpr
    pm = split_top(s, ("\\pm",))
    if len(pm) == 2:  # "1 \pm \sqrt{2}" is the list of both values
        head = pm[0] if pm[0] else "0"
        return Value("list", (parse_answer(f"{head}+({pm[1]})"), parse_answer(f"{head}-({pm[1]})")))
    # lists first: "1, 2", "x=1 or x=2", "(0,1) \cup (2,3)"; a ";" separates groups of comma lists, and so
    # does "and" between groups ("p = 5, q = 2 and p = 7, q = 2"; but "19, 46, and 82" is one list)
    groups = split_top(s, (" and ", " or "))
    group_sep = (" and ", " or ") if len(groups) > 1 and all(len(split_top(g, (",",))) > 1 for g in groups) else (";",)
    for seps in (group_sep, (",",), ("\\cup", "\\text{ or }", " or ", " and ")):
        parts = split_top(s, seps)
        if len(parts) > 1:
            if len(parts) > 50:
                raise TooComplex("more than 50 elements")
            # "19, 46, and 82": the last element's "and" is English, not math
            vals = [parse_answer(re.sub(r"^(?:and|or)\s+", "", p)) for p in parts if p]
            if seps == (",",):  # "21, 16 or 11": one list
                vals = [x for v in vals for x in (v.items if v.kind == "list" else (v,))]
            if "\\cup" in s:  # in a union, "(a,b)" is an open interval, not a pair
                vals = [_open_interval(v) for v in vals]
            if all(v.kind == "intervals" for v in vals):
                return Value("intervals", tuple(iv for v in vals for iv in v.items), vals[0].var)
            if seps == (",",) and (named := _named_tuple(vals)) is not None:
                return named
            return Value("list", tuple(vals))
    w = _wrapped(s)
    if w is not None:
        lb, inner, rb = w
        parts = split_top(inner, (",", ";"))
        if lb in ("\\{", "{") and (lb == "\\{" or len(parts) > 1):  # "{1,2,3}" unescaped is a set too
            return Value("set", tuple(parse_answer(p) for p in parts) if inner.strip() else ())
        if len(parts) == 2 and (lb, rb) != ("(", ")") and lb != "{":
            return Value("intervals", (_interval(parts[0], parts[1], lb, rb),))
        if len(parts) >= 2 and lb != "{":
            return Value("tuple", tuple(parse_answer(p) for p in parts))
        if lb in ("(", "[") and inner.strip().startswith("\\begin"):
            return parse_answer(inner)  # "(\begin{pmatrix}...\end{pmatrix})"
    m = re.fullmatch(r"([a-zA-Z])\s*\\neq?\s*(.+)", s)
    if m:  # "x \neq 0": everything but one point
        return Value("intervals", intervals.not_equal(_expr(m.group(2))), m.group(1))
    eq = split_top(s, ("=",))
    if len(eq) >= 2 and not _REL.search(s):
        return _equation(eq)
    if _REL.search(s):
        iv = intervals.inequality(s, _expr)
        if iv is None:
            raise ParseError("inequality not in one variable")
        return Value("intervals", iv[0], iv[1])
    if re.search(r"\d\s*:\s*\d|[A-Za-z}]\s*:\s*[A-Za-z\\]", s) and (rt := _ratio_or_time(s)) is not None:
        return rt
    if _is_texty(s):
        return Value("text", (re.sub(r"[\s{}\\]+", " ", s).strip().lower(),))
    return Value("expr", (_expr(s),))


def _equation(eq: list[str]) -> Value:
    """`lhs = rhs`, a tuple assignment `(p,q) = (3,2)`, or a chain `x = 5+5+1 = 11` (its last value is stated)."""
    lhs, rhs = eq[0], eq[-1]
    chain_var = next((p for p in (eq[0], eq[-2]) if _ASSIGNABLE.fullmatch(p)), None) if len(eq) > 2 else None
    if _ASSIGNABLE.fullmatch(lhs) and not re.fullmatch(r"[a-zA-Z]", rhs) or chain_var is not None:
        # "x = 3", "f(x) = 2x+1", "x = 5+5+1 = 11": the value is what the variable equals
        return Value("assign", (parse_answer(rhs),), chain_var or lhs)
    names, vals = _wrapped(lhs), _wrapped(rhs)
    if names and vals and names[0] == "(" and vals[0] in "([":  # "(p,q) = (3,2)"
        keys, items = split_top(names[1], (",",)), split_top(vals[1], (",", ";"))
        if len(keys) == len(items) > 1 and all(re.fullmatch(r"[a-zA-Z](?:_\{?\w+\}?)?", k) for k in keys):
            return Value("tuple", tuple(parse_answer(x) for x in items), ",".join(keys))
    if _NAMED.fullmatch(lhs.replace(" ", "")) and len(eq) == 2:  # "AB = 13", "V_1:V_2 = 11:21", "|AB| = 1"
        return Value("assign", (parse_answer(rhs),), lhs.replace(" ", ""))
    if len(eq) > 2:  # "2 \cdot 3 = 6 = 6": a chain of computations states its last value
        last = parse_answer(rhs)
        if last.kind != "expr" or last.items[0].free_symbols:
            raise ParseError("chained equation")
        return Value("eq", (sympy.Integer(0), last.items[0], True))
    left, right = _expr(lhs), _expr(rhs)
    # items[1]: the value the equation states ("a+b+c = 12", "180 * 3 = 540"), none for a tautology ("0 = 0");
    # items[2]: whether it is a computation, whose value a gold may be answered with ("2x + 3y - z = 0" is a
    # plane: a gold that says so is not answered by 0)
    stated = right if not right.free_symbols and not re.fullmatch(r"-?[\d.]+", lhs.strip()) else None
    return Value("eq", (left - right, stated, stated is not None and not left.free_symbols))
