"""The objects a WorkflowOptimization or a MetaAgentTraining owns, built as plain dicts from the resource.

Builders are pure: the same resource and settings give the same objects, which is what makes the reconcile
idempotent (it creates what is missing and never a second copy). Confinement of the sandbox and the network
policies come from ``w4s.sandbox.kube``, next to the worker they confine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

from w4s.resources import API_VERSION, MetaAgentTrainingSpec, WorkflowOptimizationSpec
from w4s.sandbox import kube as sandbox_kube
from w4s_operator.names import child_name, labels, owner_reference, run_label
from w4s_operator.settings import Settings

SPEC_DIR = "/etc/w4s"
GATEWAY_PORT = 8080
META_AGENT_PORT = 8000
WORKER_PORT = 7070
METRICS_PORT = 9090  # the runner's and the gateway's /metrics (the chart's PodMonitor scrapes the port by name)
_METRICS = {"name": "metrics", "containerPort": METRICS_PORT}
_NONROOT = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"}}
_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                       "capabilities": {"drop": ["ALL"]}}


@dataclass(frozen=True)
class Child:
    """One owned object; ``role`` is its key in ``status.children``."""

    role: str
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.obj["kind"]

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]


class Owner:
    """The owning resource as the builders need it: names, labels and the owner reference."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.kind = body["kind"]
        self.name = body["metadata"]["name"]
        self.namespace = body["metadata"]["namespace"]
        self.uid = body["metadata"]["uid"]
        self.ref = owner_reference(body)

    def meta(self, suffix: str, component: str, **extra: Any) -> dict[str, Any]:
        return {"name": child_name(self.name, suffix), "namespace": self.namespace,
                "labels": labels(self.kind, self.name, component), "ownerReferences": [self.ref], **extra}

    def default_store(self, settings: Settings) -> str:
        """A uid in the path: a resource deleted and created again under the same name starts a new run."""
        return f"{settings.store}/{self.namespace}/{self.name}/{self.uid}"


def _config_map(owner: Owner, suffix: str, component: str, filename: str, data: dict[str, Any]) -> Child:
    return Child(f"{component}Config", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": owner.meta(suffix, component),
        "data": {filename: yaml.safe_dump(data, sort_keys=True)}})


def _status_rbac(owner: Owner, suffix: str, component: str, plural: str) -> list[Child]:
    """A ServiceAccount whose Role may read its own resource and patch only that resource's status."""
    name = child_name(owner.name, suffix)
    role = f"{component}Account"
    return [
        Child(role, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": owner.meta(suffix, component),
                     "automountServiceAccountToken": False}),
        Child(f"{component}Role", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": owner.meta(suffix, component),
            "rules": [
                {"apiGroups": ["w4s.io"], "resources": [plural], "resourceNames": [owner.name], "verbs": ["get"]},
                {"apiGroups": ["w4s.io"], "resources": [f"{plural}/status"], "resourceNames": [owner.name],
                 "verbs": ["get", "patch"]},
            ]}),
        Child(f"{component}RoleBinding", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": owner.meta(suffix, component),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}]}),
    ]


def _volume_for(config: Child) -> tuple[dict[str, Any], dict[str, Any]]:
    return ({"name": "config", "configMap": {"name": config.name}},
            {"name": "config", "mountPath": SPEC_DIR, "readOnly": True})


def _store_env(settings: Settings) -> list[dict[str, Any]]:
    """Store credentials by Secret reference; optional, so IRSA-style identities work without one."""
    return [{"secretRef": {"name": settings.store_secret, "optional": True}}]


def _executor_key_env(index: int) -> str:
    return f"W4S_EXECUTOR_{index}_API_KEY"


