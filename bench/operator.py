"""Operator scale: N WorkflowOptimizations applied at once, until every one is Accepted and owns all its children.

    .venv/bin/python bench/operator.py [--count 100] [--dir DIR] [--keep] [--kubeconfig FILE] [--namespaced]
        [--concurrency 32] [--timeout 120] [--target-s 30] [--resync-seconds 60]

Target (issue "operator"): 100 WorkflowOptimizations applied at once are all Accepted, with their children
created, in under 30 s on this machine.

What runs: a ``LocalCluster`` (etcd, kube-apiserver, kube-controller-manager on loopback; state in ``--dir``, a
temporary directory by default), or an already running cluster given by ``--kubeconfig`` (an admin's). The CRDs
in crds/ are applied and must be Established, the ``gvisor`` RuntimeClass is created (without it the runner Job
is not made), and the operator runs as its own process (``python -m w4s_operator.main``) with ONLY the Helm
chart's ClusterRole rules (a ServiceAccount token, as tests/test_operator_cluster.py does), cluster-wide (the
chart's default; ``--namespaced`` passes ``--namespace`` instead), with the chart's default resync interval
(60 s). /healthz answers before kopf's watches run, so the operator counts as ready once a probe resource in a
namespace of its own is Accepted. Then ``--count`` copies of examples/wfo-embedded.yaml (``wfo-000``,
``wfo-001``, ...) are created in one fresh namespace from ``--concurrency`` threads. Each one makes 14
children: ConfigMap, Secret, ServiceAccount, Role, RoleBinding, gateway Deployment and Service, meta-agent
Deployment and Service, sandbox Deployment and headless Service, two NetworkPolicies and the runner Job (the
sandbox's four are made on a second pass, once the gateway Service has its cluster IP). The controller manager
makes the Deployments' ReplicaSets and the pods (which stay Pending: there are no nodes), as on a cluster.

How it is measured: one watch per kind (WorkflowOptimizations, and each child kind with the selector
``app.kubernetes.io/managed-by=w4s-operator``) timestamps every event on arrival, on this side, at sub-second
resolution (conditions' ``lastTransitionTime`` has whole seconds only); a child counts once it exists with a
controller ownerReference to its WorkflowOptimization's uid. Per resource, latency runs from the moment its
create request was sent. At the end a list of each kind confirms the watched state. The operator's own
``w4s_operator_reconcile_duration_seconds`` histogram gives the reconcile p50/p95 (interpolated within buckets,
as PromQL's histogram_quantile does); it times a reconcile itself, not the wait in the work queue, which the
client-side latencies include. The queue depth is sampled from /metrics once a second. For where the time
goes, the CPU each process used (from /proc) and the API server's count of requests by verb and resource over
the measured interval are printed too.

Everything started here (watches, the operator, the cluster) is stopped on the way out, on failure and on Ctrl-C
too. The directory (logs of every process, the operator's included, and etcd's data) is removed after a passing
run unless ``--keep`` or ``--dir``; after a failing one it is kept. With ``--kubeconfig``, the namespaces and the
ClusterRole the run made are deleted unless ``--keep``. Exits 0 when the target is met, 1 when it is not or on
errors. The machine is shared and small (see the header: cores, load average; the CPU table shows how much of
the machine this run's processes got), so compare runs made at about the same time.
"""

from __future__ import annotations

import os
import sys

# This file's directory must come last on the import path: first, the file would shadow the standard library's
# `operator`; last, its sibling modules (machine.py) still import.
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import ssl  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import httpx  # noqa: E402
import yaml  # noqa: E402
from machine import machine_lines  # noqa: E402
from operator_harness import Api, ApiError, OperatorProcess, namespace, operator_identity, wait_for  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from w4s.devcluster import procs  # noqa: E402
from w4s.devcluster.cluster import LocalCluster  # noqa: E402
from w4s.devcluster.kubeconfig import write_kubeconfig  # noqa: E402
from w4s.kubeapi import load_config, resource_path  # noqa: E402

