"""The math family: GSM8K, GSM-Hard, SVAMP, MGSM, GSM-Plus (numeric answers) and MATH level 5 (equivalence).

Loaders are checked on the real offline copies (every sample's gold must score 1.0 against itself and in other
spellings, and 0 when wrong), the hub loaders on hand-made rows shaped like the datasets' cards, and the MATH
scorer for staying bounded on answers that make sympy run away.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from w4s.benchmarks.base import Benchmark, Sample, Score
from w4s.benchmarks.choice import MMLUPro
from w4s.benchmarks.competition_math import CompetitionMath, SymbolicChecker, canonical, final_answer
from w4s.benchmarks.drop import Drop
from w4s.benchmarks.gsm import GSM8K, MGSM, MGSM_LANGUAGES, SVAMP, GSMHard, GSMPlus, parse_mgsm_tsv
from w4s.benchmarks.numeric import NumericBenchmark, read_number, to_number
from w4s.errors import SpecError

NUMERIC: tuple[type[NumericBenchmark], ...] = (GSM8K, GSMHard, SVAMP, MGSM, GSMPlus)
ALL: tuple[type[Benchmark], ...] = (*NUMERIC, CompetitionMath)
COUNTS = {"gsm8k": 1319, "gsm-hard": 1319, "svamp": 1000, "mgsm": 11 * 250, "gsm-plus": 2100, "math": 605}


@cache
def samples(kind: type[Benchmark]) -> tuple[Sample, ...]:
    return tuple(kind().load_offline())


@cache
def benchmark(kind: type[Benchmark]) -> Benchmark:
    """One instance per benchmark for the module, so MATH's helper process starts once, not per test."""
    return kind()


@pytest.fixture(scope="module", autouse=True)
def _close_benchmarks() -> Iterator[None]:
    yield
    for kind in ALL:
        asyncio.run(benchmark(kind).aclose())


def score_all(scorer: Benchmark, pairs: Sequence[tuple[Any, Sample]]) -> list[Score]:
    """Score concurrently from an event loop in the main thread, as the runner does (a new loop each time)."""
    async def run() -> list[Score]:
        return await asyncio.gather(*(scorer.score(prediction, sample) for prediction, sample in pairs))

    return asyncio.run(run())


def failures(scores: Sequence[Score], pairs: Sequence[tuple[Any, Sample]], want: float) -> list[tuple[Any, ...]]:
    return [(s.id, prediction, score) for score, (prediction, s) in zip(scores, pairs, strict=True)
            if score.value != want]


# --- loaders ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.name)
def test_offline_counts_and_ids(kind: type[Benchmark]) -> None:
    loaded = samples(kind)
    assert kind().offline_available()
    assert len(loaded) == COUNTS[kind.name] and len({s.id for s in loaded}) == len(loaded)
    assert all(s.id.startswith(f"{kind.name}-") and s.question.strip() and s.answer.strip() for s in loaded)
    assert kind.sizes.validation + kind.sizes.test <= len(loaded)


def test_per_source_details() -> None:
    assert samples(GSM8K)[0].question.startswith("Janet’s ducks lay 16 eggs") and samples(GSM8K)[0].answer == "18"
    hard = {s.id: s for s in samples(GSMHard)}
    assert "with 4933828" in hard["gsm-hard-0"].question
    assert hard["gsm-hard-1"].answer != str(float(hard["gsm-hard-1"].answer))  # golds are written without ".0"
    assert any("." in s.answer for s in hard.values())  # ... and non-integers keep their decimals
    svamp = samples(SVAMP)[0]
    assert svamp.id == "svamp-chal-1" and svamp.answer == "51"
    assert svamp.question == ("Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack "
                              "How much do you have to pay to buy each pack?")
    plus = samples(GSMPlus)
    assert all(s.answer != "None" for s in plus) and "gsm-plus-7" not in {s.id for s in plus}  # critical thinking
    assert plus[0].answer == "4.33"


