"""DROP: the official metric, both loaders (full dev file and the 1k sample), the hub and file loaders, scoring."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import random
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from w4s.benchmarks.base import Sample, Score
from w4s.benchmarks.drop import Drop, Drop1k, DropBenchmark
from w4s.benchmarks.drop_f1 import MAX_ALIGNED_SPANS, best_metrics, get_metrics, max_matching, normalize_answer


@cache
def samples(kind: type[DropBenchmark]) -> tuple[Sample, ...]:
    return tuple(kind().load_offline())


def score_all(benchmark: DropBenchmark, pairs: list[tuple[Any, Sample]]) -> list[Score]:
    async def run() -> list[Score]:
        return await asyncio.gather(*(benchmark.score(prediction, sample) for prediction, sample in pairs))

    return asyncio.run(run())


def full_file_lines() -> list[dict[str, Any]]:
    path = Path(Drop().data_root() or "") / "drop" / "drop_v0_dev.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


# --- the official metric ---------------------------------------------------------------------------------------

def test_normalization_matches_the_official_examples() -> None:
    """The worked examples of allenai/allennlp-reading-comprehension, tests/eval/drop_eval_test.py (class
    TestDropEvalNormalize), for the metric in allennlp_rc/eval/drop_eval.py."""
    assert normalize_answer("12.0") == normalize_answer("12.0  ") == normalize_answer("12.000")
    assert normalize_answer("12.0") == normalize_answer("12") == normalize_answer("  1.2e1  ")
    assert normalize_answer("12.0 persons") == "12.0 persons"
    assert normalize_answer("S.K. Singh") == "sk singh"


OFFICIAL_METRICS = [
    # (predicted, gold, (em, f1)), from allenai/allennlp-reading-comprehension tests/eval/drop_eval_test.py,
    # class TestDropEvalGetMetrics, in its order.
    (["78"], ["78.0"], (1.0, 1.0)),
    (["td"], ["td", "td"], (0.0, 0.5)),
    ("td", ["td", "td"], (0.0, 0.5)),
    (["td", "td"], ["td"], (0.0, 0.5)),
    (["td", "td"], "td", (0.0, 0.5)),
    (["the", "fat", "cat", "the fat", "fat cat", "the fat cat"], ["cat"], (0.0, 0.17)),
    (["cat"], ["the", "fat", "cat", "the fat", "fat cat", "the fat cat"], (0.0, 0.17)),
    (["the", "fat", "cat", "the fat", "fat cat", "the fat cat"], ["cat", "cat dog"], (0.0, 0.25)),
    (["td"], ["the td"], (1.0, 1.0)),
    (["the a NOT an ARTICLE the an a"], ["NOT ARTICLE"], (1.0, 1.0)),
    (["John Elton"], ["Elton John"], (0.0, 1.0)),
    (["50 yard"], ["yard 50"], (0.0, 1.0)),
    (["order word right"], ["right word order"], (0.0, 1.0)),
    (["Per.i.o.d...."], [".P....e.r,,i;;;o...d,,"], (1.0, 1.0)),
    (["Spa     c  e   s     "], ["    Spa c     e s"], (1.0, 1.0)),
    (["78-yard"], ["78 yard"], (1.0, 1.0)),
    (["78 yard"], ["78-yard"], (1.0, 1.0)),
    (["78"], ["78-yard"], (0.0, 0.67)),
    (["78-yard"], ["78"], (0.0, 0.67)),
    (["This was a triumph"], ["tHIS Was A TRIUMPH"], (1.0, 1.0)),
    (["Green bay packers"], ["Green bay packers"], (1.0, 1.0)),
    (["Green bay", "packers"], ["Green bay", "packers"], (1.0, 1.0)),
    (["Green", "bay", "packers"], ["Green", "bay", "packers"], (1.0, 1.0)),
    ([""], ["army"], (0.0, 0.0)),
    (["packers"], ["Green bay packers"], (0.0, 0.5)),
    (["packers"], ["Green bay"], (0.0, 0.0)),
    (["yard"], ["36 yard td"], (0.0, 0.0)),
    (["23 yards"], ["43 yards"], (0.0, 0.0)),
    (["56 yards"], ["56 yd"], (0.0, 0.5)),
    (["26"], ["26 yard td"], (0.0, 0.5)),
    (["78-yard", "56", "28", "40", "44", "touchdown"], ["78-yard", "56 yard", "1 yard touchdown"], (0.0, 0.28)),
    (["23", "23 yard"], ["23-yard", "56 yards"], (0.0, 0.5)),
    (["John Karman", "Joe Hardy"], ["Joe Karman", "John Hardy"], (0.0, 0.5)),
    (["ottoman", "Kantakouzenous"], ["ottoman", "army of Kantakouzenous"], (0.0, 0.75)),
    (["a"], ["a", "b"], (0.0, 0.5)),
    (["b"], ["a", "b"], (0.0, 0.5)),
    (["b"], ["b", "a"], (0.0, 0.5)),
]


@pytest.mark.parametrize(("predicted", "gold", "expected"), OFFICIAL_METRICS)
def test_get_metrics_matches_the_official_examples(predicted: Any, gold: Any, expected: tuple[float, float]) -> None:
    """allenai/allennlp-reading-comprehension, tests/eval/drop_eval_test.py (TestDropEvalGetMetrics), for the
    metric in allennlp_rc/eval/drop_eval.py."""
    em, f1 = get_metrics(predicted, gold)
    assert em == pytest.approx(expected[0], abs=1e-6) and f1 == pytest.approx(expected[1], abs=1e-6)


@pytest.mark.parametrize(("predicted", "golds", "expected"), [
    # allenai/allennlp-reading-comprehension, tests/eval/drop_eval_test.py, TestDropEvalFunctional.test_json_loader:
    # each question's answer and validated answers, converted as answer_json_to_strings does (a number as its
    # string, spans as a tuple, a date as "day month year").
    ("1", [("1",), ("0",)], (1.0, 1.0)),
    ("2", [("2",), ("2",)], (1.0, 1.0)),
    ("1", [("0",), ("1",), ("2",)], (1.0, 1.0)),
    ("17 August", [("17 August ",), ("August",), ("17",)], (1.0, 1.0)),
    ("span1", [("span1", "span2"), ("span2",)], (0.0, 0.5)),
    ("answer", [("answer1",), ("answer2",)], (0.0, 0.0)),
    ("answer2", [("answer2",)], (1.0, 1.0)),
])
def test_best_over_gold_answers_matches_the_official_evaluation(predicted: str, golds: list[tuple[str, ...]],
                                                                 expected: tuple[float, float]) -> None:
    """The per-question maximum of allennlp_rc/eval/drop_eval.py's evaluate_json (same repository)."""
    assert best_metrics(predicted, golds) == pytest.approx(expected, abs=1e-6)


