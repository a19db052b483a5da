"""The runner's side of an in-cluster sandbox: workers in gVisor pods over TCP, and the gateway as a service.

In a cluster the operator runs the sandbox workers as pods (``w4s.workflow.worker --listen``, behind a headless
Service) and the gateway as its own Deployment, the only pod with provider keys. The runner then holds neither a
key nor a local sandbox: it opens and closes each sample's gateway token through the gateway's admin plane, sends
jobs to the worker pods over the same JSON-lines protocol as a local worker's pipes, and books each sample's
spend, which the gateway reports when the token is closed, into the run's ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from w4s.errors import BudgetExceeded, ProviderError, W4SError
from w4s.gateway.core import SampleTicket
from w4s.llm.ledger import Ledger, RoleUsage
from w4s.sandbox.backends import Backend

WORKER_PORT = 7070
_STREAM_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class RemoteConfig:
    """Where the gateway and the worker pods are; the operator sets these in the runner Job's environment."""

    gateway_url: str
    admin_token: str
    sandbox_service: str
    worker_port: int = WORKER_PORT

    @classmethod
    def from_env(cls) -> RemoteConfig | None:
        """None unless all three are set: the runner then uses the local sandbox and an embedded gateway."""
        url, token = os.environ.get("W4S_GATEWAY_URL"), os.environ.get("W4S_GATEWAY_ADMIN_TOKEN")
        service = os.environ.get("W4S_SANDBOX_SERVICE")
        if not (url and token and service):
            return None
        return cls(url.rstrip("/"), token, service, int(os.environ.get("W4S_SANDBOX_PORT", WORKER_PORT)))

    def sandbox_gateway_url(self) -> str:
        """The gateway as the sandbox reaches it: by IP, because the sandbox pods have no DNS."""
        parsed = httpx.URL(self.gateway_url)
        address = socket.getaddrinfo(parsed.host, parsed.port or 80, type=socket.SOCK_STREAM)[0][4][0]
        return f"http://{address}:{parsed.port or 80}"


class _Connection:
    """A TCP connection to a worker pod, shaped like the worker subprocess the pool otherwise drives."""

    pid = None

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str,
                 release: Any) -> None:
        self.stdout = reader
        self.stdin = writer
        self.stderr = asyncio.StreamReader()
        self.stderr.feed_eof()  # the pod's own log holds its stderr
        self.returncode: int | None = None
        self.address = address
        self._release = release

    def kill(self) -> None:
        """Closing the connection makes the worker stop every sample it runs for us, then serve the next."""
        if self.returncode is None:
            self.returncode = -9
            self.stdin.close()
            self._release(self.address)

    async def wait(self) -> int:
        if self.returncode is None:
            self.returncode = 0
            self.stdin.close()
            self._release(self.address)
        with contextlib.suppress(ConnectionError):
            await self.stdin.wait_closed()
        return self.returncode


class RemoteBackend(Backend):
    """Connects each pool slot to a worker pod that no other slot holds (a pod serves one runner at a time)."""

    name = "remote"

    def __init__(self, config: RemoteConfig, spares: int) -> None:
        super().__init__(Path("/nonexistent"), spares)
        self.config = config
        self._gateway = config.sandbox_gateway_url()
        self._in_use: set[str] = set()

    def gateway_address(self, socket_name: str) -> str:
        return self._gateway

    def _addresses(self) -> list[str]:
        infos = socket.getaddrinfo(self.config.sandbox_service, self.config.worker_port, type=socket.SOCK_STREAM)
        return sorted({f"{info[4][0]}:{self.config.worker_port}" for info in infos})

    async def spawn(self) -> Any:
        errors = []
        for address in self._addresses():
            if address in self._in_use:
                continue
            host, _, port = address.rpartition(":")
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, int(port), limit=_STREAM_LIMIT), 10)
            except (OSError, TimeoutError) as err:
                errors.append(f"{address}: {err!r}")
                continue
            self._in_use.add(address)
            return _Connection(reader, writer, address, self._in_use.discard)
        raise W4SError(f"no free sandbox worker behind {self.config.sandbox_service}:{self.config.worker_port} "
                       f"({len(self._in_use)} in use; {'; '.join(errors) or 'no other address'})")

    def close(self) -> None:
        self._in_use.clear()

    @property
    def description(self) -> str:
        return f"remote (sandbox pods behind {self.config.sandbox_service}, gateway {self.config.gateway_url})"


class RemoteGateway:
    """The gateway's admin plane: a token per sample, and the sample's spend when the token is closed."""

    def __init__(self, config: RemoteConfig, ledger: Ledger, role: str) -> None:
        self._client = httpx.AsyncClient(base_url=config.gateway_url, timeout=httpx.Timeout(30.0, connect=10.0),
                                         headers={"Authorization": f"Bearer {config.admin_token}"})
        self._ledger = ledger
        self._role = role
        # Like Gateway.fatal: once the gateway's budget is spent or a provider refuses for good, the run stops.
        self.fatal: W4SError | None = None

    async def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, **kw)
        except httpx.HTTPError as err:
            raise W4SError(f"the LLM gateway at {self._client.base_url} is unreachable: {err!r}") from None
        if response.status_code >= 400:
            raise W4SError(f"the LLM gateway refused {method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    async def open_sample(self, workflow: str, sample_id: str) -> SampleTicket:
        body = await self._call("POST", "/v1/samples", json={"workflow": workflow, "sample": sample_id})
        return SampleTicket(body["token"], workflow, sample_id)

    async def close_sample(self, ticket: SampleTicket) -> SampleTicket:
        body = await self._call("DELETE", f"/v1/samples/{ticket.token}")
        ticket.calls, ticket.cached_calls = body["calls"], body["cached_calls"]
        ticket.usage = RoleUsage(**body["usage"])
        self._ledger.record(self._role, ticket.usage)
        fatal = body.get("fatal")
        if fatal and self.fatal is None:
            self.fatal = BudgetExceeded(fatal["message"]) if fatal["budget"] else ProviderError(fatal["message"])
        return ticket

    async def aclose(self) -> None:
        await self._client.aclose()
