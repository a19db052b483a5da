"""The CRDs in crds/ reject invalid resources at the real kube-apiserver (tests/kube.py), with a message that names
the offending field: OpenAPI types, enums, patterns and bounds, the CEL rules that mirror the models' validators,
the cluster-only credential rules, and the immutability of what fixes a run's meaning.

tests/test_crds.py checks the schemas with jsonschema; only the API server evaluates the CEL rules (and their
fieldPath) and the transition rules on update, so those are checked here. Every case starts from an example
manifest that the API server accepts as-is and changes one thing.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from operator_harness import Api, ApiError, namespace_with_crds, response_message

from w4s.kubeapi import resource_path

ROOT = Path(__file__).resolve().parents[1]
OPENAI, EMBEDDED, MAT = "wfo-gsm8k-openai.yaml", "wfo-embedded.yaml", "mat-rwr.yaml"
Doc = dict[str, Any]
Spec = dict[str, Any]


def example(name: str) -> Doc:
    return yaml.safe_load((ROOT / "examples" / name).read_text(encoding="utf-8"))


def post(api: Api, ns: str, doc: Doc, *, strict: bool = False) -> httpx.Response:
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = ns
    params = {"fieldValidation": "Strict"} if strict else {}
    return api.client.post(resource_path(doc["apiVersion"], doc["kind"], ns), json=doc, params=params)


@pytest.fixture(scope="module")
def cluster_ns(kube_cluster) -> Iterator[tuple[Api, str]]:
    with namespace_with_crds(kube_cluster, "w4s-crdval") as found:
        yield found


# ---- positive control ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [OPENAI, EMBEDDED, MAT])
def test_examples_are_accepted_as_is(cluster_ns: tuple[Api, str], name: str) -> None:
    """Strict field validation too: an example with a field the schema does not know would be pruned silently."""
    api, ns = cluster_ns
    doc = example(name)
    doc["metadata"]["name"] = f"ok-{doc['metadata']['name']}"
    response = post(api, ns, doc, strict=True)
    assert response.status_code == 201, response_message(response)
    assert not response.headers.get("Warning"), response.headers.get("Warning")


# ---- one mutation, one rejection --------------------------------------------------------------------------------

def set_(path: str, value: Any) -> Callable[[Spec], None]:
    """Set spec.<path> (dotted; integers index lists), creating maps on the way."""
    def mutate(spec: Spec) -> None:
        *steps, last = [int(s) if s.isdigit() else s for s in path.split(".")]
        node: Any = spec
        for step in steps:
            node = node[step] if isinstance(step, int) else node.setdefault(step, {})
        node[last] = value
    return mutate


def drop(path: str) -> Callable[[Spec], None]:
    def mutate(spec: Spec) -> None:
        *steps, last = [int(s) if s.isdigit() else s for s in path.split(".")]
        node: Any = spec
        for step in steps:
            node = node[step]
        del node[last]
    return mutate


def both(*mutations: Callable[[Spec], None]) -> Callable[[Spec], None]:
    def mutate(spec: Spec) -> None:
        for m in mutations:
            m(spec)
    return mutate


def duplicate_executor(spec: Spec) -> None:
    spec["executors"].append(copy.deepcopy(spec["executors"][0]))


# (id, example, mutation, field path the message must name, fragment it must contain)
INVALID: list[tuple[str, str, Callable[[Spec], None], str, str]] = [
    ("iterations-string", OPENAI, set_("iterations", "ten"), "spec.iterations", "must be of type integer"),
    ("iterations-negative", OPENAI, set_("iterations", -3), "spec.iterations", "greater than or equal to 1"),
    ("iterations-zero", EMBEDDED, set_("iterations", 0), "spec.iterations", "greater than or equal to 1"),
    ("executors-not-list", OPENAI, set_("executors", {}), "spec.executors", "must be of type array"),
    ("executors-empty", OPENAI, set_("executors", []), "spec.executors", "at least 1 items"),
    ("unknown-provider", OPENAI, set_("executors.0.provider", "bedrock"), "spec.executors[0].provider",
     'Unsupported value: "bedrock"'),
    ("unknown-mode", EMBEDDED, set_("mode", "train"), "spec.mode", 'Unsupported value: "train"'),
    ("inline-api-key", OPENAI, set_("executors.0.apiKey", "sk-live-123"), "spec.executors[0].apiKey",
     "credentials must not be inline"),
    ("api-key-env-in-cluster", OPENAI, set_("executors.0.apiKeyEnv", "OPENAI_API_KEY"),
     "spec.executors[0].apiKeyEnv", "use apiKeySecret"),
    ("openai-without-secret", OPENAI, drop("executors.0.apiKeySecret"), "spec.executors[0].apiKeySecret",
     "apiKeySecret is required for providers openai and anthropic"),
    ("anthropic-meta-agent-without-secret", EMBEDDED,
     both(set_("metaAgent.provider", "anthropic"), set_("metaAgent.model", "claude-3-5-haiku")),
     "spec.metaAgent.apiKeySecret", "apiKeySecret is required"),
    ("secret-without-key", OPENAI, set_("executors.0.apiKeySecret", {"name": "openai"}),
     "spec.executors[0].apiKeySecret.key", "Required value"),
    ("openai-compatible-without-base-url", EMBEDDED, set_("executors.0.provider", "openai-compatible"),
     "spec.executors[0].baseUrl", "baseUrl is required for provider openai-compatible"),
    ("openai-compatible-empty-base-url", EMBEDDED,
     both(set_("executors.0.provider", "openai-compatible"), set_("executors.0.baseUrl", "")),
     "spec.executors[0].baseUrl", "baseUrl is required for provider openai-compatible"),
    ("embedded-with-base-url", EMBEDDED, set_("executors.0.baseUrl", "http://llm.internal:8000/v1"),
     "spec.executors[0].baseUrl", "baseUrl must be empty for provider embedded"),
    ("duplicate-executor-names", OPENAI, duplicate_executor, "spec.executors", "names must be unique"),
    # The API server fills in the default name before the rule runs: two nameless executors are both "default".
    ("duplicate-default-executor-names", EMBEDDED,
     set_("executors", [{"provider": "embedded", "model": "a"}, {"provider": "embedded", "model": "b"}]),
     "spec.executors", "names must be unique"),
    ("bad-executor-name", EMBEDDED, set_("executors.0.name", "Default"), "spec.executors[0].name",
     "should match"),
    ("candidates-in-optimize", OPENAI, set_("candidates", 5), "spec.candidates", "candidates must be 1 or unset"),
    ("candidates-too-many", EMBEDDED, set_("candidates", 65), "spec.candidates", "less than or equal to 64"),
    ("public-size-equals-validation", OPENAI, set_("splits.publicSize", 128), "spec.splits.publicSize",
     "must be smaller than splits.validationSize"),
    ("public-size-above-validation", OPENAI, set_("splits.publicSize", 500), "spec.splits.publicSize",
     "must be smaller than splits.validationSize"),
    ("temperature-word", OPENAI, set_("metaAgent.temperature", "hot"), "spec.metaAgent.temperature",
     "should match"),
    ("temperature-number", EMBEDDED, set_("metaAgent.temperature", 0.5), "spec.metaAgent.temperature",
     "must be of type string"),
    ("max-cost-negative", OPENAI, set_("budget.maxCostUsd", "-1"), "spec.budget.maxCostUsd", "should match"),
    ("concurrency-zero", EMBEDDED, set_("sandbox.concurrency", 0), "spec.sandbox.concurrency",
     "greater than or equal to 1"),
    ("concurrency-huge", EMBEDDED, set_("sandbox.concurrency", 10000), "spec.sandbox.concurrency",
     "less than or equal to 512"),
    ("sandbox-backend", EMBEDDED, set_("sandbox.backend", "docker"), "spec.sandbox.backend",
     'Unsupported value: "docker"'),
    ("from-training-with-openai", OPENAI,
     both(set_("metaAgent.provider", "openai"), set_("metaAgent.apiKeySecret", {"name": "openai", "key": "k"})),
     "spec.metaAgent.fromTraining", "fromTraining needs provider embedded"),
    ("weights-uri-with-openai", EMBEDDED,
     both(set_("metaAgent.provider", "openai"), set_("metaAgent.apiKeySecret", {"name": "openai", "key": "k"}),
          set_("metaAgent.weightsUri", "s3://w4s-models/x")),
     "spec.metaAgent.weightsUri", "weightsUri needs provider embedded"),
    ("from-training-and-weights-uri", OPENAI, set_("metaAgent.weightsUri", "s3://w4s-models/qwen"),
     "spec.metaAgent.weightsUri", "give fromTraining or weightsUri, not both"),
    ("from-training-bad-name", OPENAI, set_("metaAgent.fromTraining", "RWR_7b"), "spec.metaAgent.fromTraining",
     "should match"),
    ("store-not-string", EMBEDDED, set_("store", {"bucket": "b"}), "spec.store", "must be of type string"),
    ("active-deadline-zero", OPENAI, set_("activeDeadlineSeconds", 0), "spec.activeDeadlineSeconds",
     "greater than or equal to 1"),
    # MetaAgentTraining
    ("mat-trajectories-empty", MAT, set_("trajectories", []), "spec.trajectories", "at least 1 items"),
    ("mat-trajectory-both-sources", MAT, set_("trajectories.0.uri", "s3://w4s-runs/a/trajectories.jsonl"),
     "spec.trajectories[0]", "give exactly one of workflowOptimization and uri"),
    ("mat-trajectory-no-source", MAT, set_("trajectories", [{}]), "spec.trajectories[0]",
     "give exactly one of workflowOptimization and uri"),
    ("mat-learning-rate-word", MAT, set_("hyperparameters.learningRate", "fast"),
     "spec.hyperparameters.learningRate", "should match"),
    ("mat-algorithm-ppo", MAT, set_("algorithm", "ppo"), "spec.algorithm", 'Unsupported value: "ppo"'),
    ("mat-gpus-negative", MAT, set_("resources.gpus", -1), "spec.resources.gpus", "greater than or equal to 0"),
    ("mat-memory-unit", MAT, set_("resources.memory", "64GB"), "spec.resources.memory", "should match"),
    ("mat-base-model-not-uri", MAT, set_("baseModel", "Qwen/Qwen2.5-Coder-7B-Instruct"), "spec.baseModel",
     "should match"),
    ("mat-base-model-missing", MAT, drop("baseModel"), "spec.baseModel", "Required value"),
    ("mat-toleration-operator", MAT, set_("resources.tolerations.0.operator", "In"),
     "spec.resources.tolerations[0].operator", 'Unsupported value: "In"'),
]


@pytest.mark.parametrize(("example_name", "mutate", "field", "fragment"),
                         [pytest.param(*case[1:], id=case[0]) for case in INVALID])
def test_invalid_resource_is_rejected_naming_the_field(cluster_ns: tuple[Api, str], request: pytest.FixtureRequest,
                                                       example_name: str, mutate: Callable[[Spec], None],
                                                       field: str, fragment: str) -> None:
    api, ns = cluster_ns
    doc = example(example_name)
    doc["metadata"]["name"] = re.sub(r"[^a-z0-9]+", "-", request.node.callspec.id.lower()).strip("-")
    mutate(doc["spec"])
    response = post(api, ns, doc)
    text = response_message(response)
    assert response.status_code == 422, f"{response.status_code}: {text}"
    # The field path leads its error ("spec.x: Invalid value ..."), not merely somewhere in the text.
    assert re.search(re.escape(field) + r"(?![\w.\[])", text), f"{field!r} not named in: {text}"
    assert fragment in text, f"{fragment!r} not in: {text}"


def test_unknown_field_is_an_error_with_strict_field_validation(cluster_ns: tuple[Api, str]) -> None:
    api, ns = cluster_ns
    doc = example(EMBEDDED)
    doc["metadata"]["name"] = "unknown-field"
    doc["spec"]["iteratons"] = 5
    doc["spec"]["sandbox"]["cpuLimit"] = "2"
    response = post(api, ns, doc, strict=True)
    text = response_message(response)
    # A strict decoding error is a 400 BadRequest, not a 422 Invalid: the object never reaches validation.
    assert response.status_code == 400, f"{response.status_code}: {text}"
    assert 'unknown field "spec.iteratons"' in text, text
    assert 'unknown field "spec.sandbox.cpuLimit"' in text, text
    # Without it the API server prunes the field and says so in a warning.
    doc["metadata"]["name"] = "unknown-field-pruned"
    response = post(api, ns, doc)
    assert response.status_code == 201, response_message(response)
    assert "iteratons" not in response.json()["spec"]
    assert "unknown field" in response.headers.get("Warning", "")
    assert "spec.iteratons" in response.headers["Warning"], response.headers["Warning"]


# ---- immutability -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def created(cluster_ns: tuple[Api, str]) -> dict[str, Doc]:
    """Valid resources to patch: a WorkflowOptimization without store, one with, and a MetaAgentTraining."""
    api, ns = cluster_ns
    out = {}
    for key, name, extra in (("wfo", OPENAI, {}), ("wfo-store", OPENAI, {"store": "s3://w4s-runs/fixed"}),
                             ("mat", MAT, {})):
        doc = example(name)
        doc["metadata"] = {"name": f"immutable-{key}", "namespace": ns}
        doc["spec"].update(extra)
        out[key] = api.create(doc)
    return out


IMMUTABLE: list[tuple[str, str, Spec, str, str]] = [
    ("task-benchmark", "wfo", {"task": {"benchmark": "math"}}, "spec.task", "task is immutable"),
    ("task-dataset-added", "wfo", {"task": {"dataset": "s3://w4s-data/gsm8k.jsonl"}}, "spec.task",
     "task is immutable"),
    ("splits-seed", "wfo", {"splits": {"seed": 7}}, "spec.splits", "splits are immutable"),
    ("mode", "wfo", {"mode": "collect"}, "spec.mode", "mode is immutable"),
    ("seed", "wfo", {"seed": 1}, "spec.seed", "seed is immutable"),
    ("store-added", "wfo", {"store": "s3://w4s-runs/elsewhere"}, "spec.store", "store is immutable"),
    ("store-changed", "wfo-store", {"store": "s3://w4s-runs/elsewhere"}, "spec.store", "store is immutable"),
    ("store-removed", "wfo-store", {"store": None}, "spec.store", "store is immutable"),
    ("mat-base-model", "mat", {"baseModel": "s3://w4s-models/other"}, "spec.baseModel", "baseModel is immutable"),
    ("mat-algorithm", "mat", {"algorithm": "sft"}, "spec.algorithm", "algorithm is immutable"),
    ("mat-trajectories", "mat", {"trajectories": [{"uri": "s3://w4s-runs/t.jsonl"}]}, "spec.trajectories",
     "trajectories are immutable"),
    ("mat-output-added", "mat", {"output": "s3://w4s-models/out"}, "spec.output", "output is immutable"),
]


@pytest.mark.parametrize(("target", "patch", "field", "fragment"),
                         [pytest.param(*case[1:], id=case[0]) for case in IMMUTABLE])
def test_immutable_field_cannot_be_patched(cluster_ns: tuple[Api, str], created: dict[str, Doc], target: str,
                                           patch: Spec, field: str, fragment: str) -> None:
    api, _ = cluster_ns
    with pytest.raises(ApiError) as caught:
        api.patch(created[target], {"spec": patch})
    assert caught.value.status == 422, caught.value
    assert re.search(re.escape(field) + r"(?![\w.\[])", caught.value.message), caught.value.message
    assert fragment in caught.value.message and "immutable" in caught.value.message, caught.value.message


@pytest.mark.parametrize(("target", "patch"), [
    pytest.param("wfo", {"iterations": 20}, id="iterations"),
    pytest.param("wfo", {"suspend": True}, id="suspend"),
    pytest.param("wfo", {"budget": {"maxCostUsd": "12.5"}, "ttlSecondsAfterFinished": 60}, id="budget-ttl"),
    pytest.param("wfo-store", {"store": "s3://w4s-runs/fixed", "sandbox": {"concurrency": 8}}, id="same-store"),
    pytest.param("mat", {"hyperparameters": {"epochs": 2}, "resources": {"gpus": 2}}, id="mat-hyperparameters"),
])
def test_mutable_field_can_be_patched(cluster_ns: tuple[Api, str], created: dict[str, Doc], target: str,
                                      patch: Spec) -> None:
    api, _ = cluster_ns
    before = api.get(created[target]["apiVersion"], created[target]["kind"], created[target]["metadata"]["namespace"],
                     created[target]["metadata"]["name"])
    assert before is not None
    after = api.patch(created[target], {"spec": patch})
    for key, value in patch.items():
        if isinstance(value, dict):
            assert value.items() <= after["spec"][key].items()
        else:
            assert after["spec"][key] == value
    changed = any(before["spec"].get(k) != after["spec"].get(k) for k in patch)
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + (1 if changed else 0)
