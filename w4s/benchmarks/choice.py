"""Multiple choice: MMLU-Pro (up to ten options, A-J) and GPQA diamond (four options, A-D).

Both give the workflow the question followed by its options, one per line as "A. <option>", and expect the
letter of the correct option. The scorer reads the letter from the workflow's *answer field*, which should hold
the letter alone; it accepts the usual ways of writing one ("C", "(C)", "C)", "C.", "c", "**C**",
"\\boxed{C}", "Answer: C", "The answer is (C)", "C. <the option's text>") and the exact text of one option. It
never guesses: free text with no explicit answer marker scores 0 with a reason (ADAS took the first "A)"..."D)"
found anywhere, so "A good answer is C" read as A; here it reads as C, through the marker "answer is").

Sources. MMLU-Pro: the test split (12,032 questions) from ``mmlu_pro/test.jsonl`` in the data directory, or
TIGER-Lab/MMLU-Pro on the hub. The gold is the ``answer`` letter, which is what the upstream evaluation scores
against; one record upstream (question_id 3983) has an ``answer_index`` that disagrees with it (B) and is
scored as C, which is also the chemically right answer. GPQA: no offline copy, on purpose (its authors ask that
its questions not be published in plain text, so none are stored here, tests included); the gated hub dataset
Idavidrein/gpqa (config gpqa_diamond), or a user's file. The hub rows give the correct answer and three incorrect
ones; :func:`gpqa_order` shuffles them with a permutation seeded by the record id, the same on every machine.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from w4s.benchmarks.base import Benchmark, HubSource, Sample, Score, SplitSizes, sample_from_record
from w4s.benchmarks.packaged import jsonl_records

LETTERS = "ABCDEFGHIJ"
MAX_ANSWER_CHARS = 20_000  # an answer field, not a transcript; keeps the regular expressions cheap

_EMPHASIS = re.compile(r"\*\*|__|`")
_BARE = re.compile(r"[(\[]?([A-Ja-j])[)\]]?[.:)]?")
_LEADING = re.compile(r"(?:\(([A-Ja-j])\)|\[([A-Ja-j])\]|([A-J])[.:)])\s*(\S.*)", re.DOTALL)
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")
# The letter after a marker: parenthesised or bracketed, a capital standing alone, or a small letter that ends
# the answer ("answer: c"; a small letter inside a sentence is just the article "a").
_MARKED_LETTER = r"(?:\(([A-Ja-j])\)|\[([A-Ja-j])\]|([A-J])(?![A-Za-z0-9])|([a-j])(?=[.)]?\s*$))"
# No two runs of \s* may meet without a literal between them: on a long run of spaces that would backtrack
# through every way of splitting it (an answer of 1,000 spaces after "answer" took minutes).
_ANSWER_MARKER = re.compile(r"(?i:answer)(?:\s+(?i:is|would be|will be|should be))?(?:\s*[:=\-])?\s*"
                            r"(?:(?i:option|choice)\s*)?" + _MARKED_LETTER)
_OPTION_MARKER = re.compile(r"(?i:option|choice)(?:\s+(?i:is))?(?:\s*[:=\-])?\s*" + _MARKED_LETTER)


def lettered(question: str, options: Sequence[str]) -> str:
    """The task text: the question, a blank line, then "A. <option>" per line."""
    lines = [f"{LETTERS[i]}. {option}" for i, option in enumerate(options)]
    return f"{question.strip()}\n\n" + "\n".join(lines)


def _plain(text: str) -> str:
    """For comparing an answer with an option's text: emphasis, spacing and a final period ignored."""
    return " ".join(_EMPHASIS.sub("", text).split()).rstrip(".").strip()


def _normalize(text: str) -> str:
    """:func:`_plain`, ignoring case too."""
    return _plain(text).casefold()


def _marked(pattern: re.Pattern[str], text: str) -> set[str]:
    return {next(group for group in match.groups() if group).upper() for match in pattern.finditer(text)}


def _option_by_text(text: str, options: Sequence[str]) -> list[str]:
    """The letters of the options whose text the answer is: compared case-sensitively first (genetics options
    such as "Bb" and "bb" differ only in case), then ignoring case when that finds none."""
    for form in (_plain, _normalize):
        wanted = form(text)
        found = [LETTERS[i] for i, option in enumerate(options) if wanted and form(option) == wanted]
        if found:
            return found
    return []


