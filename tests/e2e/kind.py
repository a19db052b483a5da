"""A kind cluster (Kubernetes in Docker) with the same interface as ``w4s.devcluster.LocalCluster``, for the
e2e suite: real nodes, a kubelet, a scheduler and a CNI, where this machine has a Docker engine."""

from __future__ import annotations

import base64
import os
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path

import httpx
import yaml

from w4s.devcluster.kubeconfig import write_kubeconfig

KIND_VERSION = "v0.29.0"


def docker_works() -> str | None:
    """None when a Docker engine answers, else why not (the client alone is not enough)."""
    if shutil.which("docker") is None:
        return "no docker command"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                           timeout=30)
    return None if probe.returncode == 0 else f"no Docker engine: {probe.stderr.strip()[:200]}"


def kind_binary(cache: Path) -> str:
    """kind from the Go module proxy, built once into the cache."""
    found = shutil.which("kind")
    if found:
        return found
    target = cache / f"kind-{KIND_VERSION}"
    if not (target / "kind").exists():
        subprocess.run(["go", "install", f"sigs.k8s.io/kind@{KIND_VERSION}"], check=True, timeout=900,
                       env={**os.environ, "GOBIN": str(target), "CGO_ENABLED": "0"})
    return str(target / "kind")


class KindCluster:
    def __init__(self, dir: Path, kind: str) -> None:
        self.dir = dir
        self.kind = kind
        self.name = f"w4s-e2e-{uuid.uuid4().hex[:6]}"
        self.kubeconfig = dir / "kubeconfig"

    def start(self) -> KindCluster:
        subprocess.run([self.kind, "create", "cluster", "--name", self.name, "--kubeconfig", str(self.kubeconfig),
                        "--wait", "120s"], check=True, timeout=600)
        doc = yaml.safe_load(self.kubeconfig.read_text())
        cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
        self.server = cluster["server"]
        for name, data in (("ca.crt", cluster["certificate-authority-data"]),
                           ("admin.crt", user["client-certificate-data"]), ("admin.key", user["client-key-data"])):
            (self.dir / name).write_bytes(base64.b64decode(data))
        self.ca_file = self.dir / "ca.crt"
        return self

    def stop(self) -> None:
        subprocess.run([self.kind, "delete", "cluster", "--name", self.name], check=False, timeout=300)

    def client(self, *, token: str | None = None, **kw: object) -> httpx.Client:
        tls = ssl.create_default_context(cafile=str(self.ca_file))
        headers = {}
        if token is None:
            tls.load_cert_chain(str(self.dir / "admin.crt"), str(self.dir / "admin.key"))
        else:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.server, verify=tls, headers=headers, **kw)  # type: ignore[arg-type]

    def write_token_kubeconfig(self, path: Path, token: str) -> Path:
        write_kubeconfig(path, self.server, self.ca_file, {"token": token})
        return path
