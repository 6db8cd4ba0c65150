"""A small, bounded LaTeX/plain-math expression parser that builds sympy objects.

Covers what final answers use: numbers (decimals kept exact as rationals,
scientific notation), `+ - * / ^`, implicit multiplication, `\\frac`, `\\sqrt[n]{}`,
`\\binom`, `!`, `| |`, `\\pi`, `\\infty`, `e`, `i`, subscripted symbols and the
common functions. It does not handle structures (tuples, sets, intervals,
equations, matrices): `verifiers.math_equiv` splits those before calling here.

Why our own parser: it is ~100x faster than an ANTLR grammar on typical answers,
and every step is bounded (input length, nesting depth, size of integer powers
and factorials), so a hostile answer is rejected with `TooComplex` before sympy
does any expensive work. It never evaluates model text as Python.

    >>> parse_expr_latex("2\\\\sqrt{3}+\\\\frac{1}{2}")
    1/2 + 2*sqrt(3)
    >>> parse_expr_latex("0.25")
    1/4
"""

from __future__ import annotations

import math
import re

import sympy

MAX_LEN = 600
MAX_DEPTH = 40
MAX_POW_BITS = 4096  # an integer power larger than this many bits is a blow-up, not an answer
MAX_FACTORIAL = 500  # evaluated exactly up to here
MAX_FACTORIAL_ARG = 10**6  # kept unevaluated up to here; beyond, a blow-up


class ParseError(ValueError):
    """The text is not an expression this parser understands."""


class TooComplex(ValueError):
    """The text is shaped to blow up (size, nesting, huge powers or factorials)."""


_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<cmd>\\[a-zA-Z]+|\\[{}|])"
    r"|(?P<word>[a-zA-Z]+)"
    r"|(?P<op>[-+*/^(){}\[\]!_|,'=])"
    r")"
)
_FUNCS = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot, "sec": sympy.sec,
    "csc": sympy.csc, "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan,
    "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh, "exp": sympy.exp, "ln": sympy.log,
    "log": sympy.log, "sqrt": sympy.sqrt,
}  # fmt: skip
_CONSTS = {"pi": sympy.pi, "infty": sympy.oo, "inf": sympy.oo, "infinity": sympy.oo, "e": sympy.E, "i": sympy.I}
_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "kappa",
    "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "phi", "varphi", "chi", "psi", "omega",
}  # fmt: skip
_MULOPS = {"*", "\\cdot", "\\times", "/", "\\div"}


