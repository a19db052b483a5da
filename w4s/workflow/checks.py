"""Grading code answers (HumanEval, MBPP pass@1): the answer's code plus the hidden tests, run out of process.

Grading programs run in their own pool of workers that never execute workflow code, each program in a fresh
limited child (wall clock, CPU, memory, file size, no network), so neither a workflow nor a previous answer can
tamper with a verdict, and an answer that loops forever fails by timeout without holding up the run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from w4s.workflow.pool import WorkerPool

_GRACE_SECONDS = 10.0  # on top of the program's own limit, for starting and reporting


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    error: str | None = None


class CodeChecker:
    """A small warm pool of grading workers; create it inside the event loop that uses it."""

    def __init__(self, size: int = 2, memory_mb: int = 1024, worker_memory_mb: int = 1024) -> None:
        self.memory_mb = memory_mb
        self._pool = WorkerPool(size, worker_memory_mb)

    async def run(self, program: str, timeout: float) -> CheckResult:
        async with self._pool.lease() as worker:
            try:
                async with asyncio.timeout(timeout + _GRACE_SECONDS):
                    reply = await worker.check(program, timeout, self.memory_mb)
            except TimeoutError:
                await worker.kill()
                return CheckResult(False, f"grading timed out after {timeout:g} s")
        return CheckResult(bool(reply["ok"]), None if reply["ok"] else str(reply.get("error")))

    async def close(self) -> None:
        await self._pool.close()
