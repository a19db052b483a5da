"""The two custom resources, WorkflowOptimization and MetaAgentTraining: their spec and status models.

These pydantic models are the single source of the CRD schemas in ``crds/`` (``w4s.crdgen``), of what the
operator reads, and of what the runner and the trainer are given. A WorkflowOptimization's spec is an
optimization spec (``w4s.spec``) plus the lifecycle fields every batch resource has in Kubernetes (suspend,
deadlines, TTL), so a manifest also works as a laptop config. Nothing here imports a Kubernetes client: the
models are plain data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from w4s.spec import DecimalString, OptimizationSpec, SplitSpec, TaskSpec, _Model

GROUP = "w4s.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
URI_PATTERN = r"^(s3|file)://.+"


def immutable(message: str) -> dict:
    """CEL transition rule: the API server refuses to change the field once the resource exists."""
    return {"x-kubernetes-validations": [{"rule": "self == oldSelf", "message": message}]}


class Lifecycle(_Model):
    """Fields of a batch resource's life that do not change what it computes (Job conventions)."""

    suspend: bool = Field(False, description="Stop the run's pods, keeping everything recorded in the store; "
                          "setting it back to false resumes from the store.")
    active_deadline_seconds: int | None = Field(
        None, ge=1, description="Fail the resource this many seconds after its workload first started running.")
    pre_running_deadline_seconds: int | None = Field(
        None, ge=1, description="Fail the resource when its workload has not started running this many seconds "
        "after creation (e.g. stuck on Insufficient nvidia.com/gpu or an image pull).")
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Delete the resource (and its children) this many seconds after it became "
        "Complete or Failed.")


class WorkflowOptimizationSpec(OptimizationSpec, Lifecycle):
    """A W4S optimization (mode optimize) or an RLAO data collection (mode collect) run in the cluster."""

    task: TaskSpec = Field(TaskSpec(), description="What is optimized (immutable).",
                           json_schema_extra=immutable("task is immutable: create a new WorkflowOptimization"))
    splits: SplitSpec = Field(
        SplitSpec(), description="Seeded splits (immutable).",
        json_schema_extra=immutable("splits are immutable: they fix what the recorded scores mean"))
    mode: Literal["optimize", "collect"] = Field(
        "optimize", description="optimize: one action per iteration; collect: best-of-m for RLAO data "
        "(immutable).", json_schema_extra=immutable("mode is immutable"))
    store: str | None = Field(
        None, description="Run root (s3://bucket/prefix). Default: the operator's store, under "
        "<namespace>/<name>/<uid> (immutable).", json_schema_extra=immutable("store is immutable"))
    seed: int = Field(0, ge=0, description="Seeds every LLM call and the splits' default (immutable).",
                      json_schema_extra=immutable("seed is immutable"))


class Toleration(_Model):
    """A pod toleration (core/v1 Toleration)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=0)


class TrajectorySource(_Model):
    """Where training trajectories come from: a WorkflowOptimization in this namespace, or a store URI."""

    workflow_optimization: str | None = Field(None, pattern=NAME_PATTERN, max_length=253,
                                              description="Name of a WorkflowOptimization (mode collect).")
    uri: str | None = Field(None, pattern=URI_PATTERN, description="A run root or a trajectories file.")

    @model_validator(mode="after")
    def _one_of(self) -> TrajectorySource:
        if (self.workflow_optimization is None) == (self.uri is None):
            raise ValueError("give exactly one of workflowOptimization and uri")
        return self


class Hyperparameters(_Model):
    """RLAO training hyper-parameters; the defaults are the paper's (Section 4, Appendix D)."""

    learning_rate: str = Field("1e-5", pattern=r"^[0-9]+(\.[0-9]+)?([eE]-?[0-9]+)?$")
    epochs: int = Field(4, ge=1, le=100)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: DecimalString = "0.03"
    per_device_batch_size: int = Field(1, ge=1, le=512)
    gradient_accumulation_steps: int = Field(16, ge=1, le=4096)
    tau: DecimalString = Field("0.4", description="RWR temperature: an example weighs exp(reward / tau).")
    max_seq_length: int = Field(8192, ge=128, le=131072, description="Longer examples are dropped (and counted), "
                                "never cut: a cut state would be a different state.")
    score_floor: DecimalString | None = Field(
        "0.05", description="Candidates whose validation score is at or below this are left out of the dataset "
        "(the reference drops all-zero workflows at 0.05); empty keeps every candidate.")
    seed: int = Field(0, ge=0)


