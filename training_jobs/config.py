"""What the trainer reads: the MetaAgentTraining spec plus what the operator resolved for it.

The operator writes ``training.yaml`` as the spec (camelCase) with ``output`` filled in and ``trajectoryUris``
(the store URIs its trajectory sources resolved to). The trainer also accepts, for laptops and tests, a base
model that is an embedded model name or a local folder, and one field the spec does not have: ``saveSteps``.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from w4s.errors import SpecError
from w4s.resources import MetaAgentTrainingSpec


class TrainingConfig(MetaAgentTrainingSpec):
    """A MetaAgentTraining spec as the trainer runs it."""

    base_model: str = Field(min_length=1, description="Store URI (s3://, file://) of a safetensors folder, or an "
                            "embedded model name or local folder (CPU runs and tests).")
    output: str = Field(min_length=1, description="Store URI or local directory for checkpoints (the operator "
                        "always sets it; --output replaces it).")
    trajectory_uris: list[str] = Field(default_factory=list, description="Resolved by the operator; default: "
                                       "the spec's trajectory URIs.")
    save_steps: int | None = Field(None, ge=1, description="Checkpoint every this many optimizer steps; default: "
                                   "once per epoch.")

    def record_uris(self) -> list[str]:
        """Where the trajectory records are: the operator's resolution, or the spec's own URIs."""
        if self.trajectory_uris:
            return list(self.trajectory_uris)
        named = [t.workflow_optimization for t in self.trajectories if t.workflow_optimization]
        if named:
            raise SpecError(f"trajectories name WorkflowOptimizations ({', '.join(named)}): only the operator "
                            "resolves those; give trajectoryUris or trajectory URIs")
        return [t.uri for t in self.trajectories if t.uri]


def load_config(path: Path, output: str | None = None) -> TrainingConfig:
    """Read ``training.yaml``; ``output`` (the --output flag) replaces the configured output."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read the training config {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of spec fields")
    if output:
        raw["output"] = output
    try:
        return TrainingConfig.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{path}: {exc}") from exc