def tokenize(text: str) -> list[tuple[str, str]]:
    if len(text) > MAX_LEN:
        raise TooComplex(f"expression of {len(text)} characters (limit {MAX_LEN})")
    toks: list[tuple[str, str]] = []
    pos, n = 0, len(text)
    while pos < n:
        if text[pos].isspace():
            pos += 1
            continue
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ParseError(f"unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        val = m.group(kind)
        if kind == "word":
            # multi-letter words: known names stay whole; anything else is letters multiplied (xy = x*y)
            if val in _FUNCS or val in _CONSTS:
                toks.append(("cmd", "\\" + val))
            else:
                toks.extend(("word", ch) for ch in val)
        elif kind == "num" and "e" in val.lower() and not re.search(r"\d[eE][+-]?\d", val):
            raise ParseError("bad number")
        else:
            toks.append((kind, val))
        pos = m.end()
    return toks


class _Parser:
    def __init__(self, toks: list[tuple[str, str]]):
        self.toks = toks
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, val: str | None = None) -> tuple[str, str]:
        t = self.peek()
        if t is None or (val is not None and t[1] != val):
            raise ParseError(f"expected {val or 'more input'}")
        self.i += 1
        return t

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TooComplex(f"nesting deeper than {MAX_DEPTH}")

    def expr(self) -> sympy.Expr:
        self.enter()
        t = self.peek()
        sign = 1
        if t and t[1] in "+-" and t[0] == "op":
            self.take()
            sign = -1 if t[1] == "-" else 1
        out = sign * self.term()
        while (t := self.peek()) and t[0] == "op" and t[1] in "+-":
            self.take()
            rhs = self.term()
            out = out + rhs if t[1] == "+" else out - rhs
        self.depth -= 1
        return out

    def term(self) -> sympy.Expr:
        out = self.unary()
        while (t := self.peek()) is not None:
            if t[1] in _MULOPS:
                self.take()
                rhs = self.unary()
                out = out / rhs if t[1] in ("/", "\\div") else out * rhs
            elif self._starts_atom(t):
                out = out * self.power()
            else:
                break
        return out

    def unary(self) -> sympy.Expr:
        t = self.peek()
        if t and t[0] == "op" and t[1] in "+-":
            self.take()
            self.enter()
            v = self.unary()
            self.depth -= 1
            return -v if t[1] == "-" else v
        return self.power()

    def _starts_atom(self, t: tuple[str, str]) -> bool:
        # a "|" opens |x| (as in 2|x|) when an even number of them is left, else it closes the one that is open
        opens_abs = t[1] == "|" and sum(1 for k in self.toks[self.i :] if k[1] == "|") % 2 == 0
        return t[0] in ("num", "word") or t[1] in ("(", "{", "\\{") or opens_abs or (
            t[0] == "cmd" and t[1] not in _MULOPS and t[1] not in ("\\}", "\\|", "\\rfloor", "\\rceil")
        )

    def power(self) -> sympy.Expr:
        base = self.postfix()
        if (t := self.peek()) and t[1] == "^":
            self.take()
            self.enter()
            exp = self.exponent()
            self.depth -= 1
            return _safe_pow(base, exp)
        return base

    def exponent(self) -> sympy.Expr:
        t = self.peek()
        if t and t[1] in "+-":
            self.take()
            v = self.exponent()
            return -v if t[1] == "-" else v
        if t and t[0] == "num":  # x^23 in LaTeX means x^2 * 3 only for single digits; accept digits whole
            self.take()
            return self.number(t[1])
        return self.power()

    def postfix(self) -> sympy.Expr:
        v = self.atom()
        while (t := self.peek()) and t[1] == "!":
            self.take()
            double = bool((t := self.peek()) and t[1] == "!")  # n!! is the double factorial
            if double:
                self.take()
            if v.has(sympy.factorial, sympy.factorial2):  # (n!)! and 99999!!! only blow up
                raise TooComplex("factorial of a factorial")
            if v.is_number and v.is_finite and abs(v) > (MAX_FACTORIAL if double else MAX_FACTORIAL_ARG):
                raise TooComplex(f"factorial of {v}")
            if double:
                v = sympy.factorial2(v) if v.is_Integer and v >= -1 else sympy.factorial2(v, evaluate=False)
                continue
            # small ones exactly; 2004! stays a symbol-like factorial that evalf handles through gamma
            v = sympy.factorial(v) if v.is_Integer and 0 <= v <= MAX_FACTORIAL else sympy.factorial(v, evaluate=False)
        return v

    def group(self) -> sympy.Expr:
        """A braced group, or one token (LaTeX lets `\\frac12` mean 1/2)."""
        t = self.peek()
        if t and t[1] == "{":
            self.take()
            v = self.expr()
            self.take("}")
            return v
        if t and t[0] == "num":
            self.take()
            if len(t[1]) > 1 and "." not in t[1]:
                # \frac12: the first digit is the group, the rest stay for the next group
                self.toks.insert(self.i, ("num", t[1][1:]))
                return sympy.Integer(t[1][0])
            return self.number(t[1])
        return self.atom()

    def number(self, s: str) -> sympy.Expr:
        if len(s) > 60:
            raise TooComplex("number with more than 60 digits")
        if "e" in s.lower():
            mant, exp = re.split("[eE]", s)
            if abs(int(exp)) > 300:
                raise TooComplex("exponent too large")
            return sympy.Rational(mant) * sympy.Integer(10) ** int(exp)
        return sympy.Rational(s)

    def atom(self) -> sympy.Expr:
        self.enter()
        v = self._atom()
        self.depth -= 1
        return v

    def _atom(self) -> sympy.Expr:
        kind, val = self.take()
        if kind == "num":
            return self.number(val)
        if kind == "word":
            name = val
            if (t := self.peek()) and t[1] == "_":
                self.take()
                sub = self.take()
                if sub[1] == "{":
                    parts = []
                    while (t := self.take())[1] != "}":
                        parts.append(t[1])
                    sub = ("num", "".join(parts))
                name = f"{val}_{sub[1]}"
            return _CONSTS[name] if name in ("e", "i") else sympy.Symbol(name)
        if val in ("(", "{", "\\{"):
            close = {"(": ")", "{": "}", "\\{": "\\}"}[val]
            v = self.expr()
            self.take(close)
            return v
        if val in ("\\lfloor", "\\lceil"):
            v = self.expr()
            self.take("\\rfloor" if val == "\\lfloor" else "\\rceil")
            return sympy.floor(v) if val == "\\lfloor" else sympy.ceiling(v)
        if val == "|" or val == "\\|":
            v = self.expr()
            self.take(val)
            return sympy.Abs(v)
        if kind != "cmd":
            raise ParseError(f"unexpected {val!r}")
        name = val[1:]
        if name in ("frac", "dfrac", "tfrac", "cfrac"):
            num = self.group()
            den = self.group()
            return num / den
        if name == "binom" or name == "dbinom":
            n, k = self.group(), self.group()
            if n.is_Integer and n > 10**4:
                raise TooComplex("binomial too large")
            return sympy.binomial(n, k)
        if name == "sqrt":
            if (t := self.peek()) and t[1] == "[":
                self.take()
                idx = self.expr()
                self.take("]")
                return _safe_pow(self.group(), 1 / idx)
            return sympy.sqrt(self.group())
        if name in _CONSTS:
            return _CONSTS[name]
        if name in _FUNCS:
            return self.function(name)
        if name in ("sum", "prod"):
            return self.big_operator(name)
        if name in _GREEK:
            return sympy.Symbol(name)
        raise ParseError(f"unknown command {val}")

    def function(self, name: str) -> sympy.Expr:
        power = None
        base = None
        if name == "log" and (t := self.peek()) and t[1] == "_":
            self.take()
            base = self.group()
        if (t := self.peek()) and t[1] == "^":  # \sin^2 x = (sin x)^2
            self.take()
            power = self.exponent()
        t = self.peek()
        if t and t[1] in ("(", "{"):
            arg = self.atom()
        else:  # "\sin 2x" is sin(2x): the argument runs over juxtaposed atoms, up to an operator or a function
            arg = self.power()
            while (t := self.peek()) and (t[0] in ("num", "word") or t[1][1:] in _GREEK or t[1] == "\\pi"):
                arg = arg * self.power()
        if name == "exp":
            v = _safe_pow(sympy.E, arg)
        else:
            v = sympy.log(arg, base) if base is not None else _FUNCS[name](arg)
        return _safe_pow(v, power) if power is not None else v


    def big_operator(self, name: str) -> sympy.Expr:
        """`\\sum_{k=a}^{b} body` (the body is one term): evaluated for up to 200 numeric terms, else kept whole."""
        if (t := self.peek()) and t[1] in ("\\limits", "\\nolimits"):
            self.take()
        self.take("_")
        self.take("{")
        k = sympy.Symbol(self.take()[1])
        self.take("=")
        lo = self.expr()
        self.take("}")
        self.take("^")
        hi = self.group()
        body = self.term()
        small = lo.is_Integer and hi.is_Integer and 0 <= hi - lo <= 200 and body.free_symbols <= {k}
        # term by term, and only when no power's exponent grows with k (k^{k^k} at k = 200 would not end)
        if small and all(pw.exp.is_Number for pw in body.atoms(sympy.Pow)):
            terms = [body.subs(k, sympy.Integer(i)) for i in range(int(lo), int(hi) + 1)]
            return sympy.Add(*terms) if name == "sum" else sympy.Mul(*terms)
        return (sympy.Sum if name == "sum" else sympy.Product)(body, (k, lo, hi))


