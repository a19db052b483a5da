"""Helpers for the operator tests against the real local API server: the operator's own identity (a
ServiceAccount bound to exactly the chart's ClusterRole rules), the operator as a subprocess, and small
synchronous API helpers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from kube import apply_crds

from w4s.devcluster.cluster import LocalCluster
from w4s.kubeapi import path_of, resource_path
from w4s.sandbox.kube import runtime_class

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "charts" / "w4s" / "files" / "operator-rules.yaml"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.2) -> T:
    """Poll until ``check`` returns something truthy; fail with ``what`` and the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


class Api:
    """Synchronous verbs for tests, on the cluster's httpx client (admin, or a token)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        response = self.client.post(resource_path(obj["apiVersion"], obj["kind"], meta.get("namespace")), json=obj)
        if response.status_code >= 300:
            raise ApiError(response)
        return response.json()

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        response = self.client.get(resource_path(api_version, kind, namespace, name))
        if response.status_code == 404:
            return None
        if response.status_code >= 300:
            raise ApiError(response)
        return response.json()

    def list(self, api_version: str, kind: str, namespace: str, selector: str | None = None) -> list[dict]:
        params = {"labelSelector": selector} if selector else {}
        response = self.client.get(resource_path(api_version, kind, namespace), params=params)
        if response.status_code >= 300:
            raise ApiError(response)
        return response.json()["items"]

    def patch(self, obj_or_path: dict[str, Any] | str, patch: dict[str, Any], subresource: str | None = None,
              ) -> dict[str, Any]:
        path = obj_or_path if isinstance(obj_or_path, str) else path_of(obj_or_path, subresource)
        response = self.client.patch(path, json=patch, headers={"Content-Type": "application/merge-patch+json"})
        if response.status_code >= 300:
            raise ApiError(response)
        return response.json()

    def delete(self, obj: dict[str, Any]) -> None:
        response = self.client.request("DELETE", path_of(obj), json={"propagationPolicy": "Background"})
        if response.status_code not in (200, 202, 404):
            raise ApiError(response)


def response_message(response: httpx.Response) -> str:
    """The API server's own words about a refused request (its Status message), else the raw body."""
    try:
        return response.json().get("message", response.text)
    except ValueError:
        return response.text


class ApiError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.message = response_message(response)
        super().__init__(f"{self.status}: {self.message}")


def namespace(api: Api, prefix: str = "w4s-test") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@contextlib.contextmanager
def namespace_with_crds(cluster: LocalCluster, prefix: str) -> Iterator[tuple[Api, str]]:
    """The session's API server with the project's CRDs installed, and a namespace deleted afterwards."""
    apply_crds(cluster)
    with cluster.client(timeout=30) as client:
        api = Api(client)
        ns = namespace(api, prefix)
        try:
            yield api, ns
        finally:
            api.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})


def ensure_gvisor_runtime_class(api: Api) -> None:
    """The RuntimeClass sandbox pods name (the operator waits for it), created once for the session's cluster."""
    if api.get("node.k8s.io/v1", "RuntimeClass", None, "gvisor") is None:
        api.create(runtime_class())


def service_account_token(api: Api, namespace: str, name: str, seconds: int = 7200) -> str:
    """A bound token from the TokenRequest API, as a pod of that ServiceAccount would get."""
    response = api.client.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                               json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                     "spec": {"expirationSeconds": seconds}})
    if response.status_code >= 300:
        raise ApiError(response)
    return response.json()["status"]["token"]


def operator_identity(api: Api, suffix: str) -> tuple[str, str]:
    """A ServiceAccount bound to exactly the chart's operator rules; returns (namespace, token)."""
    ns = namespace(api, "w4s-system")
    role = f"w4s-operator-{suffix}"
    api.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "w4s-operator", "namespace": ns}})
    api.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role},
                "rules": yaml.safe_load(RULES.read_text())})
    api.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": role},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": "w4s-operator", "namespace": ns}]})
    return ns, service_account_token(api, ns, "w4s-operator")


class OperatorProcess:
    """``w4s-operator`` as its own process, so a test can SIGKILL it mid-reconcile and start it again."""

    def __init__(self, kubeconfig: Path, namespaces: list[str], log_path: Path,
                 env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.log_path = log_path
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.starts = 0

    def start(self) -> OperatorProcess:
        self.metrics_port, health = free_port(), free_port()
        argv = [sys.executable, "-m", "w4s_operator.main", "--kubeconfig", str(self.kubeconfig),
                "--metrics-port", str(self.metrics_port), "--liveness", f"http://127.0.0.1:{health}/healthz"]
        for ns in self.namespaces:
            argv += ["--namespace", ns]
        env = {**os.environ, "W4S_RESYNC_SECONDS": "5", **self.env}
        env.pop("KUBECONFIG", None)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- start {self.starts} ---\n".encode())
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.starts += 1

        def healthy() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(f"operator exited: {self.log_tail()}")
            try:
                return httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, "the operator's liveness endpoint", timeout=60)
        return self

    def kill(self) -> None:
        """SIGKILL: no clean-up, exactly like a node dying under the operator."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
