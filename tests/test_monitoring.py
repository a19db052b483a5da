"""The chart's monitoring: ServiceMonitor, PodMonitor, PrometheusRule and Grafana dashboards.

Checked three ways: promtool (Debian's `prometheus` package) checks the rules and fires each alert on synthetic
series; the real API server accepts the monitoring objects against prometheus-operator's own CRDs (from its Go
module); and one end-to-end run -- local control plane, the operator, one WorkflowOptimization on the embedded
local model, artifacts in a SeaweedFS bucket -- is scraped by a real Prometheus, and every expression of every
shipped dashboard and alert returns data through Prometheus's HTTP API (training panels excepted: no trainer runs
here, see TRAINING_ONLY).

No kubelet runs locally, so the end-to-end test plays it: it reads the pods the operator asked for (the runner
Job, the gateway and sandbox Deployments) and runs each container's command as a local process, with Service
names resolved to loopback ports. A llama.cpp server of the same embedded model stands in for the meta-agent's
vLLM Deployment.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kube import apply_crds
from operator_harness import (
    Api,
    ApiError,
    OperatorProcess,
    ensure_gvisor_runtime_class,
    namespace,
    operator_identity,
    service_account_token,
    wait_for,
)
from servers import free_port, stop_process, wait_until
from test_chart import helm, render  # noqa: F401  (the helm fixture)

from w4s.embedded.llama_server import serve_embedded

ROOT = Path(__file__).resolve().parents[1]
V = "w4s.io/v1alpha1"
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
MONITORING_CRDS = ("servicemonitors", "podmonitors", "prometheusrules")
MONITORING = ["--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.podMonitor.enabled=true",
              "--set", "monitoring.prometheusRule.enabled=true"]
MODEL = "smollm2-135m-instruct"  # the smallest embedded model: this test is about the plumbing, not the scores
# Panels that only a running trainer (MetaAgentTraining's GPU Job) feeds; no trainer runs here.
TRAINING_ONLY = {"w4s_meta_agent_training_loss", "w4s_meta_agent_training_tokens_per_second",
                 "w4s_meta_agent_training_learning_rate", "w4s_meta_agent_training_step",
                 "w4s_meta_agent_training_gpu_memory_bytes"}
# Grafana's variables, as a user who picked "All" and a 1-minute rate window would have them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$namespace": ".*", "$run": ".*", "$name": ".*"}


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {d["kind"]: d for d in docs if d["kind"] in ("ServiceMonitor", "PodMonitor", "PrometheusRule")}


@pytest.fixture(scope="module")
def monitoring(helm: str) -> dict[str, Any]:  # noqa: F811
    docs = render(helm, MONITORING)
    objects = _by_kind(docs)
    objects["dashboards"] = {key: json.loads(value) for d in docs if d["kind"] == "ConfigMap"
                             and d["metadata"]["labels"].get("grafana_dashboard") == "1"
                             for key, value in d["data"].items()}
    return objects


@pytest.fixture(scope="module")
def rules_file(monitoring: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "w4s-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": monitoring["PrometheusRule"]["spec"]["groups"]}, sort_keys=False))
    return path


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _rules(monitoring: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in monitoring["PrometheusRule"]["spec"]["groups"] for r in g["rules"]}


def _expressions(monitoring: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and variable query and every alert."""
    found = []
    for file, board in monitoring["dashboards"].items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{file}: {panel['title']} {target['refId']}", target["expr"]))
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                inner = re.fullmatch(r"label_values\((.*), *\w+\)", var["query"]["query"])
                assert inner, f"{file}: variable {var['name']} is not label_values(query, label)"
                found.append((f"{file}: variable {var['name']}", inner[1]))
    found += [(f"alert {name}", rule["expr"]) for name, rule in _rules(monitoring).items()]
    return found


# --- rules -----------------------------------------------------------------------------------------------------

def test_promtool_check_rules(rules_file: Path) -> None:
    result = _promtool("check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def _annotations(rule: dict[str, Any], labels: dict[str, str], value: str) -> dict[str, str]:
    """The rule's annotations with Prometheus's template filled in the way Prometheus would fill it."""
    def fill(text: str) -> str:
        text = re.sub(r"\{\{ \$value \| humanizePercentage \}\}", value, text)
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m[1]], text)
    return {key: fill(text) for key, text in rule["annotations"].items()}


