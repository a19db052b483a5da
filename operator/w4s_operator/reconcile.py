"""One idempotent reconcile per resource: read the resource and what it owns, create what is missing, correct
what drifted, and write a status that tells the truth.

It is level-based: it compares the wanted state with what is there, never acts on what changed, so it gives
the same result whether it runs once or ten times, and whether the operator restarted half-way through the
previous run or not. Child names are recorded in status before the children are created, and children have
deterministic names, so a restart can never make a second runner Job or a second gateway.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from w4s.kubeapi import KubeAPI, KubeError, path_of, resource_path
from w4s.resources import API_VERSION, MetaAgentTrainingSpec, WorkflowOptimizationSpec
from w4s_operator import conditions as C
from w4s_operator.cache import Cache
from w4s_operator.children import (
    Child,
    serves_meta_agent,
    training_children,
    workflow_optimization_children,
)
from w4s_operator.names import child_name, run_label
from w4s_operator.observe import PodProblem, deployment_ready, job_state, pod_problems, started_running
from w4s_operator.settings import Settings

log = logging.getLogger("w4s.operator")

# Status fields the operator owns; the runner and the trainer own the progress fields, which are never written
# here, so neither side can overwrite the other's.
_OWNED = ("conditions", "observedGeneration", "phase", "reason", "children", "failure", "startTime",
          "completionTime")
_TERMINAL = (C.COMPLETE, C.FAILED)


class ChildNotOwned(Exception):
    """A child's name is taken by an object this resource does not own."""


@dataclass
class Outcome:
    """What a reconcile did, for the metrics and the work queue."""

    phase: str = "Pending"
    requeue_after: float | None = None
    deleted: bool = False
    created: list[str] = field(default_factory=list)


def _spec_error(err: ValidationError) -> str:
    return "; ".join(f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())


