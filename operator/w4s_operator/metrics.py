"""The operator's Prometheus metrics.

Counters and histograms count what the operator did. Everything about a resource (its phase, conditions,
iteration, score, cost) is computed from the cache at scrape time, so a deleted resource's series vanish
with it and no counter can drift from the truth.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from w4s_operator.cache import Cache

KINDS = ("WorkflowOptimization", "MetaAgentTraining")
_PHASES = ("Pending", "Running", "Suspended", "Complete", "Failed")
# Status field -> the per-resource gauge it feeds (the runner's and the trainer's reports, through the status).
_PER_RESOURCE = {
    "iteration": ("w4s_workflow_optimization_iteration", "Last completed iteration."),
    "bestValidationScore": ("w4s_workflow_optimization_best_validation_score",
                            "Best validation score so far (0 to 1)."),
    "testScore": ("w4s_workflow_optimization_test_score",
                  "Test score of the best workflow, once the run has ended (0 to 1)."),
    "costUsd": ("w4s_workflow_optimization_cost_usd", "Dollars spent so far."),
    "step": ("w4s_meta_agent_training_step", "Optimizer steps done."),
    "totalSteps": ("w4s_meta_agent_training_total_steps", "Optimizer steps planned."),
    "loss": ("w4s_meta_agent_training_loss", "Last reported training loss."),
    "learningRate": ("w4s_meta_agent_training_learning_rate", "Learning rate at the last reported step."),
    "tokensPerSecond": ("w4s_meta_agent_training_tokens_per_second",
                        "Training throughput, tokens per second, all GPUs together."),
    "gpuMemoryBytes": ("w4s_meta_agent_training_gpu_memory_bytes", "Peak GPU memory of training process 0."),
}


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


class ResourceCollector(Collector):
    def __init__(self, cache: Cache, queue_depth: Callable[[], int]) -> None:
        self._cache = cache
        self._queue_depth = queue_depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        phases = GaugeMetricFamily("w4s_operator_resources", "Resources by kind and phase.",
                                   labels=["kind", "phase"])
        conditions = GaugeMetricFamily("w4s_operator_resource_conditions",
                                       "Resources by kind, condition type and condition status.",
                                       labels=["kind", "condition", "status"])
        per = {field: GaugeMetricFamily(name, text, labels=["namespace", "name"])
               for field, (name, text) in _PER_RESOURCE.items()}
        info = GaugeMetricFamily("w4s_operator_resource_info", "One series per resource, labelled with its phase.",
                                 labels=["kind", "namespace", "name", "phase"])
        for kind in KINDS:
            objects = self._cache.of_kind(kind)
            counted = Tally((o.get("status") or {}).get("phase") or "Pending" for o in objects)
            for phase in sorted(set(_PHASES) | set(counted)):
                phases.add_metric([kind, phase], counted.get(phase, 0))
            tally = Tally((c["type"], c["status"]) for o in objects
                          for c in (o.get("status") or {}).get("conditions") or [])
            for (type_, status), n in sorted(tally.items()):
                conditions.add_metric([kind, type_, status], n)
            for obj in objects:
                meta, status = obj["metadata"], obj.get("status") or {}
                info.add_metric([kind, meta["namespace"], meta["name"], status.get("phase") or "Pending"], 1)
                for field, family in per.items():
                    value = _number(status.get(field))
                    if value is not None:
                        family.add_metric([meta["namespace"], meta["name"]], value)
        depth = GaugeMetricFamily("w4s_operator_work_queue_depth", "Resources waiting for a reconcile.")
        depth.add_metric([], self._queue_depth())
        yield from (phases, conditions, info, depth, *per.values())


class Metrics:
    def __init__(self, cache: Cache, queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter("w4s_operator_reconciles_total", "Reconciles by kind and result.",
                                  ["kind", "result"], registry=self.registry)
        self.duration = Histogram("w4s_operator_reconcile_duration_seconds", "Time one reconcile takes.",
                                  ["kind"], registry=self.registry,
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.registry.register(ResourceCollector(cache, queue_depth))
