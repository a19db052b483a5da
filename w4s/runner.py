"""Run or resume one optimization from a spec: the entry point shared by ``w4s optimize`` and the operator's
runner Job. It owns the store, the clients, the worker pool and the run's status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from w4s import __version__
from w4s.benchmarks.sources import LoadedTask, load_task
from w4s.benchmarks.splits import Splits, split_for
from w4s.endpoints import Endpoints, executor_role
from w4s.errors import BudgetExceeded, ProviderError, SpecError, W4SError
from w4s.evaluation import Evaluator
from w4s.llm.ledger import Ledger
from w4s.loop import Optimizer, usage_by_role
from w4s.metaagent.agent import MetaAgent
from w4s.metrics import RunMetrics
from w4s.metrics import serve as serve_metrics
from w4s.records import Manifest, RunResult, RunStatus
from w4s.reporting import Fanout, Reporter
from w4s.runstore import RunStore, now
from w4s.sandbox.backends import backend_name, describe_backend
from w4s.sandbox.remote import RemoteConfig
from w4s.sandbox.session import session_for_run
from w4s.spec import OptimizationSpec
from w4s.store import open_store

# Changing these between a crash and a restart cannot change what was already recorded.
RESUMABLE_FIELDS = {"iterations", "budget", "store"}
RESUMABLE_SANDBOX_FIELDS = {"concurrency", "sampleTimeoutSeconds"}


def spec_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Field paths whose change would make a resumed run inconsistent with its records."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_FIELDS:
            continue
        a, b = old.get(key), new.get(key)
        if key == "sandbox" and isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"sandbox.{k}" for k in sorted(set(a) | set(b))
                      if k not in RESUMABLE_SANDBOX_FIELDS and a.get(k) != b.get(k)]
        elif a != b:
            diffs.append(key)
    return diffs


def run_id_of(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1] or "run"


def _splits(spec: OptimizationSpec) -> tuple[LoadedTask, Splits]:
    task = load_task(spec.task)
    return task, split_for(task.samples, spec.splits, task.benchmark.sizes)


def _partial_result(runs: RunStore, run_id: str, status: RunStatus, reason: str, ledger: Ledger) -> RunResult:
    checkpoints = runs.checkpoints()
    last = checkpoints[-1].state if checkpoints else None
    return RunResult(
        run_id=run_id, status=status, reason=reason,
        iterations_completed=last.iteration if last else -1,
        skipped_iterations=[c.iteration for c in checkpoints if c.skipped],
        best_iteration=last.best.iteration if last else 0, best_candidate=last.best.candidate if last else None,
        best_validation_score=last.best.score if last else 0.0, test_score=None, test_size=0,
        cost_usd=ledger.total_cost, usage=usage_by_role(ledger))


async def run_optimization(spec: OptimizationSpec, reporter: Reporter | None = None,
                           log: Callable[[str], None] = print, metrics_port: int | None = None,
                           registry: CollectorRegistry | None = None) -> RunResult:
    """``metrics_port`` serves the run's Prometheus metrics (w4s.metrics) on that port while it runs; they are
    registered in ``registry`` when one is given (tests read them there)."""
    if not spec.store:
        raise SpecError("store: a run directory or store URI is required (CLI: --run-dir)")
    store = open_store(spec.store)
    runs = RunStore(store)
    run_id = run_id_of(store.uri)
    # In a cluster the operator gives the runner its gateway and sandbox pods; it then holds no executor key.
    remote = RemoteConfig.from_env()
    Endpoints.check(spec, executors=remote is None)
    sandbox_kind = describe_backend(backend_name(spec.sandbox)) if remote is None else \
        f"remote (sandbox pods of {remote.sandbox_service}, runtime class {spec.sandbox.runtime_class_name})"
    task, splits = _splits(spec)
    benchmark = task.benchmark
    log(f"{benchmark.name}: {len(task.samples)} samples ({task.source}); splits private {len(splits.private)}, "
        f"public {len(splits.public)}, test {len(splits.test)}")
    wire = spec.model_dump(mode="json", by_alias=True)
    manifest = runs.read_manifest()
    if manifest is not None:
        if manifest.splits_fingerprint != splits.fingerprint():
            raise SpecError(f"store {store.uri} holds a run with different splits; use a new run directory")
        diffs = spec_differences(manifest.spec, wire)
        if diffs:
            raise SpecError(f"store {store.uri} holds run {manifest.run_id} with a different spec "
                            f"(fields: {', '.join(diffs)}); resume with the same spec or use a new run directory")
        done = runs.read_result()
        if done is not None and done.iterations_completed >= spec.iterations:
            log(f"run {manifest.run_id} is already complete")
            return done
        manifest = manifest.model_copy(update={"spec": wire, "status": "running", "reason": None,
                                               "sandbox": sandbox_kind})
    else:
        manifest = Manifest(run_id=run_id, w4s_version=__version__, created=now(), updated=now(),
                            status="running", splits_fingerprint=splits.fingerprint(), spec=wire,
                            data_source=task.source, sandbox=sandbox_kind)
    runs.write_manifest(manifest)

    ledger = Ledger(spec.budget.max_cost)
    metrics = RunMetrics(manifest.run_id, spec, ledger, registry)
    if metrics_port is not None:
        serve_metrics(metrics.registry, metrics_port)
        log(f"metrics on :{metrics_port}/metrics")
    reporter = Fanout(reporter, metrics) if reporter else metrics
    try:
        async with Endpoints(spec, ledger, log, executors=remote is None) as endpoints, \
                session_for_run(spec.sandbox, endpoints.executors, spec.seed, log, remote, ledger,
                                executor_role(0, spec.executors[0].name)) as sandbox:
            metrics.pool = sandbox.pool
            optimizer = Optimizer(
                spec=spec, run_id=manifest.run_id, benchmark=benchmark, splits=splits,
                meta=MetaAgent(endpoints.meta, spec.meta_agent, spec.seed),
                evaluator=Evaluator(sandbox, benchmark, metrics), ledger=ledger, runs=runs, reporter=reporter)
            result = await optimizer.run()
    except BudgetExceeded as err:
        result = _partial_result(runs, manifest.run_id, "stopped", str(err), ledger)
    except ProviderError as err:
        result = _partial_result(runs, manifest.run_id, "failed", f"LLM provider error: {err}", ledger)
    except W4SError as err:
        runs.write_manifest(manifest.model_copy(update={"status": "failed", "reason": str(err)}))
        raise
    finally:
        await benchmark.aclose()
    runs.write_manifest(manifest.model_copy(update={"status": result.status, "reason": result.reason}))
    return result