class Reconciler:
    def __init__(self, api: KubeAPI, cache: Cache, settings: Settings,
                 clock: Callable[[], float] = time.time) -> None:
        self.api = api
        self.cache = cache
        self.settings = settings
        self.clock = clock
        # uid -> child -> monotonic time it was last verified to exist: between resyncs a reconcile trusts it.
        self._verified: dict[str, dict[str, float]] = {}
        self._cluster_objects: dict[str, tuple[float, bool]] = {}

    # ---- shared steps -------------------------------------------------------------------------------------

    async def _exists_cluster_scoped(self, path: str) -> bool:
        """RuntimeClasses and the like, cached briefly: a hundred runs must not each ask on every pass."""
        seen = self._cluster_objects.get(path)
        if seen and time.monotonic() - seen[0] < 10:
            return seen[1]
        found = await self.api.get(path) is not None
        self._cluster_objects[path] = (time.monotonic(), found)
        return found

    async def _ensure(self, owner_uid: str, child: Child) -> bool:
        """Create the child if missing, else correct the fields the operator changes over a resource's life
        (replicas, Job suspend). True when something was written."""
        obj = child.obj
        current = self.cache.get(child.kind, obj["metadata"]["namespace"], child.name)
        if current is None:
            try:
                created = await self.api.create(obj)
                self.cache.put(created)
                return True
            except KubeError as err:
                if err.status != 409:
                    raise
            current = await self.api.get(path_of(obj))
            if current is None:
                return False  # deleted in between; the next pass creates it
            self.cache.put(current)
        owners = [r.get("uid") for r in current["metadata"].get("ownerReferences") or []]
        if owner_uid not in owners:
            raise ChildNotOwned(f"{child.kind} {child.name} exists and is not owned by this resource "
                                "(delete it, or wait for the garbage collector to remove a predecessor's)")
        patch = _drift(child, current)
        if patch:
            self.cache.put(await self.api.merge_patch(path_of(obj), patch))
            return True
        return False

    async def _ensure_all(self, body: dict[str, Any], children: list[Child]) -> list[str]:
        """Children of unwatched kinds, once verified, are trusted until the next resync interval, or until what
        is wanted of them changes (their content is part of the key)."""
        uid = body["metadata"]["uid"]
        now = time.monotonic()
        verified = self._verified.setdefault(uid, {})
        written = []
        for child in children:
            key = f"{child.kind}/{child.name}"
            # A Secret's value is made once and never corrected: it is not part of what is wanted.
            content = {k: v for k, v in child.obj.items() if k != "stringData"}
            wanted = f"{key}#{hash(json.dumps(content, sort_keys=True))}"
            if child.kind not in _WATCHED and now - verified.get(wanted, -1e9) < self.settings.resync_seconds:
                continue
            if await self._ensure(uid, child):
                written.append(key)
            verified[wanted] = now
        return written

    def forget(self, uid: str) -> None:
        self._verified.pop(uid, None)

    async def _post_events(self, body: dict[str, Any], conds: C.Conditions) -> None:
        """An Event for each transition worth a human's attention: failures, missing references, stuck pods
        (Warning), and the end of the run (Normal). Transitions are computed against the stored status, so a
        restarted operator does not repeat them."""
        meta = body["metadata"]
        for cond in conds.transitions:
            warning = (cond["type"] == C.FAILED and cond["status"] == "True") or \
                (cond["status"] == "False" and cond["reason"] not in _ROUTINE_REASONS)
            if not warning and not (cond["type"] == C.COMPLETE and cond["status"] == "True"):
                continue
            stamp = C.now()
            event = {
                "apiVersion": "v1", "kind": "Event", "type": "Warning" if warning else "Normal",
                "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                "involvedObject": {"apiVersion": body["apiVersion"], "kind": body["kind"], "name": meta["name"],
                                   "namespace": meta["namespace"], "uid": meta["uid"]},
                "reason": cond["reason"], "message": f"{cond['type']}={cond['status']}: {cond['message']}"[:1024],
                "source": {"component": "w4s-operator"}, "reportingComponent": "w4s-operator",
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1}
            try:
                await self.api.create(event)
            except KubeError as err:  # an Event is a courtesy: losing one must not fail the reconcile
                log.warning("cannot post event for %s/%s: %s", meta["namespace"], meta["name"], err)

    async def _write_status(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        current = body.get("status") or {}
        patch = {k: status.get(k) for k in _OWNED if status.get(k) != current.get(k)}
        if patch:
            updated = await self.api.merge_patch(path_of(body, "status"), {"status": patch})
            self.cache.put(updated)
            # Later writes of this reconcile compare with what is stored now (the cache holds the new copy).
            body["status"] = updated.get("status") or {}

    async def _delete_if_expired(self, body: dict[str, Any], spec: Any, status: dict[str, Any],
                                 outcome: Outcome) -> None:
        """TTL after Complete or Failed: deleting the resource lets the garbage collector take its children."""
        ttl = spec.ttl_seconds_after_finished
        finished = C.parse_time(status.get("completionTime"))
        if ttl is None or finished is None:
            return
        left = finished.timestamp() + ttl - self.clock()
        if left <= 0:
            await self.api.delete(path_of(body))
            outcome.deleted = True
        else:
            outcome.requeue_after = _sooner(outcome.requeue_after, left)

    def _pods(self, body: dict[str, Any], component: str) -> list[dict[str, Any]]:
        meta = body["metadata"]
        return self.cache.pods(meta["namespace"], run_label(meta["name"]), component)

    def _problems(self, body: dict[str, Any], component: str) -> list[PodProblem]:
        return [p for pod in self._pods(body, component) for p in pod_problems(pod)]

    def _deadlines(self, body: dict[str, Any], spec: Any, status: dict[str, Any], conds: C.Conditions,
                   outcome: Outcome, waiting: str) -> None:
        """preRunningDeadlineSeconds counts from creation until the workload runs; activeDeadlineSeconds from
        then on."""
        now = self.clock()
        started = C.parse_time(status.get("startTime"))
        if started is None and spec.pre_running_deadline_seconds:
            created = C.parse_time(body["metadata"]["creationTimestamp"])
            left = created.timestamp() + spec.pre_running_deadline_seconds - now
            if left <= 0:
                conds.set(C.FAILED, True, "PreRunningDeadlineExceeded",
                          f"not running {spec.pre_running_deadline_seconds} s after creation"
                          + (f"; last problem: {waiting}" if waiting else ""))
            else:
                outcome.requeue_after = _sooner(outcome.requeue_after, left)
        if started is not None and spec.active_deadline_seconds:
            left = started.timestamp() + spec.active_deadline_seconds - now
            if left <= 0:
                conds.set(C.FAILED, True, "DeadlineExceeded",
                          f"still running {spec.active_deadline_seconds} s after it started")
            else:
                outcome.requeue_after = _sooner(outcome.requeue_after, left)

    async def _parse(self, body: dict[str, Any], model: type[_Spec], status: dict[str, Any], conds: C.Conditions,
                     outcome: Outcome) -> _Spec | None:
        """The spec, or None once Accepted=False (InvalidSpec) is written: a CRD older than the models lets
        through what they refuse."""
        try:
            return model.model_validate(body.get("spec") or {})
        except ValidationError as err:
            conds.set(C.ACCEPTED, False, "InvalidSpec", _spec_error(err))
            self._finish(body, status, conds, [], outcome)
            await self._write_status(body, status)
            return None

    async def _conclude(self, body: dict[str, Any], spec: Any, status: dict[str, Any], conds: C.Conditions,
                        problems: list[PodProblem], outcome: Outcome) -> Outcome:
        """The end of every reconcile: status and phase written, Events posted, the TTL applied."""
        self._finish(body, status, conds, problems, outcome)
        await self._write_status(body, status)
        await self._post_events(body, conds)
        if outcome.phase in ("Complete", "Failed"):
            await self._delete_if_expired(body, spec, status, outcome)
        return outcome

    def _finish(self, body: dict[str, Any], status: dict[str, Any], conds: C.Conditions,
                problems: list[PodProblem], outcome: Outcome) -> None:
        if any(conds.is_true(t) for t in _TERMINAL):
            status.setdefault("completionTime", None)
            status["completionTime"] = status["completionTime"] or C.now()
            done = conds.get(C.COMPLETE if conds.is_true(C.COMPLETE) else C.FAILED)
            conds.set(C.PROGRESSING, False, done["reason"], done["message"])
            if conds.is_true(C.FAILED) and problems and not status.get("failure"):
                status["failure"] = problems[-1].failure_info()
        status["conditions"] = conds.as_list()
        status["observedGeneration"] = body["metadata"].get("generation")
        status["phase"], status["reason"] = conds.phase()
        outcome.phase = status["phase"]

    @staticmethod
    def _result(status: dict[str, Any], conds: C.Conditions, job: str, job_message: str) -> None:
        """The workload's own report (``status.result``) says how it ended; the Job's state backs it up when
        the workload died without reporting."""
        result = status.get("result") or {}
        if result.get("status") in ("completed", "stopped"):
            reason = "Completed" if result["status"] == "completed" else "Stopped"
            conds.set(C.COMPLETE, True, reason, result.get("reason") or "finished")
        elif result.get("status") == "failed":
            conds.set(C.FAILED, True, "WorkloadFailed", result.get("reason") or "the workload reported a failure")
        elif job == "complete":
            conds.set(C.COMPLETE, True, "JobComplete", job_message or "the Job completed")
        elif job == "failed":
            conds.set(C.FAILED, True, "JobFailed", job_message)

    # ---- WorkflowOptimization -----------------------------------------------------------------------------

    async def workflow_optimization(self, body: dict[str, Any]) -> Outcome:
        outcome, status, conds = Outcome(), dict(body.get("status") or {}), _conditions(body)
        meta = body["metadata"]
        spec = await self._parse(body, WorkflowOptimizationSpec, status, conds, outcome)
        if spec is None:
            return outcome
        terminal = any(conds.is_true(t) for t in _TERMINAL)
        if not conds.is_true(C.ACCEPTED):
            missing = await self._missing_secrets(meta["namespace"], spec)
            if missing:
                conds.set(C.ACCEPTED, False, "SecretNotFound", missing)
                outcome.requeue_after = 30.0
                return await self._conclude(body, spec, status, conds, [], outcome)
            conds.set(C.ACCEPTED, True, "Valid", "spec accepted")
        _suspension(conds, spec)

        weights, meta_problem = await self._meta_agent_weights(meta["namespace"], spec)
        has_runtime = await self._exists_cluster_scoped(
            resource_path("node.k8s.io/v1", "RuntimeClass", name=spec.sandbox.runtime_class_name))
        running = not spec.suspend and not terminal
        start_runner = has_runtime and (weights is not None or not serves_meta_agent(spec))
        token = secrets.token_urlsafe(32)

        def build(gateway_ip: str | None) -> list[Child]:
            return workflow_optimization_children(
                body, spec, self.settings, gateway_ip=gateway_ip, meta_agent_weights=weights,
                start_runner=start_runner, running=running, admin_token=token)

        gateway_ip = self._gateway_ip(meta)
        # Every name is recorded up front (the names do not depend on the gateway's address).
        await self._record_children(body, status, build(gateway_ip or "0.0.0.0"), conds)
        outcome.created = await self._ensure_all(body, build(gateway_ip))
        if gateway_ip is None and (gateway_ip := self._gateway_ip(meta)):
            # The gateway Service was just created with its address: build the sandbox in the same pass.
            outcome.created += await self._ensure_all(body, build(gateway_ip))

        self._observe_meta_agent(body, spec, conds, meta_problem, running)
        if not has_runtime:
            conds.set(C.SANDBOX_READY, False, "RuntimeClassNotFound",
                      f"spec.sandbox.runtimeClassName: RuntimeClass {spec.sandbox.runtime_class_name!r} does not "
                      "exist (install gVisor, or enable the chart's runtimeClass)")
        else:
            self._observe_deployment(body, conds, C.SANDBOX_READY, "sandbox", running, "sandbox workers")
        runner_problems = self._problems(body, "runner")
        job, job_message = job_state(self.cache.get("Job", meta["namespace"], child_name(meta["name"], "runner")))
        self._progress(body, spec, status, conds, job, runner_problems)
        if not terminal:
            self._result(status, conds, job, job_message)
            self._deadlines(body, spec, status, conds, outcome,
                            runner_problems[-1].text() if runner_problems else "")
        return await self._conclude(body, spec, status, conds, runner_problems, outcome)

    def _gateway_ip(self, meta: dict[str, Any]) -> str | None:
        gateway = self.cache.get("Service", meta["namespace"], child_name(meta["name"], "gateway"))
        return (gateway or {}).get("spec", {}).get("clusterIP")

    async def _missing_secrets(self, namespace: str, spec: WorkflowOptimizationSpec) -> str:
        """A missing credential is a condition the user can fix, not a crash loop of the gateway."""
        refs = [(f"spec.executors[{i}].apiKeySecret", e.api_key_secret) for i, e in enumerate(spec.executors)]
        refs.append(("spec.metaAgent.apiKeySecret", spec.meta_agent.api_key_secret))
        for where, ref in refs:
            if ref is None:
                continue
            secret = await self.api.get(resource_path("v1", "Secret", namespace, ref.name))
            if secret is None:
                return f"{where}: Secret {ref.name!r} not found in namespace {namespace}"
            if ref.key not in (secret.get("data") or {}):
                return f"{where}: Secret {ref.name!r} has no key {ref.key!r}"
        return ""

    async def _meta_agent_weights(self, namespace: str, spec: WorkflowOptimizationSpec) -> tuple[str | None, str]:
        """(weights URI, why not) for an operator-served meta-agent."""
        if not serves_meta_agent(spec):
            return None, ""
        if spec.meta_agent.weights_uri:
            return spec.meta_agent.weights_uri, ""
        name = spec.meta_agent.from_training
        if not name:
            return self.settings.meta_agent_weights, ""
        training = self.cache.get("MetaAgentTraining", namespace, name)
        if training is None:
            training = await self.api.get(resource_path(API_VERSION, "MetaAgentTraining", namespace, name))
        if training is None:
            return None, f"TrainingNotFound: spec.metaAgent.fromTraining: MetaAgentTraining {name!r} not found"
        checkpoint = (training.get("status") or {}).get("checkpointUri")
        if not (C.holds(training, C.COMPLETE) and checkpoint):
            return None, f"TrainingNotComplete: MetaAgentTraining {name!r} has no final checkpoint yet"
        return checkpoint, ""

    def _observe_meta_agent(self, body: dict[str, Any], spec: WorkflowOptimizationSpec, conds: C.Conditions,
                            problem: str, running: bool) -> None:
        if not serves_meta_agent(spec):
            conds.set(C.META_AGENT_READY, True, "ExternalEndpoint", f"{spec.meta_agent.provider}: "
                      f"{spec.meta_agent.model}")
        elif problem:
            reason, message = problem.split(": ", 1)
            conds.set(C.META_AGENT_READY, False, reason, message)
        else:
            self._observe_deployment(body, conds, C.META_AGENT_READY, "meta-agent", running, "meta-agent server")

    def _observe_deployment(self, body: dict[str, Any], conds: C.Conditions, type_: str, component: str,
                            running: bool, what: str) -> None:
        meta = body["metadata"]
        deployment = self.cache.get("Deployment", meta["namespace"], child_name(meta["name"], component))
        if not running:
            conds.set(type_, False, "ScaledDown", f"{what} stopped")
        elif deployment_ready(deployment):
            conds.set(type_, True, "Ready", f"{what} ready")
        else:
            problems = self._problems(body, component)
            if problems:
                conds.set(type_, False, problems[-1].reason, problems[-1].text())
            else:
                ready = ((deployment or {}).get("status") or {}).get("readyReplicas", 0)
                wanted = ((deployment or {}).get("spec") or {}).get("replicas", 1)
                conds.set(type_, False, "Starting", f"waiting for the {what}: {ready}/{wanted} ready")

    def _progress(self, body: dict[str, Any], spec: WorkflowOptimizationSpec, status: dict[str, Any],
                  conds: C.Conditions, job: str, problems: list[PodProblem]) -> None:
        _mark_started(status, self._pods(body, "runner"))
        if status.get("iteration") is not None and not status.get("startTime"):
            status["startTime"] = C.now()  # the runner reported progress: it runs
        if spec.suspend:
            conds.set(C.PROGRESSING, False, "Suspended", "suspended")
        elif status.get("iteration") is not None:
            best = status.get("bestValidationScore")
            conds.set(C.PROGRESSING, True, "Iterating", f"iteration {status['iteration']}/{spec.iterations}"
                      + (f", best validation score {best}" if best is not None else ""))
        elif status.get("startTime") and job == "active":
            conds.set(C.PROGRESSING, True, "RunnerStarted", "the runner is running")
        elif problems:
            conds.set(C.PROGRESSING, False, problems[-1].reason, problems[-1].text())
        elif job == "missing":
            waiting = [c["type"] for c in conds.as_list() if c["type"] in (C.META_AGENT_READY, C.SANDBOX_READY)
                       and c["status"] != "True"]
            conds.set(C.PROGRESSING, False, "WaitingForDependencies",
                      "runner not started: waiting for " + (", ".join(waiting) or "its children"))
        else:
            conds.set(C.PROGRESSING, False, "Pending", "the runner pod has not started yet")

    async def _record_children(self, body: dict[str, Any], status: dict[str, Any], children: list[Child],
                               conds: C.Conditions) -> None:
        """Names go into status before the objects exist, so whoever reads the resource after a crash knows
        what it owns; the conditions so far (Accepted) go with them."""
        names = dict(status.get("children") or {})
        names.update({c.role: f"{c.kind}/{c.name}" for c in children})
        if names != (status.get("children") or {}):
            status["children"] = names
            await self._write_status(body, {**(body.get("status") or {}), "children": names,
                                            "conditions": conds.as_list(),
                                            "observedGeneration": body["metadata"].get("generation")})

    # ---- MetaAgentTraining --------------------------------------------------------------------------------

    async def meta_agent_training(self, body: dict[str, Any]) -> Outcome:
        outcome, status, conds = Outcome(), dict(body.get("status") or {}), _conditions(body)
        meta = body["metadata"]
        spec = await self._parse(body, MetaAgentTrainingSpec, status, conds, outcome)
        if spec is None:
            return outcome
        terminal = any(conds.is_true(t) for t in _TERMINAL)
        uris, waiting = self._trajectory_uris(meta["namespace"], spec)
        if waiting.startswith("SourceNotFound"):
            conds.set(C.ACCEPTED, False, "SourceNotFound", waiting.split(": ", 1)[1])
        else:
            conds.set(C.ACCEPTED, True, "Valid", "spec accepted")
        _suspension(conds, spec)
        start = not waiting
        running = not spec.suspend and not terminal
        children = training_children(body, spec, self.settings, trajectories=uris, start=start, running=running)
        await self._record_children(body, status, children, conds)
        outcome.created = await self._ensure_all(body, children)

        problems = self._problems(body, "trainer")
        scheduling = [p for p in problems if p.scheduling]
        pods = self._pods(body, "trainer")
        if scheduling:
            conds.set(C.POD_SCHEDULED, False, scheduling[-1].reason, scheduling[-1].message)
        elif any(C.holds(pod, "PodScheduled") for pod in pods):
            conds.set(C.POD_SCHEDULED, True, "Scheduled", "the trainer pod is on a node")
        _mark_started(status, pods)
        job, job_message = job_state(self.cache.get("Job", meta["namespace"], child_name(meta["name"], "trainer")))
        if spec.suspend:
            conds.set(C.PROGRESSING, False, "Suspended", "suspended")
        elif waiting:
            reason, message = waiting.split(": ", 1)
            conds.set(C.PROGRESSING, False, reason, message)
        elif status.get("step") is not None:
            conds.set(C.PROGRESSING, True, "Training", f"step {status['step']}/{status.get('totalSteps', '?')}")
        elif problems:
            conds.set(C.PROGRESSING, False, problems[-1].reason, problems[-1].text())
        else:
            conds.set(C.PROGRESSING, False, "Pending", "the trainer pod has not started yet")
        if not terminal:
            self._result(status, conds, job, job_message)
            self._deadlines(body, spec, status, conds, outcome, problems[-1].text() if problems else "")
        return await self._conclude(body, spec, status, conds, problems, outcome)

    def _trajectory_uris(self, namespace: str, spec: MetaAgentTrainingSpec) -> tuple[list[str], str]:
        """Store URIs of the trajectories, or why they are not there yet ("Reason: message")."""
        uris = []
        for i, source in enumerate(spec.trajectories):
            if source.uri:
                uris.append(source.uri)
                continue
            wfo = self.cache.get("WorkflowOptimization", namespace, source.workflow_optimization or "")
            if wfo is None:
                return [], (f"SourceNotFound: spec.trajectories[{i}].workflowOptimization: "
                            f"WorkflowOptimization {source.workflow_optimization!r} not found")
            wstatus = wfo.get("status") or {}
            if not C.holds(wfo, C.COMPLETE) or not wstatus.get("runUri"):
                return [], (f"WaitingForTrajectories: WorkflowOptimization {source.workflow_optimization!r} "
                            "has not completed")
            uris.append(wstatus["runUri"])
        return uris, ""


_Spec = TypeVar("_Spec", WorkflowOptimizationSpec, MetaAgentTrainingSpec)
_WATCHED = {"Job", "Deployment", "Service"}
# False conditions that are a normal step of a resource's life, not something to warn about.
_ROUTINE_REASONS = {"Starting", "Pending", "WaitingForDependencies", "WaitingForTrajectories", "ScaledDown",
                    "NotSuspended", "Suspended", "Completed", "Stopped", "JobComplete", "TrainingNotComplete",
                    "WorkloadFailed", "JobFailed", "PreRunningDeadlineExceeded", "DeadlineExceeded"}


def _drift(child: Child, current: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that brings the fields the operator changes during a resource's life back in line."""
    wanted, have = child.obj.get("spec") or {}, current.get("spec") or {}
    if child.kind == "Deployment" and wanted.get("replicas") != have.get("replicas"):
        return {"spec": {"replicas": wanted["replicas"]}}
    if child.kind == "Job" and bool(wanted.get("suspend")) != bool(have.get("suspend")):
        return {"spec": {"suspend": bool(wanted.get("suspend"))}}
    if child.kind == "ConfigMap" and child.obj.get("data") != current.get("data"):
        return {"data": child.obj["data"]}
    return None


def _conditions(body: dict[str, Any]) -> C.Conditions:
    return C.Conditions((body.get("status") or {}).get("conditions") or [], body["metadata"].get("generation", 0))


def _suspension(conds: C.Conditions, spec: Any) -> None:
    conds.set(C.SUSPENDED, spec.suspend, "Suspended" if spec.suspend else "NotSuspended",
              "spec.suspend is true: pods are stopped, the store keeps everything recorded" if spec.suspend else "")


def _mark_started(status: dict[str, Any], pods: list[dict[str, Any]]) -> None:
    """startTime is when the workload first ran (the active deadline counts from it); it never moves."""
    for pod in pods:
        began = started_running(pod)
        if began and not status.get("startTime"):
            status["startTime"] = began


def _sooner(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)