def _height(e: sympy.Expr, depth: int = 0) -> int:
    """How many exponentials are stacked in `e` (x^2: 1, e^{e^x}: 2)."""
    if depth > MAX_DEPTH or not e.args:
        return 0
    if isinstance(e, sympy.Pow) and not e.exp.is_Rational:
        return 1 + _height(e.exp, depth + 1)
    if isinstance(e, sympy.exp):
        return 1 + _height(e.args[0], depth + 1)
    return max(_height(a, depth + 1) for a in e.args)


def _safe_pow(base: sympy.Expr, exp: sympy.Expr) -> sympy.Expr:
    """base**exp, refusing integer powers whose result would be astronomically large and towers."""
    h = _height(exp)
    if h >= 3 or (h >= 2 and base.is_number and abs(base) > 1):  # 2^{2^n} is an answer, e^{e^{e^e}} a bomb
        raise TooComplex("tower of exponents")
    if exp.is_Number and base.is_Rational and not base.is_zero:
        size = abs(float(exp)) * max(math.log2(abs(base.p)), math.log2(base.q))  # bits of the result's p or q
        if size > MAX_POW_BITS:
            raise TooComplex("power too large")
    elif exp.is_Number and abs(exp) > 1000:
        raise TooComplex("exponent too large")
    elif exp.is_number and not exp.is_Number and not (base.is_number and abs(base) in (0, 1)):
        # a constant exponent built from parts (10^{1000!}, 2^{\binom{500}{250}}): its size decides as above
        mag = exp.evalf(5, maxn=20)
        if not mag.is_finite or abs(mag) > 1000:
            raise TooComplex("exponent too large")
    return sympy.Pow(base, exp)


def parse_expr_latex(text: str) -> sympy.Expr:
    """Parse one math expression (LaTeX or plain) into sympy; ParseError/TooComplex on failure."""
    toks = tokenize(text)
    if not toks:
        raise ParseError("empty expression")
    p = _Parser(toks)
    v = p.expr()
    if p.i != len(p.toks):
        raise ParseError(f"unexpected {p.toks[p.i][1]!r}")
    return v
