"""The runner's side of sandbox workers: a warm pool, each worker running several samples at once.

Workers are started once and reused (start-up is the expensive part: about half a second for a gVisor
container); isolation between samples comes from the worker, which runs each sample in a fresh child of its
own. The pool only routes jobs and results, and keeps a backstop: a worker that does not report a sample
within its limit plus a grace period, or that dies, is killed and replaced, and its samples in flight fail
with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from w4s.errors import W4SError
from w4s.sandbox.backends import Backend
from w4s.spec import SandboxSpec
from w4s.workflow import confine

_STDERR_TAIL = 4096
_GRACE_S = 15.0
# Failures of the sandbox itself rather than of the workflow: the "sandbox error rate" alert counts these.
SANDBOX_DIED = "SandboxDied"
SANDBOX_UNRESPONSIVE = "SandboxUnresponsive"
SANDBOX_FAILURES = (SANDBOX_DIED, SANDBOX_UNRESPONSIVE)


@dataclass
class JobResult:
    ok: bool
    answer: Any = None
    error: dict[str, Any] | None = None
    wall_s: float = 0.0

    @property
    def error_text(self) -> str | None:
        """The error as the meta-agent reads it: type, message, then the failing workflow lines."""
        if self.ok or self.error is None:
            return None
        text = f"{self.error.get('type', 'Error')}: {self.error.get('message', '')}"
        trace = self.error.get("traceback")
        return f"{text}\n{trace}" if trace else text

    @classmethod
    def failure(cls, kind: str, message: str) -> JobResult:
        return cls(False, error={"type": kind, "message": message, "traceback": ""})


class SandboxWorker:
    """One worker process and the samples it has in flight."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._pending: dict[int, asyncio.Future[JobResult]] = {}
        self._stderr = b""
        self._drain = asyncio.create_task(self._drain_stderr())
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, backend: Backend, timeout: float = 60.0) -> SandboxWorker:
        worker = cls(await backend.spawn())
        try:
            async with asyncio.timeout(timeout):
                line = await worker.proc.stdout.readline()  # type: ignore[union-attr]
            ready = json.loads(line) if line else None
        except (TimeoutError, ValueError):
            ready = None
        except BaseException:  # cancelled while starting: the process must not outlive the pool
            await worker.kill()
            raise
        if not ready or ready.get("op") != "ready":
            await worker.kill()
            raise W4SError(f"the {backend.name} sandbox worker failed to start: "
                           f"{worker.stderr_tail() or 'no output'}")
        worker._reader = asyncio.create_task(worker._read_results())
        return worker

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def stderr_tail(self) -> str:
        return self._stderr.decode("utf-8", "replace").strip()[-1500:]

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self._stderr = (self._stderr + chunk)[-_STDERR_TAIL:]

    async def _read_results(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            message = json.loads(line)
            future = self._pending.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(JobResult(bool(message.get("ok")), message.get("answer"), message.get("error"),
                                            float(message.get("wall_s") or 0.0)))
        await self.proc.wait()
        self._fail_all(SANDBOX_DIED, f"the sandbox worker exited (code {self.proc.returncode}): "
                                      f"{self.stderr_tail() or 'no output'}")

    def _fail_all(self, kind: str, message: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_result(JobResult.failure(kind, message))

    async def submit(self, job_id: int, job: dict[str, Any], limits: dict[str, Any]) -> asyncio.Future[JobResult]:
        future: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
        self._pending[job_id] = future
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps({"op": "run", "jobs": [{**job, "id": job_id}], "limits": limits})
                                   + "\n").encode())
            await self.proc.stdin.drain()
        except (ConnectionError, RuntimeError):
            self._pending.pop(job_id, None)
            future.set_result(JobResult.failure(SANDBOX_DIED, "the sandbox worker is gone: "
                                                + (self.stderr_tail() or "no output")))
        return future

    async def kill(self, reason: str = "the sandbox worker was stopped") -> None:
        if self.proc.returncode is None:
            if self.proc.pid is None:  # a worker pod's connection (w4s.sandbox.remote)
                self.proc.kill()
            else:
                confine.kill_tree(self.proc.pid)
        await self.proc.wait()
        self._fail_all("SandboxKilled", reason)
        for task in (self._reader, self._drain):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def sample_limits(spec: SandboxSpec, gateway: str) -> dict[str, Any]:
    """The limits every job of a pool runs under (a job may lower its own ``timeout`` and ``memory_mb``)."""
    return {"timeout": spec.sample_timeout, "memory_mb": spec.worker_memory_mb,
            "max_processes": spec.max_processes, "max_output_bytes": spec.max_output_kb * 1024,
            "max_file_mb": spec.max_file_mb, "max_open_files": spec.max_open_files, "gateway": gateway,
            "llm_timeout": spec.sample_timeout, "execute_code_timeout": spec.execute_code_timeout,
            "execute_code_memory_mb": spec.execute_code_memory_mb, "json_retries": spec.json_retries}


class SandboxPool:
    """``ceil(concurrency / samplesPerWorker)`` workers, started lazily or by ``warm``, kept between runs."""

    def __init__(self, spec: SandboxSpec, backend: Backend, gateway_socket: str) -> None:
        self.spec = spec
        self.backend = backend
        self.limits = sample_limits(spec, backend.gateway_address(gateway_socket))
        self.per_worker = min(spec.samples_per_worker, spec.concurrency)
        self._workers: list[SandboxWorker | None] = [None] * math.ceil(spec.concurrency / self.per_worker)
        self._reserved = [0] * len(self._workers)
        self._locks = [asyncio.Lock() for _ in self._workers]
        self._slots = asyncio.Semaphore(spec.concurrency)
        self._ids = itertools.count()
        self._closed = False
        self.start_seconds: list[float] = []  # cold start of each worker, for the status and bench/sandbox

    async def _worker(self, index: int) -> SandboxWorker:
        async with self._locks[index]:
            worker = self._workers[index]
            if worker is None or not worker.alive:
                if worker is not None:
                    await worker.kill()
                started = time.monotonic()
                worker = await SandboxWorker.start(self.backend)
                self.start_seconds.append(time.monotonic() - started)
                self._workers[index] = worker
            return worker

    async def warm(self) -> None:
        """Start every worker now, so the first evaluation does not wait for them."""
        await asyncio.gather(*(self._worker(i) for i in range(len(self._workers))))

    @property
    def size(self) -> int:
        return len(self._workers)

    async def run(self, job: dict[str, Any], timeout: float | None = None) -> JobResult:
        """Run one job (a workflow sample or a grading check) and return its result; never raises for what the
        job's code does."""
        if self._closed:
            raise W4SError("the sandbox pool is closed")
        limit = timeout if timeout is not None else self.spec.sample_timeout
        async with self._slots:
            index = min(range(len(self._workers)), key=lambda i: self._reserved[i])
            self._reserved[index] += 1
            try:
                worker = await self._worker(index)
                future = await worker.submit(next(self._ids), job, self.limits)
                try:
                    return await asyncio.wait_for(asyncio.shield(future), limit + _GRACE_S)
                except TimeoutError:
                    await worker.kill("the sandbox worker stopped answering")
                    return JobResult.failure(SANDBOX_UNRESPONSIVE, f"no result within {limit + _GRACE_S:g} s; "
                                             "the sandbox worker was restarted")
            finally:
                self._reserved[index] -= 1

    async def close(self) -> None:
        self._closed = True
        workers, self._workers = self._workers, [None] * len(self._workers)
        await asyncio.gather(*(w.kill() for w in workers if w is not None))
        self.backend.close()
