"""Hooks through which the loop reports progress; the CLI renders them, the operator turns them into status."""

from __future__ import annotations

from w4s.records import CandidateRecord, RunResult


class Reporter:
    """No-op base: subclasses override what they show."""

    def run_started(self, run_id: str, resumed_from: int | None) -> None: ...

    def phase(self, iteration: int, candidate: int | None, text: str) -> None: ...

    def samples(self, done: int, total: int) -> None: ...

    def candidate_done(self, record: CandidateRecord) -> None: ...

    def iteration_done(self, iteration: int, skipped: bool, best_score: float, cost_usd: float) -> None: ...

    def run_finished(self, result: RunResult) -> None: ...
