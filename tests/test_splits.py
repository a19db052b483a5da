"""Seeded, disjoint splits and their sizes (benchmark defaults, a public quarter of validation)."""

from __future__ import annotations

import pytest
from harness import gsm8k_samples

from w4s.benchmarks.base import SplitSizes
from w4s.benchmarks.splits import make_splits, resolve_sizes, split_for
from w4s.errors import SpecError
from w4s.spec import SplitSpec, parse_spec


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


def test_sizes_default_to_the_benchmark_and_a_public_quarter() -> None:
    table4 = SplitSizes(128, 800)
    assert resolve_sizes(SplitSpec(), table4) == (96, 32, 800)
    assert resolve_sizes(SplitSpec(validation_size=33, test_size=0), table4) == (25, 8, 0)
    assert resolve_sizes(SplitSpec(validation_size=2), table4) == (1, 1, 800)
    assert resolve_sizes(SplitSpec(validation_size=10, public_size=0), table4) == (10, 0, 800)
    splits = split_for(list(gsm8k_samples()), SplitSpec(seed=3), table4)
    assert (len(splits.private), len(splits.public), len(splits.test)) == (96, 32, 800)


def test_public_split_must_leave_private_samples() -> None:
    with pytest.raises(SpecError, match="publicSize must be smaller than validationSize"):
        parse_spec({"splits": {"validationSize": 8, "publicSize": 8}})
    with pytest.raises(SpecError, match=r"splits\.publicSize"):
        resolve_sizes(SplitSpec(public_size=200), SplitSizes(128, 800))
