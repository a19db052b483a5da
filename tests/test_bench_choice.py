"""Multiple choice: the answer-field letter reader, MMLU-Pro (offline file, hub rows) and GPQA (hub rows, files).

GPQA's authors ask that its questions not be published in plain text, so every GPQA row here is invented.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from w4s.benchmarks.base import Sample, Score
from w4s.benchmarks.choice import GPQA, LETTERS, ChoiceBenchmark, MMLUPro, gpqa_order, read_letter


@cache
def mmlu_pro() -> tuple[Sample, ...]:
    return tuple(MMLUPro().load_offline())


def score_all(benchmark: ChoiceBenchmark, pairs: list[tuple[Any, Sample]]) -> list[Score]:
    async def run() -> list[Score]:
        return await asyncio.gather(*(benchmark.score(prediction, sample) for prediction, sample in pairs))

    return asyncio.run(run())


def score(benchmark: ChoiceBenchmark, prediction: Any, sample: Sample) -> Score:
    return asyncio.run(benchmark.score(prediction, sample))


def correct_text(sample: Sample) -> str:
    return sample.meta["choices"][LETTERS.index(sample.answer)]


# --- the letter reader -----------------------------------------------------------------------------------------

OPTIONS = ["Paris", "London", "Berlin", "Rome"]


@pytest.mark.parametrize("answer", [
    "C", "(C)", "C)", "C.", "c", "(c)", "[C]", " C ", "**C**", "`C`", "\\boxed{C}", "$\\boxed{\\text{C}}$",
    "Answer: C", "answer: c", "Answer: (C)", "The answer is (C)", "The answer is C.", "The correct answer is option C",
    "Final answer: **C**", "Option C", "C. Berlin", "C) Berlin", "(C) Berlin", "C: Berlin", "Berlin", "berlin.",
    "**Berlin**", "A good answer is C", "A) is wrong, so the answer is C", "Answer: C\nFinal answer: C",
])
def test_read_letter_accepts_the_usual_ways_of_writing_an_answer(answer: str) -> None:
    assert read_letter(answer, OPTIONS) == ("C", "")


@pytest.mark.parametrize(("answer", "why"), [
    ("I think it is Berlin, the capital", "no option letter"),
    ("A good choice", "no option letter"),
    ("Because of the Treaty of Versailles, Berlin", "no option letter"),
    ("the answer is a city", "no option letter"),
    ("C. Rome", "C is followed by text that is not option C's"),  # letter and text disagree: neither is trusted
    ("The answer is A, not C; answer: C", "several letters (A, C)"),
    ("", "no option letter"),
])
def test_read_letter_never_guesses_from_free_text(answer: str, why: str) -> None:
    letter, reason = read_letter(answer, OPTIONS)
    assert letter is None and why in reason


def test_option_text_is_matched_with_case_first_then_without() -> None:
    genetics = ["Bb", "bb", "BB"]
    assert read_letter("bb", genetics)[0] == "B" and read_letter("BB", genetics)[0] == "C"
    assert read_letter("bB", genetics) == (None, "the answer is the text of several options (A, B, C)")
    assert read_letter("LONDON", OPTIONS)[0] == "B"


@pytest.mark.parametrize("answer", [
    "answer" + " " * 19_000 + "x", "The answer is:" + " \t\n" * 6_000, "option" + " " * 19_000, "\\boxed{" * 2_700,
    "answer " * 2_700, "(C)" + " " * 19_000 + "x",
])
def test_pathological_answers_are_read_in_linear_time(answer: str) -> None:
    """Long runs of spaces after a marker once made the regular expressions backtrack for minutes."""
    start = time.perf_counter()
    read_letter(answer, OPTIONS)
    assert time.perf_counter() - start < 1.0


# --- MMLU-Pro --------------------------------------------------------------------------------------------------

def test_mmlu_pro_loads_every_question_with_lettered_options() -> None:
    loaded = mmlu_pro()
    assert len(loaded) == len({s.id for s in loaded}) == 12032
    ids = [int(s.id.removeprefix("mmlu-pro-")) for s in loaded]
    assert ids == sorted(ids)
    for s in loaded:
        options = s.meta["choices"]
        assert 3 <= len(options) <= 10 and s.answer in LETTERS[: len(options)]
        assert s.question.endswith("\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options)))
    per_category = collections.Counter(s.meta["category"] for s in loaded)
    assert per_category["math"] == 1351 and per_category["law"] == 1101 and len(per_category) == 14


def test_mmlu_pro_gold_is_the_answer_letter_even_where_answer_index_disagrees() -> None:
    """Upstream question 3983 has answer "C" but answer_index 1 (B); the upstream evaluation scores the letter."""
    path = Path(MMLUPro().data_root() or "") / "mmlu_pro" / "test.jsonl"
    raw = next(json.loads(line) for line in path.open(encoding="utf-8") if '"question_id": 3983,' in line)
    assert raw["answer"] == "C" and raw["answer_index"] == 1
    sample = next(s for s in mmlu_pro() if s.id == "mmlu-pro-3983")
    assert sample.answer == "C" and correct_text(sample) == raw["options"][2]
    assert score(MMLUPro(), "C", sample).value == 1.0 and score(MMLUPro(), "B", sample).value == 0.0


def test_every_mmlu_pro_gold_scores_full_marks_in_every_accepted_form() -> None:
    benchmark, loaded = MMLUPro(), mmlu_pro()
    pairs: list[tuple[Any, Sample]] = []
    for s in loaded:
        pairs += [(s.answer, s), (f"({s.answer})", s), (f"The answer is ({s.answer})", s),
                  (f"{s.answer}. {correct_text(s)}", s), (s.answer.lower(), s)]
    # The option's own text, where that text does not read as a letter by itself (a few options are "E" or
    # "(a)": a letter wins) and no other option has the same text.
    plain = [s for s in loaded if not re.fullmatch(r"[(\[]?[A-Ja-j][)\]]?[.:)]?", correct_text(s).strip())
             and [o.strip() for o in s.meta["choices"]].count(correct_text(s).strip()) == 1]
    assert len(plain) > 12000
    pairs += [(correct_text(s), s) for s in plain]
    assert all(result == Score(1.0) for result in score_all(benchmark, pairs))


def test_other_letters_and_traps_score_zero() -> None:
    benchmark, loaded = MMLUPro(), mmlu_pro()
    pairs: list[tuple[Any, Sample]] = []
    for s in loaded:
        count = len(s.meta["choices"])
        other = LETTERS[(LETTERS.index(s.answer) + 1) % count]
        pairs += [(other, s), (f"{s.answer} good answer is {other}", s), (f"Answer: {other}", s)]
    results = score_all(benchmark, pairs)
    assert all(r.value == 0.0 and r.reason and "correct option" in r.reason for r in results)


def test_letters_beyond_the_options_and_free_text_score_zero_with_a_reason() -> None:
    benchmark = MMLUPro()
    four = next(s for s in mmlu_pro() if len(s.meta["choices"]) == 4)
    beyond = score(benchmark, "E", four)
    assert beyond.value == 0.0 and "E is not an option: this question has 4 (A-D)" in (beyond.reason or "")
    free = score(benchmark, f"I would go with {four.answer} here", four)
    assert free.value == 0.0 and "no option letter" in (free.reason or "")


@pytest.mark.parametrize("prediction", [None, 3, 2.0, True, {"answer": "C"}, ["C"], "", "   ", "C" * 20_001,
                                        float("nan")])
def test_malformed_predictions_score_zero_with_a_reason(prediction: Any) -> None:
    sample = MMLUPro().from_record({"question": "Pick one.", "choices": OPTIONS, "answer": "C"}, 0)
    result = score(MMLUPro(), prediction, sample)
    assert result.value == 0.0 and result.reason


def test_mmlu_pro_hub_rows_drop_na_padding_and_keep_the_gold_option() -> None:
    """Rows shaped like TIGER-Lab/MMLU-Pro's card (question_id, question, options, answer, answer_index,
    cot_content, category, src); early revisions padded options with "N/A", which the upstream evaluation drops."""
    rows = [
        {"question_id": 12, "question": "2 + 2?", "options": ["3", "N/A", "4", "5", "N/A"], "answer": "C",
         "answer_index": 2, "cot_content": "", "category": "math", "src": "invented"},
        {"question_id": 3, "question": "Colour of the sky?", "options": ["blue", "green", "red"], "answer": "A",
         "answer_index": 0, "cot_content": "", "category": "other", "src": "invented"},
    ]
    loaded = MMLUPro().from_hub({None: rows})
    assert [s.id for s in loaded] == ["mmlu-pro-3", "mmlu-pro-12"]
    arithmetic = loaded[1]
    assert arithmetic.meta["choices"] == ["3", "4", "5"] and arithmetic.answer == "B"
    assert arithmetic.question == "2 + 2?\n\nA. 3\nB. 4\nC. 5"
    assert score(MMLUPro(), "4", arithmetic).value == 1.0


def test_user_records_give_the_answer_as_a_letter_or_as_the_option_text() -> None:
    benchmark = MMLUPro()
    by_text = benchmark.from_record({"id": "u1", "question": "Capital of Germany?", "choices": OPTIONS,
                                     "answer": "Berlin"}, 0)
    assert by_text.answer == "C" and by_text.question.endswith("C. Berlin\nD. Rome")
    again = benchmark.from_record({"id": "u1", "question": by_text.question, "choices": OPTIONS, "answer": "C"}, 0)
    assert again.question == by_text.question  # options already shown are not appended twice
    bare = benchmark.from_record({"question": "Pick:\nA. x\nB. y", "answer": "(b)"}, 2)
    assert bare.answer == "B" and bare.id == "mmlu-pro-2" and score(benchmark, "B", bare).value == 1.0
    with pytest.raises(ValueError, match="record 1: the answer 'Madrid' is neither"):
        benchmark.from_record({"question": "q", "choices": OPTIONS, "answer": "Madrid"}, 0)
    with pytest.raises(ValueError, match="record 1: the answer 'E' is neither"):
        benchmark.from_record({"question": "q", "choices": OPTIONS, "answer": "E"}, 0)
    with pytest.raises(ValueError, match="'choices' needs 2 to 4 options"):
        GPQA().from_record({"question": "q", "choices": [*OPTIONS, "Oslo"], "answer": "A"}, 0)


# --- GPQA (invented rows only) ---------------------------------------------------------------------------------

def fake_gpqa_rows(count: int) -> list[dict[str, Any]]:
    """Rows shaped like Idavidrein/gpqa's card; the questions are invented, none is GPQA's."""
    return [{"Question": f"Invented question {i}: which made-up compound is zorbium?",
             "Correct Answer": f" zorbium-{i} ", "Incorrect Answer 1": f"fakeium-{i}",
             "Incorrect Answer 2": f"mockine-{i}", "Incorrect Answer 3": f"shamite-{i}",
             "Record ID": f"recFAKE{i:05d}", "Subdomain": "Invented"} for i in range(count)]


def test_gpqa_shuffle_is_deterministic_and_the_gold_letter_points_at_the_correct_text() -> None:
    rows = fake_gpqa_rows(400)
    first = GPQA().from_hub({"gpqa_diamond": rows})
    assert first == GPQA().from_hub({"gpqa_diamond": [dict(row) for row in rows]})
    for sample, row in zip(first, rows, strict=True):
        assert sample.id == f"gpqa-{row['Record ID']}"
        assert correct_text(sample) == row["Correct Answer"].strip()
        assert sorted(sample.meta["choices"]) == sorted(str(row[k]).strip() for k in (
            "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"))
        assert f"{sample.answer}. {correct_text(sample)}" in sample.question.splitlines()
        assert score(GPQA(), sample.answer, sample).value == 1.0
        assert score(GPQA(), correct_text(sample), sample).value == 1.0
    # The correct option lands on every letter about equally often (400 rows: 100 expected per letter).
    spread = collections.Counter(sample.answer for sample in first)
    assert set(spread) == set("ABCD") and all(60 <= n <= 140 for n in spread.values())


def test_gpqa_order_is_pinned() -> None:
    """Pinned on purpose: the order must be the same on every machine and Python version, and changing it would
    reshuffle every GPQA question (so every stored answer letter) of earlier runs."""
    assert gpqa_order("recFAKE0000") == [2, 1, 3, 0] and gpqa_order("recFAKE0001") == [1, 2, 3, 0]
    assert sorted(gpqa_order("recFAKE0002", 7)) == list(range(7))


def test_gpqa_has_no_offline_copy_and_scores_only_four_letters() -> None:
    benchmark = GPQA()
    assert benchmark.offline_source is None and benchmark.offline_available() is False
    with pytest.raises(NotImplementedError):
        benchmark.load_offline()
    assert benchmark.hub is not None and benchmark.hub.gated and benchmark.hub.configs == ("gpqa_diamond",)
    sample = benchmark.from_hub({"gpqa_diamond": fake_gpqa_rows(1)})[0]
    assert score(benchmark, "E", sample).reason == "E is not an option: this question has 4 (A-D)"
    assert benchmark.sizes.validation + benchmark.sizes.test == 198 and benchmark.answer_kind == "choice"
