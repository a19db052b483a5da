"""Seeded, disjoint splits: private (scores), public (case studies), test (final report only).

The permutation depends only on the seed and the sample ids, never on time, and the test split is drawn from
the far end of it, so changing the validation sizes never moves a sample into or out of the test split.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from w4s.benchmarks.base import Sample
from w4s.errors import SpecError


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
        raise SpecError(f"splits: validationSize + publicSize + testSize = {need} exceeds the "
                        f"{len(samples)} samples of this benchmark")
    order = sorted(samples, key=lambda s: s.id)
    random.Random(seed).shuffle(order)
    test_part = order[len(order) - test:] if test else []
    return Splits(tuple(order[:private]), tuple(order[private:private + public]), tuple(test_part))
