"""``w4s gateway``: the gateway as a service of its own, as the operator runs it next to a run's sandboxes.

It holds the provider keys (from its environment, i.e. a Secret), serves sandboxes on the data plane and the
runner on the admin plane (``W4S_GATEWAY_ADMIN_TOKEN``), and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

from w4s.endpoints import Endpoints
from w4s.errors import W4SError
from w4s.gateway.core import Gateway
from w4s.gateway.http import GatewayServer, build_app
from w4s.llm.ledger import Ledger
from w4s.metrics import gateway_registry
from w4s.metrics import serve as serve_metrics
from w4s.spec import OptimizationSpec

ADMIN_TOKEN_ENV = "W4S_GATEWAY_ADMIN_TOKEN"


async def serve_gateway(spec: OptimizationSpec, listen: str, log: Callable[[str], None] = print,
                        stop: asyncio.Event | None = None, metrics_port: int | None = None) -> None:
    admin_token = os.environ.get(ADMIN_TOKEN_ENV)
    if not admin_token or len(admin_token) < 16:
        raise W4SError(f"w4s gateway: set ${ADMIN_TOKEN_ENV} to a secret of at least 16 characters; the runner "
                       "uses it to open and close samples")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ledger = Ledger(spec.budget.max_cost)
    async with Endpoints(spec, ledger, log, meta_agent=False) as endpoints:
        gateway = Gateway(endpoints.executors, seed=spec.seed,
                          max_calls_per_sample=spec.sandbox.max_llm_calls_per_sample)
        server = GatewayServer(build_app(gateway, admin_token), listen)
        await server.start()
        if metrics_port is not None:
            serve_metrics(gateway_registry(gateway), metrics_port)
        log(f"gateway listening on {listen} for executors {', '.join(endpoints.executors)}")
        try:
            await stop.wait()
        finally:
            await server.stop()
