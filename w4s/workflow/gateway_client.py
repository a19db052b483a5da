"""The sandbox's side of the LLM gateway: one HTTP request per LLM call, over a unix socket or TCP.

Runs next to untrusted code, so it is standard-library only and holds nothing but the sample's own token, which
the gateway ties to one sample of one run, its call limit and the run's budget. No provider key ever gets here.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from w4s.workflow.helper_api import LLMCallError


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("gateway", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _connection(address: str, timeout: float) -> http.client.HTTPConnection:
    """``unix:/path`` (local runs, the socket is mounted into the sandbox) or ``http://host:port`` (a Service)."""
    if address.startswith("unix:"):
        return _UnixConnection(address[len("unix:"):], timeout)
    if address.startswith("http://"):
        host = address[len("http://"):].rstrip("/")
        return http.client.HTTPConnection(host, timeout=timeout)
    raise LLMCallError(f"unsupported gateway address {address!r}")


class GatewayClient:
    """``request_llm`` for the helper API's Agent."""

    def __init__(self, address: str, token: str, timeout: float) -> None:
        self._address = address
        self._token = token
        self._timeout = timeout

    def __call__(self, request: dict[str, Any]) -> list[str]:
        body = json.dumps(request).encode()
        conn = _connection(self._address, self._timeout)
        try:
            conn.request("POST", "/v1/chat", body=body, headers={
                "Authorization": f"Bearer {self._token}", "Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
        except OSError as err:
            raise LLMCallError(f"cannot reach the LLM gateway: {type(err).__name__}: {err}") from None
        finally:
            conn.close()
        try:
            data = json.loads(payload)
        except ValueError:
            data = {}
        if response.status != 200:
            message = (data.get("error") or {}).get("message") if isinstance(data, dict) else None
            raise LLMCallError(message or f"LLM gateway answered HTTP {response.status}")
        return [str(t) for t in data["texts"]]
