"""``w4s dev cluster up|down``: the local control plane started as a user starts it (the CLI, detached
processes), then checked for what the operator relies on: the kubeconfig authenticates, the job controller
makes pods, the garbage collector cascades deletes, RBAC refuses, and ``down`` leaves no process behind."""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from w4s.devcluster.cluster import LocalCluster
from w4s.devcluster.procs import read_pids

ROOT = Path(__file__).resolve().parents[1]


def w4s_dev(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "w4s.cli", "dev", "cluster", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.1)
    return result


def processes_under(path: Path) -> list[str]:
    """Command lines of every live process that names ``path`` (the cluster's files are all under it)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and str(path) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


@pytest.fixture(scope="module")
def cluster(kube_binaries: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster started by ``w4s dev cluster up`` and stopped by ``down``; attached to by directory."""
    path = tmp_path_factory.mktemp("devcluster")
    up = w4s_dev("up", "--dir", str(path))
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout == f"export KUBECONFIG={path / 'kubeconfig'}\n"
        yield LocalCluster(path)
    finally:
        w4s_dev("down", "--dir", str(path))


@pytest.fixture
def api(cluster: LocalCluster) -> Iterator[httpx.Client]:
    with cluster.client(timeout=30) as client:
        yield client


@pytest.fixture
def ns(api: httpx.Client) -> str:
    name = f"t-{secrets.token_hex(4)}"
    api.post("/api/v1/namespaces", json={"metadata": {"name": name}}).raise_for_status()
    return name


def test_the_printed_kubeconfig_authenticates_as_admin(cluster: LocalCluster, tmp_path: Path) -> None:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    user = config["users"][0]["user"]
    for name, key in (("ca.crt", config["clusters"][0]["cluster"]["certificate-authority-data"]),
                      ("tls.crt", user["client-certificate-data"]), ("tls.key", user["client-key-data"])):
        (tmp_path / name).write_bytes(base64.b64decode(key))
    tls = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    tls.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    with httpx.Client(base_url=server, verify=tls, timeout=10) as client:
        assert client.get("/version").json()["gitVersion"] == "v1.34.4"
        review = client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                             json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        assert "system:masters" in review.json()["status"]["userInfo"]["groups"]
    assert cluster.kubeconfig.stat().st_mode & 0o077 == 0


def test_up_refuses_a_second_cluster_in_the_same_dir(cluster: LocalCluster) -> None:
    again = w4s_dev("up", "--dir", str(cluster.dir))
    assert again.returncode == 2
    assert "already running" in again.stderr


def _job(name: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": owner["kind"], "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"]}]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}}


def _pods(api: httpx.Client, ns: str, job: str) -> list[dict[str, Any]]:
    return api.get(f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": f"job-name={job}"}).json()["items"]


def test_the_job_controller_creates_the_pod_of_a_job(api: httpx.Client, ns: str) -> None:
    api.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=_job("hello")).raise_for_status()
    pods = wait_for(lambda: _pods(api, ns, "hello"), "the Job's pod")
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert pods[0]["status"]["phase"] == "Pending"  # no kubelet: nothing runs it


def test_deleting_an_owner_cascades_through_the_job_to_its_pods(api: httpx.Client, ns: str) -> None:
    owner = api.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "owner"}}).json()
    api.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=_job("owned", owner)).raise_for_status()
    wait_for(lambda: _pods(api, ns, "owned"), "the Job's pod")
    api.delete(f"/api/v1/namespaces/{ns}/configmaps/owner").raise_for_status()
    wait_for(lambda: api.get(f"/apis/batch/v1/namespaces/{ns}/jobs/owned").status_code == 404, "the Job's deletion")
    wait_for(lambda: not _pods(api, ns, "owned"), "the pod's deletion")


def test_rbac_refuses_unauthenticated_and_unauthorized_requests(cluster: LocalCluster, api: httpx.Client, ns: str,
                                                                tmp_path: Path) -> None:
    pods = f"/api/v1/namespaces/{ns}/pods"
    with cluster.client(anonymous=True, timeout=10) as anonymous:
        assert anonymous.get(pods).status_code == 403
    with cluster.client(token="not-a-token", timeout=10) as forged:
        assert forged.get(pods).status_code == 401
    api.post(f"/api/v1/namespaces/{ns}/serviceaccounts", json={"metadata": {"name": "reader"}}).raise_for_status()
    token = api.post(f"/api/v1/namespaces/{ns}/serviceaccounts/reader/token",
                     json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                           "spec": {"expirationSeconds": 600}}).json()["status"]["token"]
    kubeconfig = cluster.write_token_kubeconfig(tmp_path / "reader.kubeconfig", token)
    assert yaml.safe_load(kubeconfig.read_text())["users"][0]["user"] == {"token": token}
    with cluster.client(token=token, timeout=10) as reader:
        assert reader.get(pods).status_code == 403
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
        api.post(f"{rbac}/roles", json={"metadata": {"name": "read-pods"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}).raise_for_status()
        api.post(f"{rbac}/rolebindings", json={
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]}).raise_for_status()
        wait_for(lambda: reader.get(pods).status_code == 200, "the RoleBinding to take effect", timeout_s=10)
        assert reader.delete(f"{pods}/anything").status_code == 403


def test_a_watch_without_resource_version_starts_at_once(cluster: LocalCluster, api: httpx.Client, ns: str) -> None:
    """The watch cache would make this wait 3 s and fail ("Too large resource version"): etcd 3.4 cannot bring
    it up to date on request (see --watch-cache in w4s/devcluster/cluster.py)."""
    api.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "a"}}).raise_for_status()
    api.post(f"/api/v1/namespaces/{ns}/serviceaccounts", json={"metadata": {"name": "b"}}).raise_for_status()
    started = time.monotonic()
    with cluster.client(timeout=10) as watcher, watcher.stream(
            "GET", f"/api/v1/namespaces/{ns}/configmaps", params={"watch": "1", "fieldSelector": "metadata.name=a"},
    ) as stream:
        event = json.loads(next(stream.iter_lines()))
    assert event["type"] == "ADDED", event
    assert event["object"]["metadata"]["name"] == "a"
    assert time.monotonic() - started < 2


def test_down_stops_every_process_it_started(kube_binaries: Path, tmp_path: Path) -> None:
    up = w4s_dev("up", "--dir", str(tmp_path))
    assert up.returncode == 0, up.stderr
    records = read_pids(tmp_path / "pids")
    assert [r.name for r in records] == ["etcd", "kube-apiserver", "kube-controller-manager"]
    assert all(r.alive() for r in records)
    down = w4s_dev("down", "--dir", str(tmp_path))
    assert down.returncode == 0, down.stderr
    assert not [r for r in records if r.alive()]
    assert processes_under(tmp_path) == []
    assert not (tmp_path / "pids").exists()
    assert "no cluster running" in w4s_dev("down", "--dir", str(tmp_path)).stderr