def _leading_letter(text: str, options: Sequence[str] | None) -> tuple[str | None, str]:
    """ "C. <text>", "C) <text>", "(C) <text>": the letter, when the text is that option's (or the options are
    unknown). Otherwise the letter may just start a sentence ("A) is wrong, ..."), so it is not taken; the
    second value then says why, for when nothing else gives a letter either."""
    match = _LEADING.fullmatch(text)
    if match is None:
        return None, ""
    letter = next(group for group in match.groups()[:3] if group).upper()
    index = LETTERS.index(letter)
    if options is None or (index < len(options) and _normalize(match.group(4)).startswith(_normalize(options[index]))):
        return letter, ""
    return None, f"{letter} is followed by text that is not option {letter}'s"


def read_letter(answer: str, options: Sequence[str] | None) -> tuple[str | None, str]:
    """The option letter an answer field gives, else None and why. ``options`` (when known) lets the exact text
    of an option count as its letter. The letter is not checked against the number of options here."""
    text = _EMPHASIS.sub("", answer).strip()
    bare = _BARE.fullmatch(text)
    if bare:
        return bare.group(1).upper(), ""
    boxed = _BOXED.findall(text)
    if boxed:
        inner = _TEXT_COMMAND.sub(r"\1", boxed[-1]).strip()
        letter, _ = read_letter(inner, options)
        if letter:
            return letter, ""
    if options is not None:
        by_text = _option_by_text(text, options)
        if len(by_text) == 1:
            return by_text[0], ""
        if len(by_text) > 1:
            return None, f"the answer is the text of several options ({', '.join(by_text)})"
    leading, mismatch = _leading_letter(text, options)
    if leading:
        return leading, ""
    for pattern in (_ANSWER_MARKER, _OPTION_MARKER):
        letters = _marked(pattern, text)
        if len(letters) == 1:
            return letters.pop(), ""
        if letters:
            return None, f"the answer names several letters ({', '.join(sorted(letters))})"
    return None, mismatch or "no option letter found: give the letter alone (for example C) or 'Answer: C'"


def gpqa_order(record_id: str, count: int = 4) -> list[int]:
    """The shuffled order of a GPQA record's options (index 0 = the correct answer): a permutation seeded by
    the record id, through SHA-256, so it is the same on every machine and Python version (unlike ``random``,
    whose ``shuffle`` is not guaranteed stable across versions)."""
    def key(i: int) -> bytes:
        return hashlib.sha256(f"gpqa\0{record_id}\0{i}".encode()).digest()

    return sorted(range(count), key=key)


class ChoiceBenchmark(Benchmark):
    """Task format, user files and scoring shared by the multiple-choice benchmarks."""

    answer_kind = "choice"
    max_options: ClassVar[int]

    def _sample(self, sample_id: str, question: str, options: Sequence[str], letter: str,
                **meta: Any) -> Sample:
        return Sample(id=sample_id, question=lettered(question, options), answer=letter,
                      meta={"choices": list(options), **meta})

    def from_record(self, record: dict[str, Any], index: int) -> Sample:
        """``question`` and ``answer`` (a letter, or the correct option's text) with ``choices`` (a list); the
        options are appended to the question as "A. ..." lines unless it already shows them that way. Without
        ``choices`` the question must show its options and the answer must be a letter."""
        base = sample_from_record(record, index, self.name)
        where = f"record {index + 1}"
        choices = base.meta.get("choices")
        if choices is None:
            letter = base.answer.strip().strip("()").upper()
            if len(letter) != 1 or letter not in LETTERS[: self.max_options]:
                raise ValueError(f"{where}: without 'choices' the answer must be a letter A-"
                                 f"{LETTERS[self.max_options - 1]}, got {base.answer!r}")
            return Sample(id=base.id, question=base.question, answer=letter, meta={})
        options = [str(choice) for choice in choices]
        if not 2 <= len(options) <= self.max_options:
            raise ValueError(f"{where}: 'choices' needs 2 to {self.max_options} options, got {len(options)}")
        letter = _gold_letter(base.answer, options, where)
        shown = all(f"{LETTERS[i]}. {option}" in base.question for i, option in enumerate(options))
        question = base.question if shown else lettered(base.question, options)
        return Sample(id=base.id, question=question, answer=letter, meta={"choices": options})

    async def score(self, prediction: Any, sample: Sample) -> Score:
        if not isinstance(prediction, str):
            return Score.zero(f"expected the option letter as text, got {type(prediction).__name__}")
        if len(prediction) > MAX_ANSWER_CHARS:
            return Score.zero(f"answer longer than {MAX_ANSWER_CHARS:,} characters; give only the letter")
        options = sample.meta.get("choices")
        letter, why = read_letter(prediction, options)
        if letter is None:
            return Score.zero(why)
        count = len(options) if options is not None else self.max_options
        if LETTERS.index(letter) >= count:
            return Score.zero(f"{letter} is not an option: this question has {count} (A-{LETTERS[count - 1]})")
        return Score.of(letter == sample.answer, f"answered {letter}; the correct option is {sample.answer}")