def test_blank_gold_answers_are_skipped_as_in_the_official_evaluation() -> None:
    assert best_metrics("", [("",), (" ",)]) == (0.0, 0.0)
    assert best_metrics("x", [("  ",), ("x",)]) == (1.0, 1.0)


def test_a_trailing_period_after_a_decimal_changes_the_number_as_in_the_reference() -> None:
    """"50.6." is not a float, so the reference strips its punctuation to "506": a quirk kept on purpose."""
    assert get_metrics("50.6.", "50.6") == (0.0, 0.0)
    assert get_metrics("50.", "50") == (1.0, 1.0)


def brute_force_matching(weights: list[list[float]]) -> float:
    rows, cols = len(weights), len(weights[0])
    if rows <= cols:
        return max(sum(weights[i][j] for i, j in enumerate(perm)) for perm in itertools.permutations(range(cols), rows))
    return max(sum(weights[i][j] for j, i in enumerate(perm)) for perm in itertools.permutations(range(rows), cols))


def test_max_matching_is_exact_against_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(300):
        rows, cols = rng.randint(1, 6), rng.randint(1, 6)
        weights = [[rng.choice([0.0, 0.0, rng.random(), 1.0]) for _ in range(cols)] for _ in range(rows)]
        assert max_matching(weights) == pytest.approx(brute_force_matching(weights), abs=1e-12)


def test_max_matching_refuses_a_smaller_side_beyond_the_cap() -> None:
    side = MAX_ALIGNED_SPANS + 1
    assert max_matching([[1.0] * side for _ in range(MAX_ALIGNED_SPANS)]) == MAX_ALIGNED_SPANS
    with pytest.raises(ValueError, match="cannot align"):
        max_matching([[1.0] * side for _ in range(side)])


# --- loaders ---------------------------------------------------------------------------------------------------

