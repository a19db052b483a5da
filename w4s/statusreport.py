"""Progress of a run written to its WorkflowOptimization's status, by the runner itself.

The runner's service account may patch only its own resource's status (the operator's Role for it says so).
It writes only the progress fields (iteration, scores, cost, artifact URIs, ``result``); the conditions are the
operator's. Writes are coalesced: the loop never waits for the API server, and a slow or unreachable API server
costs the run nothing but stale status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from w4s.kubeapi import KubeAPI, KubeError, load_config, resource_path
from w4s.records import RunResult
from w4s.reporting import Reporter
from w4s.resources import API_VERSION

log = logging.getLogger("w4s.status")


def _score(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def _usage(result_usage: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {role: {"inputTokens": u.input_tokens, "outputTokens": u.output_tokens, "costUsd": f"{u.cost_usd:.6f}"}
            for role, u in result_usage.items()}


def result_status(result: RunResult) -> dict[str, Any]:
    """The status fields that a finished (or stopped) run reports."""
    ok = {"complete": "completed", "stopped": "stopped"}.get(result.status, "failed")
    return {
        "iteration": result.iterations_completed, "bestValidationScore": _score(result.best_validation_score),
        "testScore": _score(result.test_score), "costUsd": f"{result.cost_usd:.6f}", "usage": _usage(result.usage),
        "result": {"status": ok, "reason": result.reason or result.status},
    }


class StatusPatcher:
    """Coalesced merge-patches of one resource's status subresource: at most one write a second, never waited
    for, retried with the next write when the API server refuses or is unreachable."""

    def __init__(self, resource: str, kind: str, api: KubeAPI | None = None,
                 initial: dict[str, Any] | None = None) -> None:
        namespace, _, name = resource.partition("/")
        if not namespace or not name:
            raise ValueError(f"--status-resource: expected NAMESPACE/NAME, got {resource!r}")
        self._path = resource_path(API_VERSION, kind, namespace, name, "status")
        self._api = api or KubeAPI(load_config(), timeout=15.0)
        self._pending: dict[str, Any] = dict(initial or {})
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def update(self, fields: dict[str, Any]) -> None:
        self._pending.update(fields)
        self._wake.set()
        if self._task is None:
            with contextlib.suppress(RuntimeError):  # no loop: flushed at close
                self._task = asyncio.get_running_loop().create_task(self._send_loop())

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._send()
            await asyncio.sleep(1.0)  # at most one write a second

    async def _send(self) -> None:
        patch, self._pending = self._pending, {}
        if not patch:
            return
        try:
            await self._api.merge_patch(self._path, {"status": patch})
        except KubeError as err:
            log.warning("cannot report progress to %s: %s", self._path, err)
            self._pending = {**patch, **self._pending}

    async def flush(self) -> None:
        """Stop the background writer, send what is left (a few tries), close the client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _ in range(3):
            await self._send()
            if not self._pending:
                break
            await asyncio.sleep(1.0)
        await self._api.aclose()

    def fail(self, reason: str) -> None:
        self._pending["result"] = {"status": "failed", "reason": reason}


class StatusReporter(StatusPatcher, Reporter):
    """Forwards the loop's progress to ``namespace/name``'s WorkflowOptimization status."""

    def __init__(self, resource: str, run_uri: str, iterations: int, api: KubeAPI | None = None) -> None:
        super().__init__(resource, "WorkflowOptimization", api, {
            "runUri": run_uri, "iterations": iterations, "trajectoriesUri": f"{run_uri.rstrip('/')}/records.jsonl"})

    def run_started(self, run_id: str, resumed_from: int | None) -> None:
        self.update({})

    def iteration_done(self, iteration: int, skipped: bool, best_score: float, cost_usd: float) -> None:
        self.update({"iteration": iteration, "bestValidationScore": _score(best_score),
                      "costUsd": f"{cost_usd:.6f}"})

    def run_finished(self, result: RunResult) -> None:
        self.update(result_status(result))

    async def close(self, result: RunResult | None = None, best_workflow_uri: str | None = None) -> None:
        """Send what is left, the final result first of all: the operator decides Complete from it."""
        if result is not None:
            self._pending.update(result_status(result))
            if best_workflow_uri:
                self._pending["bestWorkflowUri"] = best_workflow_uri
        await self.flush()