V = "w4s.io/v1alpha1"
WFO = "WorkflowOptimization"
EXAMPLE = ROOT / "examples" / "wfo-embedded.yaml"
SELECTOR = "app.kubernetes.io/managed-by=w4s-operator"
# (apiVersion, kind, name suffix): what an operator-served WorkflowOptimization owns once its runner starts.
CHILDREN = [
    ("v1", "ConfigMap", "spec"), ("v1", "Secret", "gateway"), ("v1", "ServiceAccount", "runner"),
    ("rbac.authorization.k8s.io/v1", "Role", "runner"), ("rbac.authorization.k8s.io/v1", "RoleBinding", "runner"),
    ("apps/v1", "Deployment", "gateway"), ("v1", "Service", "gateway"),
    ("apps/v1", "Deployment", "meta-agent"), ("v1", "Service", "meta-agent"),
    ("apps/v1", "Deployment", "sandbox"), ("v1", "Service", "sandbox"),
    ("networking.k8s.io/v1", "NetworkPolicy", "sandbox"), ("networking.k8s.io/v1", "NetworkPolicy", "gateway"),
    ("batch/v1", "Job", "runner"),
]
CHILD_KINDS = sorted({(api_version, kind) for api_version, kind, _ in CHILDREN}, key=lambda k: k[1])
RUNTIME_CLASS = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "gvisor"},
                 "handler": "runsc"}
HISTOGRAM = "w4s_operator_reconcile_duration_seconds"
RECONCILES = "w4s_operator_reconciles_total"
QUEUE_DEPTH = "w4s_operator_work_queue_depth"


# ---- the cluster ----------------------------------------------------------------------------------------------


class External:
    """A running cluster from an admin kubeconfig: the two things the benchmark needs of ``LocalCluster``."""

    def __init__(self, kubeconfig: Path) -> None:
        self.config = load_config(str(kubeconfig))
        if not self.config.ca_file:
            raise SystemExit(f"--kubeconfig {kubeconfig}: the cluster has no certificate-authority (needed for the "
                             "operator's token kubeconfig)")

    def client(self, **kw: Any) -> httpx.Client:
        tls = ssl.create_default_context(cafile=self.config.ca_file)
        if not self.config.verify:
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        if self.config.cert:
            tls.load_cert_chain(*self.config.cert)
        token = self.config.bearer()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.config.server, verify=tls, headers=headers, **kw)

    def write_token_kubeconfig(self, path: Path, token: str) -> Path:
        write_kubeconfig(path, self.config.server, Path(self.config.ca_file or ""), {"token": token})
        return path


def update(api: Api, obj: dict[str, Any]) -> None:
    """Replace an existing cluster-scoped object (a CRD from an older checkout, on a reused cluster)."""
    path = resource_path(obj["apiVersion"], obj["kind"], name=obj["metadata"]["name"])
    current = api.client.get(path)
    if current.status_code >= 300:
        raise ApiError(current)
    obj["metadata"]["resourceVersion"] = current.json()["metadata"]["resourceVersion"]
    response = api.client.put(path, json=obj)
    if response.status_code >= 300:
        raise ApiError(response)


def apply_crds(api: Api, timeout: float = 60.0) -> None:
    """Create (or update) every CRD in crds/ and wait until each is Established and served."""
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        try:
            api.create(crd)
        except ApiError as err:
            if err.status != 409:
                raise
            update(api, crd)
        name = crd["metadata"]["name"]

        def established(name: str = name) -> bool:
            obj = api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name) or {}
            return any(c["type"] == "Established" and c["status"] == "True"
                       for c in (obj.get("status") or {}).get("conditions") or [])

        wait_for(established, f"CRD {name} Established", timeout=timeout)
    # Established can come a moment before the new resource is served.
    wait_for(lambda: api.client.get(resource_path(V, WFO)).status_code == 200, "the WorkflowOptimization API",
             timeout=timeout)


# ---- watching ---------------------------------------------------------------------------------------------------


