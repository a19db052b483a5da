"""Seeded, disjoint splits: private (scores), public (case studies), test (final report only).

The permutation depends only on the seed and the sample ids, never on time, and the test split is drawn from
the far end of it, so changing the validation sizes never moves a sample into or out of the test split.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from w4s.benchmarks.base import Sample, SplitSizes
from w4s.errors import SpecError
from w4s.spec import SplitSpec


@dataclass(frozen=True)
class Splits:
    private: tuple[Sample, ...]
    public: tuple[Sample, ...]
    test: tuple[Sample, ...]

    def fingerprint(self) -> str:
        """Identifies the exact split so a resumed run can refuse a different one."""
        h = hashlib.sha256()
        for name, part in (("private", self.private), ("public", self.public), ("test", self.test)):
            h.update(name.encode())
            for s in part:
                h.update(s.id.encode() + b"\0")
        return h.hexdigest()[:16]


def make_splits(samples: list[Sample], *, seed: int, private: int, public: int, test: int) -> Splits:
    need = private + public + test
    if need > len(samples):
        raise SpecError(f"splits: validationSize + testSize = {need} exceeds the {len(samples)} samples of "
                        "this benchmark")
    order = sorted(samples, key=lambda s: s.id)
    random.Random(seed).shuffle(order)
    test_part = order[len(order) - test:] if test else []
    return Splits(tuple(order[:private]), tuple(order[private:private + public]), tuple(test_part))


def resolve_sizes(spec: SplitSpec, defaults: SplitSizes) -> tuple[int, int, int]:
    """(private, public, test) from the spec, with the benchmark's defaults for the sizes left empty.

    The public part defaults to a quarter of the validation split: enough failures for ten case studies at the
    paper's 128, while three quarters still score the workflow.
    """
    validation = spec.validation_size if spec.validation_size is not None else defaults.validation
    public = spec.public_size if spec.public_size is not None else max(1, validation // 4)
    if public >= validation:
        raise SpecError(f"splits.publicSize: {public} public samples leave no private samples out of a validation "
                        f"split of {validation}; set validationSize larger or publicSize smaller")
    test = spec.test_size if spec.test_size is not None else defaults.test
    return validation - public, public, test


def split_for(samples: list[Sample], spec: SplitSpec, defaults: SplitSizes) -> Splits:
    private, public, test = resolve_sizes(spec, defaults)
    return make_splits(samples, seed=spec.seed, private=private, public=public, test=test)