def test_full_dev_file_drops_the_few_shot_lines_and_merges_repeated_questions() -> None:
    lines = full_file_lines()
    assert len(lines) == 9536
    loaded = samples(Drop)
    texts = {s.question for s in loaded}
    distinct = {line["context"].removesuffix("\nAnswer:").strip() for line in lines[1:-1]}
    assert len(loaded) == len({s.id for s in loaded}) == len(distinct) == 8686
    assert texts == distinct
    for few_shot in (lines[0], lines[-1]):  # ADAS's one-shot examples: not among the samples
        assert few_shot["context"].removesuffix("\nAnswer:").strip() not in texts
    assert loaded[0].id == "drop-1" and all(s.id.startswith("drop-") for s in loaded)
    # Repeats carry the union of their gold answers.
    golds: dict[str, set[str]] = {}
    for line in lines[1:-1]:
        text = line["context"].removesuffix("\nAnswer:").strip()
        golds.setdefault(text, set()).update(a.strip() for a in line["ref_text"].split("|"))
    assert all(set(s.meta["answers"]) == golds[s.question] for s in loaded)
    assert sum(len(s.meta["answers"]) for s in loaded) > len(loaded)


def test_task_text_is_the_labelled_passage_and_question_without_the_answer_cue() -> None:
    for kind in (Drop, Drop1k):
        for s in samples(kind):
            passage, _, question = s.question.partition("\nQuestion: ")
            assert passage.startswith("Passage: ") and len(passage) > 20 and question.strip()
            assert not s.question.rstrip().endswith("Answer:")
            assert s.answer == s.meta["answers"][0] and s.meta["answer_spans"]


def test_drop_1k_sample_reads_the_wheel_with_structured_answers() -> None:
    loaded = samples(Drop1k)
    assert len(loaded) == len({s.id for s in loaded}) == 983  # 1,000 docs, 17 repeated questions merged
    assert all(s.id.startswith("drop-1k-") and len(s.id) == len("drop-1k-") + 36 for s in loaded)
    multi = [s for s in loaded if any(len(spans) > 1 for spans in s.meta["answer_spans"])]
    assert multi
    for s in multi:  # a multi-span answer is shown as its spans joined with " and "
        first = s.meta["answer_spans"][0]
        assert s.meta["answers"][0] == " and ".join(first)


# --- scoring ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [Drop, Drop1k])
def test_every_gold_answer_scores_full_marks(kind: type[DropBenchmark]) -> None:
    benchmark, loaded = kind(), samples(kind)
    pairs = [(answer, s) for s in loaded for answer in s.meta["answers"]]
    pairs += [(spans, s) for s in loaded for spans in s.meta["answer_spans"]]
    assert all(score.value == 1.0 and score.reason is None for score in score_all(benchmark, pairs))


@pytest.mark.parametrize("kind", [Drop, Drop1k])
def test_reformatted_gold_answers_score_full_marks_where_the_official_metric_does(kind: type[DropBenchmark]) -> None:
    benchmark = kind()
    # Upper case, an article and extra spaces change nothing; str.upper() is not undone by lower() for a few
    # letters (the Turkish dotless i), which the reference does not fold either.
    pairs = [(f"The  {s.answer.upper()} ", s) for s in samples(kind) if s.answer.upper().lower() == s.answer.lower()]
    # Punctuation after a word (not after a number, see the quirk above).
    pairs += [(f"{s.answer}!", s) for s in samples(kind) if not s.answer.split()[-1][-1].isdigit()]
    assert len(pairs) > len(samples(kind))
    assert all(score.value == 1.0 for score in score_all(benchmark, pairs))


@pytest.mark.parametrize("kind", [Drop, Drop1k])
def test_unrelated_spans_and_wrong_numbers_score_zero(kind: type[DropBenchmark]) -> None:
    benchmark, loaded = kind(), samples(kind)
    pairs: list[tuple[Any, Sample]] = [("xylophone quartet", s) for s in loaded]
    numeric = [s for s in loaded if all(a.replace(".", "", 1).isdigit() for a in s.meta["answers"])]
    assert len(numeric) > len(loaded) // 4
    pairs += [(str(max(float(a) for a in s.meta["answers"]) + 1), s) for s in numeric]
    scores = score_all(benchmark, pairs)
    assert all(score.value == 0.0 and score.reason for score in scores)


def test_multi_span_answers_as_a_list_or_joined_with_and() -> None:
    benchmark = Drop1k()
    sample = benchmark.from_record({"id": "x", "question": "Passage: p\nQuestion: q",
                                    "answer": ["Spain", "Italy", "the Netherlands"]}, 0)
    assert asyncio.run(benchmark.score(["Italy", "Spain", "Netherlands"], sample)).value == 1.0
    assert asyncio.run(benchmark.score("Spain and Italy and the Netherlands", sample)).value == 1.0
    # Two of three spans: 0.67 aligned span by span, 0.86 as text against the joined text; the better counts.
    partial = asyncio.run(benchmark.score(["Spain", "Italy"], sample))
    assert partial.value == pytest.approx(0.86) and "F1 0.86" in (partial.reason or "")
    assert get_metrics(["Spain", "Italy"], sample.meta["answer_spans"][0])[1] == pytest.approx(0.67)
    # The full file joins spans with " and ": a list answer is also read joined.
    full = Drop().from_record({"question": "Passage: p\nQuestion: q", "answer": "Pakistanis and Filipinos"}, 0)
    assert asyncio.run(Drop().score(["Pakistanis", "Filipinos"], full)).value == 1.0


