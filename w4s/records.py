"""What a run persists: the manifest, per-candidate trajectory records, iteration checkpoints, the result.

Trajectory records are the RLAO training data: (state messages, action reply, reward) plus everything needed to
audit them. Skipped candidates and iterations are kept in checkpoints, never as trajectories.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Messages = list[dict[str, str]]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Usage(_Record):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class WorkflowRef(_Record):
    """A workflow that has been scored: W0 (iteration 0) or a selected action."""

    iteration: int
    candidate: int | None
    code: str
    reply: str | None
    score: float
    feedback: str


class LoopState(_Record):
    """Everything the next iteration needs; saved at each iteration's end so a restart resumes there."""

    iteration: int
    messages: Messages
    window_scores: list[float]
    best: WorkflowRef


class SelfCorrection(_Record):
    attempt: int
    reply: str
    error: str


class CandidateRecord(_Record):
    run_id: str
    iteration: int
    candidate: int
    state: Messages
    action: str
    analysis: str
    code: str
    self_corrections: list[SelfCorrection]
    validation_score: float
    public_score: float
    reward: float
    selected: bool
    feedback: str
    usage: dict[str, Usage]
    cost_usd: float


class SkippedCandidate(_Record):
    candidate: int
    errors: list[str]


class Checkpoint(_Record):
    iteration: int
    state: LoopState
    ledger: dict[str, Usage]
    skipped: bool = False
    skipped_candidates: list[SkippedCandidate] = Field(default_factory=list)


RunStatus = Literal["running", "complete", "stopped", "failed"]


class Manifest(_Record):
    run_id: str
    w4s_version: str
    created: str
    updated: str
    status: RunStatus
    reason: str | None = None
    splits_fingerprint: str
    spec: dict[str, Any]
    data_source: str | None = None  # where the samples came from (offline copy, hub, file)
    sandbox: str | None = None  # where workflow code ran: gvisor, or process (reported as unsandboxed)


class RunResult(_Record):
    run_id: str
    status: RunStatus
    reason: str | None = None
    iterations_completed: int
    skipped_iterations: list[int]
    best_iteration: int
    best_candidate: int | None
    best_validation_score: float
    test_score: float | None
    test_size: int
    cost_usd: float
    usage: dict[str, Usage]
