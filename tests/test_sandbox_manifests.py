"""The sandbox manifests confine untrusted workflow code: every rule is asserted on the built dicts, no cluster."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from w4s.sandbox.kube import gateway_network_policy, runtime_class, sandbox_network_policy, sandbox_pod

RUN = "opt-1"
GATEWAY_URL = "http://10.96.0.12:8080/v1"
OWNER = {
    "apiVersion": "w4s.io/v1alpha1",
    "kind": "WorkflowOptimization",
    "name": RUN,
    "uid": "0f7d6a4e-1111-2222-3333-444455556666",
    "controller": True,
    "blockOwnerDeletion": True,
}
SANDBOX = {"app.kubernetes.io/component": "sandbox", "w4s.io/run": RUN}
RUNNER = {"app.kubernetes.io/component": "runner", "w4s.io/run": RUN}
GATEWAY = {"app.kubernetes.io/component": "gateway", "w4s.io/run": RUN}
KUBE_DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}


def build_pod(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "name": "opt-1-sandbox-0",
        "namespace": "team-a",
        "run_name": RUN,
        "image": "ghcr.io/example/w4s-sandbox:0.1.0",
        "cpu": "500m",
        "memory": "1Gi",
        "gateway_url": GATEWAY_URL,
    }
    return sandbox_pod(**{**args, **overrides})


def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["spec"]["containers"]
    return only


def strings(value: Any) -> Iterator[str]:
    """Every string in a manifest, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def pod_selector_peer(match_labels: dict[str, str]) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": match_labels}}


# --- pod ---------------------------------------------------------------------------------------------------------


def test_pod_runtime_class_is_set_or_omitted() -> None:
    assert build_pod()["spec"]["runtimeClassName"] == "gvisor"
    assert build_pod(runtime_class="kata")["spec"]["runtimeClassName"] == "kata"
    assert "runtimeClassName" not in build_pod(runtime_class=None)["spec"]


