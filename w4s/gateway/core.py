"""What the gateway decides for each LLM call from a workflow: who asks, whether it may, and what it costs.

A workflow authenticates with the token of the one sample it is running. The token carries no provider key; it
names the sample, so the gateway can bound the sample's calls, derive each call's seed from (run seed, workflow,
sample, call index) for reproducibility, and count the sample's usage itself rather than trust the sandbox to
report it. Provider keys, prices and the run's budget stay in the ``LLMClient``\\s behind it.

Failures split in two. A bad request from the workflow (unknown executor, malformed messages, call limit, a
prompt the provider rejects) is refused to that workflow and becomes its error. A failure of the infrastructure
(the budget is spent, a provider stays down after the retries, a credential is refused) is recorded as
``fatal``: every later call is refused too, and the runner stops the evaluation with that reason, so a run
stops within the calls already in flight when its budget ran out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

from w4s.errors import BudgetExceeded, ProviderError, TransientProviderError, W4SError
from w4s.llm.client import LLMClient
from w4s.llm.ledger import Ledger, RoleUsage
from w4s.llm.providers import ChatRequest
from w4s.seeds import derive_seed

_MAX_N = 16


class GatewayRejected(Exception):
    """A call the gateway refuses; ``status`` is the HTTP status the sandbox sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class SampleTicket:
    """One sample's right to call the executors, and what it has used."""

    token: str
    workflow: str
    sample_id: str
    calls: int = 0
    cached_calls: int = 0
    usage: RoleUsage = field(default_factory=RoleUsage)


@dataclass
class GatewayStats:
    requests: int = 0
    cache_hits: int = 0
    rejected: int = 0
    by_model: dict[str, RoleUsage] = field(default_factory=dict)  # "role/model" -> usage


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise GatewayRejected(400, "messages must be a non-empty list of {role, content} objects")
    for message in value:
        if not (isinstance(message, dict) and message.get("role") in ("system", "user", "assistant")
                and isinstance(message.get("content"), str)):
            raise GatewayRejected(400, "each message must be {role: system|user|assistant, content: str}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _number(body: dict[str, Any], key: str, default: Any, low: float, high: float, integer: bool) -> Any:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)) \
            or not math.isfinite(value) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise GatewayRejected(400, f"{key} must be {kind} from {low:g} to {high:g}, got {value!r}")
    return value


class Gateway:
    """One run's gateway. ``cache`` keeps replies to identical calls at temperature 0 (and shares one provider
    call between identical calls in flight), so a cached reply costs nothing and is counted once."""

    def __init__(self, executors: dict[str, LLMClient], *, seed: int, max_calls_per_sample: int,
                 cache: bool = True) -> None:
        if not executors:
            raise W4SError("the gateway needs at least one executor")
        self.executors = executors
        self.default_executor = next(iter(executors))
        self.seed = seed
        self.max_calls_per_sample = max_calls_per_sample
        self.fatal: W4SError | None = None
        self.stats = GatewayStats()
        self._cache_enabled = cache
        self._cache: dict[str, asyncio.Future[list[str]]] = {}
        self._tickets: dict[str, SampleTicket] = {}

    @property
    def ledger(self) -> Ledger:
        """The run's ledger, shared by every executor's client."""
        return self.executors[self.default_executor].ledger

    def open_sample(self, workflow: str, sample_id: str) -> SampleTicket:
        ticket = SampleTicket(secrets.token_urlsafe(32), workflow, sample_id)
        self._tickets[ticket.token] = ticket
        return ticket

    def close_sample(self, token: str) -> SampleTicket:
        """Revoke the token: a process the sample left behind can no longer spend."""
        ticket = self._tickets.pop(token, None)
        if ticket is None:
            raise GatewayRejected(404, "unknown sample token")
        return ticket

    async def chat(self, token: str | None, body: Any) -> list[str]:
        self.stats.requests += 1
        try:
            return await self._chat(token, body)
        except GatewayRejected:
            self.stats.rejected += 1
            raise

    async def _chat(self, token: str | None, body: Any) -> list[str]:
        ticket = self._tickets.get(token or "")
        if ticket is None:
            raise GatewayRejected(401, "the LLM gateway refuses this call: unknown or expired sample token")
        if self.fatal is not None:
            status = 402 if isinstance(self.fatal, BudgetExceeded) else 503
            raise GatewayRejected(status, f"the run is stopping: {self.fatal}")
        if not isinstance(body, dict):
            raise GatewayRejected(400, "the request body must be a JSON object")
        messages = _messages(body.get("messages"))
        temperature = float(_number(body, "temperature", 0.7, 0.0, 2.0, integer=False))
        n = _number(body, "n", 1, 1, _MAX_N, integer=True)
        name = body.get("model") or self.default_executor
        client = self.executors.get(name) if isinstance(name, str) else None
        if client is None:
            raise GatewayRejected(400, f"unknown executor {name!r}; available: {sorted(self.executors)}")
        limit = client.provider.endpoint.max_tokens
        max_tokens = min(_number(body, "max_tokens", None, 1, 1 << 20, integer=True) or limit, limit)
        ticket.calls += 1
        if ticket.calls > self.max_calls_per_sample:
            raise GatewayRejected(429, f"more than {self.max_calls_per_sample} LLM calls for one task "
                                       "(sandbox.maxLlmCallsPerSample)")
        request = ChatRequest(messages=messages, temperature=temperature, n=n, max_tokens=max_tokens,
                              seed=derive_seed(self.seed, ticket.workflow, ticket.sample_id, ticket.calls),
                              json_mode=bool(body.get("json_mode")))
        if not (self._cache_enabled and temperature == 0):
            return await self._call(client, request, ticket)
        key = hashlib.sha256(json.dumps([name, messages, n, max_tokens, request.json_mode]).encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None:
            texts = await asyncio.shield(cached)
            self.stats.cache_hits += 1
            ticket.cached_calls += 1
            return list(texts)
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._cache[key] = future
        try:
            texts = await self._call(client, request, ticket)
        except BaseException as err:
            del self._cache[key]  # failures are not cached; callers waiting on it see the same failure
            if isinstance(err, asyncio.CancelledError):  # the waiters were not cancelled themselves
                err = GatewayRejected(503, "the identical call this one waited for was cancelled")
            future.set_exception(err)
            future.exception()  # retrieved here, so an unawaited failure is not logged
            raise
        future.set_result(texts)
        return list(texts)

    async def _call(self, client: LLMClient, request: ChatRequest, ticket: SampleTicket) -> list[str]:
        try:
            texts, usage = await client.chat(request)
        except BudgetExceeded as err:
            self.fatal = self.fatal or err
            raise GatewayRejected(402, str(err)) from None
        except ProviderError as err:
            if isinstance(err, TransientProviderError) or not err.caused_by_request:
                self.fatal = self.fatal or err
                raise GatewayRejected(503, str(err)) from None
            raise GatewayRejected(400, str(err)) from None
        ticket.usage.add(usage)
        self.stats.by_model.setdefault(f"{client.role}/{client.model}", RoleUsage()).add(usage)
        return texts