def test_mgsm_languages_instruction_and_quotes() -> None:
    loaded = samples(MGSM)
    assert Counter(s.id.rsplit("-", 1)[0] for s in loaded) == {f"mgsm-{lang}": 250 for lang in MGSM_LANGUAGES}
    by_id = {s.id: s for s in loaded}
    assert by_id["mgsm-en-0"].question.startswith("Solve this math problem.\n\nJanet’s ducks lay 16 eggs")
    assert by_id["mgsm-de-0"].question.startswith("Löse dieses Mathematikproblem.\n\n")
    quoted = next(s for s in loaded if s.id.startswith("mgsm-es-") and '"Todo por un dólar"' in s.question)
    assert quoted.answer == "250" and quoted.question.count('"') == 2
    assert all(to_number(s.answer) is not None and "\t" not in s.question for s in loaded)


def test_mgsm_tsv_parsing() -> None:
    text = 'Un "quoted" problem, with a comma?\t1,250\nSecond one\t7\r\n\n'
    assert parse_mgsm_tsv(text, "x.tsv") == [('Un "quoted" problem, with a comma?', "1,250"), ("Second one", "7")]
    with pytest.raises(ValueError, match=r"x\.tsv line 2"):
        parse_mgsm_tsv("fine\t1\nno tab here\n", "x.tsv")


@pytest.mark.parametrize("kind", (GSMHard, SVAMP, MGSM, GSMPlus, Drop, MMLUPro), ids=lambda k: k.name)
def test_data_dir_benchmarks_need_their_files(kind: type[Benchmark], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("W4S_DATA_DIR", raising=False)
    assert not kind().offline_available()
    with pytest.raises(SpecError, match="W4S_DATA_DIR"):
        kind().load_offline()
    assert not kind(data_dir=str(tmp_path)).offline_available()
    with pytest.raises(SpecError, match=str(tmp_path)):
        kind(data_dir=str(tmp_path)).load_offline()


# --- every gold, many spellings ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.name)
def test_every_gold_scores_one(kind: type[Benchmark]) -> None:
    pairs = [(s.answer, s) for s in samples(kind)]
    assert failures(score_all(benchmark(kind), pairs), pairs, 1.0) == []


def respellings(gold: str) -> list[Any]:
    """The gold as workflows write it: bare numbers, currency, separators, words around it, a box, a marker."""
    value = to_number(gold)
    assert value is not None
    if value.is_integer():
        whole = int(value)
        return [whole, float(whole), f"{whole}.0", f"The answer is ${whole:,}.00.", f"{whole:,} dollars",
                f"so she has \\boxed{{{whole}}} eggs left", f"First 3 + 4 = 7, then the total is {whole}."]
    return [value, f"The answer is {value!r}.", f"\\boxed{{{value:,.10g}}} dollars", f"Answer: {value:.10g}"]


@pytest.mark.parametrize("kind", NUMERIC, ids=lambda k: k.name)
def test_respelled_numeric_golds_score_one(kind: type[NumericBenchmark]) -> None:
    pairs = [(text, s) for s in samples(kind) for text in respellings(s.answer)]
    assert failures(score_all(benchmark(kind), pairs), pairs, 1.0) == []


@pytest.mark.parametrize("kind", NUMERIC, ids=lambda k: k.name)
def test_wrong_numeric_answers_score_zero_with_a_reason(kind: type[NumericBenchmark]) -> None:
    loaded = samples(kind)
    pairs: list[tuple[Any, Sample]] = []
    for s, other in zip(loaded, loaded[1:] + loaded[:1], strict=True):
        value = to_number(s.answer)
        assert value is not None
        pairs.append((f"The answer is {value + max(1.0, abs(value) * 1e-3):.12g}.", s))  # beyond any tolerance
        if not math.isclose(to_number(other.answer) or 0.0, value, rel_tol=1e-3):
            pairs.append((other.answer, s))
    scores = score_all(benchmark(kind), pairs)
    assert failures(scores, pairs, 0.0) == []
    assert all(score.reason and score.reason.startswith("read ") and "expected" in score.reason for score in scores)


MALFORMED: list[Any] = [None, True, False, [], [18], {"answer": 18}, "", "   ", "no number at all", "eighteen",
                        float("nan"), float("inf"), -float("inf"), 10**400, 10**5000, "9" * 5000, "x" * 300_000,
                        "\\boxed{", "\\boxed{}", "1e999", "1/0", object(), b"18", ("18",)]


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.name)
def test_malformed_predictions_score_zero(kind: type[Benchmark]) -> None:
    sample = samples(kind)[0]
    pairs = [(prediction, sample) for prediction in MALFORMED]
    started = time.monotonic()
    scores = score_all(benchmark(kind), pairs)
    assert failures(scores, pairs, 0.0) == [] and all(score.reason for score in scores)
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(("prediction", "read"), [
    ("$1,234.00", 1234), ("The answer is 1,234 dollars.", 1234), ("18 eggs", 18), ("\\boxed{18}", 18),
    ("\\fbox{18}", 18), ("18.0", 18), ("1.8e1", 18), ("50%", 50), ("-5 degrees", -5), ("It fell 3-5 = -2", -2),
    ("between 3-5", 5), ("\\boxed{\\frac{3}{4}}", 0.75), ("3/4 of the cake", 0.75), ("答案是18", 18), ("১৮", 18),
    ("１８", 18), ("1\u202f234", 1234), ("The answer is: 42. I used 3 eggs.", 42), ("#### 72", 72),
    ("\\boxed{2 \\times 9 = 18}", 18), ("so the answer is x = 7 apples", 7), ("The answer is\n$$\n12\n$$", 12),
    ("18 eggs, then 20", 20), ("\\boxed{18} was wrong; actually 20", 18), (17.5, 17.5), (-3, -3),
])
def test_number_reader(prediction: Any, read: float) -> None:
    assert read_number(prediction).value == read


