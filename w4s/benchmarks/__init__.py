"""Benchmarks by name. The benchmarks issue adds the rest of the paper's eleven."""

from __future__ import annotations

from w4s.benchmarks.base import Benchmark, Sample
from w4s.benchmarks.gsm8k import GSM8K
from w4s.errors import SpecError

BENCHMARKS: dict[str, type[Benchmark]] = {"gsm8k": GSM8K}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]()
    except KeyError:
        raise SpecError(f"task.benchmark: unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")\
            from None


__all__ = ["BENCHMARKS", "Benchmark", "Sample", "get_benchmark"]
