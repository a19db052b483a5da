"""Evaluate one given workflow (a file or a named baseline) on one split: ``w4s eval`` and the baselines table.

This is the loop's evaluation without the meta-agent: the same sandbox, executors, budget and scorer, so a
score printed here is comparable with the scores a run records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from w4s.baselines import BASELINES, render_baseline
from w4s.benchmarks.base import Benchmark, Sample
from w4s.benchmarks.sources import LoadedTask, load_task
from w4s.benchmarks.splits import Splits, split_for
from w4s.endpoints import Endpoints
from w4s.errors import SpecError
from w4s.evaluation import Evaluator, ProgressFn, SampleResult
from w4s.llm.ledger import Ledger
from w4s.sandbox.backends import backend_name
from w4s.sandbox.session import Sandbox
from w4s.spec import OptimizationSpec

SPLITS = ("validation", "private", "public", "test")


def resolve_workflow(text: str, benchmark: Benchmark) -> tuple[str, str]:
    """(label, code) for a baseline name or a Python file defining ``workflow(agent, task)``."""
    if text in BASELINES:
        return text, render_baseline(text, benchmark)
    path = Path(text).expanduser()
    if not path.is_file():
        raise SpecError(f"--workflow: {text!r} is neither a file nor a baseline ({', '.join(BASELINES)})")
    code = path.read_text(encoding="utf-8")
    try:
        compile(code, str(path), "exec")
    except SyntaxError as err:
        raise SpecError(f"--workflow: {path}: line {err.lineno}: {err.msg}") from None
    return path.name, code


def split_samples(splits: Splits, name: str) -> tuple[Sample, ...]:
    """Validation is private + public, in the seeded order; the others are one part each."""
    parts = {"validation": splits.private + splits.public, "private": splits.private, "public": splits.public,
             "test": splits.test}
    if name not in parts:
        raise SpecError(f"--split: expected one of {', '.join(SPLITS)}, got {name!r}")
    return parts[name]


@dataclass
class EvalReport:
    benchmark: str
    workflow: str
    split: str
    source: str
    n: int
    score: float
    errors: int
    cost_usd: float
    seconds: float
    results: list[SampleResult]

    def to_json(self, per_item: bool = True) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "results"}
        if per_item:
            data["per_item"] = [asdict(r) for r in self.results]
        return data


class EvalSession:
    """Executors, worker pool and budget shared by many evaluations (the baselines table runs dozens, and
    starting a local model server for each would dominate)."""

    def __init__(self, spec: OptimizationSpec, log: Callable[[str], None] = print) -> None:
        self.spec = spec
        self.ledger = Ledger(spec.budget.max_cost)
        self._log = log
        self._endpoints = Endpoints(spec, self.ledger, log, meta_agent=False)
        self._sandbox: Sandbox | None = None

    async def __aenter__(self) -> EvalSession:
        backend_name(self.spec.sandbox)
        await self._endpoints.__aenter__()
        try:
            self._sandbox = await Sandbox(self.spec.sandbox, self._endpoints.executors, self.spec.seed,
                                          self._log).__aenter__()
        except BaseException:
            await self._endpoints.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sandbox is not None:
            await self._sandbox.aclose()
        await self._endpoints.aclose()

    async def evaluate(self, task: LoadedTask, workflow: str, split: str, limit: int | None = None,
                       progress: ProgressFn | None = None) -> EvalReport:
        samples = split_samples(split_for(task.samples, self.spec.splits, task.benchmark.sizes), split)
        if limit is not None:
            if limit < 1:
                raise SpecError("--limit: must be at least 1")
            samples = samples[:limit]
        if not samples:
            raise SpecError(f"--split: the {split} split is empty with these split sizes")
        label, code = resolve_workflow(workflow, task.benchmark)
        assert self._sandbox is not None
        evaluator = Evaluator(self._sandbox, task.benchmark)
        spent, started = self.ledger.total_cost, time.monotonic()
        evaluation = await evaluator.evaluate(code, samples, progress)
        return EvalReport(benchmark=task.benchmark.name, workflow=label, split=split, source=task.source,
                          n=len(evaluation.results), score=evaluation.score,
                          errors=sum(1 for r in evaluation.results if r.error),
                          cost_usd=self.ledger.total_cost - spent, seconds=round(time.monotonic() - started, 2),
                          results=evaluation.results)


async def evaluate_workflow(spec: OptimizationSpec, workflow: str, split: str, limit: int | None = None,
                            progress: ProgressFn | None = None,
                            log: Callable[[str], None] = print) -> EvalReport:
    """One workflow on one split of the spec's task (``w4s eval``)."""
    task = load_task(spec.task)
    try:
        async with EvalSession(spec, log) as session:
            return await session.evaluate(task, workflow, split, limit, progress)
    finally:
        await task.benchmark.aclose()
