"""The operator against a real kube-apiserver, etcd and kube-controller-manager (tests/kube.py), running as its
own process with ONLY the permissions of the Helm chart's ClusterRole (charts/w4s/files/operator-rules.yaml):
a rule missing there fails these tests. There is no kubelet, so pods never run; where a test needs what a
kubelet or scheduler would report, it writes that pod status itself, and where it needs the runner's or the
trainer's progress, it writes it with that workload's own ServiceAccount token (which also proves the Role the
operator made for it)."""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import scripted
from kube import apply_crds
from operator_harness import (
    Api,
    ApiError,
    OperatorProcess,
    ensure_gvisor_runtime_class,
    namespace,
    operator_identity,
    service_account_token,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
V = "w4s.io/v1alpha1"
WFO, MAT = "WorkflowOptimization", "MetaAgentTraining"


def _example(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / name).read_text())


@pytest.fixture(scope="module")
def admin(kube_cluster) -> Iterator[Api]:
    apply_crds(kube_cluster)
    with kube_cluster.client() as client:
        api = Api(client)
        ensure_gvisor_runtime_class(api)
        yield api


@pytest.fixture(scope="module")
def operator_kubeconfig(kube_cluster, admin, tmp_path_factory) -> Path:
    _, token = operator_identity(admin, "tests")
    return kube_cluster.write_token_kubeconfig(tmp_path_factory.mktemp("operator") / "kubeconfig", token)


@pytest.fixture
def ns(admin) -> Iterator[str]:
    name = namespace(admin)
    yield name
    admin.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


@pytest.fixture
def operator(operator_kubeconfig, ns, tmp_path) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(operator_kubeconfig, [ns], tmp_path / "operator.log").start()
    yield proc
    proc.stop()
    print(f"operator log:\n{proc.log_tail(60)}")  # shown by pytest when the test failed


