"""Find the final answer of a completion.

Only the text after `</think>` counts (drafts inside the reasoning do not), and
inside `<answer>...</answer>` when the completion has those tags. In order: the
`\\boxed{}` / `\\fbox{}` answers (nested braces), a GSM8K `####`
line, "The (final) answer is ..." / "Answer: ...", then a text-only final
sentence ("So she has 18 apples left."). It does not judge the answer, and it
refuses rather than guesses: a completion cut off before its answer (an
unclosed box, unfinished thinking, an unfinished last sentence) yields no
answer, and boxes written differently are all returned (`others`) for the
verifier to judge, so a policy cannot be rewarded for a hedge or an
intermediate value.

    >>> last_boxed("first \\\\boxed{1}, finally \\\\boxed{\\\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> extract_answer("The answer is 18.").pred
    '18'
    >>> extract_answer("\\\\boxed{8} or maybe \\\\boxed{9}").others
    ('8',)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{|\\boxed\s+(?=[^\s{])")


@dataclass
class Extraction:
    pred: str | None
    reason: str  # "boxed", "hash", "answer_is", "final_sentence", or why nothing was taken
    n_boxed: int = 0
    others: tuple[str, ...] = ()  # other boxed candidates that differ in writing from `pred`


def boxed_all(text: str) -> tuple[list[str], bool]:
    """Contents of every `\\boxed{...}` / `\\fbox{...}` (and `\\boxed 5`), and whether one is unclosed."""
    out: list[str] = []
    unclosed = False
    for m in _BOX.finditer(text):
        if not m.group(0).endswith("{"):  # "\boxed 5": up to the next space or $
            rest = re.match(r"[^\s$]+", text[m.end() :])
            if rest:
                out.append(rest.group(0))
            continue
        depth, start = 1, m.end()
        for k in range(start, len(text)):
            c = text[k]
            if c == "{" and text[k - 1] != "\\":
                depth += 1
            elif c == "}" and text[k - 1] != "\\":
                depth -= 1
                if depth == 0:
                    out.append(text[start:k])
                    break
        else:
            unclosed = True
    return out, unclosed


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{}` / `\\fbox{}`, or None."""
    boxes, _ = boxed_all(text)
    return boxes[-1] if boxes else None


def _unbox(s: str) -> str:
    """`\\boxed{\\boxed{8}}` -> `8`."""
    s = s.strip()
    while (m := _BOX.match(s)) is not None:
        inner, _ = boxed_all(s)
        if not inner or len(s) > len(inner[0]) + m.end() + 1:
            break
        s = inner[0].strip()
    return s


def _canon(s: str) -> str:
    """Enough normalisation to tell that two boxes are written the same way."""
    return re.sub(r"\s+|\\[,!;: ]|\\left|\\right|\\displaystyle|\$|\.$", "", s).replace("dfrac", "frac")


_ANSWER_IS = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:is|:|=)\s*:?\s*(.+)", re.IGNORECASE | re.DOTALL
)
_CHOICE = re.compile(r"\(([A-E])\)|\b(?:option|choice)\s+\(?([A-E])\b")
_NUMBER_RUN = re.compile(
    r"-?\$?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?%?|\\[dt]?frac\{[^{}]+\}\{[^{}]+\}|\\sqrt\{[^{}]+\}"
)
_VERB = (
    r"(?:is|are|was|were|be|has|have|had|ate|sold|paid|spent|got|read|made|left|gave|won|lost|saved|needs?|"
    r"equals?|totals?|remains?|weighs?|costs?|makes?|earns?|gets?|\w+ed|=|:)"
)
_STATED = re.compile(_VERB + r"\s+(?:a\s+total\s+of\s+|about\s+|exactly\s+)?(" + _NUMBER_RUN.pattern + ")")


def _first_sentence(s: str) -> str:
    s = s.strip()
    display = re.match(r"(\$\$|\\\[|\$|\\\()(.*?)(\$\$|\\\]|\$|\\\))", s, re.DOTALL)
    rest = s[display.end() :].split("\n")[0] if display else ""
    if display and not re.search(r"\$|\\\(|\b(?:or|and)\b", rest):
        # "The answer is\n\\[\n\\frac12\n\\]": the whole formula, across lines (but "$2$ or $3$" is two)
        return display.group(2).strip()
    # a sentence ends at a newline or a period followed by a space/end (not a decimal point)
    s = re.split(r"\n|(?<=[^\d\s])\.(?=\s|$)|(?<=\d)\.(?=\s|$)", s, maxsplit=1)[0]
    s = re.split(r",?\s+(?:because|since|as|which|given|for|when|if)\s", s, maxsplit=1)[0]  # "5 because 2+3=5"
    return s.strip().rstrip(".").strip()


def _strip_math_delims(s: str) -> str:
    s = s.strip()
    s = s.strip("*").strip()  # markdown bold around or inside "**Answer:** 64"
    for a, b in (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)"), ("**", "**")):
        if s.startswith(a) and s.endswith(b) and len(s) >= len(a) + len(b):
            s = s[len(a) : len(s) - len(b)].strip()
    return s


def _looks_truncated(text: str) -> bool:
    t = text.rstrip()
    if not t:
        return True
    dollars = t.count("$") - t.count("\\$")
    if dollars % 2 == 1 and not re.search(r"(?:^|\s)\$\d", t):  # "$18" is money, not an open formula
        return True
    if t.count("\\[") > t.count("\\]") or t.count("\\(") > t.count("\\)"):
        return True
    depth = 0
    for c in t:
        depth += c == "{"
        depth -= c == "}"
    if depth > 0:
        return True
    # a finished final statement ends with punctuation, a closing math delimiter or a number/word answer
    return t[-1] in ",;:+-*/=(([{\\^_" or bool(re.search(r"\b(and|or|the|is|of|to|by|then|so|we|a)$", t))


