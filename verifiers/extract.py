"""Find the final answer of a completion.

Only the text after `</think>` counts (drafts inside the reasoning do not), and
inside `<answer>...</answer>` when the completion has those tags (they count
even after unfinished thinking). A chat template's next turn
(`<|im_start|>user`) and closing courtesies ("I hope it is correct.") are cut
off. In order: the `\\boxed{}` / `\\fbox{}` answers (nested braces), unless the
text after the last box states another answer ("... \\boxed{12}. Wait, ... so
the answer is 15."), a GSM8K `####` line, "The (final) answer is ..." /
"Answer: ...", then a text-only final sentence ("So she has 18 apples left.",
"the value of $k$ is 7.").

It does not judge the answer, and it refuses rather than guesses: a completion
cut off before its answer (unfinished thinking, an unfinished last sentence)
yields no answer, and boxes written differently are all returned (`others`) for
the verifier to judge, so a policy cannot be rewarded for a hedge or an
intermediate value. Two exceptions where the intent is unambiguous: a box
that corrects earlier ones ("Actually, I made an error: the final answer is
\\boxed{8}") replaces them, and an unclosed `\\boxed{` or `\\frac{..}{..` at the
very end of the text is closed.

    >>> last_boxed("first \\\\boxed{1}, finally \\\\boxed{\\\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> extract_answer("The answer is 18.").pred
    '18'
    >>> extract_answer("\\\\boxed{8} or maybe \\\\boxed{9}").others
    ('8',)
    >>> extract_answer("So the value of $k$ is 7.").pred
    '7'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{|\\boxed\s+(?=[^\s{])")
_BRACE = re.compile(r"(?<!\\)[{}]")
_CHAT_TURN = re.compile(r"<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|</s>")
_COURTESY = re.compile(
    r"\s*(?:I hope (?:it|this|that) (?:is|was) (?:correct|right|helpful)|(?:I )?hope (?:this|it) helps|"
    r"Let me know if [^.!\n]*)[.!]*\s*$", re.IGNORECASE)  # fmt: skip
# words that mark a later box as a correction of the earlier ones
_CORRECTION = re.compile(r"\b(?:wait|actually|mistake|error|correction|oops|sorry|instead|final answer)\b", re.I)
_NUMBER_WORDS = (
    r"(?:(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|"
    r"thousand|halves|half|thirds?|quarters?|fourths?|fifths?|sixths?|eighths?|tenths?)(?:[\s-]+|\b))+"
)


@dataclass
class Extraction:
    pred: str | None
    reason: str  # "boxed", "hash", "answer_is", "final_sentence", or why nothing was taken
    n_boxed: int = 0
    others: tuple[str, ...] = ()  # other boxed candidates that differ in writing from `pred`


def _box_spans(text: str) -> tuple[list[tuple[int, int, str]], bool]:
    """(start, end, content) of every closed box, and whether one is unclosed."""
    out: list[tuple[int, int, str]] = []
    unclosed = False
    for m in _BOX.finditer(text):
        if not m.group(0).endswith("{"):  # "\boxed 5": up to the next space or $
            rest = re.match(r"[^\s$]+", text[m.end() :])
            if rest:
                out.append((m.start(), m.end() + rest.end(), rest.group(0)))
            continue
        depth, start = 1, m.end()
        for b in _BRACE.finditer(text, start):  # the regex skips everything but braces at C speed
            depth += 1 if b.group(0) == "{" else -1
            if depth == 0:
                out.append((m.start(), b.end(), text[start : b.start()]))
                break
        else:
            unclosed = True
    return out, unclosed


def boxed_all(text: str) -> tuple[list[str], bool]:
    """Contents of every `\\boxed{...}` / `\\fbox{...}` (and `\\boxed 5`), and whether one is unclosed."""
    spans, unclosed = _box_spans(text)
    return [c for _, _, c in spans], unclosed


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


_ANSWER_IS = re.compile(  # also "Answer $9$" / "Answer \\[ 9 \\]" opening a line
    r"(?:(?:final\s+answer|the\s+answer|answer)\s*(?:is|:|=)\s*:?|(?:^|\n)\s*\**answer\**\s+(?=\$|\\\[|\\\())\s*(.+)",
    re.I | re.DOTALL,
)
_CHOICE = re.compile(r"\(([A-E])\)|\b(?:option|choice)\s+\(?([A-E])\b|(?:\bis|\bit's|\bbe)\s+([A-E])$")
_RELATION = re.compile(r"<|>|\\[lg]eq?(?![a-zA-Z])|\\neq?(?![a-zA-Z])|\\[lg]t(?![a-zA-Z])")
_NUMBER_RUN = re.compile(
    r"-?\$?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?%?|\\[dt]?frac\{[^{}]+\}\{[^{}]+\}|\\sqrt\{[^{}]+\}"
)
_VERB = (
    r"(?:is|are|was|were|be|has|have|had|ate|sold|paid|spent|got|read|made|left|gave|won|lost|saved|needs?|"
    r"equals?|totals?|remains?|weighs?|costs?|makes?|earns?|gets?|\w+ed|making|=|:)"
)
_STATED = re.compile(
    _VERB + r"\s+(?:a\s+total\s+of\s+|about\s+|exactly\s+)?(" + _NUMBER_RUN.pattern + "|" + _NUMBER_WORDS + ")"
)
# "... is 7.", "... is $(7, 6)$", "... it's 1,000.99€": the value the final sentence states, with a short tail
_VALUE = r"-?\$?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?(?:%|€|£|\$|m²|cm²)?"
_IS_VALUE = re.compile(
    r"(?:\bis|\bare|\bwas|\bwere|\bequals?|\bbe|'s)\s+(?:equal\s+to\s+|exactly\s+)?"
    r"(\$[^$]+\$|\\\(.+?\\\)|" + _VALUE + r")(?:\s+[a-zA-Z]+){0,2}\s*$"
)


def _first_sentence(s: str) -> str:
    s = s.strip()
    # "The answer is\n\\[\n\\frac12\n\\]": display math across lines; inline math stays on one line
    display = re.match(r"(\$\$|\\\[)(.*?)(\$\$|\\\])", s, re.DOTALL) or re.match(r"(\$|\\\()([^\n]*?)(\$|\\\))", s)
    rest = s[display.end() :].split("\n")[0] if display else ""
    if display and not re.search(r"\$|\\\(|\b(?:or|and)\b", rest):  # but "$2$ or $3$" is two
        return display.group(2).strip()
    # a sentence ends at a newline or a period followed by a space/end (not a decimal point)
    s = re.split(r"\n|(?<=[^\d\s])\.(?=\s|$)|(?<=\d)\.(?=\s|$)", s, maxsplit=1)[0]
    s = re.split(r",?\s+(?:because|since|as|which|given|for|when|if)\s", s, maxsplit=1)[0]  # "5 because 2+3=5"
    return s.strip().rstrip(".").strip()


def _strip_math_delims(s: str) -> str:
    s = s.strip()
    s = s.strip("*").strip()  # markdown bold around or inside "**Answer:** 64"
    for a, b in (('\\"', '\\"'), ('"', '"'), ("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)"), ("**", "**")):
        if s.startswith(a) and s.endswith(b) and len(s) >= len(a) + len(b):
            s = s[len(a) : len(s) - len(b)].strip()
    return s


def _looks_truncated(text: str) -> bool:
    t = text.rstrip()
    if not t:
        return True
    dollars = t.count("$") - t.count("\\$")
    if dollars % 2 == 1 and not re.search(r"(?:^|\s)\$\d|\d\$(?:\s|$)", t):  # "$18", "18$" are money
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
    if _IS_VALUE.search(t.rstrip(".")) or re.search(r"(?:\bis|'s|\bbe)\s+\(?[A-E]\)?$", t):
        return True  # "is 2/3", "it's 1,000.99€", "I think it's B"
    if re.search(r"(?:[-+*/×x]|\\times|\\cdot)\s*\$?\d[\d,.]*$", t):
        return False  # the last number is an operand of an unfinished expression
    if t.endswith((".", "!", "$", "\\]", "\\)", ")", "]", "}")):
        return True
    return bool(re.search(r"(?:\b(?:is|are|was|were|equals|be|gives|get|gets|has|have|makes|of)|=|:)\s*"
                          r"\$?-?\d[\d,.]*%?(?:\s+[a-zA-Z]+){0,2}$", t))


def _close_at_end(text: str) -> str | None:
    """`... \\boxed{\\frac{3}{4` with its braces (and `$`) closed: an unclosed box or fraction at the very end."""
    t = text.rstrip()
    if t.count("{") - t.count("\\{") <= t.count("}") - t.count("\\}"):
        return None  # every brace is closed (the common case, counted without a Python loop)
    stack: list[int] = []
    for i, c in enumerate(t):
        if c in "{}" and i > 0 and t[i - 1] == "\\":
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            stack.pop()
    if not stack or t[-1] in "{^_=+-*/(\\,":
        return None  # nothing open, or cut in the middle of an expression
    tail = t[stack[0] + 1 :]
    words = re.sub(r"\\[a-zA-Z]+", " ", tail)
    if len(tail) > 80 or "\n" in tail or re.search(r"[a-zA-Z]{2,}\s+[a-zA-Z]{2,}", words):
        return None  # prose after the brace: a cut-off, not a missing brace
    if not re.search(r"\\(?:boxed|fbox|[dt]?frac)(?:\{[^{}]*\})?\s*$", t[: stack[0]]):
        return None
    closed = t + "}" * len(stack)
    if (closed.count("$") - closed.count("\\$")) % 2:
        closed += "$"
    return closed


def _prepare(completion: str) -> tuple[str | None, str]:
    """The part of the completion that holds the answer, or (None, why there is none)."""
    text = completion
    if "</think>" in text:  # drafts inside the reasoning are not the answer
        text = text.rsplit("</think>", 1)[1]
    elif "<think>" in text and not re.search(r"<answer>.*?</answer>", text, re.DOTALL):
        return None, "unfinished_think"
    before_turn = _CHAT_TURN.split(text, maxsplit=1)[0]
    text = before_turn if before_turn.strip() else text
    # a base model that answers and then writes the next few-shot question: only the first part counts
    follow_on = re.search(r"\n\s*(?:Question|Q|Problem|Human|User)\s*:", text)
    if follow_on and follow_on.start() > 0:
        text = text[: follow_on.start()]
    answers = re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)
    if answers:
        text = answers[-1]
    elif "<answer>" in text:
        return None, "unclosed_answer_tag"
    head, tail = text[:-300], text[-300:]  # courtesies end the text: no need to scan a long one from the start
    for _ in range(3):  # "... I hope it is correct. Hope this helps!"
        tail = _COURTESY.sub("", tail)
    text = head + tail
    return (_close_at_end(text) or text), ""


def extract_answer(completion: str) -> Extraction:
    """The final answer of `completion`, or `pred=None` with the reason none was taken."""
    text, why = _prepare(completion)
    if text is None:
        return Extraction(None, why)
    spans, unclosed = _box_spans(text)
    if spans:
        if unclosed:  # a closed box, then another one cut off: the answer changed mid-way
            return Extraction(None, "unclosed_boxed", len(spans))
        later = _stated_after(text[spans[-1][1] :])
        if later is not None:  # "\boxed{12}. Wait, I double counted ... so the answer is 11."
            return Extraction(later, "answer_after_box", len(spans))
        first = 0
        for k in range(1, len(spans)):  # "\boxed{6}. Actually, I made an error: ... \boxed{8}" drops the 6
            if _CORRECTION.search(text[spans[k - 1][1] : spans[k][0]]):
                first = k
        boxes = [_unbox(c) for _, _, c in spans[first:]]
        last = boxes[-1]
        seen = {_canon(last)}
        others = []
        for b in boxes[:-1]:
            if _canon(b) and _canon(b) not in seen:  # an empty \boxed{} echoes the instructions
                seen.add(_canon(b))
                others.append(b)
        # the caller decides whether differently written boxes hold one answer (1/2 and 0.5) or several
        return Extraction(last, "boxed", len(spans), tuple(others))
    if unclosed:
        return Extraction(None, "unclosed_boxed")
    if "####" in text:
        tail = text.rsplit("####", 1)[1].strip().split("\n")[0].strip()
        if re.search(r"(?<!\\)\b[a-zA-Z]{3,}\s+[a-zA-Z]{2,}", tail) and not re.fullmatch(_NUMBER_WORDS, tail + " "):
            inner = extract_answer(tail)  # "#### The answer is 18."
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
        first = _first_sentence(body)
        sent = _strip_math_delims(first)
        # the sentence that states the answer must be whole; what follows it may trail off
        if sent and not _looks_truncated(body if len(first) >= len(body.strip().rstrip(".")) else first + "."):
            if len(re.findall(r"[a-zA-Z]{2,}", re.sub(r"\$[^$]*\$|\\[a-zA-Z]+", " ", sent))) >= 3:
                inner = _from_final_sentence(sent + ".")  # "Final Answer: The largest $n$ is 34."
                if inner.pred is not None:
                    return Extraction(inner.pred, "answer_is")
            return Extraction(sent, "answer_is")
        return Extraction(None, "truncated")
    if _looks_truncated(text):
        return _leading_choice(text) or Extraction(None, "truncated")
    stripped = re.sub(r"^(?:so|thus|therefore|hence|then|finally)\b,?\s*", "", text.strip().rstrip("."), flags=re.I)
    stripped = _strip_math_delims(stripped)
    words = re.sub(r"\\[a-zA-Z]+", " ", stripped)
    if len(stripped) <= 40 and "\n" not in stripped and not re.search(r"[a-zA-Z]{2,}\s+[a-zA-Z]{2,}", words):
        stripped = re.sub(r"^(?:[A-Za-z][A-Za-z ]{0,19}:|=)\s*", "", stripped)  # "Total: 7", "= 7"
        return Extraction(stripped, "whole")  # the completion is the bare answer ("18", "5 apples")
    return _from_final_sentence(text)


def _stated_after(tail: str) -> str | None:
    """An answer stated in prose after the last box, when it is a value (not "the answer is consistent")."""
    tail = re.sub(r"^\s*(?:\$\$|\$|\\\]|\\\))?[.,;]?", "", tail)  # the box's own closing delimiter
    if not _ANSWER_IS.search(tail) or _looks_truncated(tail):
        return None
    ex = extract_answer(tail)
    negated = re.match(r"(?:not|never)\b", ex.pred or "")  # "\boxed{12}. Note: the answer is not 13."
    if ex.pred and ex.reason == "answer_is" and not negated and re.search(r"\d|\\[a-zA-Z]|" + _NUMBER_WORDS, ex.pred):
        return ex.pred
    return None


def _span_value(span: str) -> str:
    """"$x <= 2$" is the answer whole; "$a+b = 9$" and "$2(5+7) = 24$" state the value after the last =."""
    return span.strip() if _RELATION.search(span) else re.split(r"(?<![<>!\\])=", span)[-1].strip()


def _leading_choice(text: str) -> Extraction | None:
    """"D. it can't be A or B": an option letter that opens an unfinished answer."""
    m = re.match(r"\s*\(?([A-E])\)?[.:)]\s", text)
    return Extraction(f"({m.group(1)})", "choice_letter") if m else None


def _from_final_sentence(text: str) -> Extraction:
    """The value stated by the last sentence of a text-only answer."""
    last = [p for p in re.split(r"\n", text.strip()) if p.strip()][-1]
    # sentences end at . ! ? and at a display formula followed by a new sentence
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|(?<=\$\$)\s*(?=[A-Z])|(?<=\\\])\s*(?=[A-Z])", last.strip())
                 if s.strip()]  # fmt: skip
    final = sentences[-1] if sentences else last
    if not _finished(final):
        return _leading_choice(text) or Extraction(None, "truncated")
    final = final.replace("\\$", "$ ").replace("$ $", "")  # an escaped dollar is money, not a formula
    final = final.rstrip(". ")
    main = re.split(r",?\s+(?:when|if|because|since|where|given)\s", final, maxsplit=1)[0]
    for part in (main, final):  # "x is 5 when y = 2"; but "not A because ..., so it's B"
        stated = _IS_VALUE.search(part)
        if stated:  # "the value of $k$ is 7": the value, not the variable named before it
            return Extraction(_span_value(_strip_math_delims(stated.group(1)).rstrip(",")), "final_sentence")
    final = main if _NUMBER_RUN.search(main) or "$" in main else final
    math_spans = re.findall(r"(?<![\\\w])\$([^$]+)\$|\\\[(.+?)\\\]|\\\((.+?)\\\)", final, re.DOTALL)
    math_spans = [m for m in math_spans if not re.fullmatch(r"\d[\d,.]*\s", m[0] + " ")]
    after = re.split(r"\$|\\\]|\\\)", final)[-1] if math_spans else ""
    if math_spans and not _STATED.search(after):  # "... $16-3-4 = 9$ eggs ..., making 18 dollars" states 18
        rhs = _span_value([x for x in math_spans[-1] if x][0])
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
               if _NUMBER_RUN.search(c) or re.search(_NUMBER_WORDS, c, re.I)]  # fmt: skip
    final = clauses[-1] if clauses else final
    stated_all = [m.group(1) for m in _STATED.finditer(final)]
    nums = stated_all or _NUMBER_RUN.findall(final)
    if not nums:
        return Extraction(None, "no_answer")
    n = nums[-1].strip().rstrip(",")
    if not n.startswith("$") and re.search(r"\$\s*" + re.escape(n) + r"(?!\d)", final):  # "saved \$18": money
        n = "\\$" + n.lstrip("$ ")
    return Extraction(n, "final_sentence")
