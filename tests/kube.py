"""A real Kubernetes control plane for tests (``w4s.devcluster.LocalCluster``): fixtures and a CRD helper.

``kube_cluster`` is one cluster for the whole session; ``kube_namespace`` gives each test a fresh namespace.
A cluster that cannot be built or started is an error, not a skip: a skipped suite would let the operator's
Kubernetes side rot unnoticed. The first use builds kube-apiserver and kube-controller-manager with Go
(minutes, once per machine); ``pytest_collection_finish`` does that before the first test starts, so the
build does not count against a test's timeout.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from w4s.devcluster.binaries import ensure_binaries
from w4s.devcluster.cluster import LocalCluster

CRDS_DIR = Path(__file__).resolve().parents[1] / "crds"
_CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _say(config: pytest.Config, message: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the binaries now if a selected test needs them (a cold build outlasts a test's timeout)."""
    if any("kube_binaries" in getattr(item, "fixturenames", ()) for item in session.items):
        ensure_binaries(lambda message: _say(session.config, message))


@pytest.fixture(scope="session")
def kube_binaries(pytestconfig: pytest.Config) -> Path:
    """The directory of kube-apiserver and kube-controller-manager (built already by the collection hook)."""
    return ensure_binaries(lambda message: _say(pytestconfig, message))


@pytest.fixture(scope="session")
def kube_cluster(kube_binaries: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """etcd, kube-apiserver and kube-controller-manager on loopback for the session; admin via ``.client()``."""
    cluster = LocalCluster(tmp_path_factory.mktemp("kube")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kube_namespace(kube_cluster: LocalCluster) -> Iterator[str]:
    """A fresh namespace, deleted after the test (without waiting: names never repeat)."""
    name = f"w4s-test-{secrets.token_hex(4)}"
    with kube_cluster.client(timeout=30) as api:
        api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": name}}).raise_for_status()
        yield name
        response = api.delete(f"/api/v1/namespaces/{name}")
        if response.status_code != 404:  # the test may have deleted it itself
            response.raise_for_status()


def _crds(crds_dir: Path) -> list[dict[str, Any]]:
    docs = [doc for path in sorted(crds_dir.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
    crds = [doc for doc in docs if doc and doc.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise RuntimeError(f"no CustomResourceDefinition in {crds_dir}/*.yaml")
    return crds


def _served(api: httpx.Client, crd: dict[str, Any]) -> bool:
    """Established, and every served version answers a list (Established can come a moment earlier)."""
    status = api.get(f"{_CRD_API}/{crd['metadata']['name']}").json().get("status") or {}
    if not any(c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions") or []):
        return False
    spec = crd["spec"]
    return all(api.get(f"/apis/{spec['group']}/{v['name']}/{spec['names']['plural']}").status_code == 200
               for v in spec["versions"] if v.get("served", True))


def apply_crds(cluster: LocalCluster, crds_dir: Path = CRDS_DIR, timeout_s: float = 60.0) -> list[str]:
    """Server-side apply every CRD in ``crds_dir/*.yaml`` (create or update) and wait until all are served;
    returns their names."""
    crds = _crds(crds_dir)
    with cluster.client(timeout=30) as api:
        for crd in crds:
            api.patch(f"{_CRD_API}/{crd['metadata']['name']}", params={"fieldManager": "w4s-tests", "force": "true"},
                      # JSON, a subset of YAML: PyYAML would write '1e-5' unquoted, which the server reads as a number.
                      content=json.dumps(crd), headers={"Content-Type": "application/apply-patch+yaml"},
                      ).raise_for_status()
        deadline = time.monotonic() + timeout_s
        pending = [crd for crd in crds if not _served(api, crd)]
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRDs not served after {timeout_s:.0f}s: "
                                   f"{', '.join(c['metadata']['name'] for c in pending)}")
            time.sleep(0.1)
            pending = [crd for crd in pending if not _served(api, crd)]
    return [crd["metadata"]["name"] for crd in crds]