def _finished(sentence: str) -> bool:
    """A final sentence that states a result: it ends with punctuation or a closing delimiter, or
    with "is 42"-like wording; not "... 16 - 3" (an expression cut off) or "... then we add"."""
    t = sentence.rstrip()
    if re.search(r"(?:[-+*/×x]|\\times|\\cdot)\s*\$?\d[\d,.]*$", t):
        return False  # the last number is an operand of an unfinished expression
    if t.endswith((".", "!", "$", "\\]", "\\)", ")", "]", "}")):
        return True
    return bool(re.search(r"(?:\b(?:is|are|was|were|equals|be|gives|get|gets|has|have|makes|of)|=|:)\s*"
                          r"\$?-?\d[\d,.]*%?(?:\s+[a-zA-Z]+){0,2}$", t))


def extract_answer(completion: str) -> Extraction:
    """The final answer of `completion`, or `pred=None` with the reason none was taken."""
    text = completion
    if "</think>" in text:  # drafts inside the reasoning are not the answer
        text = text.rsplit("</think>", 1)[1]
    elif "<think>" in text:
        return Extraction(None, "unfinished_think")
    # a base model that answers and then writes the next few-shot question: only the first part counts
    follow_on = re.search(r"\n\s*(?:Question|Q|Problem|Human|User)\s*:", text)
    if follow_on and follow_on.start() > 0:
        text = text[: follow_on.start()]
    answers = re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)
    if answers:
        text = answers[-1]
    elif "<answer>" in text:
        return Extraction(None, "unclosed_answer_tag")
    boxes, unclosed = boxed_all(text)
    if boxes:
        if unclosed:  # a closed box, then another one cut off: the answer changed mid-way
            return Extraction(None, "unclosed_boxed", len(boxes))
        boxes = [_unbox(b) for b in boxes]
        last = boxes[-1]
        seen = {_canon(last)}
        others = []
        for b in boxes[:-1]:
            if _canon(b) and _canon(b) not in seen:  # an empty \boxed{} echoes the instructions
                seen.add(_canon(b))
                others.append(b)
        # the caller decides whether differently written boxes hold one answer (1/2 and 0.5) or several
        return Extraction(last, "boxed", len(boxes), tuple(others))
    if unclosed:
        return Extraction(None, "unclosed_boxed")
    if "####" in text:
        tail = text.rsplit("####", 1)[1].strip().split("\n")[0].strip()
        if re.search(r"(?<!\\)\b[a-zA-Z]{3,}\s+[a-zA-Z]{2,}", tail):  # "#### The answer is 18."
            inner = extract_answer(tail)
            return Extraction(inner.pred, "hash" if inner.pred else inner.reason)
        return Extraction(tail or None, "hash" if tail else "empty_hash")
    matches = list(_ANSWER_IS.finditer(text))
    if matches:
        body = matches[-1].group(1)
        while True:  # "The answer is: the answer is 5" -> take the innermost
            inner = _ANSWER_IS.search(body)
            if not inner:
                break
            body = inner.group(1)
        sent = _strip_math_delims(_first_sentence(body))
        if sent and not _looks_truncated(body):
            return Extraction(sent, "answer_is")
        return Extraction(None, "truncated")
    if _looks_truncated(text):
        return Extraction(None, "truncated")
    stripped = _strip_math_delims(text.strip().rstrip("."))
    words = re.sub(r"\\[a-zA-Z]+", " ", stripped)
    if len(stripped) <= 40 and "\n" not in stripped and not re.search(r"[a-zA-Z]{2,}\s+[a-zA-Z]{2,}", words):
        stripped = re.sub(r"^(?:[A-Za-z][A-Za-z ]{0,19}:|=)\s*", "", stripped)  # "Total: 7", "= 7"
        return Extraction(stripped, "whole")  # the completion is the bare answer ("18", "5 apples")
    last = [p for p in re.split(r"\n", text.strip()) if p.strip()][-1]
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", last.strip()) if s.strip()]
    final = sentences[-1] if sentences else last
    if not _finished(final):
        return Extraction(None, "truncated")
    final = final.replace("\\$", "$ ").replace("$ $", "")  # an escaped dollar is money, not a formula
    math_spans = re.findall(r"(?<![\\\w])\$([^$]+)\$|\\\[(.+?)\\\]|\\\((.+?)\\\)", final, re.DOTALL)
    math_spans = [m for m in math_spans if not re.fullmatch(r"\d[\d,.]*\s", m[0] + " ")]
    if math_spans:
        span = [x for x in math_spans[-1] if x][0]
        rhs = span.rsplit("=", 1)[-1].strip()
        if rhs and rhs[-1] in "+-*/^=(":
            return Extraction(None, "truncated")
        if rhs:
            return Extraction(rhs, "final_sentence")
    choice = _CHOICE.findall(final)
    if choice:
        return Extraction(f"({''.join(choice[-1])})", "final_sentence")
    # the conclusion is the last clause ("3 red and 5 blue, so 8 in total"), and in it the number a verb
    # (or "=") states wins over trailing context ("earned $10 for 50 minutes")
    clauses = [c for c in re.split(r"\b(?:so|therefore|thus|hence|which means|that means)\b", final, flags=re.I)
               if _NUMBER_RUN.search(c)]  # fmt: skip
    final = clauses[-1] if clauses else final
    stated = [m.group(1) for m in _STATED.finditer(final)]
    if stated:
        return Extraction(stated[-1].strip().rstrip(","), "final_sentence")
    nums = _NUMBER_RUN.findall(final)
    if nums:
        return Extraction(nums[-1].strip().rstrip(","), "final_sentence")
    return Extraction(None, "no_answer")