def _gold_letter(answer: str, options: Sequence[str], where: str) -> str:
    """A record's answer as a letter: a letter within the options, or the text of exactly one option."""
    letter = answer.strip().strip("()").upper()
    if len(letter) == 1 and letter in LETTERS[: len(options)]:
        return letter
    by_text = _option_by_text(answer, options)
    if len(by_text) == 1:
        return by_text[0]
    raise ValueError(f"{where}: the answer {answer!r} is neither a letter A-{LETTERS[len(options) - 1]} nor the "
                     f"text of exactly one option")


class MMLUPro(ChoiceBenchmark):
    name = "mmlu-pro"
    title = "MMLU-Pro"
    task_description = (
        "Hard multiple-choice questions across 14 subjects (MMLU-Pro: math, physics, chemistry, law, engineering, "
        "economics, health, psychology, business, biology, philosophy, computer science, history, other). The "
        "task text is a question, a blank line, then up to ten options, one per line as 'A. <option>' to "
        "'J. <option>'. Many questions need calculation or careful reasoning. A workflow returns "
        "{'answer': <letter>} with only the letter of the correct option (for example 'C'); it scores 1 when "
        "the letter is the correct one, else 0. Free text without an explicit letter scores 0."
    )
    sizes = SplitSizes(128, 800)
    offline_source = "W4S_DATA_DIR/mmlu_pro/test.jsonl (MMLU-Pro test, 12,032)"
    hub = HubSource("TIGER-Lab/MMLU-Pro", "test")
    max_options = 10

    data_files = ("mmlu_pro/test.jsonl",)

    def load_offline(self) -> list[Sample]:
        """In question_id order, ids ``mmlu-pro-<question_id>``."""
        return self._samples(jsonl_records(self.data_paths()[0].read_text(encoding="utf-8")))

    def from_hub(self, tables: dict[str | None, list[dict[str, Any]]]) -> list[Sample]:
        return self._samples(tables[self.hub.configs[0] if self.hub else None])

    def _samples(self, rows: Iterable[dict[str, Any]]) -> list[Sample]:
        samples = [self._row(row) for row in rows]
        return sorted(samples, key=lambda s: int(s.id.rsplit("-", 1)[1]))

    def _row(self, row: dict[str, Any]) -> Sample:
        """Options "N/A" (padding in early hub revisions) are dropped, as the upstream evaluation does; the gold
        letter follows its option."""
        letter = str(row["answer"]).strip()
        options = [str(option) for option in row["options"]]
        gold_text_index = LETTERS.index(letter)
        kept = [i for i, option in enumerate(options) if option != "N/A"]
        if gold_text_index not in kept:
            raise ValueError(f"MMLU-Pro question {row['question_id']}: the answer {letter} is a missing option")
        return self._sample(f"{self.name}-{row['question_id']}", str(row["question"]), [options[i] for i in kept],
                            LETTERS[kept.index(gold_text_index)], category=str(row.get("category", "")))


class GPQA(ChoiceBenchmark):
    name = "gpqa"
    title = "GPQA (diamond)"
    task_description = (
        "Graduate-level, 'Google-proof' multiple-choice questions in biology, physics and chemistry written by "
        "domain experts (GPQA diamond). The task text is a question, a blank line, then four options, one per "
        "line as 'A. <option>' to 'D. <option>'. A workflow returns {'answer': <letter>} with only the letter "
        "of the correct option (for example 'C'); it scores 1 when the letter is the correct one, else 0. Free "
        "text without an explicit letter scores 0."
    )
    sizes = SplitSizes(32, 166)
    offline_source = None  # the authors ask that GPQA questions not be published in plain text
    hub = HubSource("Idavidrein/gpqa", "train", configs=("gpqa_diamond",), gated=True)
    max_options = 4

    def from_hub(self, tables: dict[str | None, list[dict[str, Any]]]) -> list[Sample]:
        """Rows with "Question", "Correct Answer", "Incorrect Answer 1..3" and "Record ID", in hub order; the
        options are shuffled by :func:`gpqa_order`. Ids ``gpqa-<Record ID>``."""
        rows = tables[self.hub.configs[0] if self.hub else None]
        return [self._row(row) for row in rows]

    def _row(self, row: dict[str, Any]) -> Sample:
        record_id = str(row["Record ID"]).strip()
        answers = [str(row[key]).strip() for key in
                   ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")]
        order = gpqa_order(record_id, len(answers))
        options = [answers[i] for i in order]
        return self._sample(f"{self.name}-{record_id}", str(row["Question"]), options, LETTERS[order.index(0)])