def _apply(admin: Api, ns: str, doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = ns
    return admin.create(doc)


def _get(admin: Api, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    return admin.get(V, kind, ns, name)


def _condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def _wait_condition(admin: Api, ns: str, kind: str, name: str, type_: str, status: str, reason: str | None = None,
                    timeout: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = _get(admin, ns, kind, name)
        cond = _condition(obj, type_)
        if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
            return obj
        return None
    return wait_for(check, f"{kind} {name}: {type_}={status} ({reason})", timeout=timeout)


def _workload_api(kube_cluster, admin: Api, ns: str, account: str) -> Api:
    """The API as the runner's or trainer's ServiceAccount: what the operator's Role lets that workload do."""
    return Api(kube_cluster.client(token=service_account_token(admin, ns, account)))


RBAC = "rbac.authorization.k8s.io/v1"
CHILDREN = [("v1", "ConfigMap", "spec"), ("v1", "Secret", "gateway"), ("v1", "ServiceAccount", "runner"),
            (RBAC, "Role", "runner"), (RBAC, "RoleBinding", "runner"),
            ("apps/v1", "Deployment", "gateway"), ("v1", "Service", "gateway"), ("apps/v1", "Deployment", "sandbox"),
            ("v1", "Service", "sandbox"), ("networking.k8s.io/v1", "NetworkPolicy", "sandbox"),
            ("networking.k8s.io/v1", "NetworkPolicy", "gateway")]
SERVED = [("apps/v1", "Deployment", "meta-agent"), ("v1", "Service", "meta-agent")]
RUNNER = [("batch/v1", "Job", "runner")]
TRAINER = [("v1", "ConfigMap", "trainer"), ("v1", "ServiceAccount", "trainer"), (RBAC, "Role", "trainer"),
           (RBAC, "RoleBinding", "trainer"),
           ("batch/v1", "Job", "trainer")]


def _wait_children(admin: Api, ns: str, owner: dict[str, Any], expected: list[tuple[str, str, str]],
                   timeout: float = 30) -> None:
    uid, name = owner["metadata"]["uid"], owner["metadata"]["name"]

    def missing() -> list[str]:
        gone = []
        for api_version, kind, suffix in expected:
            obj = admin.get(api_version, kind, ns, f"{name}-{suffix}")
            refs = (obj or {}).get("metadata", {}).get("ownerReferences") or []
            if not any(r["uid"] == uid and r.get("controller") for r in refs):
                gone.append(f"{kind}/{name}-{suffix}")
        return gone

    wait_for(lambda: ["all there"] if not (gone := missing()) else print(gone), f"children of {name}",
             timeout=timeout)


def test_examples_chain_collect_train_optimize_with_only_the_charts_permissions(kube_cluster, admin, ns, operator):
    """The three examples, applied together, progress in order: collection runs; the training waits for its
    trajectories, then runs on a GPU node; the optimization waits for the training's checkpoint, then serves
    it. Every child carries an ownerReference; every status step is visible in conditions."""
    admin.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "openai", "namespace": ns},
                  "stringData": {"api-key": "sk-test-not-real"}})
    collect = _apply(admin, ns, _example("wfo-embedded.yaml"))
    training = _apply(admin, ns, _example("mat-rwr.yaml"))
    optimize = _apply(admin, ns, _example("wfo-gsm8k-openai.yaml"))

    _wait_children(admin, ns, collect, CHILDREN + SERVED + RUNNER)
    obj = _wait_condition(admin, ns, WFO, "gsm8k-collect", "Accepted", "True")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["children"]["runnerJob"] == "Job/gsm8k-collect-runner"
    assert obj["status"]["phase"] == "Pending" and obj["status"]["reason"]  # never Pending without a reason
    _wait_condition(admin, ns, MAT, "rwr-qwen-coder-7b", "Progressing", "False", "WaitingForTrajectories")
    _wait_condition(admin, ns, WFO, "gsm8k-4o-mini", "MetaAgentReady", "False", "TrainingNotComplete")
    assert admin.get("batch/v1", "Job", ns, "gsm8k-4o-mini-runner") is None
    assert admin.get("batch/v1", "Job", ns, "rwr-qwen-coder-7b-trainer") is None

    # The collection's runner reports progress, then its result, with its own token.
    runner = _workload_api(kube_cluster, admin, ns, "gsm8k-collect-runner")
    runner.patch(collect, {"status": {"iteration": 1, "iterations": 20, "bestValidationScore": "0.6250"}}, "status")
    obj = _wait_condition(admin, ns, WFO, "gsm8k-collect", "Progressing", "True", "Iterating")
    assert "iteration 1/20" in _condition(obj, "Progressing")["message"]
    runner.patch(collect, {"status": {"iteration": 20, "runUri": "s3://w4s/runs/collect",
                                      "result": {"status": "completed", "reason": "20 iterations"}}}, "status")
    obj = _wait_condition(admin, ns, WFO, "gsm8k-collect", "Complete", "True", "Completed")
    assert obj["status"]["phase"] == "Complete" and obj["status"]["completionTime"]
    wait_for(lambda: admin.get("apps/v1", "Deployment", ns, "gsm8k-collect-meta-agent")["spec"]["replicas"] == 0,
             "the finished run's servers scaled to zero")
    wait_for(lambda: admin.get("batch/v1", "Job", ns, "gsm8k-collect-runner")["spec"]["suspend"] is True,
             "the finished run's Job suspended")

    # Trajectories are there: the training's GPU Job appears.
    _wait_children(admin, ns, training, TRAINER)
    job = admin.get("batch/v1", "Job", ns, "rwr-qwen-coder-7b-trainer")
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod_spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert "s3://w4s/runs/collect" in admin.get("v1", "ConfigMap", ns, "rwr-qwen-coder-7b-trainer")["data"][
        "training.yaml"]
    trainer = _workload_api(kube_cluster, admin, ns, "rwr-qwen-coder-7b-trainer")
    trainer.patch(training, {"status": {"step": 10, "totalSteps": 40, "progress": "10/40", "loss": "0.8123"}},
                  "status")
    _wait_condition(admin, ns, MAT, "rwr-qwen-coder-7b", "Progressing", "True", "Training")
    trainer.patch(training, {"status": {"step": 40, "checkpointUri": "s3://w4s/ckpt/rwr",
                                        "result": {"status": "completed", "reason": "4 epochs"}}}, "status")
    _wait_condition(admin, ns, MAT, "rwr-qwen-coder-7b", "Complete", "True")

    # The checkpoint exists: the optimization serves it and starts its runner.
    _wait_children(admin, ns, optimize, CHILDREN + SERVED + RUNNER)
    served = admin.get("apps/v1", "Deployment", ns, "gsm8k-4o-mini-meta-agent")
    assert "s3://w4s/ckpt/rwr" in served["spec"]["template"]["spec"]["initContainers"][0]["command"]
    _wait_condition(admin, ns, WFO, "gsm8k-4o-mini", "MetaAgentReady", "False", "Starting")