def test_numeric_reasons_say_what_was_read() -> None:
    sample = Sample(id="x", question="q", answer="18")
    [wrong, none, listed] = score_all(benchmark(GSM8K), [("She ends with 17 dollars.", sample), ("eighteen", sample),
                                                         ([18], sample)])
    assert wrong.reason == "read 17 from 'She ends with 17 dollars.', expected 18"
    assert none.reason == "no number in 'eighteen'" and listed.reason == "answer is a list, expected a number"


def test_tolerances() -> None:
    def one(kind: type[NumericBenchmark], prediction: Any, gold: str) -> float:
        return score_all(benchmark(kind), [(prediction, Sample(id="x", question="q", answer=gold))])[0].value

    assert one(GSM8K, 1234.0000001, "1234") == 1.0 and one(GSM8K, 1234.01, "1234") == 0.0
    assert one(GSMHard, "14053029.67", "14053029.666666666") == 1.0  # relative 1e-4 for unrounded floats
    assert one(GSMHard, "0.00168", "0.0016791648") == 0.0 and one(GSMHard, "5490", "5489.5466666667") == 1.0
    assert one(GSMPlus, "4.3333", "4.33") == 1.0 and one(GSMPlus, "4.3", "4.33") == 0.0  # rounded golds
    assert one(GSMPlus, "7.54", "7.5") == 0.0  # one decimal: exact


# --- hub rows ----------------------------------------------------------------------------------------------------

def test_from_hub_rows() -> None:
    gsm8k = GSM8K().from_hub({"main": [{"question": "Q0?", "answer": "work <<1+1=2>>\n#### 1,200"}]})
    assert gsm8k == [Sample(id="gsm8k-0", question="Q0?", answer="1,200")]
    hard = GSMHard().from_hub({None: [{"input": "Q?", "code": "def solution(): ...", "target": 2.5},
                                      {"input": "R?", "code": "", "target": 7.0}]})
    assert [(s.id, s.answer) for s in hard] == [("gsm-hard-0", "2.5"), ("gsm-hard-1", "7")]
    svamp = SVAMP().from_hub({None: [{"ID": "chal-7", "Body": "Tom has 3 apples. ", "Question": "How many?",
                                      "Equation": "( 3.0 )", "Answer": 3.0, "Type": "Common-Division"}]})
    assert svamp == [Sample(id="svamp-chal-7", question="Tom has 3 apples. How many?", answer="3")]
    mgsm_rows = {lang: [{"question": f"{lang} problem", "answer": None, "answer_number": 12,
                         "equation_solution": None}] for lang in MGSM_LANGUAGES}
    mgsm = MGSM().from_hub(mgsm_rows)
    assert [s.id for s in mgsm] == [f"mgsm-{lang}-0" for lang in MGSM_LANGUAGES]
    assert mgsm[2].question == "Solve this math problem.\n\nen problem" and mgsm[2].answer == "12"
    plus = GSMPlus().from_hub({None: [
        {"question": "A?", "solution": "...", "answer": "4.5", "perturbation_type": "digit expansion"},
        {"question": "B?", "solution": "...", "answer": "None", "perturbation_type": "critical thinking"},
        {"question": "C?", "solution": "...", "answer": "8", "perturbation_type": "distraction insertion"}]})
    assert [(s.id, s.answer) for s in plus] == [("gsm-plus-0", "4.5"), ("gsm-plus-2", "8")]


