"""Evaluate one workflow on a set of samples: concurrently in worker processes, scored by the benchmark.

The runner is the workflows' only way to an LLM: each request from a worker is checked (executor name, call
limit), seeded from (run seed, workflow, sample, call index) and sent through the executor's client, which
enforces the budget and retries transient errors. Failures of the workflow score 0 and are kept as feedback;
failures of the infrastructure (budget, provider down after retries, bad credentials) stop the evaluation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from w4s.benchmarks.base import Benchmark, Sample, Score
from w4s.errors import ProviderError, TransientProviderError
from w4s.llm.client import LLMClient
from w4s.llm.ledger import RoleUsage
from w4s.llm.providers import ChatRequest
from w4s.seeds import code_key, derive_seed
from w4s.spec import SandboxSpec
from w4s.workflow.pool import LLMRequestRejected, WorkerPool


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


class Evaluator:
    def __init__(self, pool: WorkerPool, executors: dict[str, LLMClient], benchmark: Benchmark,
                 sandbox: SandboxSpec, seed: int) -> None:
        self.pool = pool
        self.executors = executors
        self.default_executor = next(iter(executors))
        self.benchmark = benchmark
        self.sandbox = sandbox
        self.seed = seed
        self._limits = {"execute_code_timeout": sandbox.execute_code_timeout,
                        "execute_code_memory_mb": sandbox.execute_code_memory_mb,
                        "json_retries": sandbox.json_retries}

    async def run_sample(self, code: str, sample: Sample) -> SampleResult:
        calls = 0
        workflow = code_key(code)

        async def on_llm(request: dict[str, Any]) -> list[str]:
            nonlocal calls
            calls += 1
            if calls > self.sandbox.max_llm_calls_per_sample:
                raise LLMRequestRejected(f"more than {self.sandbox.max_llm_calls_per_sample} LLM calls for one "
                                         "task (sandbox.maxLlmCallsPerSample)")
            name = request.get("model") or self.default_executor
            client = self.executors.get(name)
            if client is None:
                raise LLMRequestRejected(f"unknown executor {name!r}; available: {sorted(self.executors)}")
            limit = client.provider.endpoint.max_tokens
            chat = ChatRequest(messages=request["messages"], temperature=request["temperature"], n=request["n"],
                               max_tokens=min(int(request.get("max_tokens") or limit), limit),
                               seed=derive_seed(self.seed, workflow, sample.id, calls),
                               json_mode=bool(request.get("json_mode")))
            try:
                texts, usage = await client.chat(chat)
            except ProviderError as err:
                if isinstance(err, TransientProviderError) or not err.caused_by_request:
                    raise
                raise LLMRequestRejected(str(err)) from None
            totals.add(usage)
            return texts

        totals = RoleUsage()
        message = {"code": code, "task": sample.question, "context": sample.worker_context(),
                   "limits": self._limits}
        outcome = await self.pool.run(message, on_llm, self.sandbox.sample_timeout)
        scored = Score.zero("the workflow failed") if outcome.error else \
            await self.benchmark.score(outcome.answer, sample)
        return SampleResult(sample.id, outcome.answer, scored.value, outcome.error, round(outcome.seconds, 3), calls,
                            totals, scored.reason)

    async def evaluate(self, code: str, samples: Sequence[Sample], progress: ProgressFn | None = None) -> Evaluation:
        """Score ``code`` on ``samples``. Fatal errors cancel the remaining samples and propagate."""
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
        return Evaluation(score=score, results=final, usage=usage)