@dataclass
class State:
    """What the watches saw, each first sighting stamped with time.monotonic() on arrival."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: dict[str, float] = field(default_factory=dict)  # WFO name -> first seen Accepted=True
    uids: dict[str, str] = field(default_factory=dict)  # WFO name -> uid
    # (kind, name) -> (first seen with these owners, uids of its controller ownerReferences)
    children: dict[tuple[str, str], tuple[float, set[str]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def observe(self, obj: dict[str, Any], at: float) -> None:
        meta = obj["metadata"]
        kind = obj.get("kind", "")
        with self.lock:
            if kind == WFO:
                self.uids[meta["name"]] = meta["uid"]
                if meta["name"] not in self.accepted and accepted(obj):
                    self.accepted[meta["name"]] = at
                return
            owners = {r["uid"] for r in meta.get("ownerReferences") or [] if r.get("controller")}
            key = (kind, meta["name"])
            seen = self.children.get(key)
            self.children[key] = (seen[0] if seen and seen[1] & owners else at, owners)


class Watch(threading.Thread):
    """One kind in one namespace: list, then watch from the list's resourceVersion, relisting when the watch
    ends or fails. Every object goes to ``State.observe``."""

    def __init__(self, make_client: Any, api_version: str, kind: str, ns: str, selector: str | None,
                 state: State, stop: threading.Event) -> None:
        super().__init__(name=f"watch-{kind}", daemon=True)
        self.client: httpx.Client = make_client(timeout=httpx.Timeout(10.0, read=None))
        self.path = resource_path(api_version, kind, ns)
        self.kind = kind
        self.selector = selector
        self.state = state
        self.stop_event = stop
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    self._list_and_watch()
                except Exception as err:  # a dropped watch is relisted, and reported
                    if not self.stop_event.is_set():
                        with self.state.lock:
                            self.state.errors.append(f"watch {self.kind}: {err!r}")
                        time.sleep(0.2)
        finally:
            self.ready.set()

    def _list_and_watch(self) -> None:
        params = {"labelSelector": self.selector} if self.selector else {}
        listed = self.client.get(self.path, params=params)
        listed.raise_for_status()
        body = listed.json()
        now = time.monotonic()
        for obj in body["items"]:
            obj.setdefault("kind", self.kind)
            self.state.observe(obj, now)
        version = body["metadata"]["resourceVersion"]
        watch = {**params, "watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": "600"}
        with self.client.stream("GET", self.path, params=watch) as response:
            response.raise_for_status()
            self.ready.set()
            for line in response.iter_lines():
                if self.stop_event.is_set():
                    return
                if not line:
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":  # e.g. 410 Gone: relist
                    return
                if event["type"] in ("ADDED", "MODIFIED"):
                    self.state.observe(event["object"], time.monotonic())


# ---- metrics ----------------------------------------------------------------------------------------------------


@dataclass
class OperatorMetrics:
    buckets: list[tuple[float, float]]  # (le, cumulative count) for WorkflowOptimization
    duration_sum: float
    reconciles: dict[str, float]  # result -> count, WorkflowOptimization


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str, *names: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of the samples called one of ``names`` in Prometheus text; a tolerant reader, as
    the API server's exposition has lines that prometheus_client's parser rejects."""
    for line in text.splitlines():
        if not line.startswith(names):
            continue
        match = _SAMPLE.match(line)
        if match is None or match.group(1) not in names:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        yield match.group(1), dict(_LABEL.findall(match.group(2) or "")), value


def parse_metrics(text: str) -> OperatorMetrics:
    buckets: list[tuple[float, float]] = []
    total_s = 0.0
    reconciles: dict[str, float] = {}
    for name, labels, value in samples(text, f"{HISTOGRAM}_bucket", f"{HISTOGRAM}_sum", RECONCILES):
        if labels.get("kind") != WFO:
            continue
        if name == f"{HISTOGRAM}_bucket":
            buckets.append((float(labels["le"]), value))
        elif name == f"{HISTOGRAM}_sum":
            total_s = value
        else:
            reconciles[labels["result"]] = value
    return OperatorMetrics(sorted(buckets), total_s, reconciles)


def queue_depth(text: str) -> float | None:
    return next((value for _, _, value in samples(text, QUEUE_DEPTH)), None)


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of one process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15 of stat


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    out = {name: cpu for name, pid in pids.items() if (cpu := cpu_seconds(pid)) is not None}
    times = os.times()
    out["bench (this process)"] = times.user + times.system
    return out


def api_requests(api: Api) -> Counter[str]:
    """The API server's own count of requests, by verb and resource (its /metrics)."""
    response = api.client.get("/metrics")
    out: Counter[str] = Counter()
    if response.status_code != 200:
        return out
    for _, labels, value in samples(response.text, "apiserver_request_total"):
        resource = labels.get("resource", "?") + (f"/{labels['subresource']}" if labels.get("subresource") else "")
        out[f"{labels.get('verb', '?')} {resource}"] += value
    return out


