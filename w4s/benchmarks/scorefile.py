"""``w4s score``: score a file of ``{"id", "answer"}`` predictions against a benchmark's gold answers.

This is how users check our scorers against theirs, so each item reports its score and, below full marks, why.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from w4s.benchmarks.base import Benchmark, Sample, Score
from w4s.benchmarks.sources import jsonl_objects
from w4s.errors import SpecError


def read_predictions(path: str) -> list[dict[str, Any]]:
    """Records ``{"id", "answer"}`` from a JSONL file; errors name the line."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise SpecError(f"--predictions: no such file {path!r}")
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, record in jsonl_objects(file.read_text(encoding="utf-8"), "--predictions:"):
        if "id" not in record or "answer" not in record:
            raise SpecError(f"--predictions: line {number}: expected an object with the keys 'id' and 'answer'")
        key = str(record["id"])
        if key in seen:
            raise SpecError(f"--predictions: line {number}: duplicate id {key!r}")
        seen.add(key)
        records.append({"id": key, "answer": record["answer"]})
    return records


async def score_predictions(benchmark: Benchmark, samples: list[Sample],
                            predictions: list[dict[str, Any]]) -> dict[str, Any]:
    by_id = {s.id: s for s in samples}
    unknown = [p["id"] for p in predictions if p["id"] not in by_id]
    if unknown:
        raise SpecError(f"--predictions: {len(unknown)} id(s) not in {benchmark.name}, e.g. {unknown[0]!r} "
                        f"(`w4s benchmarks export --benchmark {benchmark.name}` shows the ids)")
    try:
        scores: list[Score] = await asyncio.gather(*(benchmark.score(p["answer"], by_id[p["id"]])
                                                     for p in predictions))
    finally:
        await benchmark.aclose()
    per_item = [{"id": p["id"], "score": s.value, **({"reason": s.reason} if s.reason else {})}
                for p, s in zip(predictions, scores, strict=True)]
    mean = sum(s.value for s in scores) / len(scores) if scores else 0.0
    return {"benchmark": benchmark.name, "n": len(scores), "score": mean, "per_item": per_item}
