"""Grading code answers (HumanEval, MBPP pass@1): the answer's code plus the hidden tests, run in the sandbox.

Grading programs run in a small pool of sandbox workers of their own that never execute workflow code, each
program in a fresh child with its own uid, wall clock, memory and file-size limits and no network, so neither a
workflow nor a previous answer can tamper with a verdict, and an answer that loops forever fails by timeout
without holding up the run.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from w4s.sandbox.backends import choose_backend
from w4s.sandbox.pool import SandboxPool
from w4s.spec import SandboxSpec


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    error: str | None = None


class CodeChecker:
    """Create it inside the event loop that uses it. Grading makes no LLM calls, so the gateway address its
    workers get points at an empty directory."""

    def __init__(self, concurrency: int = 4, memory_mb: int = 1024, backend: str = "auto") -> None:
        self.memory_mb = memory_mb
        spec = SandboxSpec(concurrency=concurrency, samples_per_worker=concurrency, backend=backend)
        self._dir = Path(tempfile.mkdtemp(prefix="w4s-grading-"))
        self._pool = SandboxPool(spec, choose_backend(spec, self._dir), "none")

    async def run(self, program: str, timeout: float) -> CheckResult:
        result = await self._pool.run({"kind": "check", "program": program,
                                       "limits": {"timeout": timeout, "memory_mb": self.memory_mb}}, timeout)
        if result.ok:
            return CheckResult(True)
        error = result.error or {}
        if error.get("type") == "Timeout":
            return CheckResult(False, f"code execution timed out after {timeout:g} s")
        return CheckResult(False, str(error.get("message") or error.get("type")))

    async def close(self) -> None:
        await self._pool.close()
        shutil.rmtree(self._dir, ignore_errors=True)
