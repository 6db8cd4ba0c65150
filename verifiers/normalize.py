"""Normalise an answer string before it is parsed: what a careful grader ignores
and what they note.

Ignored: LaTeX wrappers (`\\left`, `\\dfrac`, `\\text`, `\\mathrm`, spacing),
math delimiters, thousands separators, currency signs, `x =` prefixes of a
single value are left for `math_equiv` to decide. Noted (kept as flags, so the
comparison can refuse them): percent, degrees, the unit, a hedge ("or", "not",
"approximately"), a choice letter. Also rewritten: unicode math (`½ √ ∞ π`),
numbers in words, repeating decimals (`0.\\overline{3}`). Nothing here uses sympy.

    >>> n = normalize("\\\\$1,000")
    >>> n.text, n.unit
    ('1000', None)
    >>> normalize("10\\\\text{ cm}").unit
    'cm'
    >>> normalize("0.\\\\overline{3}").text
    '\\\\frac{1}{3}'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable


@dataclass(frozen=True)
class Norm:
    text: str  # the cleaned LaTeX/plain answer
    percent: bool = False
    degrees: bool = False
    unit: str | None = None  # canonical unit name, e.g. "cm"
    hedged: bool = False  # "not 5", "either 8 or 9", "maybe 3"
    approx: bool = False  # "approximately 3.14", "\\approx 0.33": only right against a rounded (decimal) gold
    choice: str | None = None  # "B" for `\text{(B)}`, "(B)", "B"
    currency: bool = False  # "\$18", "18 dollars": never equal to a percent
    base: int | None = None  # 2 for "1011_2": its digits are compared as written, never converted
    approx_of: str | None = None  # "0.139" of "\frac{5}{36} \approx 0.139": must agree with the exact value


_UNICODE = {
    "½": "(1/2)", "⅓": "(1/3)", "⅔": "(2/3)", "¼": "(1/4)", "¾": "(3/4)", "⅕": "(1/5)", "⅛": "(1/8)",
    "√": "\\sqrt", "∞": "\\infty", "π": "\\pi", "×": "\\times", "÷": "\\div", "·": "\\cdot", "−": "-",
    "–": "-", "≤": "\\le", "≥": "\\ge", "≠": "\\neq", "²": "^2", "³": "^3", "°": "^\\circ", "∪": "\\cup",
    "\u2009": " ", "\u00a0": " ", "θ": "\\theta", "≈": "\\approx",
}  # fmt: skip
# canonical unit -> spellings (lower case); a value in one unit never equals a value in another
_UNITS = {
    "mm": ["mm", "millimeter", "millimeters", "millimetre", "millimetres"],
    "cm": ["cm", "centimeter", "centimeters", "centimetre", "centimetres"],
    "m": ["m", "meter", "meters", "metre", "metres"],
    "km": ["km", "kilometer", "kilometers", "kilometre", "kilometres"],
    "in": ["in", "inch", "inches"], "ft": ["ft", "foot", "feet"], "yd": ["yd", "yard", "yards"],
    "mi": ["mi", "mile", "miles"], "s": ["s", "sec", "second", "seconds"],
    "min": ["min", "mins", "minute", "minutes"], "h": ["h", "hr", "hrs", "hour", "hours"],
    "day": ["day", "days"], "week": ["week", "weeks"], "year": ["year", "years"],
    "mg": ["mg"], "g": ["g", "gram", "grams"], "kg": ["kg", "kilogram", "kilograms"],
    "lb": ["lb", "lbs", "pound", "pounds"], "oz": ["oz", "ounce", "ounces"],
    "l": ["l", "liter", "liters", "litre", "litres"], "ml": ["ml", "milliliter", "milliliters"],
    "dollar": ["dollar", "dollars", "usd"], "cent": ["cent", "cents"],
    "rad": ["rad", "rads", "radian", "radians"], "mph": ["mph"], "km/h": ["km/h", "kph"], "m/s": ["m/s"],
}  # fmt: skip
_UNIT_OF = {sp: canon for canon, spellings in _UNITS.items() for sp in spellings}
_SQUARE = re.compile(r"^(?:sq\.?|square|cubic)\s+|\^[23]$|\^\{[23]\}$")
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()  # fmt: skip
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_HEDGE = re.compile(r"\b(?:not|maybe|either|perhaps)\b|^\s*\\neq?\b")  # "x \neq 0" is a set, "\neq 5" a dodge
_APPROX = re.compile(r"\b(?:approximately|approx|about|around|roughly|nearly|almost)\b|\\approx|\\sim\b|≈")


def words_to_number(s: str) -> int | None:
    """'twenty-one' -> 21, 'one hundred five' -> 105; None if `s` is not a number in words."""
    words = re.sub(r"[-,]", " ", s.lower()).replace(" and ", " ").split()
    if not words:
        return None
    total, cur = 0, 0
    for w in words:
        if w in _ONES:
            cur += _ONES.index(w)
        elif w in _TENS:
            cur += _TENS.index(w) * 10
        elif w == "hundred":
            cur = max(cur, 1) * 100
        elif w in ("thousand", "million", "billion"):
            total += max(cur, 1) * {"thousand": 10**3, "million": 10**6, "billion": 10**9}[w]
            cur = 0
        else:
            return None
    return total + cur


def _repeating(m: re.Match[str]) -> str:
    whole, nonrep, rep = m.group(1) or "0", m.group(2) or "", m.group(3)
    value = Fraction(int(whole)) + (Fraction(int(nonrep), 10 ** len(nonrep)) if nonrep else 0)
    value += Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(nonrep))
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _unwrap(s: str, cmd: str) -> str:
    """Replace `\\cmd{X}` by `X` (one level of nested braces inside X is allowed)."""
    # a space before: "10\\text{cm}" reads as "10 cm", a unit set apart, unlike the variable in "4s^2"
    return re.sub(r"\\" + cmd + r"\s*\{((?:[^{}]|\{[^{}]*\})*)\}", r" \1", s)


def normalize(answer: str) -> Norm:
    s = answer.strip()
    if "\\begin" not in s:  # "\\frac" written with a doubled backslash (text escaped twice) is still \frac
        s = re.sub(r"\\\\(?=[a-zA-Z])", r"\\", s)
    s = re.sub(r"(\d)\s*([½⅓⅔¼¾⅕⅛])", r"\1+\2", s)  # "1½" is one and a half
    s = re.sub(r"(\d)\s*(c?m|km|mm|ft|in)(?=[²³])", r"\1 \2", s)  # "5m²" is five square metres, not 5·m²
    for k, v in _UNICODE.items():
        s = s.replace(k, v)
    s = re.sub(r"(\d)\s*[xX]\s*10\s*\^", r"\1\\times10^", s)  # "1.5 x 10^3": x is a times sign here
    s = re.sub(r"^(.*?\S),?\s+(?:and\s+)?not\s+[^,]+$", r"\1", s)  # "8, not 9" states 8
    # ASCII and named relations: "x != 5" is not the factorial equation "x! = 5"
    s = re.sub(r"!=|\\ne(?![a-zA-Z])", r"\\neq ", s)
    s = re.sub(r"\\lt(?![a-zA-Z])", "<", re.sub(r"\\gt(?![a-zA-Z])", ">", s))
    hedged = bool(_HEDGE.search(s))  # "8 or 9" needs no flag: it parses as a list, which a single gold never equals
    # a lone dollar before a number is money, not an unclosed formula; paired ones delimit formulas
    currency = bool(re.fullmatch(r"\$\s*-?\d[\d,]*(?:\.\d+)?\s*\.?", s.strip()))
    if not currency and len(re.findall(r"(?<!\\)\$", s)) % 2 == 0:  # "$28$ %", "$21,16$ or $11$"
        s = re.sub(r"(?<!\\)\$", " ", s).strip()
    # math delimiters and trailing punctuation
    s = re.sub(r"^\$+|\$+$|^\\\[|\\\]$|^\\\(|\\\)$", "", s.strip()).strip()
    s = re.sub(r"[.。]+$", "", s).strip()
    s = re.sub(r"\\$" if "\\{" in s else r"\\\}?$", "", s).strip()  # "185\", "185\}": a stray backslash
    # spacing and sizing commands carry no meaning
    s = re.sub(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|displaystyle|textstyle)(?![a-zA-Z])", "", s)
    s = re.sub(r",\s*\\!\s*", ",", s)  # "11,\! 111,\! 100": thousands with a negative space
    s = re.sub(r"(?<!\\)\\!", "", s)  # negative space: "10,\!080" is 10,080
    s = re.sub(r"(?<!\\)\\[,;: ]|\\quad|\\qquad|~", " ", s)
    s = re.sub(r"\\[dtc]frac", r"\\frac", s)
    s = re.sub(r"\\langle\b", "(", re.sub(r"\\rangle\b", ")", s))  # vectors
    s = re.sub(r"\s*\{\s*,\s*\}\s*", "", s)  # "14{,}916", "14 {, }916"
    for cmd in ("mathrm", "mathbf", "textbf", "mathit", "boldsymbol", "operatorname", "mbox", "textrm", "hbox",
                "textnormal"):  # fmt: skip
        s = _unwrap(s, cmd)
    s = _unwrap(s, "text")
    s = re.sub(r"\\emph\{([^{}]*)\}", r"\1", s).strip()
    s = _over_to_frac(s)
    s = re.sub(r"\)\s*or\s*\(", "), (", s)  # "(11,7)or(7,11)"
    # choice letters: "(B)", "B", "B)", "(B) 42"
    m = re.fullmatch(r"\(?([A-Ea-e])\)(?:\s.*)?|\(?([A-E])\)?", s)
    choice = (m.group(1) or m.group(2)).upper() if m else None
    # degrees and percent are flags; the number is compared without them ("30^o" is 30 degrees too)
    deg = r"\^\s*\{?\s*\\circ\s*\}?|(?<=[\d}])\s*\^\s*\{?\s*o\s*\}?(?![a-zA-Z])|\\degree|\s*degrees?\b"
    degrees = bool(re.search(deg, s))
    s = re.sub(deg, "", s)
    percent = bool(re.search(r"\\?%|\bpercent\b", s))
    s = re.sub(r"\\?%|\s*\bpercent\b", "", s)
    money = r"\\\$|\$|\\(?:pounds|euro)\b|€|£|\bUSD\b|\bRs\.?"
    currency = currency or bool(re.search(money, s))
    s = re.sub(money, "", s).strip()
    s = _number_words_first(s)
    # a unit (or noun) after a number: "10 cm", "18 apples", "5\text{ m}^2"
    unit = None
    m = re.fullmatch(r"(.*?(?:[\d})]|\\pi))(\s*)((?:sq\.?\s+|square\s+|cubic\s+)?[a-zA-Z][a-zA-Z/ ]*?(?:\^\{?[23]\}?)?)", s)
    if m and re.search(r"\d", m.group(1)) and not re.search(r"[a-zA-Z\\]", re.sub(r"\\(?:frac|sqrt|pi)", "", m.group(1))):
        word = m.group(3).strip()
        base = _SQUARE.sub("", word.lower()).strip()
        if base in _UNIT_OF and (len(base) > 1 or m.group(2)):  # "4s" is 4 times s; "4 s" is four seconds
            unit = _UNIT_OF[base] + ("^2" if re.search(r"\^\{?2|sq|square", word) else "") + (
                "^3" if re.search(r"\^\{?3|cubic", word) else "")
            s = m.group(1).strip()
        elif len(base) >= 3 and " " in m.group(0).strip() and words_to_number(base) is None:
            s = m.group(1).strip()  # "18 apples": a noun, not a unit a grader would check
    currency = currency or unit in ("dollar", "cent")
    # thousands separators: 1,000 and 12,345.5 (but not the list "1,2", nor "(1,100)", a pair); inside brackets
    # only where ", " separates the elements: "[1,000, 2,000]" is [1000, 2000]
    thousands = r"(?<![\d.,])(\d{1,3}(?:,\d{3})+)(?!\d|,\d)"
    s = _outside_brackets(s, lambda t: re.sub(thousands, lambda m: m.group(1).replace(",", ""), t))
    if re.search(r",\s", s) and not re.search(r",(?=\S)(?!\d{3}(?!\d))", s):  # every unspaced comma groups digits
        s = re.sub(thousands, lambda m: m.group(1).replace(",", ""), s)
    s = re.sub(r"(?<![\d.])(\d{1,3}(?:\s\d{3})+)(?![\d])", lambda m: m.group(1).replace(" ", ""), s)
    # repeating decimals: 0.\overline{3}, 0.1\overline{6}, 0.\dot{3}, 0.333...
    s = re.sub(r"(\d*)\.(\d*)\\(?:overline|dot)\{(\d+)\}", _repeating, s)
    s = re.sub(r"(?<![\w.])(\d*)\.(\d*)\((\d+)\)", _repeating, s)  # 0.(3)
    s = re.sub(r"(\d*)\.(\d*?)(\d)\3+(?:\\ldots|\\dots|\\cdots|\.\.\.)", lambda m: _repeating_tail(m), s)
    # mixed numbers: 2\frac{1}{2} is 2 + 1/2, as graders read it
    s = re.sub(r"(?<![\d.}^_])(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}", r"(\1+\\frac{\2}{\3})", s)
    s = re.sub(r"^(?:positive\s+|\+\s*)?infinity$", r"\\infty", re.sub(r"^(?:negative|minus)\s+infinity$", r"-\\infty", s))
    s = re.sub(r"\s+", " ", s).strip()
    base_m = re.fullmatch(r"([0-9A-Za-z]+)_\{?\(?(\d{1,2})\)?\}?", s)  # "1011_2", "204_{5}": a numeral in a base
    base = None
    if base_m and 2 <= int(base_m.group(2)) <= 36 and re.fullmatch(r"[0-9A-Z]+|[0-9a-z]+", base_m.group(1)):
        try:
            int(base_m.group(1), int(base_m.group(2)))
            s, base = base_m.group(1).upper(), int(base_m.group(2))
        except ValueError:
            pass  # "a_2" is a subscripted variable, not a numeral
    approx = bool(_APPROX.search(s))
    approx_of = None
    if re.search(r"\\approx|≈", s):
        left, right = (x.strip() for x in re.split(r"\\approx|≈", s)[::len(re.split(r"\\approx|≈", s)) - 1])
        if re.fullmatch(r"(?:[a-zA-Z](?:_\{?\w+\}?)?\s*)?=?", left):  # "x \approx 11": an approximate value
            s = right
        else:  # "\frac{5}{36} \approx 0.139": the exact value, and a rounding that must agree with it
            s, approx = left, False
            approx_of = right if re.fullmatch(r"-?\d*\.\d+|-?\d+", right) else None
    s = _APPROX.sub("", s).strip() if approx else s
    return Norm(s, percent, degrees, unit, hedged, approx, choice, currency, base, approx_of)


_NUMBER_WORD = r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|" \
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|" \
    r"million|billion)"  # fmt: skip


def _number_words_first(s: str) -> str:
    """'twelve dollars' -> '12 dollars', 'negative three' -> '-3', 'one half' -> '\\frac{1}{2}'."""
    m = re.fullmatch(r"(?i)(negative\s+|minus\s+)?(.+?)", s)
    sign = "-" if m and m.group(1) else ""
    body = m.group(2) if m else s
    if (frac := _fraction_words(body)) is not None:
        return sign + frac
    # a noun or unit may follow ("seven apples", "twelve dollars"), a phrase may not ("one of the roots")
    w = re.fullmatch(rf"(?i)({_NUMBER_WORD}(?:[\s-]+(?:and\s+)?{_NUMBER_WORD})*)"
                     r"(\s+(?!(?:of|the|a|an|or|and|in|to|more|less|than)\b)[a-zA-Z]+(?:\s+[a-zA-Z]+)?)?", body)
    if not w or (n := words_to_number(w.group(1))) is None:
        return s
    return sign + str(n) + (w.group(2) or "")


def _over_to_frac(s: str) -> str:
    """`{a \\over b}` (and a top-level `a \\over b`) -> `\\frac{a}{b}`."""
    for _ in range(10):  # bounded: each pass rewrites one \over
        k = re.search(r"\\over(?![a-zA-Z])", s)
        if not k:
            break
        lo = _unmatched(s, range(k.start() - 1, -1, -1), "}", "{", -1)  # the brace group that holds it, or all
        hi = _unmatched(s, range(k.end(), len(s)), "{", "}", len(s))
        num, den = s[lo + 1 : k.start()].strip(), s[k.end() : hi].strip()
        s = s[: lo + 1] + f"\\frac{{{num}}}{{{den}}}" + s[hi:]
    return s


def _unmatched(s: str, positions: range, deeper: str, target: str, default: int) -> int:
    """The first position in `positions` holding a `target` brace that is not matched inside the walk."""
    depth = 0
    for p in positions:
        if s[p] == deeper:
            depth += 1
        elif s[p] == target:
            if depth == 0:
                return p
            depth -= 1
    return default


def _outside_brackets(s: str, fn: Callable[[str], str]) -> str:
    """`fn` applied to the parts of `s` outside (), [], \\{\\} and set braces (not command arguments like \\frac{})."""
    out, start, depth, i = [], 0, 0, 0
    while i < len(s):
        c = s[i]
        escaped = s.startswith("\\{", i) or s.startswith("\\}", i)
        arg = c == "{" and i > 0 and (s[i - 1] in "^_}]" or re.search(r"\\[a-zA-Z]+$", s[:i]) is not None)
        opens = escaped and s[i + 1] == "{" or (c in "([" or (c == "{" and not arg))
        closes = escaped and s[i + 1] == "}" or c in ")]" or (c == "}" and depth > 0 and not arg)
        if opens:
            if depth == 0:
                out.append(fn(s[start:i]))
                start = i
            depth += 1
        elif closes and depth > 0:
            depth -= 1
            if depth == 0:
                out.append(s[start : i + (2 if escaped else 1)])
                start = i + (2 if escaped else 1)
        i += 2 if escaped else 1
    out.append(fn(s[start:]) if depth == 0 else s[start:])
    return "".join(out)


_DENOMINATORS = {"half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4, "fourth": 4,
                 "fourths": 4, "fifth": 5, "fifths": 5, "sixth": 6, "sixths": 6, "eighth": 8, "eighths": 8,
                 "tenth": 10, "tenths": 10}  # fmt: skip


def _fraction_words(s: str) -> str | None:
    """'two thirds' -> '\\frac{2}{3}', 'a half' -> '\\frac{1}{2}'; None otherwise."""
    m = re.fullmatch(r"(a|one|two|three|four|five|six|seven|nine)[\s-]+([a-z]+)", s.strip().lower())
    if not m or m.group(2) not in _DENOMINATORS:
        return None
    num = 1 if m.group(1) == "a" else _ONES.index(m.group(1))
    return f"\\frac{{{num}}}{{{_DENOMINATORS[m.group(2)]}}}"


def _repeating_tail(m: re.Match[str]) -> str:
    whole, nonrep, rep = m.group(1) or "0", m.group(2), m.group(3)
    value = Fraction(int(whole)) + (Fraction(int(nonrep), 10 ** len(nonrep)) if nonrep else 0)
    value += Fraction(int(rep), 9 * 10 ** len(nonrep))
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