def histogram_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """PromQL's histogram_quantile: linear within the bucket the rank falls in; the highest finite bound when it
    falls in +Inf."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


# ---- the run ----------------------------------------------------------------------------------------------------


@dataclass
class Result:
    count: int
    create_started: float = 0.0
    create_done: float = 0.0
    sent: dict[str, float] = field(default_factory=dict)  # name -> create request sent
    create_s: list[float] = field(default_factory=list)
    accepted: dict[str, float] = field(default_factory=dict)  # name -> seconds after its create was sent
    complete: dict[str, float] = field(default_factory=dict)  # name -> seconds until its last child was seen
    all_accepted_s: float | None = None  # after the first create was sent
    all_children_s: float | None = None
    queue_depths: list[float] = field(default_factory=list)
    metrics: OperatorMetrics | None = None
    watch_errors: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # after the timeout, or found by the final list
    scrapes: int = 0
    scrape_errors: Counter[str] = field(default_factory=Counter)  # why a GET of the operator's /metrics failed
    cpu_s: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds, first create to the end
    measured_s: float = 0.0  # wall time those CPU seconds were spent in
    requests: Counter[str] = field(default_factory=Counter)  # "VERB resource" -> API requests in that time
    # kind -> (children expected, seconds from its owner's create request to each child seen)
    by_kind: dict[str, tuple[int, list[float]]] = field(default_factory=dict)


def accepted(obj: dict[str, Any] | None) -> bool:
    return any(c.get("type") == "Accepted" and c.get("status") == "True"
               for c in ((obj or {}).get("status") or {}).get("conditions") or [])


def wfo_name(i: int) -> str:
    return f"wfo-{i:03d}"


def scrape(operator: OperatorProcess, result: Result) -> str | None:
    """The operator's /metrics, or None (the failure counted) when it does not answer 200."""
    result.scrapes += 1
    try:
        response = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5)
    except httpx.HTTPError as err:
        result.scrape_errors[err.__class__.__name__] += 1
        return None
    if response.status_code != 200:
        result.scrape_errors[f"HTTP {response.status_code}"] += 1
        return None
    return response.text


def evaluate(state: State, result: Result, names: list[str]) -> None:
    """Fill per-resource times from the state; all_* once every resource is there."""
    with state.lock:
        for name in names:
            if name in state.accepted and name not in result.accepted:
                result.accepted[name] = state.accepted[name] - result.sent[name]
            uid = state.uids.get(name)
            if name in result.complete or uid is None:
                continue
            seen = []
            for _, kind, suffix in CHILDREN:
                child = state.children.get((kind, f"{name}-{suffix}"))
                if child is None or uid not in child[1]:
                    break
                seen.append(child[0])
            else:
                result.complete[name] = max(seen) - result.sent[name]
        if result.all_accepted_s is None and len(state.accepted) >= len(names):
            result.all_accepted_s = max(state.accepted[n] for n in names) - result.create_started
        if result.all_children_s is None and len(result.complete) == len(names):
            last = max(result.complete[n] + result.sent[n] for n in names)
            result.all_children_s = last - result.create_started


def children_by_kind(state: State, result: Result, names: list[str]) -> dict[str, tuple[int, list[float]]]:
    out: dict[str, tuple[int, list[float]]] = {}
    with state.lock:
        for _, kind, suffix in CHILDREN:
            expected, seen = out.get(kind, (0, []))
            for name in names:
                child = state.children.get((kind, f"{name}-{suffix}"))
                if child is not None and state.uids.get(name) in child[1]:
                    seen.append(child[0] - result.sent[name])
            out[kind] = (expected + len(names), seen)
    return out


def final_check(api: Api, ns: str, names: list[str]) -> list[str]:
    """One list per kind: what the watches reported must be what is there."""
    wfos = {o["metadata"]["name"]: o for o in api.list(V, WFO, ns)}
    problems = []
    for name in names:
        obj = wfos.get(name)
        if not accepted(obj):
            problems.append(f"{WFO}/{name} not Accepted")
    for api_version, kind in CHILD_KINDS:
        have = {o["metadata"]["name"]: o for o in api.list(api_version, kind, ns, SELECTOR)}
        for name in names:
            uid = (wfos.get(name) or {}).get("metadata", {}).get("uid")
            for _, child_kind, suffix in CHILDREN:
                if child_kind != kind:
                    continue
                obj = have.get(f"{name}-{suffix}")
                refs = (obj or {}).get("metadata", {}).get("ownerReferences") or []
                if not any(r["uid"] == uid and r.get("controller") for r in refs):
                    problems.append(f"{kind}/{name}-{suffix} missing")
    return problems


