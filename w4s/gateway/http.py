"""The gateway over HTTP: a unix socket mounted into local sandboxes, or a TCP port behind a cluster Service.

Data plane, for workflows: ``POST /v1/chat`` with ``Authorization: Bearer <sample token>``, body
``{messages, temperature, n, max_tokens, model, json_mode}``, answer ``{"texts": [...]}`` or
``{"error": {"message"}}`` with the status the gateway chose (401 unknown token, 400 bad request, 402 budget
spent, 429 call limit, 503 provider down).

Control plane, for the runner when the gateway runs as its own service (``w4s gateway``), with the admin token:
``POST /v1/samples {workflow, sample}`` -> ``{token}``, ``DELETE /v1/samples/{token}`` -> the sample's usage,
``GET /v1/usage`` -> the run's ledger and per-model usage. ``GET /healthz`` needs no token.
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import asdict
from pathlib import Path

from aiohttp import web

from w4s.errors import BudgetExceeded
from w4s.gateway.core import Gateway, GatewayRejected

_MAX_BODY = 16 * 1024 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=status)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else None


def build_app(gateway: Gateway, admin_token: str | None = None) -> web.Application:
    """``admin_token`` None serves the data plane only (the runner embeds the gateway and calls it directly)."""

    async def chat(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "the request body is not JSON")
        try:
            return web.json_response({"texts": await gateway.chat(_bearer(request), body)})
        except GatewayRejected as err:
            return _error(err.status, str(err))

    def admin(request: web.Request) -> None:
        given = _bearer(request) or ""
        if admin_token is None or not hmac.compare_digest(given.encode(), admin_token.encode()):
            raise web.HTTPUnauthorized(text=json.dumps({"error": {"message": "admin token required"}}),
                                       content_type="application/json")

    async def open_sample(request: web.Request) -> web.Response:
        admin(request)
        try:
            body = await request.json()
            ticket = gateway.open_sample(str(body["workflow"]), str(body["sample"]))
        except (ValueError, KeyError, TypeError):
            return _error(400, "expected {workflow, sample}")
        return web.json_response({"token": ticket.token})

    async def close_sample(request: web.Request) -> web.Response:
        admin(request)
        try:
            ticket = gateway.close_sample(request.match_info["token"])
        except GatewayRejected as err:
            return _error(err.status, str(err))
        fatal = gateway.fatal
        return web.json_response({"calls": ticket.calls, "cached_calls": ticket.cached_calls,
                                  "usage": asdict(ticket.usage),
                                  "fatal": None if fatal is None else {"budget": isinstance(fatal, BudgetExceeded),
                                                                       "message": str(fatal)}})

    async def usage(request: web.Request) -> web.Response:
        admin(request)
        ledger = gateway.ledger
        return web.json_response({"by_role": ledger.snapshot(), "total_cost_usd": ledger.total_cost,
                                  "max_cost_usd": ledger.max_cost_usd,
                                  "by_model": {k: asdict(v) for k, v in gateway.stats.by_model.items()},
                                  "requests": gateway.stats.requests, "cache_hits": gateway.stats.cache_hits,
                                  "rejected": gateway.stats.rejected,
                                  "fatal": str(gateway.fatal) if gateway.fatal else None})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=_MAX_BODY)
    app.add_routes([web.post("/v1/chat", chat), web.get("/healthz", healthz)])
    if admin_token is not None:
        app.add_routes([web.post("/v1/samples", open_sample), web.delete("/v1/samples/{token}", close_sample),
                        web.get("/v1/usage", usage)])
    return app


class GatewayServer:
    """Runs the app on a unix socket (``unix:/path``) or ``HOST:PORT``; the socket is left connectable by every
    sandbox uid, since a sample's token, not its uid, is what authenticates it."""

    def __init__(self, app: web.Application, listen: str) -> None:
        self.app = app
        self.listen = listen
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        if self.listen.startswith("unix:"):
            path = Path(self.listen[len("unix:"):])
            site: web.BaseSite = web.UnixSite(self._runner, str(path))
            await site.start()
            os.chmod(path, 0o666)
        else:
            host, _, port = self.listen.rpartition(":")
            site = web.TCPSite(self._runner, host or "0.0.0.0", int(port))
            await site.start()

    async def stop(self) -> None:
        await self._runner.cleanup()
