"""The chart's rendered manifests against the OpenAPI schemas of Kubernetes 1.29 to 1.34 (issue 7).

`helm template` and `helm lint` only check the chart's own values; a field that a Kubernetes version does not know
(or knows with another type) would only show up at `helm install` time on that version. kubernetes-validate ships the
built-in kinds' schemas of every release, and its strict schemas reject unknown fields, as `kubectl apply
--validate=strict` does. The local API server tests (test_chart.py) cover one version; these cover the whole range.

The chart is rendered once per documented values combination (test_chart.COMBINATIONS, imported so that a new
combination is validated without touching this file) and every document is validated against each version through
kubernetes-validate's Python API (schemas are loaded in-process; a subprocess per document would cost ~0.3 s each).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
import test_chart
from test_chart import COMBINATIONS, render

# The session fixture that installs the pinned helm (scripts/helm.sh); bound here so pytest finds it in this module.
helm = test_chart.helm

KUBERNETES_VERSIONS = [f"1.{minor}" for minor in range(29, 35)]

# API groups that kubernetes-validate has no schema for, by design: their kinds are defined by CRDs, not by Kubernetes.
# They are validated against their real CRDs by the API server in other tests (w4s.io: test_crd_validation.py and
# the operator/chart cluster tests; monitoring.coreos.com: the monitoring tests, against the prometheus-operator
# CRDs), so here they are only recognised. Any other kind without a schema fails: it is a typo in a built-in kind, an
# apiVersion that one of these Kubernetes versions does not serve, or a new CRD group that needs such tests first.
SCHEMALESS_GROUPS = frozenset({"w4s.io", "monitoring.coreos.com"})

Doc = dict[str, Any]


def _group(doc: Doc) -> str:
    api_version = str(doc.get("apiVersion", ""))
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _name(doc: Doc) -> str:
    meta = doc.get("metadata") or {}
    where = f" in namespace {meta['namespace']}" if meta.get("namespace") else ""
    return f"{doc.get('kind')}/{meta.get('name')} ({doc.get('apiVersion')}){where}"


def problems(docs: list[Doc], version: str) -> list[str]:
    """Every reason `kubernetes-validate --strict -k <version>` would refuse these documents, one line each, naming
    the object and the error; also a schema-less document outside SCHEMALESS_GROUPS (the CLI only warns on those,
    which would let a misspelt kind or a removed apiVersion through)."""
    found = []
    for doc in docs:
        if _group(doc) in SCHEMALESS_GROUPS:
            continue
        try:
            validated = kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path) or "<root>"
            found.append(f"{_name(doc)} is invalid for Kubernetes {version}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            found.append(f"{_name(doc)}: {exc.message}; not a built-in kind of Kubernetes {version}, and its group "
                         f"{_group(doc)!r} is not in SCHEMALESS_GROUPS")
        else:
            # kubernetes-validate falls back to the newest older schema it has; that would not test this version.
            assert validated == version, f"kubernetes-validate used the {validated} schemas for {version}"
    return found


@pytest.fixture(scope="module")
def rendered(helm: str) -> Callable[[str], list[Doc]]:
    """The chart rendered once per combination, shared by all versions (helm template is the slow part)."""
    cache: dict[str, list[Doc]] = {}
    args = dict(COMBINATIONS)

    def get(combination: str) -> list[Doc]:
        if combination not in cache:
            cache[combination] = render(helm, args[combination])
        return copy.deepcopy(cache[combination])

    return get


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("combination", [c[0] for c in COMBINATIONS])
def test_rendered_chart_is_valid_for_kubernetes(rendered: Callable[[str], list[Doc]], combination: str,
                                                version: str) -> None:
    docs = rendered(combination)
    assert docs, f"{combination}: helm template rendered nothing"
    found = problems(docs, version)
    assert not found, f"values combination {combination!r}, Kubernetes {version}:\n" + "\n".join(found)


def test_every_version_has_strict_schemas() -> None:
    """A kubernetes-validate without one of the versions would raise VersionNotSupportedError in every test above;
    this says what to fix (the pinned version in pyproject.toml's dev extra) in one place."""
    known = {kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()}
    assert set(KUBERNETES_VERSIONS) <= known, (f"kubernetes-validate {kubernetes_validate.__version__} knows "
                                               f"{sorted(known)}")


def _deployment(docs: list[Doc]) -> Doc:
    (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
    return deploy


def _replica_typo(deploy: Doc) -> str:
    deploy["spec"]["replica"] = deploy["spec"].pop("replicas")
    return "'replica' was unexpected"


def _replicas_string(deploy: Doc) -> str:
    deploy["spec"]["replicas"] = "1"
    return "spec.replicas: '1' is not of type 'integer'"


def _container_typo(deploy: Doc) -> str:
    deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    return "'imagePullPolicyy' was unexpected"


@pytest.mark.parametrize("breaks", [_replica_typo, _replicas_string, _container_typo],
                         ids=["unknown-field-spec.replica", "string-spec.replicas", "unknown-container-field"])
def test_broken_deployment_is_rejected_for_every_version(rendered: Callable[[str], list[Doc]],
                                                         breaks: Callable[[Doc], str]) -> None:
    """The validation can fail: without this, a validator that passes everything (a schema-less kind, a non-strict
    schema, a swallowed exception) would make the test above pass vacuously."""
    docs = rendered("default")
    deploy = _deployment(docs)
    expected = breaks(deploy)
    name = deploy["metadata"]["name"]
    for version in KUBERNETES_VERSIONS:
        found = problems(docs, version)
        assert len(found) == 1, f"Kubernetes {version}: expected the broken Deployment alone, got {found}"
        assert f"Deployment/{name}" in found[0] and expected in found[0], found[0]


def test_crds_are_validated_not_skipped(rendered: Callable[[str], list[Doc]]) -> None:
    """CustomResourceDefinitions are a built-in kind (apiextensions.k8s.io/v1) with a schema; a typo in one must be
    caught like any other, not waved through with the custom resources."""
    docs = rendered("default")
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert crds, "the default values render the CRDs"
    crds[0]["spec"]["preserveUnknownField"] = False  # the real field is preserveUnknownFields
    for version in KUBERNETES_VERSIONS:
        found = problems(docs, version)
        assert len(found) == 1 and "'preserveUnknownField' was unexpected" in found[0], found


def test_schemaless_kinds_outside_the_allow_list_fail() -> None:
    """A kind without a schema passes only in an allow-listed group; anything else (a misspelt built-in kind, an
    unknown group) is reported, where `kubernetes-validate` itself would only warn and exit 0."""
    meta = {"name": "x", "namespace": "w4s-system"}
    docs = [
        {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": meta, "spec": {}},
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": meta, "spec": {}},
        {"apiVersion": "w4s.io/v1alpha1", "kind": "WorkflowOptimization", "metadata": meta, "spec": {}},
    ]
    for version in KUBERNETES_VERSIONS:
        found = problems(docs, version)
        assert len(found) == 2, found
        assert "Deploymnet/x" in found[0] and "Widget/x" in found[1], found
