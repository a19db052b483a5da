"""The shipped examples work as written: every w4s.io resource in examples/ parses with the project's models and
is accepted by a real kube-apiserver with the project's CRDs (strict field validation, so a misspelt field fails
instead of being pruned), the nine benchmark × executor runs the chart promises are all there with the paper's
settings, and the in-cluster vLLM executor they point at (examples/vllm-executor.yaml) is valid Kubernetes and
matches what the runs expect.

Everything is sent as a server-side dry run: the API server validates and admits exactly as for a real create
(CEL rules included) but stores nothing, so the examples never collide with each other or with other tests.
One API server serves the whole session (tests/kube.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from operator_harness import Api, namespace_with_crds, response_message

from w4s.benchmarks import BENCHMARKS
from w4s.llm.pricing import resolve_price
from w4s.resources import API_VERSION, MetaAgentTrainingSpec, WorkflowOptimizationSpec
from w4s.sandbox.kube import run_labels
from w4s.spec import load_spec_file, parse_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
VLLM = EXAMPLES / "vllm-executor.yaml"
Doc = dict[str, Any]

MODELS = {"WorkflowOptimization": WorkflowOptimizationSpec, "MetaAgentTraining": MetaAgentTrainingSpec}
# Executor kind of a file name, by the provider its run uses.
EXECUTOR_OF_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "openai-compatible": "vllm"}
COMBINATIONS = {(b, e) for b in ("gsm8k", "humaneval", "mmlu-pro") for e in ("openai", "anthropic", "vllm")}
# Where each kind in vllm-executor.yaml is created (API group path and plural).
PATHS = {
    ("v1", "Namespace"): "/api/v1/namespaces",
    ("v1", "PersistentVolumeClaim"): "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    ("v1", "Service"): "/api/v1/namespaces/{ns}/services",
    ("apps/v1", "Deployment"): "/apis/apps/v1/namespaces/{ns}/deployments",
    ("networking.k8s.io/v1", "NetworkPolicy"): "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
}


def documents(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def w4s_resources() -> list[tuple[str, Doc]]:
    """(file name, document) of every w4s.io resource in examples/*.yaml."""
    return [(path.name, doc) for path in sorted(EXAMPLES.glob("*.yaml")) for doc in documents(path)
            if str(doc.get("apiVersion", "")).startswith("w4s.io/")]


def runs() -> dict[str, Doc]:
    """The WorkflowOptimizations named wfo-<benchmark>-<executor>.yaml, by file name."""
    return {name: doc for name, doc in w4s_resources()
            if doc["kind"] == "WorkflowOptimization" and name != "wfo-embedded.yaml"}


def vllm_objects() -> list[Doc]:
    (doc,) = documents(VLLM)
    assert doc["kind"] == "List", "vllm-executor.yaml is one List document (tests/test_crds.py reads one document)"
    return doc["items"]


def by_kind(kind: str) -> Doc:
    (obj,) = [o for o in vllm_objects() if o["kind"] == kind]
    return obj


def dry_run(api: Api, path: str, obj: Doc) -> httpx.Response:
    return api.client.post(path, json=obj, params={"dryRun": "All", "fieldValidation": "Strict"})


def assert_accepted(response: httpx.Response, what: str) -> None:
    assert response.status_code == 201, f"{what}: {response.status_code}: {response_message(response)}"
    # A warning would be a deprecated field, or (without Strict) a pruned one: the example would not mean what it says.
    assert not response.headers.get("Warning"), f"{what}: {response.headers.get('Warning')}"


@pytest.fixture(scope="module")
def cluster_ns(kube_cluster) -> Iterator[tuple[Api, str]]:
    with namespace_with_crds(kube_cluster, "w4s-examples") as found:
        yield found


# ---- the models -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "doc"), [pytest.param(n, d, id=n) for n, d in w4s_resources()])
def test_resource_parses_with_the_projects_models(name: str, doc: Doc) -> None:
    """The operator and the runner read a spec through these models; the CRD accepting it is not enough."""
    assert doc["apiVersion"] == API_VERSION, name
    spec = MODELS[doc["kind"]].model_validate(doc["spec"])
    if isinstance(spec, WorkflowOptimizationSpec):
        for executor in spec.executors:
            resolve_price(executor)  # an unpriced model would fail at the run's start, not here
        # A manifest is also a laptop config (`w4s optimize --config`).
        assert parse_spec(load_spec_file(EXAMPLES / name)).executors == spec.executors


def test_laptop_config_parses() -> None:
    """optimize-openai.yaml is the README's `w4s optimize --config` example: a bare spec, not a resource."""
    spec = parse_spec(load_spec_file(EXAMPLES / "optimize-openai.yaml"))
    assert spec.executors[0].provider == "openai" and spec.meta_agent.provider == "openai-compatible"


# ---- the API server ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "doc"), [pytest.param(n, d, id=n) for n, d in w4s_resources()])
def test_resource_is_accepted_by_the_api_server(cluster_ns: tuple[Api, str], name: str, doc: Doc) -> None:
    api, ns = cluster_ns
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = ns
    plural = {"WorkflowOptimization": "workflowoptimizations", "MetaAgentTraining": "metaagenttrainings"}[doc["kind"]]
    assert_accepted(dry_run(api, f"/apis/{API_VERSION}/namespaces/{ns}/{plural}", doc), name)


def test_vllm_executor_objects_are_accepted_by_the_api_server(cluster_ns: tuple[Api, str]) -> None:
    """Deployment, Service, PVC and NetworkPolicy go into this module's namespace (a dry run still needs the
    namespace to exist); the Namespace itself is dry-run as written."""
    api, ns = cluster_ns
    kinds = []
    for obj in vllm_objects():
        kinds.append(obj["kind"])
        obj = copy.deepcopy(obj)
        if obj["kind"] != "Namespace":
            obj["metadata"]["namespace"] = ns
        path = PATHS[(obj["apiVersion"], obj["kind"])].format(ns=ns)
        assert_accepted(dry_run(api, path, obj), f"{obj['kind']}/{obj['metadata']['name']}")
    assert {"Deployment", "Service"} <= set(kinds), kinds


# ---- what the examples promise ----------------------------------------------------------------------------------

def test_all_nine_benchmark_executor_runs_exist() -> None:
    """The chart promises GSM8K, HumanEval and MMLU-Pro with OpenAI, Anthropic and an in-cluster vLLM executor;
    each file's name says what its spec runs."""
    found = {}
    for name, doc in runs().items():
        spec = doc["spec"]
        (executor,) = spec["executors"]
        combination = (spec["task"]["benchmark"], EXECUTOR_OF_PROVIDER[executor["provider"]])
        assert name == f"wfo-{combination[0]}-{combination[1]}.yaml", f"{name} runs {combination}"
        assert combination not in found, f"{name} and {found.get(combination)} both run {combination}"
        found[combination] = name
    assert set(found) == COMBINATIONS, (f"missing: {sorted(COMBINATIONS - set(found))}, "
                                        f"unexpected: {sorted(set(found) - COMBINATIONS)}")


@pytest.mark.parametrize("name", sorted(runs()))
def test_runs_use_the_papers_settings(name: str) -> None:
    """Table 4 splits (the registry's defaults), 10 iterations, horizon 2, one action at temperature 0.5; numbers
    that are not integers are strings in the file itself, as the CRDs require."""
    raw = runs()[name]["spec"]
    spec = WorkflowOptimizationSpec.model_validate(raw)
    sizes = BENCHMARKS[spec.task.benchmark].sizes
    assert (spec.splits.validation_size, spec.splits.test_size) == (sizes.validation, sizes.test)
    assert spec.splits.public_size == sizes.validation // 4  # the default quarter, written out
    assert (spec.mode, spec.iterations, spec.horizon, spec.candidates_per_iteration) == ("optimize", 10, 2, 1)
    assert spec.self_correction_attempts == 3
    assert raw["metaAgent"]["temperature"] == "0.5"
    assert spec.sandbox.backend == "gvisor" and spec.sandbox.required
    if raw["executors"][0]["provider"] == "openai-compatible":
        assert raw["executors"][0]["price"] == {"inputPerMtok": "0", "outputPerMtok": "0"}
    else:
        assert isinstance(raw["budget"]["maxCostUsd"], str) and spec.budget.max_cost and spec.budget.max_cost > 0


def test_vllm_runs_point_at_the_vllm_service() -> None:
    """The runs' baseUrl is the Service's cluster DNS name and port, their model is vLLM's served name, and the
    Service and NetworkPolicy select the Deployment's pods: otherwise the vLLM examples are not complete."""
    deployment, service, policy = by_kind("Deployment"), by_kind("Service"), by_kind("NetworkPolicy")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    image, _, tag = container["image"].rpartition(":")
    assert image == "vllm/vllm-openai" and tag not in ("", "latest"), container["image"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == container["resources"]["requests"]["nvidia.com/gpu"]
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"] if "=" in a)
    (port,) = service["spec"]["ports"]
    assert int(args["port"]) == port["port"] == container["ports"][0]["containerPort"]
    expected = f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local:{port['port']}/v1"
    vllm_runs = [doc for doc in runs().values() if doc["spec"]["executors"][0]["provider"] == "openai-compatible"]
    assert len(vllm_runs) == 3
    for doc in vllm_runs:
        executor = doc["spec"]["executors"][0]
        assert executor["baseUrl"] == expected, doc["metadata"]["name"]
        assert executor["model"] == args["served-model-name"], doc["metadata"]["name"]
        assert urlsplit(executor["baseUrl"]).port in [p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]]


def test_vllm_network_policy_admits_the_operators_gateway_pods() -> None:
    """The gateway is the one pod of a run that calls executors; the policy must select the labels the operator
    really puts on it (w4s.sandbox.kube.run_labels), or every vLLM run's calls would be dropped."""
    policy = by_kind("NetworkPolicy")
    gateway = run_labels("gateway", "any-run")
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"] == {}  # runs may live in any namespace
    assert peer["podSelector"]["matchLabels"].items() <= gateway.items()
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
