"""Live progress and summaries on the terminal (rich); plain lines when output is not a terminal."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from w4s.records import CandidateRecord, RunResult
from w4s.reporting import Reporter


class ConsoleReporter(Reporter):
    def __init__(self, console: Console, iterations: int, candidates: int) -> None:
        self.console = console
        self.iterations = iterations
        self.candidates = candidates
        self.best: float | None = None
        self.cost = 0.0
        self._where = ""
        self._last_sample_print = 0.0
        self._status = console.status("") if console.is_terminal else None

    def _line(self, text: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}", highlight=False)

    def run_started(self, run_id: str, resumed_from: int | None) -> None:
        how = f"resuming after iteration {resumed_from}" if resumed_from is not None else "starting"
        self._line(f"run [bold]{run_id}[/bold]: {how}")
        if self._status:
            self._status.start()

    def phase(self, iteration: int, candidate: int | None, text: str) -> None:
        cand = f" candidate {candidate + 1}/{self.candidates}" if candidate is not None else ""
        self._where = f"iteration {iteration}/{self.iterations}{cand}"
        self._line(f"{self._where}: {text}")

    def final_evaluation(self, size: int) -> None:
        self._where = "final test evaluation"
        self._line(f"evaluating the best workflow (by validation score) once on {size} test tasks")

    def samples(self, done: int, total: int) -> None:
        best = "-" if self.best is None else f"{self.best:.3f}"
        text = f"{self._where}: {done}/{total} tasks | best {best} | cost ${self.cost:.4f}"
        if self._status:
            self._status.update(text)
        elif done == total or time.monotonic() - self._last_sample_print > 10:
            self._last_sample_print = time.monotonic()
            self._line(text)

    def candidate_done(self, record: CandidateRecord) -> None:
        fixes = f", {len(record.self_corrections)} self-correction(s)" if record.self_corrections else ""
        self._line(f"iteration {record.iteration} candidate {record.candidate + 1}: validation "
                   f"{record.validation_score:.3f}, reward {record.reward:g}{fixes}, ${record.cost_usd:.4f}")

    def iteration_done(self, iteration: int, skipped: bool, best_score: float, cost_usd: float) -> None:
        self.best, self.cost = best_score, cost_usd
        note = "skipped (no candidate survived self-correction)" if skipped else "done"
        self._line(f"iteration {iteration}/{self.iterations} {note}: best validation {best_score:.3f}, "
                   f"cost ${cost_usd:.4f}")

    def run_finished(self, result: RunResult) -> None:
        self.close()

    def close(self) -> None:
        if self._status:
            self._status.stop()


def summary_table(result: RunResult) -> Table:
    table = Table(title=f"w4s run {result.run_id}: {result.status}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    if result.reason:
        table.add_row("reason", result.reason)
    table.add_row("iterations completed", str(result.iterations_completed))
    table.add_row("skipped iterations", ", ".join(map(str, result.skipped_iterations)) or "none")
    cand = "" if result.best_candidate is None else f" candidate {result.best_candidate}"
    source = "example workflow W0" if result.best_iteration == 0 else f"iteration {result.best_iteration}{cand}"
    table.add_row("best workflow", source)
    table.add_row("best validation score", f"{result.best_validation_score:.4f}")
    test = "-" if result.test_score is None else f"{result.test_score:.4f} on {result.test_size} tasks"
    table.add_row("test score (best by validation)", test)
    for role, usage in result.usage.items():
        table.add_row(f"{role}", f"{usage.calls} calls, {usage.input_tokens} in / {usage.output_tokens} out "
                                 f"tokens, ${usage.cost_usd:.4f}")
    table.add_row("total cost", f"${result.cost_usd:.4f}")
    return table


def records_table(records: list[CandidateRecord]) -> Table:
    table = Table(title="candidates")
    for col in ("iter", "cand", "validation", "public", "reward", "selected", "fixes", "cost $"):
        table.add_column(col, justify="right")
    for r in records:
        table.add_row(str(r.iteration), str(r.candidate), f"{r.validation_score:.3f}", f"{r.public_score:.3f}",
                      f"{r.reward:g}", "*" if r.selected else "", str(len(r.self_corrections)),
                      f"{r.cost_usd:.4f}")
    return table
