"""The Helm chart (charts/w4s): lint, render, schema, and the rendered objects against the real local API server,
with the operator run under the chart's own ServiceAccount (so its RBAC is exactly what the chart grants).

helm comes from scripts/helm.sh (a pinned binary, installed once under ~/.cache/w4s/helm/). A helm that cannot be
installed fails these tests: a skipped chart suite would let the chart rot unnoticed.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import (
    Api,
    ApiError,
    OperatorProcess,
    ensure_gvisor_runtime_class,
    namespace,
    service_account_token,
    wait_for,
)

from w4s.kubeapi import path_of

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "w4s"
RULES = CHART / "files" / "operator-rules.yaml"
SETTINGS = ROOT / "operator" / "w4s_operator" / "settings.py"
CLUSTER_SCOPED = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "RuntimeClass", "Namespace"}
CLUSTER_RESOURCES = {"runtimeclasses", "customresourcedefinitions", "namespaces"}
V = "w4s.io/v1alpha1"

# Every documented combination of values: (id, helm arguments).
COMBINATIONS = [
    ("default", []),
    ("single-namespace", ["--set", "rbac.singleNamespace=true"]),
    ("runtime-class", ["--set", "runtimeClass.create=true"]),
    ("watch-namespaces", ["--set", "watchNamespaces={team-a,team-b}"]),
    ("digest", ["--set", "image.digest=sha256:" + "ab" * 32, "--set", "images.runner.digest=sha256:" + "cd" * 32]),
    ("no-crds-no-service", ["--set", "crds.install=false", "--set", "metrics.service.enabled=false"]),
    ("monitoring", ["--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.podMonitor.enabled=true",
                    "--set", "monitoring.prometheusRule.enabled=true"]),
    ("monitoring-single-namespace-no-dashboards", [
        "--set", "rbac.singleNamespace=true", "--set", "monitoring.podMonitor.enabled=true",
        "--set", "monitoring.dashboards.enabled=false"]),
]


@pytest.fixture(scope="session")
def helm() -> str:
    result = subprocess.run([str(ROOT / "scripts" / "helm.sh")], capture_output=True, text=True, timeout=300)
    path = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode != 0 or not Path(path).is_file():
        pytest.fail(f"helm could not be installed by scripts/helm.sh (exit {result.returncode}); these tests need "
                    f"it, they are not skipped.\nstdout: {result.stdout}\nstderr: {result.stderr}")
    return path


def _helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)


def render(helm: str, args: list[str], ns: str = "w4s-system", release: str = "w4s") -> list[dict[str, Any]]:
    result = _helm(helm, "template", release, str(CHART), "--namespace", ns, *args)
    assert result.returncode == 0, f"helm template {args} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def _rules() -> list[dict[str, Any]]:
    return yaml.safe_load(RULES.read_text())


def _canonical(rules: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in rules)


def _crd_sources() -> dict[str, dict[str, Any]]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "crds").glob("*.yaml"))]
    return {d["metadata"]["name"]: d for d in docs}


def _env_of_settings() -> set[str]:
    return set(re.findall(r'"(W4S_[A-Z_]+)"', SETTINGS.read_text()))


# --- offline -------------------------------------------------------------------------------------------------------

def test_chart_crds_are_exactly_the_repositorys_crds() -> None:
    """charts/w4s/files/crds/ is a copy of crds/ (helm cannot read outside the chart); it must never drift."""
    source = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    copy = {p.name: p.read_bytes() for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert source, "no CRDs in crds/"
    stale = sorted(name for name in source.keys() | copy.keys() if source.get(name) != copy.get(name))
    assert not stale, (f"charts/w4s/files/crds/ differs from crds/ in {stale}; run: "
                       "rm charts/w4s/files/crds/*.yaml && cp crds/*.yaml charts/w4s/files/crds/")
    templates = {p.read_text().split('"files/crds/')[1].split('"')[0]
                 for p in (CHART / "templates" / "crds").glob("*.yaml")}
    assert templates == set(source), "every CRD in crds/ needs a template in charts/w4s/templates/crds/"


@pytest.mark.parametrize("args", [[], ["--set", "rbac.singleNamespace=true"]], ids=["default", "single-namespace"])
def test_helm_lint_strict(helm: str, args: list[str]) -> None:
    result = _helm(helm, "lint", "--strict", str(CHART), *args)
    assert result.returncode == 0, f"helm lint --strict {args}:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("args", [c[1] for c in COMBINATIONS], ids=[c[0] for c in COMBINATIONS])
def test_template_renders_valid_objects(helm: str, args: list[str]) -> None:
    ns = "w4s-system"
    docs = render(helm, args, ns)
    values = " ".join(args)
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), doc
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in doc["metadata"], f"{doc['kind']} is cluster-scoped"
        else:
            assert doc["metadata"]["namespace"] == ns, f"{doc['kind']}/{doc['metadata']['name']}"
    kinds = sorted(d["kind"] for d in docs)
    assert len({(d["kind"], d["metadata"]["name"]) for d in docs}) == len(docs), "duplicate objects"

    # CRDs: the generated ones, plus only the keep annotation.
    crds = {d["metadata"]["name"]: d for d in docs if d["kind"] == "CustomResourceDefinition"}
    if "crds.install=false" in values:
        assert not crds
    else:
        expected = _crd_sources()
        assert set(crds) == set(expected)
        for name, crd in crds.items():
            assert crd["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}
            assert crd == expected[name], f"the chart's {name} differs from crds/"

    # RBAC: exactly operator-rules.yaml, split between a Role and a small ClusterRole for one namespace.
    sa = _one(docs, "ServiceAccount")
    subject = {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": ns}
    bindings = [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("ClusterRole", "Role")}
    for binding in bindings:
        assert binding["subjects"] == [subject]
        assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) in roles
    if "singleNamespace=true" in values:
        role = _one(docs, "Role")
        cluster_role = _one(docs, "ClusterRole")
        assert _canonical(role["rules"] + cluster_role["rules"]) == _canonical(_rules())
        assert not any(set(r["resources"]) & CLUSTER_RESOURCES for r in role["rules"])
        assert {res for r in cluster_role["rules"] for res in r["resources"]} == CLUSTER_RESOURCES
        assert kinds.count("RoleBinding") == 1 and kinds.count("ClusterRoleBinding") == 1
    else:
        assert _one(docs, "ClusterRole")["rules"] == _rules()
        assert "Role" not in kinds and kinds.count("ClusterRoleBinding") == 1

    # The operator's Deployment.
    deploy = _one(docs, "Deployment")
    spec = deploy["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert container["command"] == ["w4s-operator"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == 8080
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and ports.get(probe["port"], probe["port"]) == 8081
    assert "--liveness=http://0.0.0.0:8081/healthz" in container["args"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert set(env) == _env_of_settings(), "the Deployment must set every variable settings.py reads, no other"
    assert all(isinstance(v, str) for v in env.values())
    watched = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--namespace=")]
    if "singleNamespace=true" in values:
        assert watched == [ns] and env["W4S_WATCH_NAMESPACES"] == ns
    elif "watchNamespaces" in values:
        assert watched == ["team-a", "team-b"] and env["W4S_WATCH_NAMESPACES"] == "team-a,team-b"
    else:
        assert watched == [] and env["W4S_WATCH_NAMESPACES"] == ""
    if "image.digest" in values:
        assert container["image"] == "ghcr.io/w4s-project/operator@sha256:" + "ab" * 32
        assert env["W4S_RUNNER_IMAGE"] == "ghcr.io/w4s-project/runner@sha256:" + "cd" * 32
        assert env["W4S_SANDBOX_IMAGE"] == "ghcr.io/w4s-project/sandbox:0.1.0"
    else:
        assert container["image"] == "ghcr.io/w4s-project/operator:0.1.0"

    # Metrics Service and the optional RuntimeClass.
    if "metrics.service.enabled=false" in values:
        assert "Service" not in kinds
    else:
        service = _one(docs, "Service")
        assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
        assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics",
                                             "protocol": "TCP"}]
    if "runtimeClass.create=true" in values:
        rc = _one(docs, "RuntimeClass")
        assert rc["metadata"]["name"] == "gvisor" and rc["handler"] == "runsc"
    else:
        assert "RuntimeClass" not in kinds

    # Monitoring: prometheus-operator objects only when asked for; dashboards by default (tests/test_monitoring.py
    # checks what they contain).
    for kind, key in [("ServiceMonitor", "serviceMonitor"), ("PodMonitor", "podMonitor"),
                      ("PrometheusRule", "prometheusRule")]:
        assert kinds.count(kind) == (1 if f"{key}.enabled=true" in values else 0), kind
    if "podMonitor.enabled=true" in values:
        selector = _one(docs, "PodMonitor")["spec"]["namespaceSelector"]
        assert selector == ({"matchNames": [ns]} if "singleNamespace=true" in values else {"any": True})
    dashboards = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard")]
    assert len(dashboards) == (0 if "dashboards.enabled=false" in values else 3)


@pytest.mark.parametrize(("args", "field"), [
    (["--set", "replicaCount=two"], "replicaCount"),        # unknown top-level key
    (["--set", "metaAgentGpus=two"], "metaAgentGpus"),       # wrong type
    (["--set", "rbac.singleNamespace=yes"], "singleNamespace"),
    (["--set", "image.digest=latest"], "digest"),
    (["--set", "images.pullPolicy=Sometimes"], "pullPolicy"),
    (["--set", "rbac.singleNamespace=true", "--set", "watchNamespaces={other}"], "watchNamespaces"),
    (["--set", "monitoring.prometheusRule.budgetFraction=90%"], "budgetFraction"),
    (["--set", "monitoring.podMonitor.interval=often"], "interval"),
    (["--set", "monitoring.serviceMonitor.enabled=true", "--set", "metrics.service.enabled=false"],
     "metrics.service.enabled"),
], ids=["unknown-key", "wrong-type", "wrong-bool", "bad-digest", "bad-enum", "single-namespace-and-watch",
        "bad-fraction", "bad-duration", "service-monitor-without-service"])
def test_bad_values_are_rejected_naming_the_field(helm: str, args: list[str], field: str) -> None:
    for verb in (["template", "w4s"], ["lint", "--strict"]):
        result = _helm(helm, *verb, str(CHART), *args)
        # A template's `fail` (a combination the schema cannot express) is only reported by helm lint, with exit 0.
        if verb[0] == "template" or field not in ("watchNamespaces", "metrics.service.enabled"):
            assert result.returncode != 0, f"helm {verb[0]} accepted {args}"
        assert field in result.stdout + result.stderr, f"helm {verb[0]} {args}: {result.stdout}{result.stderr}"


def test_notes_say_what_to_apply_next(helm: str) -> None:
    result = _helm(helm, "install", "w4s", str(CHART), "--dry-run=client", "--namespace", "w4s-system")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    for needle in ("kubectl create secret generic w4s-store", "kubectl apply -f examples/wfo-embedded.yaml",
                   "kubectl get wfo -w", "all namespaces"):
        assert needle in notes, notes


# --- against the real local API server ------------------------------------------------------------------------------

def _apply(api: Api, obj: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    params = {"fieldManager": "helm", "force": "true", "fieldValidation": "Strict"}
    if dry_run:
        params["dryRun"] = "All"
    response = api.client.patch(path_of(obj), params=params, content=json.dumps(obj),
                                headers={"Content-Type": "application/apply-patch+yaml"})
    if response.status_code >= 300:
        raise AssertionError(f"{'dry-run ' if dry_run else ''}apply of {obj['kind']}/{obj['metadata']['name']} "
                             f"refused: {ApiError(response)}")
    return response.json()


def _established(api: Api, name: str) -> bool:
    crd = api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name) or {}
    conditions = (crd.get("status") or {}).get("conditions") or []
    if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
        return False
    spec = crd["spec"]
    return api.client.get(f"/apis/{spec['group']}/{spec['versions'][0]['name']}/{spec['names']['plural']}"
                          ).status_code == 200


def _install(api: Api, docs: list[dict[str, Any]]) -> None:
    """What `helm install` sends, in its order: CRDs first, then cluster-scoped, then namespaced objects; every
    object first with dryRun=All (the server's full validation and admission, nothing stored), then for real."""
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    cluster = [d for d in docs if d["kind"] in CLUSTER_SCOPED and d not in crds]
    namespaced = [d for d in docs if d["kind"] not in CLUSTER_SCOPED]
    for group in (crds, cluster + namespaced):
        for obj in group:
            _apply(api, obj, dry_run=True)
        for obj in group:
            _apply(api, obj, dry_run=False)
        if group is crds:
            wait_for(lambda: all(_established(api, c["metadata"]["name"]) for c in crds), "the chart's CRDs served")


@pytest.fixture(scope="module")
def admin(kube_cluster) -> Iterator[Api]:
    with kube_cluster.client(timeout=30) as client:
        yield Api(client)


@pytest.mark.parametrize("single_namespace", [False, True], ids=["cluster-wide", "single-namespace"])
def test_chart_installs_and_its_service_account_runs_the_operator(helm: str, kube_cluster, admin: Api,
                                                                 tmp_path: Path, single_namespace: bool) -> None:
    """The rendered chart is accepted by kube-apiserver 1.34; the operator, holding a token of the chart's
    ServiceAccount and configured by the Deployment's args and env, becomes live and accepts the embedded example."""
    release = f"w4s-{secrets.token_hex(3)}"
    release_ns = namespace(admin, "w4s-chart")
    args = ["--set", "rbac.singleNamespace=true", "--set", "runtimeClass.create=true"] if single_namespace else []
    docs = render(helm, args, release_ns, release)
    cluster_objects = [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    work_ns = release_ns if single_namespace else namespace(admin, "w4s-chart-work")
    proc: OperatorProcess | None = None
    try:
        _install(admin, docs)
        if not single_namespace:
            ensure_gvisor_runtime_class(admin)
        deploy = _one(docs, "Deployment")
        stored = admin.get("apps/v1", "Deployment", release_ns, deploy["metadata"]["name"])
        assert stored is not None and stored["spec"]["strategy"]["type"] == "Recreate"

        sa = _one(docs, "ServiceAccount")["metadata"]["name"]
        token = service_account_token(admin, release_ns, sa)
        kubeconfig = kube_cluster.write_token_kubeconfig(tmp_path / "kubeconfig", token)
        (container,) = deploy["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        env["W4S_RESYNC_SECONDS"] = "5"
        watched = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--namespace=")]
        assert watched == ([release_ns] if single_namespace else [])

        if single_namespace:  # the chart granted nothing outside the release namespace
            other = Api(kube_cluster.client(token=token))
            assert other.client.get("/apis/batch/v1/namespaces/default/jobs").status_code == 403
            assert other.client.get("/apis/batch/v1/jobs").status_code == 403

        proc = OperatorProcess(kubeconfig, watched, tmp_path / "operator.log", env=env).start()
        wfo = yaml.safe_load((ROOT / "examples" / "wfo-embedded.yaml").read_text())
        wfo["metadata"]["namespace"] = work_ns
        admin.create(wfo)

        def accepted() -> dict[str, Any] | None:
            obj = admin.get(V, "WorkflowOptimization", work_ns, wfo["metadata"]["name"]) or {}
            conditions = (obj.get("status") or {}).get("conditions") or []
            return obj if any(c["type"] == "Accepted" and c["status"] == "True" for c in conditions) else None

        try:
            obj = wait_for(accepted, "the example WorkflowOptimization Accepted=True", timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\noperator log:\n{proc.log_tail(60)}") from None
        assert obj["status"]["children"]["runnerJob"] == f"Job/{wfo['metadata']['name']}-runner"
        job = wait_for(lambda: admin.get("batch/v1", "Job", work_ns, f"{wfo['metadata']['name']}-runner"),
                       "the runner Job the operator creates")
        assert job["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
        # No RBAC denial. (A cluster-wide operator may also meet namespaces that earlier tests are deleting:
        # "forbidden: unable to create new content in namespace ... being terminated" is not a missing rule.)
        denials = re.findall(r'forbidden: User "[^"]+" cannot [^\n]*', proc.log_tail(400))
        assert not denials, denials
    finally:
        if proc is not None:
            proc.stop()
        for obj in cluster_objects:
            admin.delete(obj)
        for ns in {release_ns, work_ns}:
            admin.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
