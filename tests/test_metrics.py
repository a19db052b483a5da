"""A run's Prometheus metrics agree with the run's own records (scripted_llm: an OpenAI-compatible server stands
in for the remote providers): scores per iteration, best and test scores, spend and tokens by role and model,
workflow errors by kind, durations, and the sandbox pool."""

from __future__ import annotations

import asyncio
import json

import pytest
from harness import EXECUTOR_MODEL, META_MODEL, scripted
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from w4s.runner import run_optimization

# Iteration 2's workflow fails on every task: its dry run fails on every self-correction attempt.
RAISES = "def workflow(agent, task):\n    raise ValueError('boom')\n"
STEPS = {(1, 0, 0): ("skill", 0.6), **{(2, 0, a): ("code", RAISES) for a in range(4)}, (3, 0, 0): ("skill", 0.8)}


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_run_metrics_match_the_records_scripted_llm(tmp_path, runner_tmp, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(runner_tmp))
    registry = CollectorRegistry()
    with scripted(STEPS, iterations=3) as (_server, spec):
        spec = spec.model_copy(update={"store": str(tmp_path / "run")})
        result = asyncio.run(run_optimization(spec, log=lambda _m: None, registry=registry))
    got = _samples(registry)
    run = result.run_id

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted({"run": run, **labels}.items())))]

    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    by_iteration = {r["iteration"]: r["validation_score"] for r in records}
    assert set(by_iteration) == {1, 3}  # iteration 2 was skipped
    for iteration, score in by_iteration.items():
        assert value("w4s_iteration_validation_score", iteration=str(iteration)) == pytest.approx(score)
    w0 = json.loads((tmp_path / "run" / "checkpoints" / "iter-0000.json").read_text())["state"]["best"]["score"]
    assert value("w4s_iteration_validation_score", iteration="0") == pytest.approx(w0)  # the example workflow
    assert ("w4s_iteration_validation_score", (("iteration", "2"), ("run", run))) not in got  # skipped: no point
    assert value("w4s_workflow_errors_total", kind="SandboxDied") == 0  # present before any sandbox failure
    assert value("w4s_best_validation_score") == pytest.approx(result.best_validation_score)
    assert value("w4s_test_score") == pytest.approx(result.test_score)
    assert value("w4s_iteration") == 3
    assert value("w4s_iteration_duration_seconds_count") == 3
    for role, model in (("executor", EXECUTOR_MODEL), ("meta_agent", META_MODEL)):
        usage = result.usage[role]
        assert value("w4s_llm_cost_usd_total", role=role, model=model) == pytest.approx(usage.cost_usd)
        assert value("w4s_llm_calls_total", role=role, model=model) == usage.calls > 0
        assert value("w4s_llm_tokens_total", role=role, model=model, direction="input") == usage.input_tokens
    assert value("w4s_workflow_errors_total", kind="ValueError") >= 1  # iteration 2's dry runs
    evaluated = value("w4s_samples_evaluated_total")
    evaluations = value("w4s_evaluation_duration_seconds_count")
    assert evaluations >= 4 and evaluated >= evaluations  # W0, two iterations and the test split, at least
    assert value("w4s_sandbox_workers", backend=result_backend(tmp_path)) >= 1
    assert value("w4s_sandbox_worker_start_seconds_count", backend=result_backend(tmp_path)) >= 1
    assert value("w4s_run_info", benchmark="gsm8k", mode="optimize") == 1


def result_backend(tmp_path) -> str:
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    return "gvisor" if manifest["sandbox"].startswith("gvisor") else "process"