def test_math_from_hub_rows() -> None:
    def row(problem: str, level: str, solution: str) -> dict[str, str]:
        return {"problem": problem, "level": level, "type": "Number Theory", "solution": solution}

    tables: dict[str | None, list[dict[str, str]]] = {subject: [] for subject in CompetitionMath.hub.configs}
    tables["number_theory"] = [row("P0", "Level 4", "$\\boxed{1}$"),
                               row("P1", "Level 5", "So $x=\\boxed{\\frac{1}{2}}$, not $\\boxed{3}$... "
                                                    "no: $\\boxed{\\left(1,\\{2\\}\\right)}$."),
                               row("Enter all values, separated by commas.", "Level 5",
                                   "Work: $\\boxed{7}$.\n\nSo $a = \\boxed{-1}$ or $a = \\fbox{2}$.")]
    loaded = CompetitionMath().from_hub(tables)
    assert [(s.id, s.question, s.answer) for s in loaded] == [
        ("math-number_theory-1", "P1", "\\left(1,\\{2\\}\\right)"),
        ("math-number_theory-2", "Enter all values, separated by commas.", "-1, 2")]
    with pytest.raises(ValueError, match="math-prealgebra-0"):
        CompetitionMath().from_hub({**tables, "prealgebra": [row("P", "Level 5", "no box")]})


# --- MATH scoring ------------------------------------------------------------------------------------------------

def test_math_gold_details() -> None:
    by_id = {s.id: s for s in samples(CompetitionMath)}
    assert Counter(s.id.split("-")[1] for s in by_id.values()) == {
        "counting_and_probability": 123, "number_theory": 154, "prealgebra": 193, "precalculus": 135}
    assert by_id["math-precalculus-134"].answer == "\\left( \\frac{7}{45}, \\frac{4}{45} \\right)"  # not "\\le("
    assert by_id["math-precalculus-406"].answer == "\\frac{\\pi}{4}, \\frac{5\\pi}{4}"
    assert by_id["math-prealgebra-353"].answer == "14{,}916"


def test_math_golds_in_other_spellings() -> None:
    loaded = samples(CompetitionMath)
    pairs: list[tuple[Any, Sample]] = [(f"The final answer is $\\boxed{{{s.answer}}}$.", s) for s in loaded]
    pairs += [(f"Thus the answer is ${s.answer}$.", s) for s in loaded]
    integers = [s for s in loaded if canonical(s.answer).lstrip("-").isdigit()]
    pairs += [(int(canonical(s.answer)), s) for s in integers]
    fractions = [s for s in loaded if s.answer.startswith("\\frac{") and s.answer.count("{") == 2][:8]
    assert len(fractions) == 8
    pairs += [(s.answer.replace("\\frac{", "").replace("}{", "/").rstrip("}"), s) for s in fractions]
    pairs += [(s.answer.replace("\\frac", "\\dfrac"), s) for s in fractions]
    assert failures(score_all(benchmark(CompetitionMath), pairs), pairs, 1.0) == []


