"""Kubernetes manifests for the in-cluster sandbox of untrusted workflow code, as plain dicts.

The core library must not depend on a Kubernetes client (see ARCHITECTURE.md), so these builders return the
JSON-shaped dicts that the operator hands to whatever client it uses. Building them here, next to the worker
they run, keeps the confinement rules (gVisor, no credentials, egress only to the gateway) in one tested place
instead of scattered over the operator and the Helm chart.

Inputs are validated before anything is built: a bad name or quantity is cheaper to report here, with the
argument named, than as an opaque API-server rejection at run time.
"""

from __future__ import annotations

import re
from typing import Any

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_LABEL_MAX = 63
# Kubernetes resource quantity without a sign: "500m", "2", "1.5", "1Gi", "512Mi", "1e3".
_QUANTITY = re.compile(r"(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?")
_HOST = r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*"
_HTTP_URL = re.compile(rf"https?://{_HOST}(:(?P<port>\d{{1,5}}))?(/[^\s?#]*)?")

_COMPONENT = "app.kubernetes.io/component"
_RUN = "w4s.io/run"
_SANDBOX = "sandbox"
_RUNNER = "runner"
_GATEWAY = "gateway"
_TMP = "tmp"
_SANDBOX_UID = 65532  # the "nonroot" user of distroless images; the sandbox image runs as it too


def _check_dns_label(arg: str, value: str) -> None:
    """Names end up in object names and label values, where anything else is rejected by the API server."""
    if len(value) > _DNS_LABEL_MAX or not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"{arg}: {value!r} is not a DNS-1123 label (at most {_DNS_LABEL_MAX} characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit)"
        )


def _check_quantity(arg: str, value: str) -> None:
    """A malformed quantity would only fail at pod creation, long after the spec was accepted."""
    if not _QUANTITY.fullmatch(value):
        raise ValueError(f"{arg}: {value!r} is not a Kubernetes quantity (e.g. '500m', '2', '1.5', '512Mi', '1Gi')")


def _check_port(arg: str, value: int) -> None:
    """Ports go into probes and policies; an out-of-range one would silently match nothing."""
    if not 1 <= value <= 65535:
        raise ValueError(f"{arg}: {value!r} is not a TCP port (1-65535)")


def _check_gateway_url(value: str) -> None:
    """The URL is the sandbox's only way out; a typo here would leave every LLM call failing inside the pod."""
    match = _HTTP_URL.fullmatch(value)
    if not match or (match["port"] is not None and not 1 <= int(match["port"]) <= 65535):
        raise ValueError(f"gateway_url: {value!r} is not an http(s)://host[:port][/path] URL")


def run_labels(component: str, run_name: str) -> dict[str, str]:
    """Standard labels of every object of a run; the network policies select on the component and run keys."""
    return {
        "app.kubernetes.io/name": "w4s",
        _COMPONENT: component,
        "app.kubernetes.io/instance": run_name,
        "app.kubernetes.io/managed-by": "w4s-operator",
        _RUN: run_name,
    }


def run_selector(component: str, run_name: str) -> dict[str, Any]:
    """Selects one component of one run only, so two runs in a namespace can never reach each other's pods."""
    return {"matchLabels": {_COMPONENT: component, _RUN: run_name}}


def _metadata(name: str, namespace: str, labels: dict[str, str], owner: dict[str, Any] | None) -> dict[str, Any]:
    """Owner references let Kubernetes garbage-collect a run's children when the run's resource is deleted."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    return metadata


def sandbox_pod(
    *,
    name: str,
    namespace: str,
    run_name: str,
    image: str,
    cpu: str,
    memory: str,
    tmp_size: str = "256Mi",
    gateway_url: str,
    worker_port: int = 7070,
    runtime_class: str | None = "gvisor",
    owner: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Pod for one warm sandbox worker that runs untrusted, LLM-written workflow code.

    The code is assumed hostile, so the pod carries nothing worth stealing and can reach nothing but the run's
    gateway: no service-account token, no service-link env vars, no secrets, no host namespaces, a non-root user
    with every capability dropped, a read-only root and an in-memory ``/tmp`` as the only writable place. gVisor
    (``runtime_class``) puts a user-space kernel between that code and the node's kernel; ``None`` is for clusters
    without it, where the pod is still confined but by the host kernel only. Requests equal limits (Guaranteed QoS)
    so a runaway workflow is throttled or OOM-killed inside its own budget instead of starving its neighbours.

    ``labels`` may add labels but not replace the standard ones: the network policies select on those, and a pod
    that escaped its policy's selector would have unrestricted network access.
    """
    for arg, value in (("name", name), ("namespace", namespace), ("run_name", run_name)):
        _check_dns_label(arg, value)
    if runtime_class is not None:
        _check_dns_label("runtime_class", runtime_class)
    if not image.strip():
        raise ValueError("image: must not be empty")
    for arg, value in (("cpu", cpu), ("memory", memory), ("tmp_size", tmp_size)):
        _check_quantity(arg, value)
    _check_gateway_url(gateway_url)
    _check_port("worker_port", worker_port)
    standard = run_labels(_SANDBOX, run_name)
    clashing = sorted(set(labels or {}) & set(standard))
    if clashing:
        raise ValueError(f"labels: may not override the standard labels {clashing}")

    resources = {"cpu": cpu, "memory": memory, "ephemeral-storage": tmp_size}
    container: dict[str, Any] = {
        "name": "worker",
        "image": image,
        "command": ["python", "-I", "-m", "w4s.workflow.worker", "--listen", f"0.0.0.0:{worker_port}"],
        "env": [{"name": "W4S_GATEWAY_URL", "value": gateway_url}],
        "ports": [{"name": "worker", "containerPort": worker_port, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": worker_port}, "periodSeconds": 2},
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": _TMP, "mountPath": "/tmp"}],
    }
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 5,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _SANDBOX_UID,
            "runAsGroup": _SANDBOX_UID,
            "fsGroup": _SANDBOX_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": _TMP, "emptyDir": {"medium": "Memory", "sizeLimit": tmp_size}}],
    }
    if runtime_class is not None:
        spec["runtimeClassName"] = runtime_class
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(name, namespace, {**standard, **(labels or {})}, owner),
        "spec": spec,
    }


