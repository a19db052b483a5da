"""The paper's eleven benchmarks (and a second, packaged DROP sample) by name."""

from __future__ import annotations

from typing import Any

from w4s.benchmarks.base import Benchmark, Sample, Score
from w4s.benchmarks.choice import GPQA, MMLUPro
from w4s.benchmarks.code import MBPP, HumanEval
from w4s.benchmarks.competition_math import CompetitionMath
from w4s.benchmarks.drop import Drop, Drop1k
from w4s.benchmarks.gsm import GSM8K, MGSM, SVAMP, GSMHard, GSMPlus
from w4s.errors import SpecError

BENCHMARKS: dict[str, type[Benchmark]] = {cls.name: cls for cls in (
    MGSM, GSM8K, GSMPlus, GSMHard, SVAMP, CompetitionMath, Drop, Drop1k, MMLUPro, GPQA, HumanEval, MBPP)}


def get_benchmark(name: str, data_dir: str | None = None) -> Benchmark:
    try:
        cls = BENCHMARKS[name]
    except KeyError:
        raise SpecError(f"task.benchmark: unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None
    return cls(data_dir=data_dir)


def benchmark_rows(data_dir: str | None = None) -> list[dict[str, Any]]:
    """What `w4s benchmarks` lists: names, default splits and where each benchmark is loaded from."""
    rows = []
    for name in BENCHMARKS:
        b = get_benchmark(name, data_dir)
        rows.append({"name": name, "title": b.title, "answer_kind": b.answer_kind,
                     "validation": b.sizes.validation, "test": b.sizes.test, "offline_source": b.offline_source,
                     "offline_available": b.offline_available(),
                     "hub": f"{b.hub.path} ({b.hub.split})" + (", gated" if b.hub.gated else "") if b.hub else None})
    return rows


__all__ = ["BENCHMARKS", "Benchmark", "Sample", "Score", "benchmark_rows", "get_benchmark"]