@pytest.mark.parametrize(("gold", "prediction"), [
    ("\\frac{1}{2}", "0.5"), ("\\frac{1}{2}", "1/2"), ("0.5", "\\boxed{\\dfrac12}"), ("3", "x=3"),
    ("3", "The final answer is \\boxed{x = 3}."), ("[2,5)", "[2, 5)"), ("\\{1,2\\}", "\\{2, 1\\}"),
    ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2"), ("\\frac{\\sqrt2}{2}", "\\frac{1}{\\sqrt{2}}"), ("\\text{(C)}", "C"),
    ("\\text{(C)}", "(C)"), ("156^\\circ", "156"), ("\\$36", "36"), ("50,\\!625", "50625"), ("1,-3", "-3, 1"),
    ("11 \\frac{2}{3}", "\\frac{35}{3}"), ("3 \\pm 2 \\sqrt{2}", "3 + 2\\sqrt{2}, 3 - 2\\sqrt{2}"),
    ("\\begin{pmatrix} 1 \\\\ 4 \\end{pmatrix}", "\\begin{pmatrix}1\\\\4\\end{pmatrix}"), ("y = 2x + 3", "2x+3"),
    ("\\text{Devon}", "Devon"), ("\\frac{\\pi}{4}, \\frac{5\\pi}{4}", "\\frac{5\\pi}{4}, \\frac{\\pi}{4}"),
])
def test_math_equivalences(gold: str, prediction: str) -> None:
    sample = Sample(id="x", question="q", answer=gold)
    assert score_all(benchmark(CompetitionMath), [(prediction, sample)]) == [Score(1.0)]


def test_wrong_math_answers_score_zero_with_a_reason() -> None:
    loaded = samples(CompetitionMath)
    integers = [s for s in loaded if canonical(s.answer).lstrip("-").isdigit()]
    pairs: list[tuple[Any, Sample]] = [(str(int(canonical(s.answer)) + 1), s) for s in integers]
    others = [s for s in loaded if s not in integers][::10]
    pairs += [(other.answer, s) for s, other in zip(others, others[1:] + others[:1], strict=True)
              if canonical(other.answer) != canonical(s.answer)]
    pairs += [("\\frac{1}{2}", Sample(id="x", question="q", answer="0.51")), ("x", Sample("y", "q", "y"))]
    scores = score_all(benchmark(CompetitionMath), pairs)
    assert failures(scores, pairs, 0.0) == []
    assert all(score.reason and score.reason.startswith("read '") for score in scores)


def test_final_answer_reading() -> None:
    assert final_answer("so $x = \\boxed{\\frac{1}{2}}$.") == ("\\frac{1}{2}", "")
    assert final_answer("The answer is $\\left(1, 2\\right)$.") == ("\\left(1, 2\\right)", "")
    assert final_answer("  $$\\sqrt{2}$$ ") == ("\\sqrt{2}", "")
    assert final_answer(7) == ("7", "") and final_answer(0.25) == ("0.25", "")
    answer, why = final_answer("I think " * 100)
    assert answer is None and "\\boxed{}" in why


def test_pathological_math_answer_is_bounded() -> None:
    sample = Sample(id="x", question="q", answer="3")
    started = time.monotonic()
    scores = score_all(benchmark(CompetitionMath), [("(x+1)^{100000} - 2", sample), ("3.0", sample)])
    assert [score.value for score in scores] == [0.0, 1.0]  # and the helper still answers afterwards
    assert time.monotonic() - started < 10  # cut by math-verify's 2 s step limit (plus the helper's start-up)


def test_a_helper_that_does_not_answer_is_killed_and_replaced() -> None:
    """With math-verify's own limit out of reach, the caller's wall-clock limit must end the check."""
    checker = SymbolicChecker(step_timeout=60, hard_timeout=1.0)
    try:
        assert checker.check("\\frac{1}{2}", "0.5") == (True, "")
        started = time.monotonic()
        equal, note = checker.check("3", "9^{9^{9^{9}}}")
        assert (equal, note) == (False, "symbolic check took longer than 1 s") and checker.lost == 1
        assert time.monotonic() - started < 3
        assert checker.check("\\sqrt{8}", "2\\sqrt{2}") == (True, "")  # a fresh helper
    finally:
        checker.close()