def runtime_config(owner: Owner, spec: WorkflowOptimizationSpec, settings: Settings) -> dict[str, Any]:
    """The spec the runner and the gateway read: the store resolved, Secret references turned into the
    environment variables the pods get them in, and an operator-served meta-agent turned into its Service."""
    wire = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key in ("suspend", "activeDeadlineSeconds", "preRunningDeadlineSeconds", "ttlSecondsAfterFinished"):
        wire.pop(key, None)
    wire["store"] = spec.store or owner.default_store(settings)
    wire["sandbox"]["required"] = True
    for index, executor in enumerate(wire["executors"]):
        if executor.pop("apiKeySecret", None):
            executor["apiKeyEnv"] = _executor_key_env(index)
    meta = wire["metaAgent"]
    if spec.meta_agent.provider == "embedded":
        meta.pop("fromTraining", None)
        meta.pop("weightsUri", None)
        meta.update(provider="openai-compatible",
                    baseUrl=f"http://{child_name(owner.name, 'meta-agent')}:{META_AGENT_PORT}/v1")
        # The operator's own server has no per-token price (its GPU time is the cost), like an embedded model
        # on a laptop; without one the runner would refuse the unknown model.
        meta.setdefault("price", {"inputPerMtok": "0", "outputPerMtok": "0"})
    elif meta.pop("apiKeySecret", None):
        meta["apiKeyEnv"] = "W4S_META_AGENT_API_KEY"
    return {"apiVersion": API_VERSION, "kind": "WorkflowOptimization",
            "metadata": {"name": owner.name, "namespace": owner.namespace}, "spec": wire}


def serves_meta_agent(spec: WorkflowOptimizationSpec) -> bool:
    return spec.meta_agent.provider == "embedded"


def _secret_env(name: str, ref: Any) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def _runner_job(owner: Owner, spec: WorkflowOptimizationSpec, settings: Settings, config: Child,
                suspend: bool) -> Child:
    volume, mount = _volume_for(config)
    env = [{"name": "W4S_GATEWAY_URL", "value": f"http://{child_name(owner.name, 'gateway')}:{GATEWAY_PORT}"},
           {"name": "W4S_SANDBOX_SERVICE", "value": child_name(owner.name, "sandbox")},
           _token_env(owner)]
    if spec.meta_agent.api_key_secret:
        env.append(_secret_env("W4S_META_AGENT_API_KEY", spec.meta_agent.api_key_secret))
    runner = child_name(owner.name, "runner")
    pod_labels = labels(owner.kind, owner.name, "runner")
    return Child("runnerJob", {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": owner.meta("runner", "runner"),
        "spec": {
            "suspend": suspend,
            # A retried runner resumes from the store, so retries repeat no recorded work.
            "backoffLimit": 6,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": runner, "automountServiceAccountToken": True,
                    "restartPolicy": "Never", "enableServiceLinks": False, "securityContext": _NONROOT,
                    "containers": [{
                        "name": "runner", "image": settings.runner_image,
                        "imagePullPolicy": settings.image_pull_policy,
                        "command": ["w4s", "run", "--config", f"{SPEC_DIR}/spec.yaml",
                                    "--status-resource", f"{owner.namespace}/{owner.name}",
                                    "--metrics-port", str(METRICS_PORT)],
                        "ports": [_METRICS],
                        "env": env, "envFrom": _store_env(settings),
                        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
                        "securityContext": _CONTAINER_SECURITY,
                        "volumeMounts": [mount, {"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [volume, {"name": "tmp", "emptyDir": {}}],
                },
            },
        }})


def _token_env(owner: Owner) -> dict[str, Any]:
    return {"name": "W4S_GATEWAY_ADMIN_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": child_name(owner.name, "gateway"), "key": "admin-token"}}}


def gateway_secret(owner: Owner, token: str) -> Child:
    """The gateway's admin token (the runner's right to mint per-sample tokens); random, made once."""
    return Child("gatewaySecret", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                   "metadata": owner.meta("gateway", "gateway"), "stringData": {"admin-token": token}})


