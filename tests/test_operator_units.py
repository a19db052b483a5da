"""Unit tests of the operator's pure parts: child builders, names, conditions, pod observations, the work
queue and the metrics collector. The behaviour against a real API server is in tests/test_operator_cluster.py."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml
from prometheus_client import generate_latest
from w4s_operator import conditions as C
from w4s_operator.cache import Cache
from w4s_operator.children import (
    META_AGENT_PORT,
    accelerate_config,
    training_children,
    workflow_optimization_children,
)
from w4s_operator.metrics import Metrics
from w4s_operator.names import child_name, run_label
from w4s_operator.observe import job_state, pod_problems
from w4s_operator.queue import WorkQueue
from w4s_operator.settings import Settings

from w4s.llm.pricing import resolve_price
from w4s.resources import MetaAgentTrainingSpec, WorkflowOptimizationSpec
from w4s.spec import OptimizationSpec

SETTINGS = Settings()


def _body(kind: str = "WorkflowOptimization", name: str = "gsm", spec: dict | None = None) -> dict:
    return {"apiVersion": "w4s.io/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": "team-a", "uid": "u-123", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": spec or {}}


OPENAI = {"executors": [{"provider": "openai", "model": "gpt-4o-mini",
                         "apiKeySecret": {"name": "openai", "key": "api-key"}}]}


def _children(spec: dict | None = None, **kw):
    body = _body(spec=spec if spec is not None else OPENAI)
    parsed = WorkflowOptimizationSpec.model_validate(body["spec"])
    args = {"gateway_ip": "10.96.0.10", "meta_agent_weights": "s3://w4s/models/m",
            "start_runner": True, "running": True, "admin_token": "t" * 43, **kw}
    return {c.role: c for c in workflow_optimization_children(body, parsed, SETTINGS, **args)}


def test_every_child_is_owned_named_and_labelled_deterministically():
    first, second = _children(), _children()
    assert {r: c.obj for r, c in first.items() if r != "gatewaySecret"} == \
        {r: c.obj for r, c in second.items() if r != "gatewaySecret"}
    expected = {"runnerConfig", "gatewaySecret", "runnerAccount", "runnerRole", "runnerRoleBinding",
                "gatewayDeployment", "gatewayService", "metaAgentDeployment", "metaAgentService",
                "sandboxDeployment", "sandboxService", "sandboxNetworkPolicy", "gatewayNetworkPolicy", "runnerJob"}
    assert set(first) == expected
    for child in first.values():
        meta = child.obj["metadata"]
        assert meta["name"].startswith("gsm-") and meta["namespace"] == "team-a"
        assert meta["ownerReferences"] == [{"apiVersion": "w4s.io/v1alpha1", "kind": "WorkflowOptimization",
                                            "name": "gsm", "uid": "u-123", "controller": True,
                                            "blockOwnerDeletion": True}]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "w4s-operator"
        assert meta["labels"]["w4s.io/run"] == "gsm"


def test_the_runners_spec_resolves_every_endpoint_it_names():
    """The ConfigMap's spec is what `w4s run` reads: an operator-served meta-agent becomes an endpoint the runner
    can call and price (found by the monitoring end-to-end test: unpriced, the runner refused to start)."""
    embedded = {"executors": [{"provider": "embedded", "model": "smollm2-135m-instruct"}],
                "metaAgent": {"provider": "embedded", "model": "qwen2.5-coder-7b-instruct"}}
    for spec in (OPENAI, embedded):
        config = yaml.safe_load(_children(spec)["runnerConfig"].obj["data"]["spec.yaml"])
        parsed = OptimizationSpec.model_validate(config["spec"])
        assert parsed.meta_agent.provider == "openai-compatible"
        assert parsed.meta_agent.base_url == f"http://gsm-meta-agent:{META_AGENT_PORT}/v1"
        for endpoint in (parsed.meta_agent, *parsed.executors):
            resolve_price(endpoint)  # raises for an unknown, unpriced model
        assert resolve_price(parsed.meta_agent).input_per_mtok == 0


def test_credentials_reach_only_the_gateway_and_never_a_config_map():
    children = _children()
    config = children["runnerConfig"].obj["data"]["spec.yaml"]
    assert "apiKeySecret" not in config and "W4S_EXECUTOR_0_API_KEY" in config
    gateway_env = children["gatewayDeployment"].obj["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "W4S_EXECUTOR_0_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "openai", "key": "api-key"}}} in gateway_env
    sandbox = children["sandboxDeployment"].obj["spec"]["template"]["spec"]
    assert sandbox["runtimeClassName"] == "gvisor" and sandbox["automountServiceAccountToken"] is False
    assert "secretKeyRef" not in json.dumps(sandbox)
    runner_env = json.dumps(children["runnerJob"].obj["spec"]["template"]["spec"])
    assert "openai" not in runner_env  # the runner holds no provider key, only the gateway's admin token


def test_runner_role_patches_only_its_own_status():
    rules = _children()["runnerRole"].obj["rules"]
    assert all(rule["resourceNames"] == ["gsm"] for rule in rules)
    assert {v for rule in rules for v in rule["verbs"]} == {"get", "patch"}
    assert any(r["resources"] == ["workflowoptimizations/status"] and "patch" in r["verbs"] for r in rules)
    assert not any("patch" in r["verbs"] and r["resources"] == ["workflowoptimizations"] for r in rules)


def test_served_meta_agent_is_rewritten_to_its_service_and_external_one_is_not_served():
    served = _children()
    assert "baseUrl: http://gsm-meta-agent:8000/v1" in served["runnerConfig"].obj["data"]["spec.yaml"]
    init = served["metaAgentDeployment"].obj["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"][:3] == ["w4s", "store", "get"] and "s3://w4s/models/m" in init["command"]
    external = _children({**OPENAI, "metaAgent": {"provider": "openai", "model": "gpt-4o",
                                                  "apiKeySecret": {"name": "openai", "key": "api-key"}}})
    assert "metaAgentDeployment" not in external


def test_waiting_and_stopped_states_build_less_or_scale_to_zero():
    waiting = _children(gateway_ip=None, meta_agent_weights=None, start_runner=False)
    assert not {"runnerJob", "sandboxDeployment", "metaAgentDeployment"} & set(waiting)
    stopped = _children(running=False)
    assert stopped["runnerJob"].obj["spec"]["suspend"] is True
    assert stopped["gatewayDeployment"].obj["spec"]["replicas"] == 0
    assert stopped["sandboxDeployment"].obj["spec"]["replicas"] == 0


def test_runner_and_gateway_serve_metrics_on_a_named_port():
    children = _children()
    for role in ("runnerJob", "gatewayDeployment"):
        obj = children[role].obj
        container = (obj["spec"]["template"]["spec"]["containers"])[0]
        assert {"name": "metrics", "containerPort": 9090} in container["ports"]
        assert container["command"][-2:] == ["--metrics-port", "9090"]
    ingress = children["gatewayNetworkPolicy"].obj["spec"]["ingress"]
    assert {"ports": [{"protocol": "TCP", "port": 9090}]} in ingress  # Prometheus, from wherever it runs
    assert all("from" in rule for rule in ingress if rule["ports"][0]["port"] == 8080)


def test_sandbox_workers_follow_concurrency():
    spec = {**OPENAI, "sandbox": {"concurrency": 20, "samplesPerWorker": 8}}
    assert _children(spec)["sandboxDeployment"].obj["spec"]["replicas"] == 3


def test_long_names_stay_valid_and_distinct():
    a, b = "x" * 200 + "a", "x" * 200 + "b"
    for name in (a, b):
        assert len(child_name(name, "meta-agent")) <= 63 and len(run_label(name)) <= 63
    assert child_name(a, "runner") != child_name(b, "runner")
    assert child_name("short", "runner") == "short-runner"


def test_training_job_asks_for_gpus_on_the_selected_nodes():
    spec = MetaAgentTrainingSpec.model_validate({
        "baseModel": "s3://w4s/models/base", "trajectories": [{"uri": "s3://w4s/runs/a"}],
        "resources": {"gpus": 2, "nodeSelector": {"gpu": "h100"},
                      "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}})
    children = {c.role: c for c in training_children(_body("MetaAgentTraining", "rwr"), spec, SETTINGS,
                                                     trajectories=["s3://w4s/runs/a"], start=True, running=True)}
    pod = children["trainerJob"].obj["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["nodeSelector"] == {"gpu": "h100"} and pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["volumes"]
    assert container["command"][:2] == ["accelerate", "launch"] and "--num_processes" in container["command"]
    not_yet = training_children(_body("MetaAgentTraining", "rwr"), spec, SETTINGS, trajectories=[], start=False,
                                running=True)
    assert "trainerJob" not in {c.role for c in not_yet}


def test_condition_transition_time_moves_only_when_status_changes(monkeypatch):
    times = iter(["2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"])
    monkeypatch.setattr(C, "now", lambda: next(times))
    conds = C.Conditions([], 3)
    conds.set(C.ACCEPTED, True, "Valid")
    conds.set(C.ACCEPTED, True, "Valid", "again")
    assert conds.get(C.ACCEPTED)["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    conds.set(C.ACCEPTED, False, "secret not found!")
    assert conds.get(C.ACCEPTED)["lastTransitionTime"] == "2026-01-01T00:01:00Z"
    assert conds.get(C.ACCEPTED)["reason"] == "SecretNotFound"
    assert conds.get(C.ACCEPTED)["observedGeneration"] == 3


def test_phase_prefers_failure_then_completion_then_suspension():
    conds = C.Conditions([], 1)
    conds.set(C.ACCEPTED, True, "Valid")
    conds.set(C.META_AGENT_READY, False, "Unschedulable", "0/3 nodes")
    assert conds.phase() == ("Pending", "Unschedulable")
    conds.set(C.PROGRESSING, True, "Iterating")
    assert conds.phase() == ("Running", "Iterating")
    conds.set(C.SUSPENDED, True, "Suspended")
    assert conds.phase()[0] == "Suspended"
    conds.set(C.COMPLETE, True, "Completed")
    conds.set(C.FAILED, True, "DeadlineExceeded")
    assert conds.phase() == ("Failed", "DeadlineExceeded")


def _pod(status: dict) -> dict:
    return {"kind": "Pod", "metadata": {"name": "p", "namespace": "n"}, "status": status}


def test_pod_problems_copy_the_scheduler_and_the_kubelet():
    unschedulable = _pod({"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]})
    [problem] = pod_problems(unschedulable)
    assert problem.scheduling and "Insufficient nvidia.com/gpu" in problem.text()
    pull = _pod({"containerStatuses": [{"name": "vllm", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]})
    assert pod_problems(pull)[0].reason == "ImagePullBackOff"
    oom = _pod({"containerStatuses": [{"name": "runner", "state": {"waiting": {"reason": "ContainerCreating"}},
                                       "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]})
    [killed] = pod_problems(oom)
    assert (killed.reason, killed.exit_code, killed.container) == ("OOMKilled", 137, "runner")
    assert killed.failure_info()["exitCode"] == 137
    assert pod_problems(_pod({"phase": "Running", "containerStatuses": [
        {"name": "x", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]})) == []


def test_job_state_reads_conditions():
    assert job_state(None)[0] == "missing"
    failed = {"spec": {}, "status": {"conditions": [{"type": "Failed", "status": "True",
                                                     "reason": "BackoffLimitExceeded", "message": "6 retries"}]}}
    assert job_state(failed) == ("failed", "BackoffLimitExceeded: 6 retries")
    assert job_state({"spec": {"suspend": True}, "status": {}})[0] == "suspended"


def test_work_queue_coalesces_and_reruns_keys_changed_during_a_reconcile():
    async def scenario() -> list[str]:
        calls: list[str] = []
        gate = asyncio.Event()

        async def handler(key):
            calls.append(key)
            if len(calls) == 1:
                await gate.wait()
            return None

        queue = WorkQueue(handler, workers=4)
        queue.start()
        for _ in range(5):
            queue.add("a")
        await asyncio.sleep(0.05)
        queue.add("a")  # arrives while "a" is being reconciled: one more run, not five
        queue.add("a")
        gate.set()
        await asyncio.sleep(0.05)
        queue.add("b", delay=0.1)
        queue.add("b", delay=5)  # a later timer does not replace a sooner one
        await asyncio.sleep(0.3)
        await queue.stop()
        return calls

    assert asyncio.run(scenario()) == ["a", "a", "b"]


def test_work_queue_retries_failures_with_backoff():
    async def scenario() -> int:
        attempts = []

        async def handler(key):
            attempts.append(key)
            if len(attempts) < 3:
                raise RuntimeError("API server said no")
            return None

        queue = WorkQueue(handler, workers=1, max_backoff=0.2)
        queue.start()
        queue.add("k")
        await asyncio.sleep(1.5)
        await queue.stop()
        return len(attempts)

    assert asyncio.run(scenario()) == 3


def test_metrics_are_computed_from_the_cache_and_vanish_with_the_resource():
    cache = Cache()
    body = _body()
    body["status"] = {"phase": "Running", "iteration": 4, "bestValidationScore": "0.7500", "costUsd": "1.25",
                      "testScore": "0.6875",
                      "conditions": [{"type": "Accepted", "status": "True"}]}
    body["metadata"]["resourceVersion"] = "5"
    cache.put(body)
    metrics = Metrics(cache, lambda: 2)
    metrics.reconciles.labels("WorkflowOptimization", "success").inc()
    text = generate_latest(metrics.registry).decode()
    assert 'w4s_workflow_optimization_best_validation_score{name="gsm",namespace="team-a"} 0.75' in text
    assert 'w4s_workflow_optimization_test_score{name="gsm",namespace="team-a"} 0.6875' in text
    assert 'w4s_operator_resources{kind="WorkflowOptimization",phase="Running"} 1.0' in text
    assert 'w4s_operator_resource_conditions{condition="Accepted",kind="WorkflowOptimization",status="True"}' in text
    assert 'w4s_operator_reconciles_total{kind="WorkflowOptimization",result="success"} 1.0' in text
    assert "w4s_operator_work_queue_depth 2.0" in text
    cache.forget(body)
    text = generate_latest(metrics.registry).decode()
    assert 'name="gsm"' not in text
    assert 'w4s_operator_resources{kind="WorkflowOptimization",phase="Running"} 0.0' in text


def test_training_metrics_come_from_the_trainers_status_reports():
    cache = Cache()
    body = _body("MetaAgentTraining")
    body["status"] = {"phase": "Running", "step": 12, "totalSteps": 48, "loss": "0.8125", "learningRate": "0.00001",
                      "tokensPerSecond": "5120.5", "gpuMemoryBytes": 68719476736}
    body["metadata"]["resourceVersion"] = "3"
    cache.put(body)
    text = generate_latest(Metrics(cache, lambda: 0).registry).decode()
    for name, value in [("step", "12.0"), ("total_steps", "48.0"), ("loss", "0.8125"), ("learning_rate", "1e-05"),
                        ("tokens_per_second", "5120.5"), ("gpu_memory_bytes", "6.8719476736e+10")]:
        assert f'w4s_meta_agent_training_{name}{{name="gsm",namespace="team-a"}} {value}' in text
    assert 'w4s_operator_resources{kind="MetaAgentTraining",phase="Running"} 1.0' in text


@pytest.mark.parametrize("stale,fresh,kept", [("7", "5", "7"), ("5", "7", "7")])
def test_cache_keeps_the_newer_copy(stale, fresh, kept):
    cache = Cache()
    for version in (stale, fresh):
        body = _body()
        body["metadata"]["resourceVersion"] = version
        cache.put(body)
    assert cache.get("WorkflowOptimization", "team-a", "gsm")["metadata"]["resourceVersion"] == kept


@pytest.mark.parametrize(("gpus", "lora", "distribution", "expected"), [
    (1, None, "auto", "single"), (2, None, "auto", "fsdp"), (2, {"rank": 8}, "auto", "ddp"),
    (4, None, "ddp", "ddp"), (2, {"rank": 8}, "fsdp", "fsdp"), (0, None, "auto", "single")])
def test_accelerate_config_shards_full_fine_tuning_across_gpus(gpus, lora, distribution, expected):
    spec = MetaAgentTrainingSpec.model_validate({
        "baseModel": "s3://w4s/models/base", "trajectories": [{"uri": "s3://w4s/runs/a"}],
        "resources": {"gpus": gpus, "distribution": distribution}, **({"lora": lora} if lora else {})})
    assert accelerate_config(spec) == expected


@pytest.mark.parametrize(("cpu", "gpus", "threads"), [("8", 1, "8"), ("16", 2, "8"), ("500m", 1, "1"), ("3", 2, "1")])
def test_training_threads_follow_the_cpu_limit(cpu, gpus, threads):
    spec = {"baseModel": "s3://w4s/models/base", "trajectories": [{"uri": "s3://w4s/runs/a"}],
            "resources": {"gpus": gpus, "cpu": cpu}}
    children = training_children(_body("MetaAgentTraining", spec=spec), MetaAgentTrainingSpec.model_validate(spec),
                                 SETTINGS, trajectories=["s3://w4s/runs/a"], start=True, running=True)
    (job,) = [c.obj for c in children if c.obj["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "OMP_NUM_THREADS", "value": threads}]
