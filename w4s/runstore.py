"""The layout of one run in the store, and the order of writes that makes a crash lose nothing.

    manifest.json                     spec, split fingerprint, status
    workflows/iter-NNNN-cand-J.py     every workflow's code (iter-0000-example.py is W0)
    evaluations/iter-NNNN-cand-J.json per-sample results on the private and public splits
    records/iter-NNNN.jsonl           the candidates of one iteration
    records.jsonl                     all candidate records so far (one JSON object per line)
    checkpoints/iter-NNNN.json        written LAST: the iteration is complete once it exists
    spend.json                        the ledger after every evaluation, so a crash does not forget money spent
    test_evaluation.json, best_workflow.py, result.json   after the loop

A restart loads the newest checkpoint, deletes anything of later iterations (written before the crash, never
committed) and redoes that iteration: nothing committed is lost and nothing is recorded twice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from w4s.records import CandidateRecord, Checkpoint, Manifest, RunResult
from w4s.store.base import Store


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def workflow_name(iteration: int, candidate: int | None) -> str:
    return f"iter-{iteration:04d}-" + ("example" if candidate is None else f"cand-{candidate}")


class RunStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    # manifest -----------------------------------------------------------------------------------------------
    def read_manifest(self) -> Manifest | None:
        return Manifest.model_validate(self.store.get_json("manifest.json")) \
            if self.store.exists("manifest.json") else None

    def write_manifest(self, manifest: Manifest) -> None:
        manifest.updated = now()
        self.store.put_json("manifest.json", manifest.model_dump(mode="json"))

    # per-iteration artifacts ----------------------------------------------------------------------------------
    def write_workflow(self, iteration: int, candidate: int | None, code: str, evaluation: dict[str, Any]) -> None:
        name = workflow_name(iteration, candidate)
        self.store.put_text(f"workflows/{name}.py", code)
        self.store.put_json(f"evaluations/{name}.json", evaluation)

    def commit_iteration(self, checkpoint: Checkpoint, records: list[CandidateRecord]) -> None:
        """Records first, then the combined file, then the checkpoint that makes them count."""
        it = checkpoint.iteration
        if it > 0:
            self.store.put_text(f"records/iter-{it:04d}.jsonl", _jsonl(records))
        self._rewrite_combined(it)
        self.store.put_json(f"checkpoints/iter-{it:04d}.json", checkpoint.model_dump(mode="json"))

    def _rewrite_combined(self, upto: int) -> None:
        parts = [self.store.get_text(k) for k in self.store.list("records/") if _iteration_of(k) <= upto]
        self.store.put_text("records.jsonl", "".join(parts))

    def latest_checkpoint(self) -> Checkpoint | None:
        keys = self.store.list("checkpoints/")
        return Checkpoint.model_validate(self.store.get_json(keys[-1])) if keys else None

    def discard_after(self, iteration: int) -> None:
        """Remove artifacts of iterations after the last checkpoint: they were never committed."""
        stale = [k for prefix in ("records/", "workflows/", "evaluations/", "checkpoints/")
                 for k in self.store.list(prefix) if _iteration_of(k) > iteration]
        for key in stale:
            self.store.delete(key)
        self._rewrite_combined(iteration)
        for key in ("result.json", "best_workflow.py", "test_evaluation.json"):
            self.store.delete(key)

    def write_spend(self, snapshot: dict[str, dict[str, float]]) -> None:
        self.store.put_json("spend.json", snapshot)

    def read_spend(self) -> dict[str, dict[str, float]] | None:
        return self.store.get_json("spend.json") if self.store.exists("spend.json") else None

    def read_records(self) -> list[CandidateRecord]:
        if not self.store.exists("records.jsonl"):
            return []
        return [CandidateRecord.model_validate_json(line)
                for line in self.store.get_text("records.jsonl").splitlines() if line.strip()]

    def checkpoints(self) -> list[Checkpoint]:
        return [Checkpoint.model_validate(self.store.get_json(k)) for k in self.store.list("checkpoints/")]

    # result ---------------------------------------------------------------------------------------------------
    def write_result(self, result: RunResult, best_code: str) -> None:
        self.store.put_text("best_workflow.py", best_code)
        self.store.put_json("result.json", result.model_dump(mode="json"))

    def write_test_evaluation(self, evaluation: dict[str, Any]) -> None:
        self.store.put_json("test_evaluation.json", evaluation)

    def read_result(self) -> RunResult | None:
        return RunResult.model_validate(self.store.get_json("result.json")) \
            if self.store.exists("result.json") else None


def _jsonl(records: list[CandidateRecord]) -> str:
    return "".join(json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n" for r in records)


def _iteration_of(key: str) -> int:
    name = key.rsplit("/", 1)[-1]
    return int(name.split("-")[1].split(".")[0])