def sandbox_network_policy(
    *,
    name: str,
    namespace: str,
    run_name: str,
    gateway_port: int = 8080,
    worker_port: int = 7070,
    allow_dns: bool = False,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Confines a run's sandbox pods: only the run's runner may call them, and they may call only its gateway.

    Listing both policy types with nothing else allowed makes every other packet a deny, so workflow code can
    neither exfiltrate data nor reach the cluster's API server, metadata endpoints or other runs. DNS is off by
    default: Kubernetes applies policies after the Service's ClusterIP is translated to the gateway pod, so the
    runner can hand the sandbox the gateway Service's ClusterIP and no lookup is needed. ``allow_dns`` opens
    port 53 to the cluster DNS only, for gateway URLs that use a Service name.
    """
    egress: list[dict[str, Any]] = [
        {"to": [{"podSelector": run_selector(_GATEWAY, run_name)}],
         "ports": [{"protocol": "TCP", "port": gateway_port}]}
    ]
    if allow_dns:
        egress.append(
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        )
    return _network_policy(name, namespace, run_name, _SANDBOX, owner, ingress_from=(_RUNNER,),
                           ingress_port=worker_port, ports={"gateway_port": gateway_port, "worker_port": worker_port},
                           egress=egress)


def gateway_network_policy(
    *,
    name: str,
    namespace: str,
    run_name: str,
    gateway_port: int = 8080,
    metrics_port: int | None = None,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Lets only the run's sandbox and runner pods reach its gateway, the one pod that holds provider keys.

    Without it any pod in the namespace could spend the run's budget through the gateway. Egress is deliberately
    left open (only ``Ingress`` is in ``policyTypes``): the gateway calls LLM providers on the internet, whose
    addresses no stable ipBlock can describe. ``metrics_port``, when given, is open to any source: Prometheus
    runs wherever the cluster's monitoring lives, and the metrics carry counts, not secrets.
    """
    policy = _network_policy(name, namespace, run_name, _GATEWAY, owner, ingress_from=(_SANDBOX, _RUNNER),
                             ingress_port=gateway_port, ports={"gateway_port": gateway_port}, egress=None)
    if metrics_port is not None:
        _check_port("metrics_port", metrics_port)
        policy["spec"]["ingress"].append({"ports": [{"protocol": "TCP", "port": metrics_port}]})
    return policy


def _network_policy(name: str, namespace: str, run_name: str, component: str, owner: dict[str, Any] | None, *,
                    ingress_from: tuple[str, ...], ingress_port: int, ports: dict[str, int],
                    egress: list[dict[str, Any]] | None) -> dict[str, Any]:
    """A policy for one component of a run: ingress only from the listed components of the same run, on
    ``ingress_port``; with ``egress`` given, Egress is listed too, so anything not in it is denied. ``ports``
    are the caller's port arguments, validated by name."""
    for arg, value in (("name", name), ("namespace", namespace), ("run_name", run_name)):
        _check_dns_label(arg, value)
    for arg, port in ports.items():
        _check_port(arg, port)
    spec: dict[str, Any] = {
        "podSelector": run_selector(component, run_name),
        "policyTypes": ["Ingress"] if egress is None else ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [{"podSelector": run_selector(source, run_name)} for source in ingress_from],
                "ports": [{"protocol": "TCP", "port": ingress_port}],
            }
        ],
    }
    if egress is not None:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(name, namespace, run_labels(component, run_name), owner),
        "spec": spec,
    }


def runtime_class(name: str = "gvisor", handler: str = "runsc") -> dict[str, Any]:
    """The RuntimeClass that sandbox pods name, mapping it to the node's gVisor (``runsc``) containerd handler.

    It is cluster-scoped and shared by all runs, so it carries no run labels and no owner: deleting one run must
    not take the sandbox runtime away from the others.
    """
    _check_dns_label("name", name)
    _check_dns_label("handler", handler)
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": name}, "handler": handler}