def test_pod_has_no_token_no_service_links_no_host_namespaces() -> None:
    spec = build_pod()["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["hostNetwork"] is False
    assert spec["hostPID"] is False
    assert spec["hostIPC"] is False


def test_pod_security_context() -> None:
    assert build_pod()["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_container_security_context() -> None:
    security = container(build_pod())["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    assert "add" not in security["capabilities"]


def test_requests_equal_limits() -> None:
    resources = container(build_pod(cpu="2", memory="512Mi", tmp_size="128Mi"))["resources"]
    expected = {"cpu": "2", "memory": "512Mi", "ephemeral-storage": "128Mi"}
    assert resources["requests"] == expected
    assert resources["limits"] == expected


def test_tmp_is_a_size_limited_memory_volume() -> None:
    pod = build_pod(tmp_size="64Mi")
    assert pod["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]
    assert container(pod)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert container(build_pod())["resources"]["limits"]["ephemeral-storage"] == "256Mi"


def test_pod_carries_no_credentials() -> None:
    pod = build_pod()
    worker = container(pod)
    for env in worker["env"]:
        assert not any(word in env["name"].upper() for word in ("KEY", "TOKEN", "SECRET", "PASSWORD")), env
        assert "valueFrom" not in env
    assert "envFrom" not in worker
    for volume in pod["spec"]["volumes"]:
        assert set(volume) == {"name", "emptyDir"}, volume
    assert "secret" not in json.dumps(pod).lower()


def test_pod_env_is_only_the_gateway_url() -> None:
    assert container(build_pod())["env"] == [{"name": "W4S_GATEWAY_URL", "value": GATEWAY_URL}]


def test_pod_command_port_and_probe() -> None:
    worker = container(build_pod(worker_port=9090))
    assert worker["command"] == ["python", "-I", "-m", "w4s.workflow.worker", "--listen", "0.0.0.0:9090"]
    assert worker["ports"] == [{"name": "worker", "containerPort": 9090, "protocol": "TCP"}]
    assert worker["readinessProbe"]["tcpSocket"] == {"port": 9090}
    assert container(build_pod())["command"][-1] == "0.0.0.0:7070"


def test_pod_restart_and_grace_period() -> None:
    spec = build_pod()["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 5


def test_pod_metadata_labels_and_owner() -> None:
    metadata = build_pod(owner=OWNER, labels={"team": "research"})["metadata"]
    assert metadata["name"] == "opt-1-sandbox-0"
    assert metadata["namespace"] == "team-a"
    assert metadata["labels"] == {
        "app.kubernetes.io/name": "w4s",
        "app.kubernetes.io/component": "sandbox",
        "app.kubernetes.io/instance": RUN,
        "app.kubernetes.io/managed-by": "w4s-operator",
        "w4s.io/run": RUN,
        "team": "research",
    }
    assert metadata["ownerReferences"] == [OWNER]
    assert "ownerReferences" not in build_pod()["metadata"]


def test_pod_labels_cannot_escape_the_network_policy_selector() -> None:
    with pytest.raises(ValueError, match=r"^labels: .*w4s\.io/run"):
        build_pod(labels={"w4s.io/run": "other"})
    with pytest.raises(ValueError, match=r"^labels: .*app\.kubernetes\.io/component"):
        build_pod(labels={"app.kubernetes.io/component": "runner"})


def test_pod_is_selected_by_its_network_policy() -> None:
    pod_labels = build_pod()["metadata"]["labels"]
    selector = sandbox_network_policy(name="p", namespace="team-a", run_name=RUN)["spec"]["podSelector"]
    assert selector["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize(
    ("arg", "value"),
    [
        ("name", "Sandbox"),
        ("name", "-sandbox"),
        ("name", "sandbox-"),
        ("name", "sand_box"),
        ("name", "a" * 64),
        ("name", ""),
        ("namespace", "team.a"),
        ("run_name", "Opt1"),
        ("runtime_class", "G"),
    ],
)
def test_pod_rejects_bad_names(arg: str, value: str) -> None:
    with pytest.raises(ValueError, match=rf"^{arg}: .*DNS-1123"):
        build_pod(**{arg: value})


def test_pod_accepts_longest_dns_label() -> None:
    assert build_pod(name="a" * 63)["metadata"]["name"] == "a" * 63


@pytest.mark.parametrize("arg", ["cpu", "memory", "tmp_size"])
@pytest.mark.parametrize("value", ["", "1GB", "-1", "abc", "1 Gi", "1.2.3", "Mi"])
def test_pod_rejects_bad_quantities(arg: str, value: str) -> None:
    with pytest.raises(ValueError, match=rf"^{arg}: .*quantity"):
        build_pod(**{arg: value})


@pytest.mark.parametrize("value", ["500m", "2", "1.5", "1Gi", "512Mi", "100M", "1e3", ".5"])
def test_pod_accepts_quantities(value: str) -> None:
    assert container(build_pod(cpu=value, memory=value, tmp_size=value))["resources"]["limits"]["cpu"] == value


@pytest.mark.parametrize(
    "value",
    ["", "gateway:8080", "ftp://gateway", "http://", "http://gate way", "http://gw:99999", "http://gw:80?x=1"],
)
def test_pod_rejects_bad_gateway_urls(value: str) -> None:
    with pytest.raises(ValueError, match=r"^gateway_url: "):
        build_pod(gateway_url=value)


@pytest.mark.parametrize(
    "value", ["http://gateway", "https://gw.team-a.svc.cluster.local:8443/v1", "http://10.96.0.12:8080", "http://gw/"]
)
def test_pod_accepts_gateway_urls(value: str) -> None:
    assert container(build_pod(gateway_url=value))["env"][0]["value"] == value


def test_pod_rejects_bad_image_and_port() -> None:
    with pytest.raises(ValueError, match=r"^image: "):
        build_pod(image=" ")
    with pytest.raises(ValueError, match=r"^worker_port: "):
        build_pod(worker_port=0)


def test_pod_leaks_no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("W4S_CANARY_API_KEY", "sk-canary-3f9c1e7b")
    secrets = {value for name, value in os.environ.items() if name.endswith("_KEY") and value}
    assert "sk-canary-3f9c1e7b" in secrets
    text = json.dumps(build_pod(owner=OWNER, labels={"team": "research"}))
    for found in strings(json.loads(text)):
        for secret in secrets:
            assert secret not in found


# --- network policies --------------------------------------------------------------------------------------------


def sandbox_policy(**overrides: Any) -> dict[str, Any]:
    return sandbox_network_policy(**{"name": "opt-1-sandbox", "namespace": "team-a", "run_name": RUN, **overrides})


def gateway_policy(**overrides: Any) -> dict[str, Any]:
    return gateway_network_policy(**{"name": "opt-1-gateway", "namespace": "team-a", "run_name": RUN, **overrides})


def peers(rules: list[dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    for rule in rules:
        assert rule.get(key), f"a missing or empty {key!r} would allow every peer: {rule}"
        assert rule.get("ports"), f"a rule without ports allows every port: {rule}"
        yield from rule[key]


def test_sandbox_policy_selects_the_runs_sandbox_pods_both_ways() -> None:
    policy = sandbox_policy()
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["kind"] == "NetworkPolicy"
    assert policy["metadata"]["namespace"] == "team-a"
    assert policy["spec"]["podSelector"] == {"matchLabels": SANDBOX}
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_sandbox_policy_ingress_only_from_the_runs_runner() -> None:
    ingress = sandbox_policy(worker_port=9090)["spec"]["ingress"]
    for peer in peers(ingress, "from"):
        assert peer == pod_selector_peer(RUNNER)
    assert [rule["ports"] for rule in ingress] == [[{"protocol": "TCP", "port": 9090}]]


def test_sandbox_policy_egress_only_to_the_runs_gateway() -> None:
    egress = sandbox_policy(gateway_port=8443)["spec"]["egress"]
    for peer in peers(egress, "to"):
        assert peer == pod_selector_peer(GATEWAY)
    assert [rule["ports"] for rule in egress] == [[{"protocol": "TCP", "port": 8443}]]


def test_sandbox_policy_dns_only_to_kube_dns() -> None:
    egress = sandbox_policy(allow_dns=True)["spec"]["egress"]
    for peer in peers(egress, "to"):
        assert peer in (pod_selector_peer(GATEWAY), KUBE_DNS_PEER)
    dns = [rule for rule in egress if rule["to"] == [KUBE_DNS_PEER]]
    assert [rule["ports"] for rule in dns] == [[{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]]
    assert len(egress) == 2


def test_policies_have_no_ip_blocks() -> None:
    for policy in (sandbox_policy(), sandbox_policy(allow_dns=True), gateway_policy()):
        assert "ipBlock" not in json.dumps(policy)


def test_gateway_policy_ingress_only_from_the_runs_sandbox_and_runner() -> None:
    policy = gateway_policy(gateway_port=8443, owner=OWNER)
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": GATEWAY}
    assert spec["policyTypes"] == ["Ingress"]
    assert "egress" not in spec
    expected = [pod_selector_peer(SANDBOX), pod_selector_peer(RUNNER)]
    assert sorted(peers(spec["ingress"], "from"), key=json.dumps) == sorted(expected, key=json.dumps)
    assert [rule["ports"] for rule in spec["ingress"]] == [[{"protocol": "TCP", "port": 8443}]]
    assert policy["metadata"]["ownerReferences"] == [OWNER]


def test_policies_carry_standard_labels_and_optional_owner() -> None:
    assert sandbox_policy(owner=OWNER)["metadata"]["ownerReferences"] == [OWNER]
    assert "ownerReferences" not in sandbox_policy()["metadata"]
    assert "ownerReferences" not in gateway_policy()["metadata"]
    for policy in (sandbox_policy(), gateway_policy()):
        assert policy["metadata"]["labels"]["w4s.io/run"] == RUN
        assert policy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "w4s-operator"


@pytest.mark.parametrize("build", [sandbox_policy, gateway_policy])
def test_policies_reject_bad_arguments(build: Any) -> None:
    with pytest.raises(ValueError, match=r"^run_name: "):
        build(run_name="Opt_1")
    with pytest.raises(ValueError, match=r"^namespace: "):
        build(namespace="")
    with pytest.raises(ValueError, match=r"^gateway_port: "):
        build(gateway_port=70000)


# --- runtime class and serialization -----------------------------------------------------------------------------


def test_runtime_class() -> None:
    assert runtime_class() == {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": "gvisor"},
        "handler": "runsc",
    }
    assert runtime_class("gvisor-kvm", "runsc-kvm")["handler"] == "runsc-kvm"
    with pytest.raises(ValueError, match=r"^handler: "):
        runtime_class(handler="run_sc")


def test_manifests_round_trip_through_json() -> None:
    for manifest in (
        build_pod(owner=OWNER, labels={"team": "research"}),
        sandbox_policy(allow_dns=True, owner=OWNER),
        gateway_policy(owner=OWNER),
        runtime_class(),
    ):
        assert json.loads(json.dumps(manifest)) == manifest