def test_each_alert_fires_when_it_should_and_not_before_promtool(monitoring: dict[str, Any], rules_file: Path,
                                                                  tmp_path: Path) -> None:
    rules = _rules(monitoring)
    assert set(rules) == {"W4SOperatorDown", "W4SBudgetNearlySpent", "W4STrainingPendingTooLong",
                          "W4SSandboxErrorRate"}
    run_a = {"job": "w4s-runner", "namespace": "team-a", "run": "run-a"}
    run_b = {**run_a, "run": "run-b"}
    training = {"job": "w4s-operator", "kind": "MetaAgentTraining", "namespace": "team-a"}

    def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
        return {"series": name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "values": values}

    def alert(name: str, labels: dict[str, str], value: str) -> dict[str, Any]:
        rule = rules[name]
        full = {**labels, **rule["labels"]}
        return {"exp_labels": full, "exp_annotations": _annotations(rule, full, value)}

    cases = [
        # The operator is scraped for 5 minutes, then not: pending for 5m (operatorDownFor), then firing.
        {"interval": "1m", "input_series": [series("up", {"job": "w4s-operator", "namespace": "w4s"}, "1x4 0x20")],
         "alert_rule_test": [
             {"eval_time": "4m", "alertname": "W4SOperatorDown", "exp_alerts": []},
             {"eval_time": "8m", "alertname": "W4SOperatorDown", "exp_alerts": []},
             {"eval_time": "12m", "alertname": "W4SOperatorDown",
              "exp_alerts": [alert("W4SOperatorDown", {}, "")]}]},
        # No operator series at all (never deployed, or the ServiceMonitor matches nothing) fires too.
        {"interval": "1m", "input_series": [series("up", {"job": "other"}, "1x20")],
         "alert_rule_test": [{"eval_time": "10m", "alertname": "W4SOperatorDown",
                              "exp_alerts": [alert("W4SOperatorDown", {}, "")]}]},
        # run-a spends a tenth of its $1 budget a minute on two roles; run-b spends more but has no budget.
        {"interval": "1m", "input_series": [
            series("w4s_llm_cost_usd_total", {**run_a, "role": "executor", "model": "gpt-4o-mini"}, "0+0.08x12"),
            series("w4s_llm_cost_usd_total", {**run_a, "role": "meta_agent", "model": "qwen"}, "0+0.02x12"),
            series("w4s_budget_usd", run_a, "1x12"),
            series("w4s_llm_cost_usd_total", {**run_b, "role": "executor", "model": "gpt-4o"}, "0+5x12")],
         "alert_rule_test": [
             {"eval_time": "5m", "alertname": "W4SBudgetNearlySpent", "exp_alerts": []},
             {"eval_time": "10m", "alertname": "W4SBudgetNearlySpent",
              "exp_alerts": [alert("W4SBudgetNearlySpent", {"namespace": "team-a", "run": "run-a"}, "100%")]}]},
        # A training pending for over an hour fires (trainingPendingFor 1h); a running one never.
        {"interval": "5m", "input_series": [
            series("w4s_operator_resource_info", {**training, "name": "waits", "phase": "Pending"}, "1x20"),
            series("w4s_operator_resource_info", {**training, "name": "runs", "phase": "Running"}, "1x20")],
         "alert_rule_test": [
             {"eval_time": "30m", "alertname": "W4STrainingPendingTooLong", "exp_alerts": []},
             {"eval_time": "65m", "alertname": "W4STrainingPendingTooLong",
              "exp_alerts": [alert("W4STrainingPendingTooLong", {"namespace": "team-a", "name": "waits"}, "")]}]},
        # run-a: 1 of 10 samples a minute dies in the sandbox (10% > 5%); run-b: many workflow errors of its own
        # (ValueError) but no sandbox failure.
        {"interval": "1m", "input_series": [
            series("w4s_samples_evaluated_total", run_a, "0+10x40"),
            series("w4s_workflow_errors_total", {**run_a, "kind": "SandboxDied"}, "0+1x40"),
            series("w4s_workflow_errors_total", {**run_a, "kind": "SandboxUnresponsive"}, "0x40"),
            series("w4s_samples_evaluated_total", run_b, "0+10x40"),
            series("w4s_workflow_errors_total", {**run_b, "kind": "ValueError"}, "0+8x40"),
            series("w4s_workflow_errors_total", {**run_b, "kind": "SandboxDied"}, "0x40")],
         "alert_rule_test": [
             {"eval_time": "8m", "alertname": "W4SSandboxErrorRate", "exp_alerts": []},  # pending (for: 10m)
             {"eval_time": "30m", "alertname": "W4SSandboxErrorRate",
              "exp_alerts": [alert("W4SSandboxErrorRate", {"namespace": "team-a", "run": "run-a"}, "10%")]}]},
    ]
    (tmp_path / "w4s-rules.yaml").write_text(rules_file.read_text())
    (tmp_path / "alerts-test.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["w4s-rules.yaml"], "evaluation_interval": "1m", "tests": cases}, sort_keys=False))
    result = _promtool("test", "rules", "alerts-test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# --- dashboards ------------------------------------------------------------------------------------------------

def test_dashboards_are_well_formed(monitoring: dict[str, Any]) -> None:
    boards = monitoring["dashboards"]
    assert set(boards) == {"optimization.json", "training.json", "operator.json"}
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    documented = set(re.findall(r"w4s_[a-z_]+", (ROOT / "docs" / "metrics.md").read_text()
                                + (ROOT / "docs" / "operator.md").read_text()))
    for file, board in boards.items():
        variables = {v["name"] for v in board["templating"]["list"]}
        assert "datasource" in variables
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), f"{file}: panel ids repeat"
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{file}: {panel['title']} leaves the grid"
            mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
            assert not mine & cells, f"{file}: {panel['title']} overlaps another panel"
            cells |= mine
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["description"] and panel["targets"], f"{file}: {panel['title']}"
            for target in panel["targets"]:
                used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
                assert used <= variables, f"{file}: {panel['title']} uses undefined variables {used - variables}"
                for name in re.findall(r"w4s_[a-z_]+", target["expr"]):
                    base = re.sub(r"_(bucket|sum|count)$", "", name)
                    assert {name, base} & documented, f"{file}: {panel['title']} queries {name}, which no doc lists"


# --- the objects against prometheus-operator's CRDs --------------------------------------------------------------

def _prometheus_operator_crds() -> list[dict[str, Any]]:
    """The CRDs of prometheus-operator's pinned release, from its Go module (the Go module cache keeps it)."""
    result = subprocess.run(["go", "mod", "download", "-json", PROMETHEUS_OPERATOR], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "GOFLAGS": "-mod=mod"})
    assert result.returncode == 0, f"go mod download {PROMETHEUS_OPERATOR}: {result.stdout}{result.stderr}"
    folder = Path(json.loads(result.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    return [yaml.safe_load((folder / f"monitoring.coreos.com_{name}.yaml").read_text()) for name in MONITORING_CRDS]


@pytest.fixture(scope="module")
def admin(kube_cluster) -> Iterator[Api]:
    apply_crds(kube_cluster)
    with kube_cluster.client(timeout=30) as client:
        api = Api(client)
        for crd in _prometheus_operator_crds():
            if api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, crd["metadata"]["name"]) is None:
                api.create(crd)
        wait_for(lambda: all(api.client.get(f"/apis/monitoring.coreos.com/v1/{p}").status_code == 200
                             for p in MONITORING_CRDS), "prometheus-operator's CRDs served")
        ensure_gvisor_runtime_class(api)
        yield api


def _kept(sent: Any, stored: Any) -> bool:
    """Everything sent is stored unchanged (the server may add defaults, such as a relabeling's action)."""
    if isinstance(sent, dict):
        return isinstance(stored, dict) and all(k in stored and _kept(v, stored[k]) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(stored, list) and len(sent) == len(stored) and all(map(_kept, sent, stored))
    return sent == stored


def test_monitoring_objects_are_valid_prometheus_operator_objects(helm: str, admin: Api) -> None:  # noqa: F811
    ns = namespace(admin, "w4s-monitoring")
    objects = _by_kind(render(helm, MONITORING, ns))
    assert set(objects) == {"ServiceMonitor", "PodMonitor", "PrometheusRule"}

    def create(obj: dict[str, Any]) -> httpx.Response:
        plural = obj["kind"].lower() + "s"
        return admin.client.post(f"/apis/monitoring.coreos.com/v1/namespaces/{ns}/{plural}", json=obj,
                                 params={"fieldValidation": "Strict"})

    for obj in objects.values():
        reply = create(obj)
        assert reply.status_code == 201, reply.text
        assert _kept(obj["spec"], reply.json()["spec"]), f"{obj['kind']}: the API server pruned or changed fields"
    # The CRDs' schemas really check: a bad interval is refused, naming the field.
    broken = json.loads(json.dumps(objects["PodMonitor"]))
    broken["metadata"]["name"] += "-broken"
    broken["spec"]["podMetricsEndpoints"][0]["interval"] = "every minute"
    refused = create(broken)
    assert refused.status_code == 422 and "podMetricsEndpoints[0].interval" in refused.json()["message"]


# --- end to end ------------------------------------------------------------------------------------------------

def _relabel(rules: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, str]:
    """Prometheus's `replace` relabeling (the only action the chart uses)."""
    out = dict(labels)
    for rule in rules:
        assert rule.get("action", "replace") == "replace"
        value = rule.get("separator", ";").join(out.get(s, "") for s in rule.get("sourceLabels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if match:
            groups = [match[0], *match.groups()]
            out[rule["targetLabel"]] = re.sub(r"\$(\d+)", lambda m, g=groups: g[int(m[1])] or "",
                                              rule.get("replacement", "$1"))
    return out


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def _pod_target(monitor: dict[str, Any], pod_template: dict[str, Any], ns: str, pod: str,
                port: int) -> dict[str, Any]:
    """The scrape job prometheus-operator makes of a PodMonitor for this pod, after checking that it selects
    the pod the operator asked for and that the pod has the endpoint's named port."""
    labels = pod_template["metadata"]["labels"]
    assert _selects(monitor["spec"]["selector"], labels), f"the PodMonitor does not select {pod}: {labels}"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for c in pod_template["spec"]["containers"] for p in c.get("ports", [])}
    assert endpoint["port"] in ports, f"{pod} has no port named {endpoint['port']}"
    meta = {"__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in labels.items()}
    job = _relabel(endpoint["relabelings"], {**meta, "job": f"podMonitor/{ns}/{monitor['metadata']['name']}"})["job"]
    return {"job_name": job, "metrics_path": endpoint["path"], "scrape_interval": "1s",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": ns, "pod": pod}}]}


def _service_target(monitor: dict[str, Any], ns: str, port: int) -> dict[str, Any]:
    (endpoint,) = monitor["spec"]["endpoints"]
    job = _relabel(endpoint["relabelings"], {"job": "w4s-metrics"})["job"]
    return {"job_name": job, "metrics_path": endpoint["path"], "scrape_interval": "1s",
            "honor_labels": endpoint.get("honorLabels", False),
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": ns}}]}


class Prometheus:
    def __init__(self, folder: Path, jobs: list[dict[str, Any]], rules: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = folder / "prometheus.yml"
        config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                          "rule_files": [str(rules)], "scrape_configs": jobs}))
        check = _promtool("check", "config", str(config))
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = folder / "prometheus.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(self._ready, timeout_s=60, what="Prometheus", proc=self.proc, log=self.log)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def api(self, path: str, **params: Any) -> Any:
        reply = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30).json()
        assert reply["status"] == "success", reply
        return reply["data"]

    def range(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        return self.api("query_range", query=expr, start=start, end=end, step="1s")["result"]


def _signal(expr: str) -> str:
    """An alert's expression without its threshold: the series it compares must exist while things are fine."""
    expr = re.sub(r"\s*(>|<|==|>=|<=)\s*[0-9.]+\s*$", "", expr.strip())
    absent = re.fullmatch(r"absent\((.*)\)", expr, re.S)
    return absent[1] if absent else expr


class Kubelet:
    """Runs the containers the operator asked for as local processes (there is no kubelet here)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **env})
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)


def _local(command: list[str], replace: dict[str, str]) -> list[str]:
    """A container's command with the in-cluster paths and addresses replaced by local ones."""
    assert command[0] == "w4s"
    out = [sys.executable, "-m", "w4s.cli", *command[1:]]
    for old, new in replace.items():
        assert old in out, f"{old} not in {command}"
        out[out.index(old)] = new
    return out


def _secret(api: Api, ns: str, name: str, key: str) -> str:
    obj = api.get("v1", "Secret", ns, name)
    assert obj is not None, f"Secret {name}"
    return base64.b64decode(obj["data"][key]).decode()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).is_success
    except httpx.HTTPError:
        return False


def _finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(v)) for series in result for _, v in series["values"])


@pytest.mark.slow
def test_prometheus_scrapes_a_real_run_and_every_dashboard_and_alert_query_has_data(
        helm: str, kube_cluster, admin: Api, monitoring: dict[str, Any], rules_file: Path,  # noqa: F811
        s3_endpoint, tmp_path: Path, runner_tmp: Path) -> None:
    bucket = s3_endpoint.create_bucket("w4s-e2e")
    ns = namespace(admin, "w4s-e2e")
    system_ns, token = operator_identity(admin, "monitoring")
    operator = OperatorProcess(kube_cluster.write_token_kubeconfig(tmp_path / "operator-kubeconfig", token), [ns],
                               tmp_path / "operator.log", env={"W4S_STORE": f"s3://{bucket}"})
    kubelet = Kubelet(tmp_path)
    prometheus: Prometheus | None = None
    meta_agent = None
    started = time.time()
    try:
        operator.start()
        admin.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "w4s-store", "namespace": ns},
                      "stringData": s3_endpoint.env()})
        wfo = admin.create({"apiVersion": V, "kind": "WorkflowOptimization",
                            "metadata": {"name": "gsm8k-e2e", "namespace": ns},
                            "spec": {"task": {"benchmark": "gsm8k"},
                                     "splits": {"validationSize": 3, "publicSize": 1, "testSize": 1},
                                     "executors": [{"name": "default", "provider": "embedded", "model": MODEL,
                                                    "maxTokens": 256}],
                                     "metaAgent": {"provider": "embedded", "model": MODEL, "maxTokens": 768},
                                     "iterations": 1, "budget": {"maxCostUsd": "1"},
                                     "sandbox": {"concurrency": 2, "samplesPerWorker": 2}}})
        # A training of its trajectories: it stays Pending here (no GPU node), which the pending alert watches.
        admin.create({"apiVersion": V, "kind": "MetaAgentTraining", "metadata": {"name": "rwr-e2e", "namespace": ns},
                      "spec": {"baseModel": "s3://models/base",
                               "trajectories": [{"workflowOptimization": "gsm8k-e2e"}]}})

        def job() -> dict[str, Any] | None:
            return admin.get("batch/v1", "Job", ns, "gsm8k-e2e-runner")
        runner_job = wait_for(job, "the runner Job", timeout=60)
        gateway = admin.get("apps/v1", "Deployment", ns, "gsm8k-e2e-gateway")
        spec_map = admin.get("v1", "ConfigMap", ns, "gsm8k-e2e-spec")
        assert gateway is not None and spec_map is not None

        # Prometheus, scraping what the chart's monitors would select, with the chart's rules loaded.
        ports = {"runner": free_port(), "gateway": free_port(), "gateway-http": free_port(), "worker": free_port()}
        jobs = [_service_target(monitoring["ServiceMonitor"], system_ns, operator.metrics_port),
                _pod_target(monitoring["PodMonitor"], runner_job["spec"]["template"], ns, "gsm8k-e2e-runner-x",
                            ports["runner"]),
                _pod_target(monitoring["PodMonitor"], gateway["spec"]["template"], ns, "gsm8k-e2e-gateway-x",
                            ports["gateway"])]
        assert [j["job_name"] for j in jobs] == ["w4s-operator", "w4s-runner", "w4s-gateway"]
        prometheus = Prometheus(tmp_path, jobs, rules_file)

        # The meta-agent's server (vLLM in a cluster) and the spec file the pods mount, with Service names
        # resolved to loopback.
        meta_agent = serve_embedded(MODEL, log_path=tmp_path / "meta-agent.log")
        config = yaml.safe_load(spec_map["data"]["spec.yaml"])
        assert config["spec"]["metaAgent"]["baseUrl"] == "http://gsm8k-e2e-meta-agent:8000/v1"
        config["spec"]["metaAgent"]["baseUrl"] = meta_agent.base_url
        assert config["spec"]["store"] == f"s3://{bucket}/{ns}/gsm8k-e2e/{wfo['metadata']['uid']}"
        spec_file = tmp_path / "spec.yaml"
        spec_file.write_text(yaml.safe_dump(config))
        store_env = s3_endpoint.env()
        admin_token = _secret(admin, ns, "gsm8k-e2e-gateway", "admin-token")

        (gw,) = gateway["spec"]["template"]["spec"]["containers"]
        local = _local(gw["command"], {"0.0.0.0:8080": f"127.0.0.1:{ports['gateway-http']}",
                                       "/etc/w4s/spec.yaml": str(spec_file), "9090": str(ports["gateway"])})
        gateway_proc = kubelet.start("gateway", local, {"W4S_GATEWAY_ADMIN_TOKEN": admin_token})
        kubelet.start("worker", [sys.executable, "-I", "-m", "w4s.workflow.worker", "--listen",
                                 f"127.0.0.1:{ports['worker']}", "--uid-base", "41000"], {})
        wait_until(lambda: _healthy(f"http://127.0.0.1:{ports['gateway-http']}/healthz"), timeout_s=300,
                   what="the gateway (it starts the embedded executor's server)", proc=gateway_proc,
                   log=tmp_path / "gateway.log")

        runner_token = service_account_token(admin, ns, "gsm8k-e2e-runner")  # what the kubelet would mount
        (runner,) = runner_job["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value", "") for e in runner["env"]}
        env.update(W4S_GATEWAY_URL=f"http://127.0.0.1:{ports['gateway-http']}", W4S_SANDBOX_SERVICE="127.0.0.1",
                   W4S_SANDBOX_PORT=str(ports["worker"]), W4S_GATEWAY_ADMIN_TOKEN=admin_token,
                   KUBECONFIG=str(kube_cluster.write_token_kubeconfig(tmp_path / "runner-kubeconfig", runner_token)),
                   TMPDIR=str(runner_tmp), **store_env)
        done = subprocess.run(_local(runner["command"], {"/etc/w4s/spec.yaml": str(spec_file),
                                                         "9090": str(ports["runner"])}),
                              capture_output=True, text=True, timeout=900, env={**os.environ, **env},
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

        # The operator saw the runner's result; the artifacts are in the bucket and `w4s show` reads them there.
        obj = wait_for(lambda: (o := admin.get(V, "WorkflowOptimization", ns, "gsm8k-e2e"))
                       and (o.get("status") or {}).get("phase") == "Complete" and o, "the run Complete", timeout=60)
        run_uri = obj["status"]["runUri"]
        assert run_uri == config["spec"]["store"] and obj["status"]["testScore"] is not None
        keys = {o["Key"] for o in s3_endpoint.client.list_objects_v2(Bucket=bucket)["Contents"]}
        prefix = run_uri.removeprefix(f"s3://{bucket}/") + "/"
        for artifact in ("manifest.json", "result.json", "best_workflow.py", "records.jsonl"):
            assert prefix + artifact in keys, f"{artifact} not in the bucket: {sorted(keys)}"
        shown = subprocess.run([sys.executable, "-m", "w4s.cli", "show", run_uri], capture_output=True, text=True,
                               timeout=120, env={**os.environ, **store_env})
        assert shown.returncode == 0, shown.stdout + shown.stderr
        best = s3_endpoint.client.get_object(Bucket=bucket, Key=prefix + "best_workflow.py")["Body"].read().decode()
        assert "def workflow" in best and best.strip().splitlines()[-1] in shown.stdout
        assert "run " in shown.stdout and "complete" in shown.stdout

        # A few more scrapes of the operator after the run, then every query.
        time.sleep(5)
        targets = prometheus.api("targets")["activeTargets"]
        assert {t["labels"]["job"] for t in targets} == {"w4s-operator", "w4s-runner", "w4s-gateway"}
        rules = {r["name"]: r for g in prometheus.api("rules")["groups"] for r in g["rules"]}
        assert set(rules) == set(_rules(monitoring)) and all(r["health"] == "ok" for r in rules.values()), rules
        end = time.time()
        empty = []
        for where, expr in _expressions(monitoring):
            query = expr
            for var, value in GRAFANA_VARIABLES.items():
                query = query.replace(var, value)
            if where.startswith("alert"):
                query = _signal(query)
            if set(re.findall(r"w4s_[a-z_]+", query)) & TRAINING_ONLY:
                continue
            if not _finite(prometheus.range(query, started, end)):
                empty.append(f"{where}: {query}")
        assert not empty, "queries without data:\n" + "\n".join(empty)
    finally:
        kubelet.stop()
        if meta_agent is not None:
            meta_agent.stop()
        if prometheus is not None:
            stop_process(prometheus.proc)
        operator.stop()
        with contextlib.suppress(ApiError):
            admin.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