def run(cluster: LocalCluster | External, workdir: Path, args: argparse.Namespace, console: Console,
        stack: ExitStack) -> Result:
    admin_client = stack.enter_context(cluster.client(timeout=30, limits=httpx.Limits(
        max_connections=args.concurrency + 8, max_keepalive_connections=args.concurrency + 8)))
    admin = Api(admin_client)
    step = time.monotonic()
    apply_crds(admin)
    if admin.get("node.k8s.io/v1", "RuntimeClass", None, "gvisor") is None:
        admin.create(RUNTIME_CLASS)
    suffix = f"bench-{os.getpid()}"
    identity_ns, token = operator_identity(admin, suffix)
    ns = namespace(admin, "w4s-bench")
    kubeconfig = cluster.write_token_kubeconfig(workdir / "operator.kubeconfig", token)
    template = yaml.safe_load(EXAMPLE.read_text())
    probe_ns = namespace(admin, "w4s-bench-probe")
    if isinstance(cluster, External) and not args.keep:
        def cleanup() -> None:
            for kind, name in (("ClusterRoleBinding", f"w4s-operator-{suffix}"),
                               ("ClusterRole", f"w4s-operator-{suffix}")):
                admin.delete({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": name}})
            for name in (ns, probe_ns, identity_ns):
                admin.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        stack.callback(cleanup)
    operator = OperatorProcess(kubeconfig, [ns, probe_ns] if args.namespaced else [], workdir / "operator.log",
                               env={"W4S_RESYNC_SECONDS": str(args.resync_seconds)})
    stack.callback(operator.stop)
    operator.start()
    # /healthz answers before kopf's watches run: a probe resource Accepted proves the operator works.
    admin.create({**copy.deepcopy(template), "metadata": {"name": "probe", "namespace": probe_ns}})
    wait_for(lambda: accepted(admin.get(V, WFO, probe_ns, "probe")), "the operator to accept a probe resource",
             timeout=180, interval=0.1)
    console.print(f"setup (CRDs, RuntimeClass, operator identity, operator started and a probe Accepted) in "
                  f"{time.monotonic() - step:.1f} s; namespace {ns}; operator log {workdir / 'operator.log'}",
                  highlight=False)

    state, stop = State(), threading.Event()
    watches = [Watch(cluster.client, V, WFO, ns, None, state, stop)]
    watches += [Watch(cluster.client, api_version, kind, ns, SELECTOR, state, stop)
                for api_version, kind in CHILD_KINDS]

    def stop_watches() -> None:
        """A thread blocked in a read notices at its next event, or when the cluster stops: daemon threads,
        so none outlives the process either way."""
        stop.set()
        for watch in watches:
            watch.join(0.2)

    stack.callback(stop_watches)
    for watch in watches:
        watch.start()
    for watch in watches:
        if not watch.ready.wait(30):
            raise RuntimeError(f"the {watch.kind} watch did not start")
    time.sleep(1.0)  # the probe's own follow-up reconciles settle

    names = [wfo_name(i) for i in range(args.count)]
    result = Result(args.count)
    pids = {"operator": operator.proc.pid} if operator.proc else {}
    if isinstance(cluster, LocalCluster):
        pids.update({r.name: r.pid for r in procs.read_pids(cluster.pids_file)})
    requests_before = api_requests(admin)
    cpu_before = cpu_snapshot(pids)

    def create(name: str) -> None:
        doc = copy.deepcopy(template)
        doc["metadata"] = {"name": name, "namespace": ns}
        sent = time.monotonic()
        with state.lock:
            result.sent[name] = sent
        admin.create(doc)
        result.create_s.append(time.monotonic() - sent)

    console.print(f"creating {args.count} WorkflowOptimizations from {args.concurrency} threads ...", highlight=False)
    result.create_started = time.monotonic()
    with ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(create, names))
    result.create_done = time.monotonic()

    deadline = result.create_started + args.timeout
    next_scrape = 0.0
    while time.monotonic() < deadline:
        evaluate(state, result, names)
        if result.all_accepted_s is not None and result.all_children_s is not None:
            break
        if time.monotonic() >= next_scrape:
            next_scrape = time.monotonic() + 1.0
            text = scrape(operator, result)
            depth = queue_depth(text) if text is not None else None
            if depth is not None:
                result.queue_depths.append(depth)
        time.sleep(0.05)
    cpu_after = cpu_snapshot(pids)
    result.measured_s = time.monotonic() - result.create_started
    result.cpu_s = {name: cpu_after[name] - cpu_before[name] for name in cpu_after if name in cpu_before}
    result.requests = api_requests(admin)
    result.requests.subtract(requests_before)
    for _ in range(20):  # a failed scrape (see Result.scrape_errors) is retried
        text = scrape(operator, result)
        if text is not None:
            result.metrics = parse_metrics(text)
            break
        time.sleep(0.1)
    result.by_kind = children_by_kind(state, result, names)
    with state.lock:
        result.watch_errors = list(state.errors)
    if result.all_accepted_s is None or result.all_children_s is None:
        result.missing = [f"{n}: not Accepted" for n in names if n not in result.accepted]
        result.missing += [f"{n}: children missing" for n in names if n not in result.complete]
    else:
        result.missing = final_check(admin, ns, names)
    return result


# ---- report -----------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def sec(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def spread(name: str, values: Sequence[float], note: str) -> list[str]:
    if not values:
        return [name, "0", "-", "-", "-", note]
    return [name, str(len(values)), sec(statistics.median(values)), sec(percentile(values, 95)), sec(max(values)),
            note]


def done_s(result: Result) -> float | None:
    """First create to every resource Accepted with all its children."""
    if result.all_accepted_s is None or result.all_children_s is None:
        return None
    return max(result.all_accepted_s, result.all_children_s)


def passed(result: Result, args: argparse.Namespace) -> bool:
    done = done_s(result)
    return done is not None and done < args.target_s and not result.missing


def table(result: Result, args: argparse.Namespace) -> Table:
    out = Table(title=f"{args.count} WorkflowOptimizations (examples/wfo-embedded.yaml, 14 children each), "
                      f"created from {args.concurrency} threads", title_justify="left")
    out.add_column("measurement")
    out.add_column("n", justify="right")
    for name in ("p50", "p95", "max"):
        out.add_column(name, justify="right")
    out.add_column("note")
    out.add_row(*spread("create request round trip", result.create_s,
                        f"all sent and answered in {sec(result.create_done - result.create_started)}"))
    out.add_row(*spread("create -> Accepted=True (per resource)", list(result.accepted.values()),
                        "seen by a watch, from the create request sent"))
    out.add_row(*spread("create -> all 14 children (per resource)", list(result.complete.values()),
                        "each with a controller ownerReference"))
    out.add_row("first create -> all Accepted", str(len(result.accepted)), "", "", sec(result.all_accepted_s), "")
    out.add_row("first create -> all children", str(len(result.complete)), "", "", sec(result.all_children_s), "")
    metrics = result.metrics
    if metrics and metrics.buckets:
        n = metrics.buckets[-1][1]
        p50, p95 = histogram_quantile(metrics.buckets, 0.5), histogram_quantile(metrics.buckets, 0.95)
        mean = metrics.duration_sum / n if n else None
        out.add_row("operator reconcile duration (its histogram)", f"{n:.0f}", sec(p50), sec(p95), "",
                    f"mean {sec(mean)}, {metrics.duration_sum:.1f} s in all; interpolated within buckets")
        results = ", ".join(f"{k} {v:.0f}" for k, v in sorted(metrics.reconciles.items()))
        out.add_row("operator reconciles by result", f"{sum(metrics.reconciles.values()):.0f}", "", "", "",
                    f"{results}; {sum(metrics.reconciles.values()) / args.count:.1f} per resource")
    if result.queue_depths:
        out.add_row("operator work queue depth (sampled 1/s)", str(len(result.queue_depths)),
                    f"{statistics.median(result.queue_depths):.0f}", f"{percentile(result.queue_depths, 95):.0f}",
                    f"{max(result.queue_depths):.0f}", "resources waiting for a worker")
    verdict = "[green]PASS[/green]" if passed(result, args) else "[red]FAIL[/red]"
    out.add_row(f"target: all Accepted with children < {args.target_s:g} s", "", "", "", sec(done_s(result)),
                verdict)
    return out


def kinds_table(result: Result) -> Table:
    out = Table(title="children by kind: from the owner's create request to the child seen", title_justify="left")
    out.add_column("kind")
    out.add_column("seen", justify="right")
    for name in ("p50", "p95", "max"):
        out.add_column(name, justify="right")
    for kind, (expected, seen) in sorted(result.by_kind.items()):
        row = spread(kind, seen, "")[:5]
        row[1] = f"{len(seen)}/{expected}"
        out.add_row(*row)
    return out


def cpu_table(result: Result) -> Table:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    out = Table(title=f"CPU from the first create to the end ({sec(result.measured_s)} wall, {cores} cores: "
                      f"{result.measured_s * cores:.1f} CPU-s available)", title_justify="left")
    out.add_column("process")
    out.add_column("CPU", justify="right")
    out.add_column("of the wall time", justify="right")
    for name, cpu in sorted(result.cpu_s.items(), key=lambda item: -item[1]):
        out.add_row(name, f"{cpu:.1f} s", f"{cpu / result.measured_s:.0%}" if result.measured_s else "-")
    total = sum(result.cpu_s.values())
    out.add_row("all of the above", f"{total:.1f} s", f"{total / result.measured_s:.0%}" if result.measured_s else "-")
    return out


def requests_line(result: Result, top: int = 12) -> str:
    busy = [(k, v) for k, v in result.requests.most_common() if v > 0 and not k.startswith("WATCH")]
    total = sum(v for _, v in busy)
    return (f"API server requests in that time (all clients, watches excluded): {total:.0f}; "
            + ", ".join(f"{k} {v:.0f}" for k, v in busy[:top]))



def workdir(args: argparse.Namespace) -> tuple[Path, bool]:
    """(directory, remove it at the end)"""
    if args.dir:
        path = Path(args.dir).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path, False
    return Path(tempfile.mkdtemp(prefix="w4s-bench-operator-")), not args.keep


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--count", type=int, default=100, help="WorkflowOptimizations created at once")
    parser.add_argument("--dir", help="cluster state and logs (default: a temporary directory, removed after a "
                                      "passing run unless --keep)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the directory (logs, etcd data); with --kubeconfig, keep the namespaces and RBAC")
    parser.add_argument("--kubeconfig", help="an admin kubeconfig of a running cluster instead of a LocalCluster")
    parser.add_argument("--concurrency", type=int, default=32, help="threads sending the creates")
    parser.add_argument("--namespaced", action="store_true",
                        help="run the operator with --namespace (the bench's namespaces) instead of cluster-wide")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up this long after the first create")
    parser.add_argument("--target-s", type=float, default=30.0, help="target: all Accepted with children within")
    parser.add_argument("--resync-seconds", type=float, default=60.0,
                        help="the operator's W4S_RESYNC_SECONDS (the chart's default is 60)")
    args = parser.parse_args()
    if args.count < 1 or args.concurrency < 1:
        parser.error("--count and --concurrency must be >= 1")
    console = Console() if sys.stdout.isatty() else Console(width=160)
    for line in machine_lines():
        console.print(line, highlight=False)
    console.print()
    work, remove = workdir(args)
    ok = False
    try:
        with ExitStack() as stack:
            if args.kubeconfig:
                cluster: LocalCluster | External = External(Path(args.kubeconfig))
            else:
                started = time.monotonic()
                cluster = LocalCluster(work / "cluster")
                stack.callback(cluster.stop)
                cluster.start()
                console.print(f"LocalCluster up in {time.monotonic() - started:.1f} s ({work / 'cluster'})",
                              highlight=False)
            result = run(cluster, work, args, console, stack)
            console.print(table(result, args))
            console.print(kinds_table(result))
            console.print(cpu_table(result))
            if result.requests:
                console.print(requests_line(result), highlight=False)
            if result.missing:
                console.print(f"missing ({len(result.missing)}): {', '.join(result.missing[:10])}"
                              + (" ..." if len(result.missing) > 10 else ""), highlight=False)
            if result.scrape_errors:
                console.print(f"operator /metrics failed {sum(result.scrape_errors.values())} of {result.scrapes} "
                              f"scrapes: {dict(result.scrape_errors)} (the traceback is in the operator's log)",
                              highlight=False)
            if result.watch_errors:
                console.print(f"watch errors ({len(result.watch_errors)}): {result.watch_errors[:3]}",
                              highlight=False)
            console.print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
                          highlight=False)
            ok = passed(result, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # report it and exit non-zero
        traceback.print_exc()
        print(f"error: {error.__class__.__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        if remove and ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work} (the logs of every process, the operator's included)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
