"""One run's sandbox: the embedded gateway on a unix socket and the warm pool of workers that reach it.

This is what the runner, ``w4s eval`` and ``w4s sandbox exec`` hold while they evaluate workflows. The gateway
lives in the runner's process (local mode) and serves the sandboxes through a socket in a directory of its
own, which is the only host path a gVisor worker sees besides the read-only system files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from w4s.gateway.core import Gateway, SampleTicket
from w4s.gateway.http import GatewayServer, build_app
from w4s.llm.client import LLMClient
from w4s.llm.ledger import Ledger
from w4s.sandbox.backends import choose_backend
from w4s.sandbox.pool import JobResult, SandboxPool
from w4s.sandbox.remote import RemoteBackend, RemoteConfig, RemoteGateway
from w4s.seeds import code_key
from w4s.spec import SandboxSpec

SOCKET_NAME = "gateway.sock"


class Sandbox:
    def __init__(self, spec: SandboxSpec, executors: dict[str, LLMClient], seed: int,
                 log: Callable[[str], None] = print, cache: bool = True) -> None:
        self.spec = spec
        self.gateway = Gateway(executors, seed=seed, max_calls_per_sample=spec.max_llm_calls_per_sample,
                               cache=cache)
        self._log = log
        self._dir = Path(tempfile.mkdtemp(prefix="w4s-gateway-"))
        os.chmod(self._dir, 0o711)  # sample uids may reach the socket, not list the directory
        self._server = GatewayServer(build_app(self.gateway), f"unix:{self._dir / SOCKET_NAME}")
        self.pool: SandboxPool | None = None

    @staticmethod
    def for_run(spec: SandboxSpec, executors: dict[str, LLMClient], seed: int, log: Callable[[str], None],
                remote: RemoteConfig | None, ledger: Ledger, role: str) -> Sandbox | RemoteSandbox:
        """The local sandbox with an embedded gateway, or, in a cluster, the run's sandbox pods and gateway."""
        if remote is not None:
            return RemoteSandbox(spec, remote, ledger, role, log)
        return Sandbox(spec, executors, seed, log)

    @property
    def description(self) -> str:
        assert self.pool is not None
        return self.pool.backend.description

    async def __aenter__(self) -> Sandbox:
        try:
            backend = choose_backend(self.spec, self._dir)
            await self._server.start()
            self.pool = SandboxPool(self.spec, backend, SOCKET_NAME)
        except BaseException:
            await self.aclose()
            raise
        self._log(f"sandbox: {self.description}, {self.pool.size} worker(s) x "
                  f"{self.pool.per_worker} samples")
        return self

    async def run_workflow(self, code: str, sample_id: str, task: str,
                           context: dict[str, Any]) -> tuple[JobResult, SampleTicket]:
        """Run one sample; the sample's token is revoked when it ends, whatever it left running."""
        assert self.pool is not None
        ticket = self.gateway.open_sample(code_key(code), sample_id)
        try:
            result = await self.pool.run({"code": code, "task": task, "context": context, "token": ticket.token})
        finally:
            self.gateway.close_sample(ticket.token)
        return result, ticket

    async def aclose(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        with contextlib.suppress(Exception):
            await self._server.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class RemoteSandbox:
    """The same interface as Sandbox, over the cluster's sandbox pods and gateway service (w4s.sandbox.remote)."""

    def __init__(self, spec: SandboxSpec, remote: RemoteConfig, ledger: Ledger, role: str,
                 log: Callable[[str], None] = print) -> None:
        self.spec = spec
        self._remote = remote
        self._log = log
        self.gateway = RemoteGateway(remote, ledger, role)
        self.pool: SandboxPool | None = None

    @property
    def description(self) -> str:
        assert self.pool is not None
        return self.pool.backend.description

    async def __aenter__(self) -> RemoteSandbox:
        try:
            self.pool = SandboxPool(self.spec, RemoteBackend(self._remote, spares=0), SOCKET_NAME)
        except BaseException:
            await self.gateway.aclose()
            raise
        self._log(f"sandbox: {self.description}, {self.pool.size} worker(s) x {self.pool.per_worker} samples")
        return self

    async def run_workflow(self, code: str, sample_id: str, task: str,
                           context: dict[str, Any]) -> tuple[JobResult, SampleTicket]:
        assert self.pool is not None
        ticket = await self.gateway.open_sample(code_key(code), sample_id)
        try:
            result = await self.pool.run({"code": code, "task": task, "context": context, "token": ticket.token})
        finally:
            await self.gateway.close_sample(ticket)
        return result, ticket

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.pool is not None:
            await self.pool.close()
        await self.gateway.aclose()