def test_runner_token_may_patch_only_its_own_status(kube_cluster, admin, ns, operator):
    mine = _apply(admin, ns, _example("wfo-embedded.yaml"))
    other_doc = _example("wfo-embedded.yaml")
    other_doc["metadata"]["name"] = "other"
    other = _apply(admin, ns, other_doc)
    _wait_children(admin, ns, mine, [("rbac.authorization.k8s.io/v1", "RoleBinding", "runner")])
    runner = _workload_api(kube_cluster, admin, ns, "gsm8k-collect-runner")
    runner.patch(mine, {"status": {"iteration": 0}}, "status")
    with pytest.raises(ApiError) as spec_write:
        runner.patch(mine, {"spec": {"iterations": 1}})
    with pytest.raises(ApiError) as other_write:
        runner.patch(other, {"status": {"iteration": 5}}, "status")
    with pytest.raises(ApiError) as secret_read:
        runner.get("v1", "Secret", ns, "gsm8k-collect-gateway")
    assert spec_write.value.status == other_write.value.status == secret_read.value.status == 403


def test_scheduling_and_container_failures_are_copied_into_conditions(admin, ns, operator):
    doc = _example("mat-rwr.yaml")
    doc["spec"]["trajectories"] = [{"uri": "s3://w4s/runs/collect"}]
    doc["spec"].pop("preRunningDeadlineSeconds")
    training = _apply(admin, ns, doc)
    _wait_children(admin, ns, training, TRAINER)
    pod = wait_for(lambda: (admin.list("v1", "Pod", ns, "job-name=rwr-qwen-coder-7b-trainer") or [None])[0],
                   "the job controller's trainer pod")
    pod.update(apiVersion="v1", kind="Pod")  # list items carry neither
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available."
    admin.patch(pod, {"status": {"conditions": [{"type": "PodScheduled", "status": "False",
                                                 "reason": "Unschedulable", "message": message}]}}, "status")
    obj = _wait_condition(admin, ns, MAT, "rwr-qwen-coder-7b", "PodScheduled", "False", "Unschedulable")
    assert _condition(obj, "PodScheduled")["message"] == message
    assert obj["status"]["phase"] == "Pending" and obj["status"]["reason"] == "Unschedulable"

    admin.patch(pod, {"status": {"conditions": [{"type": "PodScheduled", "status": "True"}], "containerStatuses": [{
        "name": "trainer", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}}]}},
        "status")
    obj = _wait_condition(admin, ns, MAT, "rwr-qwen-coder-7b", "Progressing", "False", "ImagePullBackOff")
    assert "Back-off pulling image" in _condition(obj, "Progressing")["message"]
    assert _condition(obj, "PodScheduled")["status"] == "True"

    admin.patch(pod, {"status": {"phase": "Failed", "containerStatuses": [{
        "name": "trainer", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
        "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}}, "status")
    obj = _wait_condition(admin, ns, MAT, "rwr-qwen-coder-7b", "Progressing", "False", "OOMKilled")
    assert "exit code 137" in _condition(obj, "Progressing")["message"]


def test_missing_secret_runtime_class_and_training_are_conditions(admin, ns, operator):
    doc = _example("wfo-gsm8k-openai.yaml")
    doc["spec"]["sandbox"]["runtimeClassName"] = "kata-not-installed"
    doc["spec"]["metaAgent"]["fromTraining"] = "nope"
    _apply(admin, ns, doc)
    obj = _wait_condition(admin, ns, WFO, "gsm8k-4o-mini", "Accepted", "False", "SecretNotFound")
    assert "spec.executors[0].apiKeySecret" in _condition(obj, "Accepted")["message"]
    event = wait_for(lambda: [e for e in admin.list("v1", "Event", ns) if e["reason"] == "SecretNotFound"],
                     "a Warning event")[0]
    assert event["type"] == "Warning" and event["involvedObject"]["uid"] == obj["metadata"]["uid"]
    admin.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "openai", "namespace": ns},
                  "stringData": {"api-key": "sk-test-not-real"}})
    obj = _wait_condition(admin, ns, WFO, "gsm8k-4o-mini", "Accepted", "True", timeout=60)
    obj = _wait_condition(admin, ns, WFO, "gsm8k-4o-mini", "SandboxReady", "False", "RuntimeClassNotFound")
    assert "kata-not-installed" in _condition(obj, "SandboxReady")["message"]
    assert _condition(obj, "MetaAgentReady")["reason"] == "TrainingNotFound"
    assert admin.get("batch/v1", "Job", ns, "gsm8k-4o-mini-runner") is None


def test_suspend_stops_and_resumes(admin, ns, operator):
    wfo = _apply(admin, ns, _example("wfo-embedded.yaml"))
    _wait_children(admin, ns, wfo, CHILDREN + SERVED + RUNNER)
    admin.patch(wfo, {"spec": {"suspend": True}})
    obj = _wait_condition(admin, ns, WFO, "gsm8k-collect", "Suspended", "True")
    assert obj["status"]["phase"] == "Suspended"
    assert admin.get("batch/v1", "Job", ns, "gsm8k-collect-runner")["spec"]["suspend"] is True
    assert admin.get("apps/v1", "Deployment", ns, "gsm8k-collect-sandbox")["spec"]["replicas"] == 0
    admin.patch(wfo, {"spec": {"suspend": False}})
    _wait_condition(admin, ns, WFO, "gsm8k-collect", "Suspended", "False")
    wait_for(lambda: admin.get("batch/v1", "Job", ns, "gsm8k-collect-runner")["spec"]["suspend"] is False,
             "the runner Job resumed")
    assert admin.get("apps/v1", "Deployment", ns, "gsm8k-collect-sandbox")["spec"]["replicas"] == 2


def test_pre_running_deadline_fails_the_resource_and_ttl_deletes_it_with_its_children(admin, ns, operator):
    doc = _example("wfo-embedded.yaml")
    doc["spec"].update(preRunningDeadlineSeconds=3, ttlSecondsAfterFinished=2)
    wfo = _apply(admin, ns, doc)
    obj = _wait_condition(admin, ns, WFO, "gsm8k-collect", "Failed", "True", "PreRunningDeadlineExceeded")
    assert obj["status"]["phase"] == "Failed"
    series = f'w4s_operator_resource_info{{kind="WorkflowOptimization",name="gsm8k-collect",namespace="{ns}"'
    # The counter moves just after the status write the test saw: poll, don't race it.
    success = 'w4s_operator_reconciles_total{kind="WorkflowOptimization",result="success"}'
    wait_for(lambda: series in (m := operator.metrics()) and success in m, "the resource's series on /metrics")
    wait_for(lambda: _get(admin, ns, WFO, "gsm8k-collect") is None, "deletion after the TTL", timeout=30)
    _wait_gone(admin, ns, wfo)
    wait_for(lambda: series not in operator.metrics(), "the deleted resource's series gone from /metrics")


def _wait_gone(admin: Api, ns: str, owner: dict[str, Any]) -> None:
    """The garbage collector removes every child once the owner is gone."""
    name = owner["metadata"]["name"]

    def left() -> list[str]:
        found = []
        for api_version, kind, suffix in CHILDREN + SERVED + RUNNER + TRAINER:
            if admin.get(api_version, kind, ns, f"{name}-{suffix}") is not None:
                found.append(f"{kind}/{name}-{suffix}")
        return found

    wait_for(lambda: not left() or None, f"garbage collection of {name}'s children", timeout=60)


def test_delete_removes_every_child_and_no_finalizer_holds_it(admin, ns, operator):
    wfo = _apply(admin, ns, _example("wfo-embedded.yaml"))
    _wait_children(admin, ns, wfo, CHILDREN + SERVED + RUNNER)
    assert not _get(admin, ns, WFO, "gsm8k-collect")["metadata"].get("finalizers")
    operator.stop()  # even with the operator down, deletion completes
    admin.delete(wfo)
    wait_for(lambda: _get(admin, ns, WFO, "gsm8k-collect") is None, "the resource gone", timeout=10)
    _wait_gone(admin, ns, wfo)


def _children_state(admin: Api, ns: str, names: list[str]) -> dict[str, Any]:
    """Every object the operator made in the namespace, by kind and name, with the fields it sets."""
    state: dict[str, Any] = {}
    for api_version, kind in {(a, k) for a, k, _ in CHILDREN + SERVED + RUNNER}:
        for obj in admin.list(api_version, kind, ns, "app.kubernetes.io/managed-by=w4s-operator"):
            owners = [r["name"] for r in obj["metadata"].get("ownerReferences") or []]
            state[f"{kind}/{obj['metadata']['name']}"] = (owners, obj.get("spec", {}).get("replicas"),
                                                          obj.get("spec", {}).get("suspend"),
                                                          obj.get("data") if kind != "Secret" else None)
    pods = admin.list("v1", "Pod", ns, "app.kubernetes.io/component=runner")
    state["runner pods"] = len(pods)
    for name in names:
        status = _get(admin, ns, WFO, name)["status"]
        state[f"{WFO}/{name}"] = ({c["type"]: (c["status"], c["reason"]) for c in status["conditions"]},
                                  status["children"], status["phase"])
    return state


def test_restarts_at_random_points_never_duplicate_children(kube_cluster, admin, operator_kubeconfig, tmp_path):
    """10 trials: apply three resources, SIGKILL the operator at a random moment of its reconciles, start it
    again, and compare the converged state with that of an uninterrupted operator."""
    rng = random.Random(5)
    names = ["a", "b", "c"]

    def converge(ns: str, proc: OperatorProcess) -> dict[str, Any]:
        def settled() -> dict[str, Any] | None:
            for name in names:
                obj = _get(admin, ns, WFO, name)
                if not obj or not _condition(obj, "Progressing") or "runnerJob" not in obj["status"]["children"]:
                    return None
            if admin.get("batch/v1", "Job", ns, f"{names[-1]}-runner") is None:
                return None
            first = _children_state(admin, ns, names)
            time.sleep(1.0)
            return first if first == _children_state(admin, ns, names) else None
        return wait_for(settled, "a settled state", timeout=60, interval=0.5)

    def trial(kill_after: float | None) -> dict[str, Any]:
        ns = namespace(admin, "w4s-restart")
        proc = OperatorProcess(operator_kubeconfig, [ns], tmp_path / f"{ns}.log").start()
        try:
            for name in names:
                doc = _example("wfo-embedded.yaml")
                doc["metadata"]["name"] = name
                _apply(admin, ns, doc)
            if kill_after is not None:
                time.sleep(kill_after)
                proc.kill()
                proc.start()
            state = converge(ns, proc)
            secrets = {n: admin.get("v1", "Secret", ns, f"{n}-gateway")["metadata"]["uid"] for n in names}
            time.sleep(1.0)
            assert secrets == {n: admin.get("v1", "Secret", ns, f"{n}-gateway")["metadata"]["uid"] for n in names}
            text = json.dumps(state, sort_keys=True).replace(ns, "NS")
            for name in names:  # run roots hold the resource's uid, which differs between trials
                text = text.replace(_get(admin, ns, WFO, name)["metadata"]["uid"], f"UID-{name}")
            return json.loads(text)
        finally:
            proc.stop()
            admin.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    reference = trial(None)
    assert reference["runner pods"] == len(names)
    for _ in range(10):
        assert trial(rng.uniform(0.0, 1.5)) == reference


def test_real_runner_reports_progress_with_its_own_token_scripted_llm(kube_cluster, admin, ns, operator, tmp_path,
                                                                       runner_tmp):
    """`w4s run --status-resource` (the runner Job's command), run here against a scripted OpenAI-compatible
    server, with the token of the ServiceAccount the operator made for it: the resource's status follows the
    run, and the operator turns the runner's result into Complete."""
    with scripted(iterations=2) as (_server, spec):
        wire = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        wfo = admin.create({"apiVersion": V, "kind": WFO, "metadata": {"name": "scripted", "namespace": ns},
                            "spec": {k: v for k, v in wire.items() if k != "store"}})
        _wait_children(admin, ns, wfo, [(RBAC, "RoleBinding", "runner")])
        token = service_account_token(admin, ns, "scripted-runner")
        kubeconfig = kube_cluster.write_token_kubeconfig(tmp_path / "runner-kubeconfig", token)
        config = tmp_path / "spec.yaml"
        config.write_text(yaml.safe_dump({**wire, "store": str(tmp_path / "run")}))
        done = subprocess.run([sys.executable, "-m", "w4s.cli", "run", "--config", str(config),
                               "--status-resource", f"{ns}/scripted"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "KUBECONFIG": str(kubeconfig), "TMPDIR": str(runner_tmp)})
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    obj = _wait_condition(admin, ns, WFO, "scripted", "Complete", "True", "Completed")
    status = obj["status"]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert status["iteration"] == 2 and status["iterations"] == 2
    assert status["bestValidationScore"] == f"{result['best_validation_score']:.4f}"
    assert float(status["costUsd"]) == pytest.approx(result["cost_usd"], abs=1e-6) and float(status["costUsd"]) > 0
    assert status["runUri"].endswith("/run") and status["bestWorkflowUri"].endswith("/run/best_workflow.py")
    assert set(status["usage"]) == set(result["usage"]) and status["result"]["status"] == "completed"
    assert status["phase"] == "Complete" and _condition(obj, "Progressing")["status"] == "False"
