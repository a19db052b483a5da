"""Numeric answers (the GSM family): read the final number out of whatever a workflow returned and compare it.

A workflow may return ``18``, ``"18"``, ``"$18.00"``, ``"The answer is 18 dollars."`` or a whole worked solution
ending in ``\\boxed{18}``. The reader takes, in this order: the last ``\\boxed{}`` / ``\\fbox{}``; else the text
after the last "answer is" / "answer:" / "####" marker (up to the end of that sentence); else the last number
in the text. Inside a box or after a marker, a number after the last "=" wins (``\\boxed{2 \\times 9 = 18}``),
else the first number (``"the answer is 18. I used 3 eggs"``). Numbers may carry thousands separators
(``1,234``), a sign, decimals, an exponent (``1.8e1``), a percent sign (ignored), non-ASCII digits (``১৮``,
``１８``), or be a simple fraction (``3/4``, ``\\frac{3}{4}``).

Comparison: ``|read - gold| <= max(rel_tol * max(|read|, |gold|), abs_tol)`` (:func:`math.isclose`; defaults
1e-6 and 1e-9; GSM-Hard widens ``rel_tol`` to 1e-4 because its golds are unrounded floats such as
``14053029.666666666``). Some golds are themselves rounded (GSM-Plus writes 26/6 as ``4.33``): when the gold has
two or more decimals, any answer that rounds to it at that precision also matches.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

from w4s.benchmarks.base import Benchmark, Sample, Score

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_MARKER = re.compile(r"\banswer\b\s*(?:is\b\s*[:：]?|[:：=])|####", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\n|\.(?!\d)")
_DELIMITERS = tuple((left, re.compile(right)) for left, right in  # a closing "$" is not an escaped "\\$"
                    (("$$", r"(?<!\\)\$\$"), ("\\[", r"\\\]"), ("\\(", r"\\\)"), ("$", r"(?<!\\)\$")))
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?"
_SIGN = r"(?:(?<![0-9A-Za-z_)\]}])-)?"
NUMBER_TOKEN = re.compile(
    rf"(?<![\d.])(?P<sign>{_SIGN})(?:"
    rf"\\[dt]?frac\s*\{{\s*(?P<fnum>-?(?:{_NUM}))\s*\}}\s*\{{\s*(?P<fden>-?(?:{_NUM}))\s*\}}"
    rf"|(?P<num>{_NUM})(?:/(?P<den>{_NUM}))?)"
)
_MINUS = str.maketrans({"−": "-", "–": "-"})
_SPACED_THOUSANDS = re.compile(r"(?<=\d)[\u00a0\u202f\u2009](?=\d{3}(?!\d))")  # "1 234" in French, say
_SNIPPET = 60


def _box_content(rest: str) -> str | None:
    """The argument of a box command whose name ``rest`` follows: ``{...}`` with nested braces, or one token
    after a space (``\\boxed 5``); None when there is none or the brace never closes."""
    if not rest.startswith("{"):
        token = rest.strip().split(maxsplit=1)
        return token[0].rstrip("$.") if rest[:1].isspace() and token else None
    depth = 0
    for index, char in enumerate(rest):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return rest[1:index].strip()
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` or ``\\fbox{...}``; None when there is no box or the last one
    is never closed: an unclosed box is not an answer."""
    start, command = max((text.rfind(c), c) for c in _BOX_COMMANDS)
    return _box_content(text[start + len(command):]) if start >= 0 else None


def all_boxed(text: str) -> list[str]:
    """The contents of every closed box, in order."""
    found = (_box_content(text[m.end():]) for m in _BOX_COMMAND.finditer(text))
    return [content for content in found if content is not None]


def marked_answer(text: str) -> str | None:
    """The explicitly marked final answer: the last box, else what follows the last "answer is" marker (to the
    end of that sentence); None when the text marks nothing."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    markers = list(_MARKER.finditer(text))
    if not markers:
        return None
    tail = text[markers[-1].end():].lstrip()
    for left, right in _DELIMITERS:  # "The answer is\n$$\n\frac{1}{2}\n$$": the math, not up to the newline
        close = right.search(tail, len(left)) if tail.startswith(left) else None
        if close:
            return tail[len(left): close.start()].strip()
    end = _SENTENCE_END.search(tail)
    return (tail[: end.start()] if end else tail).strip()


@dataclass(frozen=True)
class Reading:
    """What was read from an answer: the number (None if none) and a note for the score's reason."""

    value: float | None
    note: str


