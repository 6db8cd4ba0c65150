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


@dataclass(frozen=True)
class Norm:
    text: str  # the cleaned LaTeX/plain answer
    percent: bool = False
    degrees: bool = False
    unit: str | None = None  # canonical unit name, e.g. "cm"
    hedged: bool = False  # "not 5", "either 8 or 9", "maybe 3"
    approx: bool = False  # "approximately 3.14", "\\approx 0.33": only right against a rounded (decimal) gold
    choice: str | None = None  # "B" for `\text{(B)}`, "(B)", "B"


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
    s = re.sub(r"(\d)\s*([½⅓⅔¼¾⅕⅛])", r"\1+\2", s)  # "1½" is one and a half
    for k, v in _UNICODE.items():
        s = s.replace(k, v)
    s = re.sub(r"(\d)\s*[xX]\s*10\s*\^", r"\1\\times10^", s)  # "1.5 x 10^3": x is a times sign here
    s = re.sub(r"^(.*?\S),?\s+(?:and\s+)?not\s+[^,]+$", r"\1", s)  # "8, not 9" states 8
    hedged = bool(_HEDGE.search(s))  # "8 or 9" needs no flag: it parses as a list, which a single gold never equals
    # math delimiters and trailing punctuation
    s = re.sub(r"^\$+|\$+$|^\\\[|\\\]$|^\\\(|\\\)$", "", s.strip()).strip()
    s = re.sub(r"[.。]+$", "", s).strip()
    # spacing and sizing commands carry no meaning
    s = re.sub(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|displaystyle|textstyle)(?![a-zA-Z])", "", s)
    s = re.sub(r"(?<!\\)\\!", "", s)  # negative space: "10,\!080" is 10,080
    s = re.sub(r"(?<!\\)\\[,;: ]|\\quad|\\qquad|~", " ", s)
    s = re.sub(r"\\[dtc]frac", r"\\frac", s)
    s = re.sub(r"\\langle\b", "(", re.sub(r"\\rangle\b", ")", s))  # vectors
    s = s.replace("{,}", "")
    for cmd in ("mathrm", "mathbf", "textbf", "mathit", "boldsymbol", "operatorname", "mbox", "textrm", "hbox"):
        s = _unwrap(s, cmd)
    s = _unwrap(s, "text")
    s = re.sub(r"\\emph\{([^{}]*)\}", r"\1", s).strip()
    # choice letters: "(B)", "B", "B)", "(B) 42"
    m = re.fullmatch(r"\(?([A-Ea-e])\)(?:\s.*)?|\(?([A-E])\)?", s)
    choice = (m.group(1) or m.group(2)).upper() if m else None
    # degrees and percent are flags; the number is compared without them
    degrees = bool(re.search(r"\^\s*\{?\s*\\circ\s*\}?|\\degree|\s*degrees?\b", s))
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|\\degree|\s*degrees?\b", "", s)
    percent = bool(re.search(r"\\?%|\bpercent\b", s))
    s = re.sub(r"\\?%|\s*\bpercent\b", "", s)
    s = re.sub(r"\\\$|\$|\\(?:pounds|euro)\b|€|£|\bUSD\b|\bRs\.?", "", s).strip()
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
    # thousands separators: 1,000 and 12,345.5 (but not the list "1,2")
    s = re.sub(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+)(?![\d,])", lambda m: m.group(1).replace(",", ""), s)
    s = re.sub(r"(?<![\d.])(\d{1,3}(?:\s\d{3})+)(?![\d])", lambda m: m.group(1).replace(" ", ""), s)
    # repeating decimals: 0.\overline{3}, 0.1\overline{6}, 0.\dot{3}, 0.333...
    s = re.sub(r"(\d*)\.(\d*)\\(?:overline|dot)\{(\d+)\}", _repeating, s)
    s = re.sub(r"(?<![\w.])(\d*)\.(\d*)\((\d+)\)", _repeating, s)  # 0.(3)
    s = re.sub(r"(\d*)\.(\d*?)(\d)\3+(?:\\ldots|\\dots|\\cdots|\.\.\.)", lambda m: _repeating_tail(m), s)
    # mixed numbers: 2\frac{1}{2} is 2 + 1/2, as graders read it
    s = re.sub(r"(?<![\d.}^_])(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}", r"(\1+\\frac{\2}{\3})", s)
    n = words_to_number(s) if re.fullmatch(r"[a-zA-Z \-]+", s) else None
    if n is not None:
        s = str(n)
    elif (frac := _fraction_words(s)) is not None:
        s = frac
    s = re.sub(r"\s+", " ", s).strip()
    approx = bool(_APPROX.search(s))
    s = re.sub(r"^.*(?:\\approx|≈)\s*", "", s) if approx else s  # "\frac{5}{36} \approx 0.139": the value stated last
    s = _APPROX.sub("", s).strip() if approx else s
    return Norm(s, percent, degrees, unit, hedged, approx, choice)


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