def _gateway(owner: Owner, spec: WorkflowOptimizationSpec, settings: Settings, config: Child,
             replicas: int) -> list[Child]:
    volume, mount = _volume_for(config)
    env = [_token_env(owner)] + [_secret_env(_executor_key_env(i), e.api_key_secret)
                                 for i, e in enumerate(spec.executors) if e.api_key_secret]
    meta = owner.meta("gateway", "gateway")
    pod_labels = labels(owner.kind, owner.name, "gateway")
    probe = {"httpGet": {"path": "/healthz", "port": GATEWAY_PORT}, "periodSeconds": 5}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            "replicas": replicas, "selector": sandbox_kube.run_selector("gateway", run_label(owner.name)),
            "template": {"metadata": {"labels": pod_labels}, "spec": {
                "automountServiceAccountToken": False, "enableServiceLinks": False, "securityContext": _NONROOT,
                "containers": [{
                    "name": "gateway", "image": settings.runner_image, "imagePullPolicy": settings.image_pull_policy,
                    "command": ["w4s", "gateway", "--listen", f"0.0.0.0:{GATEWAY_PORT}",
                                "--config", f"{SPEC_DIR}/spec.yaml", "--metrics-port", str(METRICS_PORT)],
                    "env": env, "ports": [{"name": "http", "containerPort": GATEWAY_PORT}, _METRICS],
                    "readinessProbe": probe, "livenessProbe": {**probe, "failureThreshold": 6},
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
                    "securityContext": _CONTAINER_SECURITY, "volumeMounts": [mount],
                }],
                "volumes": [volume],
            }},
        }}
    return [Child("gatewayDeployment", deployment), _service(owner, "gateway", GATEWAY_PORT, "gatewayService")]


