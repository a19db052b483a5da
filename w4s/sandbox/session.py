"""One run's sandbox: the embedded gateway on a unix socket and the warm pool of workers that reach it.

This is what the runner, ``w4s eval`` and ``w4s sandbox exec`` hold while they evaluate workflows. The gateway
lives in the runner's process (local mode) and serves the sandboxes through a socket in a directory of its
own, which is the only host path a gVisor worker sees besides the read-only system files.
"""

from __future__ import annotations

import abc
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from w4s.gateway.core import Gateway, SampleTicket
from w4s.gateway.http import GatewayServer, build_app
from w4s.llm.client import LLMClient
from w4s.llm.ledger import Ledger
from w4s.sandbox.backends import Backend, choose_backend
from w4s.sandbox.pool import JobResult, SandboxPool
from w4s.sandbox.remote import RemoteBackend, RemoteConfig, RemoteGateway
from w4s.seeds import code_key
from w4s.spec import SandboxSpec

SOCKET_NAME = "gateway.sock"


class SandboxSession(abc.ABC):
    """A warm pool of workers and the gateway their samples reach: what the runner, ``w4s eval`` and
    ``w4s sandbox exec`` hold while they evaluate workflows. Subclasses say where the workers run and how a
    sample's gateway token is opened and closed."""

    gateway: Any  # has .fatal: the error that stops the run (Gateway or RemoteGateway)

    def __init__(self, spec: SandboxSpec, log: Callable[[str], None]) -> None:
        self.spec = spec
        self._log = log
        self.pool: SandboxPool | None = None

    @abc.abstractmethod
    async def _start(self) -> Backend:
        """Start what the workers need and return the backend that starts them."""

    @abc.abstractmethod
    async def _open(self, workflow: str, sample_id: str) -> SampleTicket: ...

    @abc.abstractmethod
    async def _close(self, ticket: SampleTicket) -> None: ...

    @abc.abstractmethod
    async def _stop(self) -> None:
        """Undo ``_start``; runs after the pool is closed, also when ``_start`` failed half-way."""

    @property
    def description(self) -> str:
        assert self.pool is not None
        return self.pool.backend.description

    async def __aenter__(self) -> Self:
        try:
            self.pool = SandboxPool(self.spec, await self._start(), SOCKET_NAME)
        except BaseException:
            await self.aclose()
            raise
        self._log(f"sandbox: {self.description}, {self.pool.size} worker(s) x {self.pool.per_worker} samples")
        return self

    async def run_workflow(self, code: str, sample_id: str, task: str,
                           context: dict[str, Any]) -> tuple[JobResult, SampleTicket]:
        """Run one sample; the sample's token is revoked when it ends, whatever it left running."""
        assert self.pool is not None
        ticket = await self._open(code_key(code), sample_id)
        try:
            result = await self.pool.run({"code": code, "task": task, "context": context, "token": ticket.token})
        finally:
            await self._close(ticket)
        return result, ticket

    async def aclose(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        await self._stop()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class Sandbox(SandboxSession):
    """Local workers (gVisor or plain processes) and the gateway embedded in this process, on a unix socket."""

    def __init__(self, spec: SandboxSpec, executors: dict[str, LLMClient], seed: int,
                 log: Callable[[str], None] = print, cache: bool = True) -> None:
        super().__init__(spec, log)
        self.gateway = Gateway(executors, seed=seed, max_calls_per_sample=spec.max_llm_calls_per_sample,
                               cache=cache)
        self._dir = Path(tempfile.mkdtemp(prefix="w4s-gateway-"))
        os.chmod(self._dir, 0o711)  # sample uids may reach the socket, not list the directory
        self._server = GatewayServer(build_app(self.gateway), f"unix:{self._dir / SOCKET_NAME}")

    async def _start(self) -> Backend:
        backend = choose_backend(self.spec, self._dir)
        await self._server.start()
        return backend

    async def _open(self, workflow: str, sample_id: str) -> SampleTicket:
        return self.gateway.open_sample(workflow, sample_id)

    async def _close(self, ticket: SampleTicket) -> None:
        self.gateway.close_sample(ticket.token)

    async def _stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._server.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class RemoteSandbox(SandboxSession):
    """The cluster's sandbox pods and gateway service (w4s.sandbox.remote)."""

    def __init__(self, spec: SandboxSpec, remote: RemoteConfig, ledger: Ledger, role: str,
                 log: Callable[[str], None] = print) -> None:
        super().__init__(spec, log)
        self._remote = remote
        self.gateway = RemoteGateway(remote, ledger, role)

    async def _start(self) -> Backend:
        return RemoteBackend(self._remote, spares=0)

    async def _open(self, workflow: str, sample_id: str) -> SampleTicket:
        return await self.gateway.open_sample(workflow, sample_id)

    async def _close(self, ticket: SampleTicket) -> None:
        await self.gateway.close_sample(ticket)

    async def _stop(self) -> None:
        await self.gateway.aclose()


def session_for_run(spec: SandboxSpec, executors: dict[str, LLMClient], seed: int, log: Callable[[str], None],
                    remote: RemoteConfig | None, ledger: Ledger, role: str) -> SandboxSession:
    """The local sandbox with an embedded gateway, or, in a cluster, the run's sandbox pods and gateway."""
    if remote is not None:
        return RemoteSandbox(spec, remote, ledger, role, log)
    return Sandbox(spec, executors, seed, log)
