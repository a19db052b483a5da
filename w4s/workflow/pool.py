"""The runner's side of workflow workers: start them, hand them samples, answer their LLM requests, kill them.

A worker is reused across samples (start-up is the expensive part) but never across a timeout, a crash or a
fatal LLM error: those kill the process and a fresh one takes its slot. Workers get an empty environment, a
private temporary directory and an address-space limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from w4s.errors import W4SError
from w4s.workflow import confine

LLMHandler = Callable[[dict[str, Any]], Awaitable[list[str]]]


class LLMRequestRejected(Exception):
    """An LLM request from a workflow that the runner refuses; the workflow sees it as an exception."""


@dataclass
class SampleOutcome:
    answer: Any = None
    error: str | None = None
    seconds: float = 0.0


_STDERR_TAIL = 4096
logger = logging.getLogger("w4s.workflow")


class Worker:
    """One worker process."""

    warned_network = False  # one warning per runner process when network namespaces are unavailable

    def __init__(self, proc: asyncio.subprocess.Process, workdir: str) -> None:
        self.proc = proc
        self.workdir = workdir
        self._stderr_tail = b""
        self._drain = asyncio.create_task(self._drain_stderr())

    @classmethod
    async def start(cls, memory_mb: int) -> Worker:
        workdir = tempfile.mkdtemp(prefix="w4s-worker-")
        mem = memory_mb * 1024 * 1024

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            confine.isolate_network()

        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-m", "w4s.workflow.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=workdir, env={"PATH": os.defpath, "LANG": "C.UTF-8", "HOME": workdir, "PYTHONHASHSEED": "0"},
            start_new_session=True, preexec_fn=limit, limit=64 * 1024 * 1024,
        )
        worker = cls(proc, workdir)
        ready = await worker._read()
        if ready is None or ready.get("op") != "ready":
            await worker.kill()
            raise W4SError(f"workflow worker failed to start: {worker.stderr_tail()}")
        if not Worker.warned_network and confine.shares_network(proc.pid):
            Worker.warned_network = True
            logger.warning("workflow workers share the host network: this system does not allow network "
                           "namespaces, so generated code can open connections")
        return worker

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self._stderr_tail = (self._stderr_tail + chunk)[-_STDERR_TAIL:]

    def stderr_tail(self) -> str:
        return self._stderr_tail.decode("utf-8", "replace").strip()[-1500:]

    async def _read(self) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        return json.loads(line) if line else None

    async def _write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        await self.proc.stdin.drain()

    async def run(self, message: dict[str, Any], on_llm: LLMHandler) -> SampleOutcome:
        """Run one sample to completion. Exceptions from ``on_llm`` other than LLMRequestRejected are fatal:
        they propagate and the caller must kill this worker."""
        started = time.monotonic()
        await self._write({"op": "run", **message})
        while True:
            reply = await self._read()
            if reply is None:
                await self.proc.wait()
                return SampleOutcome(error=f"workflow process died (exit code {self.proc.returncode}): "
                                           f"{self.stderr_tail() or 'no output'}",
                                     seconds=time.monotonic() - started)
            if reply["op"] == "llm":
                try:
                    texts = await on_llm(reply)
                except LLMRequestRejected as err:
                    await self._write({"op": "llm_error", "message": str(err)})
                    continue
                await self._write({"op": "llm_result", "texts": texts})
            elif reply["op"] == "done":
                return SampleOutcome(answer=reply.get("answer"), error=reply.get("error"),
                                     seconds=time.monotonic() - started)

    async def check(self, program: str, timeout: float, memory_mb: int) -> dict[str, Any]:
        """Run one grading program (see ``helper_api.run_check``)."""
        await self._write({"op": "check", "program": program, "timeout": timeout, "memory_mb": memory_mb})
        reply = await self._read()
        if reply is None:
            await self.proc.wait()
            return {"ok": False, "error": f"grading process died (exit code {self.proc.returncode}): "
                                          f"{self.stderr_tail() or 'no output'}"}
        return {"ok": bool(reply.get("ok")), "error": reply.get("error")}

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def kill(self) -> None:
        """Kill the worker and everything it started (it is a subreaper, so nothing escapes), then reap it."""
        if self.proc.returncode is None:
            confine.kill_tree(self.proc.pid)
        await self.proc.wait()
        self._drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._drain
        shutil.rmtree(self.workdir, ignore_errors=True)


class WorkerPool:
    """A fixed number of worker slots, filled lazily and kept warm between evaluations."""

    def __init__(self, size: int, memory_mb: int) -> None:
        self.size = size
        self.memory_mb = memory_mb
        self._idle: list[Worker] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def warm(self) -> None:
        """Start idle workers up to the pool size, all at once, so the first evaluation does not pay for it."""
        missing = self.size - len(self._idle)
        self._idle.extend(await asyncio.gather(*(Worker.start(self.memory_mb) for _ in range(missing))))

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[Worker]:
        """Borrow a worker. If the body raises, the worker is killed rather than returned."""
        if self._closed:
            raise W4SError("worker pool is closed")
        async with self._slots:
            worker = self._idle.pop() if self._idle else await Worker.start(self.memory_mb)
            try:
                yield worker
            except BaseException:
                await worker.kill()
                raise
            if worker.alive and not self._closed:
                self._idle.append(worker)
            else:
                await worker.kill()

    async def run(self, message: dict[str, Any], on_llm: LLMHandler, timeout: float) -> SampleOutcome:
        """Run one sample with a wall-clock limit; a timed-out worker is killed and replaced later."""
        started = time.monotonic()
        async with self.lease() as worker:
            try:
                async with asyncio.timeout(timeout):
                    outcome = await worker.run(message, on_llm)
            except TimeoutError:
                await worker.kill()
                return SampleOutcome(error=f"sample timed out after {timeout:g} s",
                                     seconds=time.monotonic() - started)
            if outcome.error and outcome.error.startswith("workflow process died"):
                await worker.kill()
            return outcome

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(w.kill() for w in idle))