def _service(owner: Owner, component: str, port: int, role: str) -> Child:
    return Child(role, {
        "apiVersion": "v1", "kind": "Service", "metadata": owner.meta(component, component),
        "spec": {"selector": sandbox_kube.run_selector(component, run_label(owner.name))["matchLabels"],
                 "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}]}})


def sandbox_workers(spec: WorkflowOptimizationSpec) -> int:
    return math.ceil(spec.sandbox.concurrency / spec.sandbox.samples_per_worker)


def _sandbox(owner: Owner, spec: WorkflowOptimizationSpec, settings: Settings, gateway_ip: str,
             replicas: int) -> list[Child]:
    """Warm sandbox workers (gVisor) and the policies that let them reach only the gateway."""
    name = child_name(owner.name, "sandbox")
    run = run_label(owner.name)
    memory_mb = spec.sandbox.worker_memory_mb * spec.sandbox.samples_per_worker + 256
    pod = sandbox_kube.sandbox_pod(
        name=name, namespace=owner.namespace, run_name=run, image=settings.sandbox_image, cpu="1",
        memory=f"{memory_mb}Mi", gateway_url=f"http://{gateway_ip}:{GATEWAY_PORT}", worker_port=WORKER_PORT,
        runtime_class=spec.sandbox.runtime_class_name, labels={"w4s.io/owner-kind": owner.kind.lower()})
    pod_labels = pod["metadata"]["labels"]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": owner.meta("sandbox", "sandbox"),
        "spec": {"replicas": replicas, "selector": sandbox_kube.run_selector("sandbox", run_label(owner.name)),
                 "template": {"metadata": {"labels": pod_labels}, "spec": pod["spec"]}}}
    # Headless: the runner connects to each worker pod, not to a load-balanced address.
    service = _service(owner, "sandbox", WORKER_PORT, "sandboxService")
    service.obj["spec"]["clusterIP"] = "None"
    policies = [
        sandbox_kube.sandbox_network_policy(name=name, namespace=owner.namespace, run_name=run,
                                            gateway_port=GATEWAY_PORT, worker_port=WORKER_PORT, owner=owner.ref),
        sandbox_kube.gateway_network_policy(name=child_name(owner.name, "gateway"), namespace=owner.namespace,
                                            run_name=run, gateway_port=GATEWAY_PORT, metrics_port=METRICS_PORT,
                                            owner=owner.ref),
    ]
    return [Child("sandboxDeployment", deployment), service, Child("sandboxNetworkPolicy", policies[0]),
            Child("gatewayNetworkPolicy", policies[1])]


def _meta_agent(owner: Owner, spec: WorkflowOptimizationSpec, settings: Settings, weights: str,
                replicas: int) -> list[Child]:
    """vLLM's OpenAI server with weights copied from the store by an init container (never from a hub). A
    training's final checkpoint is full weights (a LoRA run exports its adapter merged), so one folder serves."""
    pod_labels = labels(owner.kind, owner.name, "meta-agent")
    models = {"name": "models", "mountPath": "/models"}
    resources: dict[str, Any] = {"requests": {"cpu": "2", "memory": "16Gi"}, "limits": {"memory": "32Gi"}}
    if settings.meta_agent_gpus:
        resources["limits"]["nvidia.com/gpu"] = str(settings.meta_agent_gpus)
    ready = {"httpGet": {"path": "/v1/models", "port": META_AGENT_PORT}, "periodSeconds": 5}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": owner.meta("meta-agent", "meta-agent"),
        "spec": {"replicas": replicas, "strategy": {"type": "Recreate"},
                 "selector": sandbox_kube.run_selector("meta-agent", run_label(owner.name)),
                 "template": {"metadata": {"labels": pod_labels}, "spec": {
                     "automountServiceAccountToken": False, "enableServiceLinks": False, "securityContext": _NONROOT,
                     "initContainers": [{
                         "name": "fetch-weights", "image": settings.runner_image,
                         "imagePullPolicy": settings.image_pull_policy,
                         "command": ["w4s", "store", "get", weights, "/models/meta-agent"],
                         "envFrom": _store_env(settings), "volumeMounts": [models],
                         "securityContext": _CONTAINER_SECURITY}],
                     "containers": [{
                         "name": "vllm", "image": settings.meta_agent_image,
                         "imagePullPolicy": settings.image_pull_policy,
                         "args": ["--model", "/models/meta-agent", "--served-model-name", spec.meta_agent.model,
                                  "--port", str(META_AGENT_PORT), "--enable-prefix-caching"],
                         "ports": [{"name": "http", "containerPort": META_AGENT_PORT}],
                         "startupProbe": {**ready, "failureThreshold": 180, "periodSeconds": 10},
                         "readinessProbe": ready, "livenessProbe": {**ready, "failureThreshold": 6},
                         "resources": resources,
                         # vLLM writes its compile and kernel caches under $HOME: a writable root filesystem.
                         "securityContext": {**_CONTAINER_SECURITY, "readOnlyRootFilesystem": False},
                         "volumeMounts": [models, {"name": "shm", "mountPath": "/dev/shm"}]}],
                     "volumes": [{"name": "models", "emptyDir": {}},
                                 {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}],
                 }}}}
    return [Child("metaAgentDeployment", deployment),
            _service(owner, "meta-agent", META_AGENT_PORT, "metaAgentService")]


def workflow_optimization_children(
    body: dict[str, Any], spec: WorkflowOptimizationSpec, settings: Settings, *, gateway_ip: str | None,
    meta_agent_weights: str | None, start_runner: bool, running: bool, admin_token: str,
) -> list[Child]:
    """Everything a WorkflowOptimization owns, in creation order. ``gateway_ip`` is None until the gateway
    Service has its address (the sandbox reaches the gateway by IP: it has no DNS); ``meta_agent_weights`` is
    None while the weights are unknown (e.g. the named training has no checkpoint yet); the runner Job is
    built only once ``start_runner`` holds. ``running`` false scales the servers to zero (suspended or
    finished) and suspends the Job."""
    owner = Owner(body)
    replicas = 1 if running else 0
    config = _config_map(owner, "spec", "runner", "spec.yaml", runtime_config(owner, spec, settings))
    children = [config, gateway_secret(owner, admin_token), *_status_rbac(owner, "runner", "runner",
                                                                          "workflowoptimizations")]
    children += _gateway(owner, spec, settings, config, replicas)
    if serves_meta_agent(spec) and meta_agent_weights:
        children += _meta_agent(owner, spec, settings, meta_agent_weights, replicas)
    if gateway_ip:
        children += _sandbox(owner, spec, settings, gateway_ip, sandbox_workers(spec) * replicas)
    if start_runner:
        children.append(_runner_job(owner, spec, settings, config, suspend=not running))
    return children


ACCELERATE_CONFIGS = "/opt/w4s/accelerate"


def _threads_per_process(cpu: str, processes: int) -> int:
    """The pod's CPU limit ("8", "7.5", "500m") shared among its training processes, at least one each."""
    cores = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    return max(1, int(cores // processes))


def accelerate_config(spec: MetaAgentTrainingSpec) -> str:
    """single for one GPU; with several, fsdp shards a full fine-tuning (a 7B model with AdamW does not fit one
    GPU as a DDP replica) and ddp replicates a LoRA run."""
    if spec.resources.gpus <= 1:
        return "single"
    if spec.resources.distribution != "auto":
        return spec.resources.distribution
    return "ddp" if spec.lora else "fsdp"


def training_children(body: dict[str, Any], spec: MetaAgentTrainingSpec, settings: Settings, *,
                      trajectories: list[str], start: bool, running: bool) -> list[Child]:
    """A MetaAgentTraining's config, its status account, and (once its trajectories are known) the GPU Job
    that runs the RWR trainer under accelerate."""
    owner = Owner(body)
    wire = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    wire["output"] = spec.output or owner.default_store(settings)
    wire["trajectoryUris"] = trajectories
    config = _config_map(owner, "trainer", "trainer", "training.yaml", wire)
    children = [config, *_status_rbac(owner, "trainer", "trainer", "metaagenttrainings")]
    if not start:
        return children
    volume, mount = _volume_for(config)
    res = spec.resources
    limits: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    if res.gpus:
        limits["nvidia.com/gpu"] = str(res.gpus)
    processes = max(res.gpus, 1)
    pod_spec: dict[str, Any] = {
        "serviceAccountName": child_name(owner.name, "trainer"), "automountServiceAccountToken": True,
        "restartPolicy": "Never", "enableServiceLinks": False, "securityContext": _NONROOT,
        "nodeSelector": dict(res.node_selector),
        "tolerations": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in res.tolerations],
        "containers": [{
            "name": "trainer", "image": settings.trainer_image, "imagePullPolicy": settings.image_pull_policy,
            "command": ["accelerate", "launch", "--config_file",
                        f"{ACCELERATE_CONFIGS}/{accelerate_config(spec)}.yaml",
                        "--num_processes", str(processes), "-m", "training_jobs.train",
                        "--config", f"{SPEC_DIR}/training.yaml",
                        "--status-resource", f"{owner.namespace}/{owner.name}"],
            # torch starts a thread per node core, not per core of the limit: that thrashes under a CPU limit.
            "env": [{"name": "OMP_NUM_THREADS", "value": str(_threads_per_process(res.cpu, processes))}],
            "envFrom": _store_env(settings),
            "resources": {"requests": dict(limits), "limits": dict(limits)},
            "securityContext": {**_CONTAINER_SECURITY, "readOnlyRootFilesystem": False},
            "volumeMounts": [mount, {"name": "shm", "mountPath": "/dev/shm"}],
        }],
        "volumes": [volume, {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": res.shm}}],
    }
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": owner.meta("trainer", "trainer"),
           "spec": {"suspend": not running, "backoffLimit": 3,  # a retry resumes from the last checkpoint
                    "template": {"metadata": {"labels": labels(owner.kind, owner.name, "trainer")},
                                 "spec": pod_spec}}}
    return [*children, Child("trainerJob", job)]