@pytest.mark.parametrize("prediction", [
    None, True, {"answer": "1"}, [], [None], ["a", {"b": 1}], ["  "], "", "   ", float("nan"), float("inf"),
    "word " * 5000, ["x"] * 51, object(),
])
def test_malformed_predictions_score_zero_with_a_reason(prediction: Any) -> None:
    benchmark = Drop()
    sample = benchmark.from_record({"question": "Passage: p\nQuestion: q", "answer": "word"}, 0)
    score = asyncio.run(benchmark.score(prediction, sample))
    assert score.value == 0.0 and score.reason


def test_numbers_are_read_as_text_and_partial_credit_has_a_reason() -> None:
    benchmark = Drop()
    sample = benchmark.from_record({"question": "Passage: p\nQuestion: q", "answer": "Green bay packers",
                                    "answers": ["12"]}, 0)
    assert asyncio.run(benchmark.score(12, sample)).value == 1.0
    assert asyncio.run(benchmark.score(12.0, sample)).value == 1.0
    assert asyncio.run(benchmark.score("1,2", sample)).value == 1.0  # punctuation goes, then "12" is a number
    assert asyncio.run(benchmark.score(13, sample)).value == 0.0
    half = asyncio.run(benchmark.score("packers", sample))
    assert half.value == 0.5 and "Green bay packers" in (half.reason or "")


def test_from_record_accepts_span_lists_and_names_the_record_in_errors() -> None:
    benchmark = Drop1k()
    sample = benchmark.from_record({"id": "q7", "question": "Passage: p\nQuestion: q", "answer": ["a1", "b2"],
                                    "answers": ["c3", ["a1", "b2"]]}, 4)
    assert sample.id == "q7" and sample.answer == "a1 and b2"
    assert sample.meta["answer_spans"] == [["a1", "b2"], ["c3"]]
    with pytest.raises(ValueError, match="record 5: missing field 'answer'"):
        benchmark.from_record({"question": "q"}, 4)
    with pytest.raises(ValueError, match="record 1: an answer must be"):
        benchmark.from_record({"question": "q", "answer": {"spans": ["x"]}}, 0)
    with pytest.raises(ValueError, match="blank"):
        benchmark.from_record({"question": "q", "answer": "  "}, 0)


def hub_row(query_id: str, question: str, spans: list[str], types: list[str]) -> dict[str, Any]:
    """A row shaped like ucinlp/drop's card: section_id, query_id, passage, question, answers_spans."""
    return {"section_id": "nfl_1", "query_id": query_id, "passage": "The Bears kicked a 23-yard field goal.",
            "question": question, "answers_spans": {"spans": spans, "types": types}}


def test_from_hub_rows_take_each_span_as_an_answer_and_merge_repeats() -> None:
    rows = [
        hub_row("q-1", "How long was the field goal?", ["23", "23"], ["number", "number"]),
        hub_row("q-2", "Which teams played?", ["Bears", "Lions"], ["span", "span"]),
        hub_row("q-3", "How long was the field goal?", ["23-yard"], ["span"]),
    ]
    benchmark = Drop()
    loaded = benchmark.from_hub({None: rows})
    assert [s.id for s in loaded] == ["drop-q-1", "drop-q-2"]
    assert loaded[0].question == ("Passage: The Bears kicked a 23-yard field goal.\n"
                                  "Question: How long was the field goal?")
    assert loaded[0].meta["answer_spans"] == [["23"], ["23-yard"]]
    assert loaded[1].meta["answer_spans"] == [["Bears"], ["Lions"], ["Bears", "Lions"]]
    assert asyncio.run(benchmark.score(["Lions", "Bears"], loaded[1])).value == 1.0
    assert asyncio.run(benchmark.score("24", loaded[0])).value == 0.0


def test_benchmark_attributes() -> None:
    for kind in (Drop, Drop1k):
        assert kind.answer_kind == "text" and kind.sizes.validation == 128 and kind.sizes.test == 800
        assert "F1" in kind.task_description and kind.offline_source
    assert Drop.hub is not None and Drop.hub.path == "ucinlp/drop" and Drop.hub.split == "validation"
    assert Drop(data_dir="/nonexistent").offline_available() is False
    assert Drop().offline_available() is True