class LoRA(_Model):
    """Train a low-rank adapter instead of every weight; it is merged into the final export, which is served like
    any model."""

    rank: int = Field(16, ge=1, le=1024, description="Rank r of the low-rank update.")
    alpha: int = Field(32, ge=1, le=4096, description="Scaling: the update is multiplied by alpha / rank.")
    dropout: DecimalString = Field("0.05", description="Dropout on the adapter's input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1, max_length=64, description="Linear layers that get an adapter (Qwen2 / Llama names).")


class Resources(_Model):
    """Where the training Job runs."""

    gpus: int = Field(1, ge=0, le=16, description="nvidia.com/gpu per pod (0: CPU, for small models only).")
    cpu: str = Field("8", pattern=r"^[0-9]+(\.[0-9]+)?m?$", description="CPU request and limit.")
    memory: str = Field("64Gi", pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)?$", description="Memory request and limit.")
    shm: str = Field("16Gi", pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)?$", description="Size of /dev/shm (in memory).")
    distribution: Literal["auto", "ddp", "fsdp"] = Field(
        "auto", description="How several GPUs share the work: ddp (a full replica per GPU: fine for LoRA and small "
        "models), fsdp (parameters, gradients and optimizer state sharded: full fine-tuning of a 7B model), auto "
        "(fsdp for full fine-tuning on several GPUs, else ddp).")
    node_selector: dict[str, str] = Field(default_factory=dict, description="GPU node selector.")
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)


class MetaAgentTrainingSpec(Lifecycle):
    """Train the meta-agent offline on collected trajectories (RLAO: reward-weighted regression)."""

    base_model: str = Field(min_length=1, description="Store URI of the base model's weights (safetensors folder).",
                            pattern=URI_PATTERN, json_schema_extra=immutable("baseModel is immutable"))
    trajectories: list[TrajectorySource] = Field(min_length=1, max_length=64, description="Trajectory sources.",
                                                 json_schema_extra=immutable("trajectories are immutable"))
    algorithm: Literal["rwr", "sft"] = Field("rwr", description="rwr: weights exp(r / tau); sft: the ablation "
                                             "with every weight 1.", json_schema_extra=immutable(
                                                 "algorithm is immutable"))
    hyperparameters: Hyperparameters = Hyperparameters()
    lora: LoRA | None = Field(None, description="Train a LoRA adapter; empty: full fine-tuning (the paper).")
    resources: Resources = Resources()
    output: str | None = Field(None, pattern=URI_PATTERN, description="Where checkpoints are written. Default: "
                               "the operator's store, under <namespace>/<name>/<uid>.",
                               json_schema_extra=immutable("output is immutable"))


# ---- status -------------------------------------------------------------------------------------------------

class Condition(_Model):
    """metav1.Condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field("", max_length=32768)
    last_transition_time: str
    observed_generation: int | None = None


class FailureInfo(_Model):
    """The last container failure seen in the resource's pods."""

    reason: str
    message: str = ""
    pod: str | None = None
    container: str | None = None
    exit_code: int | None = None


class RoleUsage(_Model):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: DecimalString = "0"


class WorkloadResult(_Model):
    """How the workload (runner or trainer) says it ended; the operator turns it into Complete or Failed."""

    status: Literal["completed", "stopped", "failed"]
    reason: str = ""


class CommonStatus(_Model):
    phase: str | None = Field(None, description="Display summary of the conditions; read the conditions.")
    reason: str | None = Field(None, description="Reason of the condition that sets the phase.")
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra={
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]})
    observed_generation: int | None = None
    children: dict[str, str] = Field(default_factory=dict, description="Names of the objects the operator made, "
                                     "by role, recorded before they are created.")
    failure: FailureInfo | None = None
    start_time: str | None = None
    completion_time: str | None = None
    result: WorkloadResult | None = Field(None, description="Written by the workload when it ends.")


class WorkflowOptimizationStatus(CommonStatus):
    iteration: int | None = Field(None, description="Last completed iteration.")
    iterations: int | None = None
    best_validation_score: str | None = None
    test_score: str | None = Field(None, description="Score of the best workflow on the test split, after "
                                   "the loop (never shown to the meta-agent).")
    cost_usd: str | None = None
    usage: dict[str, RoleUsage] = Field(default_factory=dict, description="Tokens and dollars by role.")
    run_uri: str | None = None
    trajectories_uri: str | None = None
    best_workflow_uri: str | None = None


class MetaAgentTrainingStatus(CommonStatus):
    step: int | None = None
    total_steps: int | None = None
    progress: str | None = Field(None, description="step / totalSteps, for display.")
    loss: str | None = None
    learning_rate: str | None = None
    tokens_per_second: str | None = None
    gpu_memory_bytes: int | None = Field(None, description="Peak GPU memory of training process 0.")
    checkpoint_uri: str | None = None
