"""Prometheus metrics of a run (``w4s run`` / ``w4s optimize --metrics-port``) and of the gateway service.

Names follow the Prometheus conventions: the ``w4s_`` prefix, base units (seconds, dollars), ``_total`` for
counters. Spend, tokens and the sandbox pool are read from the ledger and the pool when Prometheus scrapes,
so the metrics can never disagree with the run's own accounting; scores and durations are recorded as the loop
reports them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from w4s.endpoints import executor_role
from w4s.llm.ledger import Ledger, RoleUsage
from w4s.records import CandidateRecord, RunResult
from w4s.reporting import Reporter
from w4s.sandbox.pool import SANDBOX_FAILURES
from w4s.spec import OptimizationSpec

_LONG = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


def role_models(spec: OptimizationSpec) -> dict[str, str]:
    """The model behind each ledger role, for the ``model`` label."""
    models = {"meta_agent": spec.meta_agent.model}
    models.update({executor_role(i, e.name): e.model for i, e in enumerate(spec.executors)})
    return models


def _usage_families(prefix: str, labels: list[str],
                    rows: list[tuple[list[str], RoleUsage]]) -> Iterator[CounterMetricFamily]:
    """Calls, tokens by direction and dollars, from usage rows computed at scrape time."""
    calls = CounterMetricFamily(f"{prefix}_calls", "LLM calls.", labels=labels)
    tokens = CounterMetricFamily(f"{prefix}_tokens", "LLM tokens.", labels=[*labels, "direction"])
    cost = CounterMetricFamily(f"{prefix}_cost_usd", "Dollars spent on LLM calls.", labels=labels)
    for values, usage in rows:
        calls.add_metric(values, usage.calls)
        tokens.add_metric([*values, "input"], usage.input_tokens)
        tokens.add_metric([*values, "output"], usage.output_tokens)
        cost.add_metric(values, usage.cost_usd)
    yield from (calls, tokens, cost)


class _RunCollector(Collector):
    def __init__(self, run: str, ledger: Ledger, models: dict[str, str], max_cost: float | None,
                 pool: Callable[[], Any]) -> None:
        self._run, self._ledger, self._models, self._max_cost, self._pool = run, ledger, models, max_cost, pool

    def collect(self) -> Iterator[Any]:
        rows = [([self._run, role, self._models.get(role, "unknown")], usage)
                for role, usage in sorted(list(self._ledger.by_role.items()))]
        yield from _usage_families("w4s_llm", ["run", "role", "model"], rows)
        if self._max_cost is not None:
            budget = GaugeMetricFamily("w4s_budget_usd", "The run's spending limit.", labels=["run"])
            budget.add_metric([self._run], self._max_cost)
            yield budget
        pool = self._pool()
        if pool is not None:
            workers = GaugeMetricFamily("w4s_sandbox_workers", "Sandbox workers in the pool.",
                                        labels=["run", "backend"])
            workers.add_metric([self._run, pool.backend.name], pool.size)
            starts = list(pool.start_seconds)
            start = SummaryMetricFamily("w4s_sandbox_worker_start_seconds", "Time to start a sandbox worker.",
                                        labels=["run", "backend"])
            start.add_metric([self._run, pool.backend.name], len(starts), sum(starts))
            yield from (workers, start)


class RunMetrics(Reporter):
    """A reporter that turns the loop's progress into metrics, plus the evaluator's observer hooks."""

    def __init__(self, run: str, spec: OptimizationSpec, ledger: Ledger,
                 registry: CollectorRegistry | None = None) -> None:
        self.run = run
        self.registry = registry or CollectorRegistry()
        self.pool: Any = None  # the sandbox pool, once the runner has one
        r = self.registry
        self._iteration_score = Gauge("w4s_iteration_validation_score",
                                      "Best validation score among an iteration's candidates (0 to 1).",
                                      ["run", "iteration"], registry=r)
        self._best = Gauge("w4s_best_validation_score", "Best validation score so far (0 to 1).", ["run"],
                           registry=r)
        self._test = Gauge("w4s_test_score", "Test score of the best workflow, after the loop (0 to 1).", ["run"],
                           registry=r)
        self._iteration = Gauge("w4s_iteration", "Last completed iteration.", ["run"], registry=r)
        self._iteration_seconds = Histogram("w4s_iteration_duration_seconds", "Wall time of one iteration.",
                                            ["run"], buckets=_LONG, registry=r)
        self._evaluation_seconds = Histogram("w4s_evaluation_duration_seconds",
                                             "Wall time of evaluating one workflow on a split.", ["run"],
                                             buckets=_LONG, registry=r)
        self._samples = Counter("w4s_samples_evaluated_total", "Samples a workflow was run on.", ["run"],
                                registry=r)
        self._errors = Counter("w4s_workflow_errors_total", "Samples whose workflow failed, by error kind.",
                               ["run", "kind"], registry=r)
        # Series present at 0 from the start: rate() needs a sample before the first event, and the sandbox
        # error-rate alert must read "no failures" rather than "no data".
        for family in (self._iteration_seconds, self._evaluation_seconds, self._samples):
            family.labels(run)
        for kind in SANDBOX_FAILURES:
            self._errors.labels(run, kind)
        self._info = Gauge("w4s_run_info", "One series per run, labelled with what it optimizes.",
                           ["run", "benchmark", "mode"], registry=r)
        self._info.labels(run, spec.task.benchmark, spec.mode).set(1)
        r.register(_RunCollector(run, ledger, role_models(spec), spec.budget.max_cost, lambda: self.pool))
        self._iteration_started = time.monotonic()
        self._per_iteration: dict[int, float] = {}

    # Reporter hooks -------------------------------------------------------------------------------------------
    def run_started(self, run_id: str, resumed_from: int | None) -> None:
        self._iteration_started = time.monotonic()
        if resumed_from is not None:
            self._iteration.labels(self.run).set(resumed_from)

    def example_scored(self, score: float) -> None:
        self._iteration_score.labels(self.run, "0").set(score)

    def candidate_done(self, record: CandidateRecord) -> None:
        best = max(self._per_iteration.get(record.iteration, 0.0), record.validation_score)
        self._per_iteration[record.iteration] = best
        self._iteration_score.labels(self.run, str(record.iteration)).set(best)

    def iteration_done(self, iteration: int, skipped: bool, best_score: float, cost_usd: float) -> None:
        now = time.monotonic()
        self._iteration_seconds.labels(self.run).observe(now - self._iteration_started)
        self._iteration_started = now
        self._iteration.labels(self.run).set(iteration)
        self._best.labels(self.run).set(best_score)

    def run_finished(self, result: RunResult) -> None:
        self._best.labels(self.run).set(result.best_validation_score)
        if result.test_score is not None:
            self._test.labels(self.run).set(result.test_score)

    # Evaluator observer hooks ---------------------------------------------------------------------------------
    def sample(self, error_kind: str | None) -> None:
        self._samples.labels(self.run).inc()
        if error_kind:
            self._errors.labels(self.run, error_kind).inc()

    def evaluation(self, seconds: float) -> None:
        self._evaluation_seconds.labels(self.run).observe(seconds)


class _GatewayCollector(Collector):
    def __init__(self, gateway: Any) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[Any]:
        stats = self._gateway.stats
        for name, value, text in (("requests", stats.requests, "Chat requests received."),
                                  ("cache_hits", stats.cache_hits, "Requests answered from the cache."),
                                  ("rejected", stats.rejected, "Requests refused (token, limit, budget).")):
            family = CounterMetricFamily(f"w4s_gateway_{name}", text)
            family.add_metric([], value)
            yield family
        rows = [(key.split("/", 1), usage) for key, usage in sorted(list(stats.by_model.items()))]
        yield from _usage_families("w4s_gateway_llm", ["role", "model"], rows)


def gateway_registry(gateway: Any) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_GatewayCollector(gateway))
    return registry


def serve(registry: CollectorRegistry, port: int, addr: str = "0.0.0.0") -> None:
    """/metrics on a thread of its own; it lives as long as the process."""
    start_http_server(port, addr=addr, registry=registry)