def _token_value(match: re.Match[str]) -> float | None:
    def plain(text: str) -> float:
        return float(text.replace(",", ""))

    sign = -1.0 if match["sign"] else 1.0
    try:
        if match["fnum"] is not None:
            value = plain(match["fnum"]) / plain(match["fden"])
        elif match["den"] is not None:
            value = plain(match["num"]) / plain(match["den"])
        else:
            value = plain(match["num"])
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return sign * value if math.isfinite(value) else None


def _snippet(text: str, at_end: bool) -> str:
    text = " ".join(text.split())
    if len(text) <= _SNIPPET:
        return text
    return "..." + text[-_SNIPPET:] if at_end else text[:_SNIPPET] + "..."


def read_number(value: Any) -> Reading:
    """The final answer's number, and what was read (or why nothing could be)."""
    if isinstance(value, bool) or value is None:
        return Reading(None, f"answer is {value}, not a number")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range; its repr may be too long to even build
            return Reading(None, "answer is an integer too large for a float")
        return Reading(number, repr(value)) if math.isfinite(number) else Reading(None, f"answer is {value}")
    if not isinstance(value, str):
        return Reading(None, f"answer is a {type(value).__name__}, expected a number")
    text = _SPACED_THOUSANDS.sub("", value.translate(_MINUS))
    segment = marked_answer(text)
    if segment is not None:
        token = next(NUMBER_TOKEN.finditer(segment.rsplit("=", 1)[-1]), None)
        where = f"final answer {_snippet(segment, at_end=False)!r}"
    else:
        last = deque(NUMBER_TOKEN.finditer(text), maxlen=1)
        token = last[0] if last else None
        where = repr(_snippet(text, at_end=True))
    if token is None:
        return Reading(None, f"no number in {where}")
    number = _token_value(token)
    if number is None:
        return Reading(None, f"{_snippet(token[0], at_end=False)!r} in {where} is not a finite number")
    return Reading(number, f"{_format(number)} from {where}")


def _format(number: float) -> str:
    return str(int(number)) if number.is_integer() and abs(number) < 1e16 else repr(number)


def number_text(value: float) -> str:
    """A gold float as a person writes it: ``51.0`` -> ``"51"``, float noise rounded off at 15 significant
    digits (``3244047.0999999996`` -> ``"3244047.1"``)."""
    value = float(value)
    return _format(value) if value.is_integer() else f"{value:.15g}"


def _decimals(gold: str) -> int:
    """How many decimals the gold is written with (``"4.33"`` -> 2), for rounded golds."""
    match = re.search(r"\.(\d+)\s*%?\s*$", gold.strip())
    return len(match.group(1)) if match else 0


def agrees(read: float, gold: float, gold_text: str, rel_tol: float, abs_tol: float) -> bool:
    """The comparison documented at the top of this module."""
    if math.isclose(read, gold, rel_tol=rel_tol, abs_tol=abs_tol):
        return True
    places = _decimals(gold_text)
    return places >= 2 and abs(read - gold) <= 0.5 * 10.0 ** -places * (1 + 1e-9)


def numeric_score(prediction: Any, gold: str, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> Score:
    """1 when the prediction's final number matches ``gold``; else 0 saying what was read."""
    want = read_number(gold).value
    if want is None:
        return Score.zero(f"gold answer {gold!r} is not a number")
    got = read_number(prediction)
    if got.value is None:
        return Score.zero(got.note)
    return Score.of(agrees(got.value, want, gold, rel_tol, abs_tol), f"read {got.note}, expected {gold}")


def to_number(value: Any) -> float | None:
    """The final number of an answer (see :func:`read_number`), or None."""
    return read_number(value).value


class NumericBenchmark(Benchmark):
    """A benchmark whose gold answers are single numbers, scored with :func:`numeric_score`."""

    answer_kind = "number"
    rel_tol: ClassVar[float] = 1e-6
    abs_tol: ClassVar[float] = 1e-9

    async def score(self, prediction: Any, sample: Sample) -> Score:
        return numeric_score(prediction, sample.answer, self.rel_tol, self.abs_tol)
