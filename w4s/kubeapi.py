"""A small async client for the Kubernetes REST API, on httpx.

The runner reports progress to its resource's status and the operator manages children; both need only a few
verbs on a few kinds, so a general Kubernetes client library (and its blocking I/O or generated models) is not
worth the dependency. Credentials come from the pod's service account when running in a cluster, else from a
kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``): bearer tokens and client certificates, inline or by file.
Every request has a timeout.
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from w4s.errors import W4SError

_SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

# apiVersion/kind -> resource path segment. Only the kinds w4s creates or reads.
PLURALS = {
    "Pod": "pods", "Service": "services", "ConfigMap": "configmaps", "Secret": "secrets", "Event": "events",
    "ServiceAccount": "serviceaccounts", "Namespace": "namespaces", "Job": "jobs", "Deployment": "deployments",
    "Role": "roles", "RoleBinding": "rolebindings", "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings", "NetworkPolicy": "networkpolicies",
    "RuntimeClass": "runtimeclasses", "WorkflowOptimization": "workflowoptimizations",
    "MetaAgentTraining": "metaagenttrainings", "CustomResourceDefinition": "customresourcedefinitions",
}
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "RuntimeClass", "CustomResourceDefinition"}


class KubeError(W4SError):
    """The API server refused a request; ``status`` and ``reason`` are the Status object's."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class KubeConfig:
    server: str
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    cert: tuple[str, str] | None = None
    verify: bool = True
    namespace: str = "default"

    def bearer(self) -> str | None:
        """Re-read a token file on every client: projected service-account tokens rotate."""
        if self.token_file:
            return Path(self.token_file).read_text().strip()
        return self.token


def _materialize(data_b64: str | None, path: str | None, base: Path, suffix: str) -> str | None:
    """Kubeconfigs carry certificates inline (base64) or by path; ssl wants a file. Inline ones are written once,
    named by their content, into a directory only this user can read, so repeated loads leave nothing behind."""
    if path:
        return str((base / path).resolve())
    if not data_b64:
        return None
    data = base64.b64decode(data_b64)
    folder = Path(tempfile.gettempdir()) / f"w4s-kube-credentials-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    owner = folder.lstat()
    if owner.st_uid != os.getuid() or owner.st_mode & 0o077 or folder.is_symlink():
        raise W4SError(f"{folder} is not a private directory of this user: refusing to write credentials there")
    target = folder / f"{hashlib.sha256(data).hexdigest()[:32]}{suffix}"
    if not target.exists():
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(data)
        os.chmod(partial, 0o600)
        partial.replace(target)
    return str(target)


def load_config(kubeconfig: str | None = None, context: str | None = None) -> KubeConfig:
    """An explicit kubeconfig wins, then $KUBECONFIG, then the in-cluster service account, then ~/.kube/config."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if not path and os.environ.get("KUBERNETES_SERVICE_HOST") and (_SA_DIR / "token").exists():
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        return KubeConfig(server=f"https://{host}:{port}", token_file=str(_SA_DIR / "token"),
                          ca_file=str(_SA_DIR / "ca.crt"),
                          namespace=(_SA_DIR / "namespace").read_text().strip())
    path = path or str(Path.home() / ".kube" / "config")
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise W4SError(f"no Kubernetes credentials: cannot read kubeconfig {path} ({err.strerror}) and not "
                       "running in a cluster") from None
    base = Path(path).parent
    name = context or doc.get("current-context")
    ctx = next((c["context"] for c in doc.get("contexts", []) if c["name"] == name), None)
    if ctx is None:
        raise W4SError(f"kubeconfig {path}: context {name!r} not found")
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
    user = next((u["user"] for u in doc.get("users", []) if u["name"] == ctx.get("user")), {}) or {}
    cert = _materialize(user.get("client-certificate-data"), user.get("client-certificate"), base, ".crt")
    key = _materialize(user.get("client-key-data"), user.get("client-key"), base, ".key")
    return KubeConfig(
        server=cluster["server"].rstrip("/"), token=user.get("token"),
        token_file=str(base / user["tokenFile"]) if user.get("tokenFile") else None,
        ca_file=_materialize(cluster.get("certificate-authority-data"), cluster.get("certificate-authority"),
                             base, ".crt"),
        cert=(cert, key) if cert and key else None, verify=not cluster.get("insecure-skip-tls-verify", False),
        namespace=ctx.get("namespace", "default"))


def resource_path(api_version: str, kind: str, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    try:
        plural = PLURALS[kind]
    except KeyError:
        raise W4SError(f"kind {kind} is not one w4s manages") from None
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    parts = [root]
    if namespace and kind not in _CLUSTER_SCOPED:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


def path_of(obj: dict[str, Any], subresource: str | None = None) -> str:
    meta = obj["metadata"]
    return resource_path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta.get("name"), subresource)


class KubeAPI:
    """The verbs w4s needs. Responses are plain dicts; failures raise KubeError with the server's message."""

    def __init__(self, config: KubeConfig, timeout: float = 30.0, max_connections: int = 64) -> None:
        self.config = config
        tls = ssl.create_default_context(cafile=config.ca_file)
        if not config.verify:
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        if config.cert:
            tls.load_cert_chain(*config.cert)
        self._client = httpx.AsyncClient(
            base_url=config.server, verify=tls,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections))

    async def __aenter__(self) -> KubeAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None,
                      content_type: str | None = None) -> dict[str, Any]:
        headers: dict[str, str] = {}
        token = self.config.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = await self._client.request(method, path, json=json, params=params, headers=headers)
        except httpx.HTTPError as err:
            raise KubeError(0, "Unreachable", f"{method} {path}: {err!r}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"reason": response.reason_phrase, "message": response.text[:500]}
            raise KubeError(response.status_code, body.get("reason", response.reason_phrase),
                            body.get("message", ""))
        return response.json() if response.content else {}

    async def get(self, path: str) -> dict[str, Any] | None:
        """None for 404: a missing object is an ordinary state to reconcile, not an error."""
        try:
            return await self.request("GET", path)
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    async def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        return (await self.request("GET", path, params=params)).get("items", [])

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return await self.request("POST", resource_path(obj["apiVersion"], obj["kind"], meta.get("namespace")),
                                  json=obj)

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, json=patch, content_type="application/merge-patch+json")

    async def delete(self, path: str, propagation: str = "Background") -> bool:
        """False when it was already gone."""
        try:
            await self.request("DELETE", path, json={"propagationPolicy": propagation})
        except KubeError as err:
            if err.status == 404:
                return False
            raise
        return True
