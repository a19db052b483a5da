"""Kubeconfig files with everything embedded (CA and client credentials as data, not paths), so any client
(kubectl, kopf, the Python client) reads them the same way wherever the file is copied."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, ca_file: Path, user: dict[str, Any], name: str = "w4s-dev") -> None:
    """Write a one-context kubeconfig (mode 0600: it holds credentials); ``user`` is the kubeconfig user entry."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca_file)}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}],
        "current-context": name,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(yaml.safe_dump(config, sort_keys=False))
    tmp.replace(path)


def cert_user(cert: Path, key: Path) -> dict[str, str]:
    """A kubeconfig user that authenticates with a client certificate."""
    return {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}


def read_server(path: Path) -> str:
    """The server URL of a kubeconfig's first cluster."""
    return yaml.safe_load(path.read_text())["clusters"][0]["cluster"]["server"]
