"""kopf wiring: watch events feed the cache and the work queue; the queue calls the reconciler.

Only event handlers are used: they add no finalizer and store no handler progress on the resource, so
deleting a resource never waits for the operator, and the garbage collector removes the children through their
ownerReferences. The periodic pass that kopf's timers would give (deadlines, TTL, resync) comes from the work
queue's delayed re-adds instead, because kopf timers need a finalizer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import kopf

from w4s.kubeapi import KubeAPI, load_config
from w4s.resources import GROUP, VERSION
from w4s_operator.cache import Cache
from w4s_operator.metrics import Metrics
from w4s_operator.names import LABEL_KIND, LABEL_MANAGED_BY, LABEL_RUN, MANAGED_BY, run_label
from w4s_operator.queue import WorkQueue
from w4s_operator.reconcile import ChildNotOwned, Reconciler
from w4s_operator.settings import Settings

log = logging.getLogger("w4s.operator")


@dataclass
class Runtime:
    """Everything the handlers share; built at startup, so importing this module has no side effects."""

    settings: Settings
    api: KubeAPI
    cache: Cache
    reconciler: Reconciler
    queue: WorkQueue
    metrics: Metrics
    # (namespace, run label) -> (kind, name): pods carry only labels, and long names are hashed in labels.
    runs: dict[tuple[str, str], tuple[str, str]]


_runtime: Runtime | None = None


def runtime() -> Runtime:
    assert _runtime is not None, "operator not started"
    return _runtime


def build_runtime(settings: Settings, kubeconfig: str | None = None) -> Runtime:
    global _runtime
    cache = Cache()
    api = KubeAPI(load_config(kubeconfig), max_connections=settings.workers)
    reconciler = Reconciler(api, cache, settings)
    queue = WorkQueue(_reconcile_key, settings.workers)
    _runtime = Runtime(settings, api, cache, reconciler, queue, Metrics(cache, lambda: len(queue)), {})
    return _runtime


async def _reconcile_key(key: Hashable) -> float | None:
    rt = runtime()
    kind, namespace, name = key  # type: ignore[misc]
    body = rt.cache.get(kind, namespace, name)
    if body is None:
        return None
    started = time.perf_counter()
    result = "success"
    try:
        if kind == "WorkflowOptimization":
            outcome = await rt.reconciler.workflow_optimization(body)
        else:
            outcome = await rt.reconciler.meta_agent_training(body)
    except ChildNotOwned as err:
        result = "conflict"
        log.warning("%s %s/%s: %s", kind, namespace, name, err)
        return 30.0
    except Exception:
        result = "error"
        raise
    finally:
        rt.metrics.reconciles.labels(kind, result).inc()
        rt.metrics.duration.labels(kind).observe(time.perf_counter() - started)
    if outcome.created:
        log.info("%s %s/%s: wrote %s", kind, namespace, name, ", ".join(outcome.created))
    if outcome.deleted:
        log.info("%s %s/%s: deleted after ttlSecondsAfterFinished", kind, namespace, name)
        return None
    if outcome.requeue_after is None:
        return rt.settings.resync_seconds
    return min(outcome.requeue_after, rt.settings.resync_seconds)


def _on_owner_event(kind: str, event: dict[str, Any]) -> None:
    """Handlers are async on purpose: they then run on the event loop, the only thread that may touch the
    queue (sync kopf handlers run in a thread pool)."""
    rt = runtime()
    obj = event["object"]
    meta = obj["metadata"]
    key = (kind, meta["namespace"], meta["name"])
    if event["type"] == "DELETED":
        rt.cache.forget(obj)
        rt.queue.forget(key)
        rt.reconciler.forget(meta["uid"])
        rt.runs.pop((meta["namespace"], run_label(meta["name"])), None)
        return
    seen = rt.cache.get(*key)
    rt.cache.put(obj)
    rt.runs[(meta["namespace"], run_label(meta["name"]))] = (kind, meta["name"])
    if seen is None or seen["metadata"].get("resourceVersion") != meta.get("resourceVersion"):
        rt.queue.add(key)  # the echo of the operator's own status write brings nothing new


@kopf.on.event(GROUP, VERSION, "workflowoptimizations")
async def workflow_optimization_event(event: dict[str, Any], **_: Any) -> None:
    _on_owner_event("WorkflowOptimization", event)
    # A training waiting for this run's trajectories may start now.
    rt = runtime()
    meta = event["object"]["metadata"]
    for mat in rt.cache.of_kind("MetaAgentTraining"):
        sources = ((mat.get("spec") or {}).get("trajectories") or [])
        if mat["metadata"]["namespace"] == meta["namespace"] and \
                any(s.get("workflowOptimization") == meta["name"] for s in sources):
            rt.queue.add(("MetaAgentTraining", meta["namespace"], mat["metadata"]["name"]))


@kopf.on.event(GROUP, VERSION, "metaagenttrainings")
async def meta_agent_training_event(event: dict[str, Any], **_: Any) -> None:
    _on_owner_event("MetaAgentTraining", event)
    # A training a WorkflowOptimization waits for (fromTraining) may have finished: look again.
    rt = runtime()
    meta = event["object"]["metadata"]
    for wfo in rt.cache.of_kind("WorkflowOptimization"):
        meta_agent = ((wfo.get("spec") or {}).get("metaAgent") or {})
        if wfo["metadata"]["namespace"] == meta["namespace"] and meta_agent.get("fromTraining") == meta["name"]:
            rt.queue.add(("WorkflowOptimization", wfo["metadata"]["namespace"], wfo["metadata"]["name"]))


def _on_child_event(event: dict[str, Any]) -> None:
    rt = runtime()
    obj = event["object"]
    if event["type"] == "DELETED":
        rt.cache.forget(obj)
    else:
        rt.cache.put(obj)
    lab = obj["metadata"].get("labels") or {}
    owner = rt.runs.get((obj["metadata"]["namespace"], lab.get(LABEL_RUN, "")))
    if owner is not None and owner[0].lower() == lab.get(LABEL_KIND):
        rt.queue.add((owner[0], obj["metadata"]["namespace"], owner[1]))


_CHILD_LABELS = {LABEL_MANAGED_BY: MANAGED_BY}


@kopf.on.event("batch", "v1", "jobs", labels=_CHILD_LABELS)
@kopf.on.event("apps", "v1", "deployments", labels=_CHILD_LABELS)
@kopf.on.event("", "v1", "services", labels=_CHILD_LABELS)
@kopf.on.event("", "v1", "pods", labels=_CHILD_LABELS)
async def child_event(event: dict[str, Any], **_: Any) -> None:
    _on_child_event(event)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Watches that time out and restart (a silently dead watch is the classic kopf failure), Events only for
    warnings, and the queue's workers started."""
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.watching.inactivity_timeout = 360
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 60
    runtime().queue.start()


@kopf.on.cleanup()
async def shutdown(**_: Any) -> None:
    rt = runtime()
    await rt.queue.stop()
    await rt.api.aclose()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's own kubeconfig and service-account logins: no Kubernetes client library is needed."""
    return kopf.login_with_kubeconfig(**kwargs) or kopf.login_with_service_account(**kwargs)


