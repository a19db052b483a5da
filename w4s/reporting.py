"""Hooks through which the loop reports progress; the CLI renders them, the operator turns them into status."""

from __future__ import annotations

from w4s.records import CandidateRecord, RunResult


class Reporter:
    """No-op base: subclasses override what they show."""

    def run_started(self, run_id: str, resumed_from: int | None) -> None: ...

    def phase(self, iteration: int, candidate: int | None, text: str) -> None: ...

    def example_scored(self, score: float) -> None:
        """The example workflow W0's validation score: iteration 0 of the run's curve (also on a resume)."""

    def final_evaluation(self, size: int) -> None: ...

    def samples(self, done: int, total: int) -> None: ...

    def candidate_done(self, record: CandidateRecord) -> None: ...

    def iteration_done(self, iteration: int, skipped: bool, best_score: float, cost_usd: float) -> None: ...

    def run_finished(self, result: RunResult) -> None: ...


class Fanout(Reporter):
    """Several reporters as one: the console and the resource's status see the same run."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = reporters

    def run_started(self, run_id: str, resumed_from: int | None) -> None:
        for r in self.reporters:
            r.run_started(run_id, resumed_from)

    def phase(self, iteration: int, candidate: int | None, text: str) -> None:
        for r in self.reporters:
            r.phase(iteration, candidate, text)

    def example_scored(self, score: float) -> None:
        for r in self.reporters:
            r.example_scored(score)

    def final_evaluation(self, size: int) -> None:
        for r in self.reporters:
            r.final_evaluation(size)

    def samples(self, done: int, total: int) -> None:
        for r in self.reporters:
            r.samples(done, total)

    def candidate_done(self, record: CandidateRecord) -> None:
        for r in self.reporters:
            r.candidate_done(record)

    def iteration_done(self, iteration: int, skipped: bool, best_score: float, cost_usd: float) -> None:
        for r in self.reporters:
            r.iteration_done(iteration, skipped, best_score, cost_usd)

    def run_finished(self, result: RunResult) -> None:
        for r in self.reporters:
            r.run_finished(result)
