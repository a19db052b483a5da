"""Evaluate one workflow on a set of samples: concurrently in the sandbox, scored by the benchmark.

The gateway is the workflows' only way to an LLM (see ``w4s.gateway.core``): it checks, seeds and counts each
call. Failures of the workflow score 0 and are kept as feedback; failures of the infrastructure (budget,
provider down after retries, bad credentials) stop the evaluation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from w4s.benchmarks.base import Benchmark, Sample, Score
from w4s.llm.ledger import RoleUsage
from w4s.sandbox.session import SandboxSession


@dataclass
class SampleResult:
    sample_id: str
    answer: Any
    score: float
    error: str | None
    seconds: float
    llm_calls: int
    usage: RoleUsage = field(default_factory=RoleUsage)
    score_reason: str | None = None  # why the scorer gave less than full marks


@dataclass
class Evaluation:
    score: float
    results: list[SampleResult]
    usage: RoleUsage = field(default_factory=RoleUsage)

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "usage": asdict(self.usage), "results": [asdict(r) for r in self.results]}


ProgressFn = Callable[[int, int], None]


class EvaluationObserver(Protocol):
    """What metrics want to hear from an evaluation (``w4s.metrics.RunMetrics``)."""

    def sample(self, error_kind: str | None) -> None: ...

    def evaluation(self, seconds: float) -> None: ...


class Evaluator:
    def __init__(self, sandbox: SandboxSession, benchmark: Benchmark,
                 observer: EvaluationObserver | None = None) -> None:
        self.sandbox = sandbox
        self.benchmark = benchmark
        self.observer = observer

    async def run_sample(self, code: str, sample: Sample) -> SampleResult:
        result, ticket = await self.sandbox.run_workflow(code, sample.id, sample.question, sample.worker_context())
        if self.sandbox.gateway.fatal is not None:
            raise self.sandbox.gateway.fatal
        if self.observer is not None:
            self.observer.sample(None if result.ok else (result.error or {}).get("type", "Error"))
        error = result.error_text
        scored = Score.zero("the workflow failed") if error else await self.benchmark.score(result.answer, sample)
        return SampleResult(sample.id, result.answer, scored.value, error, round(result.wall_s, 3), ticket.calls,
                            ticket.usage, scored.reason)

    async def evaluate(self, code: str, samples: Sequence[Sample], progress: ProgressFn | None = None) -> Evaluation:
        """Score ``code`` on ``samples``. Fatal errors cancel the remaining samples and propagate."""
        started = time.monotonic()
        done = 0
        results: list[SampleResult | None] = [None] * len(samples)

        async def one(index: int, sample: Sample) -> None:
            nonlocal done
            results[index] = await self.run_sample(code, sample)
            done += 1
            if progress:
                progress(done, len(samples))

        try:
            async with asyncio.TaskGroup() as group:
                for i, s in enumerate(samples):
                    group.create_task(one(i, s))
        except BaseExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        final = [r for r in results if r is not None]
        usage = RoleUsage()
        for r in final:
            usage.add(r.usage)
        score = sum(r.score for r in final) / len(final) if final else 0.0
        if self.observer is not None:
            self.observer.evaluation(time.monotonic() - started)
        return Evaluation(score=score, results=final, usage=usage)
