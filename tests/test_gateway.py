"""The LLM gateway between workflows and the providers: cost accounting (retries included), the run's budget, the
temperature-0 cache, sample tokens and request validation, the HTTP layer (unix socket and TCP, data and admin
planes) and the ``w4s gateway`` service.

Every provider here is the scripted server (tests/scripted_llm.py), a real HTTP stand-in for remote LLM APIs
whose token usage is a word count; expected usage is always computed from what it recorded, never hard-coded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from harness import ExactMatch, sandbox_for
from scripted_llm import Call, Exchange, ScriptedLLM
from servers import free_port, stop_process, wait_until

from w4s.benchmarks.base import Sample
from w4s.errors import BudgetExceeded
from w4s.evaluation import Evaluator
from w4s.gateway.core import Gateway, GatewayRejected
from w4s.gateway.http import GatewayServer, build_app
from w4s.llm.client import LLMClient
from w4s.llm.ledger import Ledger, RoleUsage
from w4s.llm.pricing import ModelPrice
from w4s.llm.providers import build_provider
from w4s.spec import ExecutorSpec, SandboxSpec

PRICE = ModelPrice(input_per_mtok=3.0, output_per_mtok=7.0)
MODEL_A, MODEL_B = "scripted-a", "scripted-b"
ADMIN_ENV = "W4S_GATEWAY_ADMIN_TOKEN"
ADMIN = "admin-token-for-tests-0123456789"
KEY_ENV = "W4S_GATEWAY_TEST_KEY"


def reply(call: Call) -> str:
    """A deterministic reply whose length (and so its usage) depends on the prompt."""
    return " ".join(["word"] * (2 + len(call.messages[-1]["content"]) % 5))


def body(content: str, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], **fields}


def prompt_words(call: Call) -> int:
    return sum(len(m["content"].split()) for m in call.messages)


def reported(exchanges: Sequence[Exchange], model: str | None = None,
             price: ModelPrice = PRICE) -> tuple[int, int, float]:
    """(input tokens, output tokens, dollars) the scripted server reported in its successful responses."""
    ok = [e for e in exchanges if e.status == 200 and (model is None or e.call.model == model)]
    tokens_in = sum(prompt_words(e.call) for e in ok)
    tokens_out = sum(len(t.split()) for e in ok for t in e.texts)
    return tokens_in, tokens_out, price.cost(tokens_in, tokens_out)


def call_cost(exchange: Exchange, price: ModelPrice) -> float:
    return price.cost(prompt_words(exchange.call), sum(len(t.split()) for t in exchange.texts))


def assert_usage(usage: RoleUsage, calls: int, expected: tuple[int, int, float]) -> None:
    assert (usage.calls, usage.input_tokens, usage.output_tokens) == (calls, expected[0], expected[1])
    assert usage.cost_usd == pytest.approx(expected[2], rel=1e-9, abs=1e-15)


def total(usages: Sequence[RoleUsage]) -> RoleUsage:
    out = RoleUsage()
    for usage in usages:
        out.add(usage)
    return out


def make_client(server: ScriptedLLM, ledger: Ledger, *, model: str = MODEL_A, role: str = "executor",
                max_retries: int = 3, price: ModelPrice = PRICE) -> LLMClient:
    """An openai-compatible client on the scripted server, with a tiny backoff so retries take milliseconds."""
    endpoint = ExecutorSpec(provider="openai-compatible", model=model, base_url=server.base_url,
                            max_retries=max_retries)
    return LLMClient(build_provider(endpoint), price, ledger, role, max_retries, backoff_base=0.001,
                     backoff_max=0.01)


@asynccontextmanager
async def gateway_on(server: ScriptedLLM, ledger: Ledger | None = None, *, two_executors: bool = False,
                     cache: bool = True, max_calls: int = 64, max_retries: int = 3) -> AsyncIterator[Gateway]:
    ledger = ledger if ledger is not None else Ledger()
    clients = {"default": make_client(server, ledger, max_retries=max_retries)}
    if two_executors:
        clients["big"] = make_client(server, ledger, model=MODEL_B, role="executor:big", max_retries=max_retries)
    try:
        yield Gateway(clients, seed=11, max_calls_per_sample=max_calls, cache=cache)
    finally:
        for client in clients.values():
            await client.provider.aclose()


async def rejected(gateway: Gateway, token: str | None, request: Any) -> GatewayRejected:
    with pytest.raises(GatewayRejected) as info:
        await gateway.chat(token, request)
    return info.value


@pytest.fixture
def server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM(reply) as s:
        yield s


# -- cost accounting -------------------------------------------------------------------------------------------


def test_cost_equals_reported_usage_including_retried_calls_scripted(server: ScriptedLLM) -> None:
    """Calls that fail with 429 and then 500 before succeeding are billed once, at the usage the provider
    reported in its successful response; tickets, the ledger and the per-model stats agree."""
    flaky = ("flaky question one", "flaky question number two here")
    for content in flaky:
        def match(call: Call, content: str = content) -> bool:
            return call.messages[-1]["content"] == content
        server.fail_next(1, 429, retry_after_s=0, match=match)
        server.fail_next(1, 500, match=match)
    plan = [  # (sample, content, extra fields)
        ("a", flaky[0], {"temperature": 0.7}),
        ("a", "plain question", {"temperature": 0.0}),
        ("a", "three samples please", {"temperature": 0.7, "n": 3}),  # three provider requests, one call
        ("b", flaky[1], {"temperature": 0.0, "model": "big"}),
        ("b", "another plain one for big", {"temperature": 0.7, "model": "big"}),
        ("b", "a limit above the endpoint's", {"temperature": 0.7, "max_tokens": 10**6}),
    ]

    async def go() -> tuple[Gateway, dict[str, Any], list[list[str]]]:
        ledger = Ledger()
        async with gateway_on(server, ledger, two_executors=True) as gateway:
            tickets = {s: gateway.open_sample("wf", s) for s in ("a", "b")}
            texts = [await gateway.chat(tickets[s].token, body(c, **f)) for s, c, f in plan]
            return gateway, tickets, texts

    gateway, tickets, texts = asyncio.run(go())
    exchanges = server.calls
    ok = [e for e in exchanges if e.status == 200]
    # Retries happened (2 x 429, 2 x 500) and every logical call succeeded in the end.
    for content in flaky:
        attempts = [e for e in exchanges if e.call.messages[-1]["content"] == content]
        assert [e.status for e in attempts] == [429, 500, 200]
        assert len({e.call.seed for e in attempts}) == 1  # a retry is the same call, with the same seed
    assert sorted(e.status for e in exchanges if e.status != 200) == [429, 429, 500, 500]
    assert len(ok) == len(plan) + 2  # n=3 on an openai-compatible endpoint is three requests
    assert texts[0] == [reply(ok[0].call)] and len(texts[2]) == 3
    assert [e.call.raw["max_tokens"] for e in ok if e.call.messages[-1]["content"] == plan[5][1]] == [2048]

    ledger = gateway.ledger
    expected_a, expected_b = reported(exchanges, MODEL_A), reported(exchanges, MODEL_B)
    assert set(ledger.by_role) == {"executor", "executor:big"}
    assert_usage(ledger.by_role["executor"], 4, expected_a)  # calls = logical calls, not attempts or requests
    assert_usage(ledger.by_role["executor:big"], 2, expected_b)
    assert ledger.total_cost == pytest.approx(reported(exchanges)[2], rel=1e-9) and ledger.total_cost > 0
    # Per-sample usage (counted by the gateway) sums to the ledger (counted by the clients).
    assert tickets["a"].calls == tickets["b"].calls == 3
    assert tickets["a"].cached_calls == tickets["b"].cached_calls == 0
    for sample in ("a", "b"):
        contents = {c for s, c, _ in plan if s == sample}
        mine = [e for e in exchanges if e.call.messages[-1]["content"] in contents]
        assert_usage(tickets[sample].usage, 3, reported(mine))
    assert_usage(total([tickets["a"].usage, tickets["b"].usage]), 6, reported(exchanges))
    # stats.by_model is keyed "role/model".
    assert set(gateway.stats.by_model) == {f"executor/{MODEL_A}", f"executor:big/{MODEL_B}"}
    assert_usage(gateway.stats.by_model[f"executor/{MODEL_A}"], 4, expected_a)
    assert_usage(gateway.stats.by_model[f"executor:big/{MODEL_B}"], 2, expected_b)
    assert (gateway.stats.requests, gateway.stats.rejected, gateway.stats.cache_hits) == (6, 0, 0)


def test_provider_that_stays_down_is_fatal_and_costs_nothing_scripted(server: ScriptedLLM) -> None:
    """Retries are bounded: after them the call is refused with 503, recorded as the run's fatal error, and
    later calls are refused without reaching the provider."""
    server.fail_next(10, 500)

    async def go() -> tuple[Gateway, GatewayRejected, GatewayRejected]:
        async with gateway_on(server, max_retries=2) as gateway:
            ticket = gateway.open_sample("wf", "a")
            first = await rejected(gateway, ticket.token, body("hello", temperature=0.7))
            later = await rejected(gateway, ticket.token, body("again", temperature=0.7))
            return gateway, first, later

    gateway, first, later = asyncio.run(go())
    assert first.status == 503 and "gave up after 3 attempts" in str(first)
    assert later.status == 503
    assert [e.status for e in server.calls] == [500, 500, 500]
    assert gateway.fatal is not None and gateway.ledger.by_role == {}


# -- budget ----------------------------------------------------------------------------------------------------

LOOP = '''
def workflow(agent, task):
    step = 0
    while True:
        agent.call_llm([{"role": "user", "content": task + " step " + str(step)}], temperature=0.7)
        step += 1
'''
LOOP_PRICE = {"inputPerMtok": "1000", "outputPerMtok": "1000"}


@pytest.mark.parametrize(("concurrency", "budget"), [(1, 0.1), (4, 0.25)])
def test_budget_stops_run_within_calls_in_flight_scripted(concurrency: int, budget: float,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A workflow looping on call_llm is stopped by the run's budget: the evaluation raises BudgetExceeded, the
    overshoot is at most one call per sample in flight, and afterwards nothing reaches the provider."""
    monkeypatch.setenv(KEY_ENV, "scripted")
    price = ModelPrice(1000.0, 1000.0)
    samples = [Sample(f"s{i}", f"sample-{i}", "never") for i in range(concurrency)]
    spec = SandboxSpec(backend="process", concurrency=concurrency, max_llm_calls_per_sample=1000,
                       sample_timeout_seconds="60")

    async def go(server: ScriptedLLM) -> tuple[Ledger, int, GatewayRejected]:
        executor = ExecutorSpec(name="default", provider="openai", model=MODEL_A, base_url=server.base_url,
                                api_key_env=KEY_ENV, price=LOOP_PRICE, max_retries=0)
        ledger = Ledger(max_cost_usd=budget)
        async with sandbox_for([executor], spec, ledger) as box:
            with pytest.raises(BudgetExceeded, match="budget exhausted"):
                await Evaluator(box, ExactMatch(samples)).evaluate(LOOP, samples)
            assert isinstance(box.gateway.fatal, BudgetExceeded)
            await asyncio.sleep(0.5)  # requests that were already in flight finish and are counted
            requests = len(server.calls)
            ticket = box.gateway.open_sample("late", "late")
            refused = await rejected(box.gateway, ticket.token, body("one more", temperature=0.7))
            await asyncio.sleep(0.2)
            assert len(server.calls) == requests  # the refused call reached no provider
            return ledger, requests, refused

    with ScriptedLLM(lambda call: "one two three four five", latency_s=0.05) as server:
        ledger, requests, refused = asyncio.run(go(server))
        exchanges = server.calls
    assert "budget" in str(refused)
    assert all(e.status == 200 for e in exchanges) and requests == len(exchanges)
    # Every provider request is in the ledger, at the usage the provider reported.
    usage = ledger.by_role["default"]
    assert_usage(usage, len(exchanges), reported(exchanges, price=price))
    one_call = max(call_cost(e, price) for e in exchanges)
    assert one_call > 0 and len(exchanges) >= 3  # the budget allowed several calls before stopping
    assert budget <= ledger.total_cost <= budget + concurrency * one_call + 1e-12
    # Every sample was running (and calling) when the budget ran out.
    assert {e.call.messages[-1]["content"].split()[0] for e in exchanges} == {s.question for s in samples}


def test_calls_after_budget_is_spent_are_refused_402_without_provider_requests_scripted(
        server: ScriptedLLM) -> None:
    """Once the budget is spent, every later call, from any sample, is refused with 402 (budget spent, as
    w4s/gateway/http.py documents), not 503 (provider down), and none reaches the provider."""
    async def go() -> tuple[Gateway, list[GatewayRejected]]:
        async with gateway_on(server, Ledger(max_cost_usd=1e-9)) as gateway:
            a, b = gateway.open_sample("wf", "a"), gateway.open_sample("wf", "b")
            await gateway.chat(a.token, body("the only paid call", temperature=0.7))  # crosses the budget
            refusals = [await rejected(gateway, token, body(f"call {i}", temperature=0.7))
                        for i, token in enumerate((a.token, a.token, b.token))]
            return gateway, refusals

    gateway, refusals = asyncio.run(go())
    assert len(server.calls) == 1
    assert gateway.ledger.by_role["executor"].calls == 1
    assert isinstance(gateway.fatal, BudgetExceeded)
    assert all("budget" in str(r) for r in refusals)
    assert [r.status for r in refusals] == [402, 402, 402]


# -- cache -----------------------------------------------------------------------------------------------------


def test_identical_temperature_zero_calls_make_one_request_scripted(server: ScriptedLLM) -> None:
    async def go() -> tuple[Gateway, Any, Any, list[str], list[str], dict[str, Any], dict[str, Any]]:
        async with gateway_on(server) as gateway:
            a, b = gateway.open_sample("wf", "a"), gateway.open_sample("wf", "b")
            first = await gateway.chat(a.token, body("what is 6 x 7", temperature=0))
            spent = gateway.ledger.snapshot()
            second = await gateway.chat(b.token, body("what is 6 x 7", temperature=0.0))
            return gateway, a, b, first, second, spent, gateway.ledger.snapshot()

    gateway, a, b, first, second, before, after = asyncio.run(go())
    assert len(server.calls) == 1 and first == second == [reply(server.calls[0].call)]
    assert after == before  # the cache hit cost nothing
    assert_usage(a.usage, 1, reported(server.calls))
    assert (b.calls, b.cached_calls, b.usage) == (1, 1, RoleUsage())
    assert (a.calls, a.cached_calls) == (1, 0)
    assert gateway.stats.cache_hits == 1 and gateway.stats.requests == 2


def test_concurrent_identical_calls_share_one_request_scripted() -> None:
    async def go(server: ScriptedLLM) -> tuple[Gateway, list[Any], list[list[str]]]:
        async with gateway_on(server) as gateway:
            tickets = [gateway.open_sample("wf", f"s{i}") for i in range(4)]
            texts = await asyncio.gather(*(gateway.chat(t.token, body("same question", temperature=0))
                                           for t in tickets))
            return gateway, tickets, list(texts)

    with ScriptedLLM(reply, latency_s=0.3) as server:
        gateway, tickets, texts = asyncio.run(go(server))
        exchanges = server.calls
    assert len(exchanges) == 1
    assert texts == [[reply(exchanges[0].call)]] * 4
    assert gateway.stats.cache_hits == 3 and sum(t.cached_calls for t in tickets) == 3
    assert_usage(gateway.ledger.by_role["executor"], 1, reported(exchanges))
    assert_usage(total([t.usage for t in tickets]), 1, reported(exchanges))


def test_nonzero_temperature_and_disabled_cache_are_not_cached_scripted(server: ScriptedLLM) -> None:
    async def go(cache: bool, temperature: float) -> Gateway:
        async with gateway_on(server, cache=cache) as gateway:
            a, b = gateway.open_sample("wf", "a"), gateway.open_sample("wf", "b")
            await gateway.chat(a.token, body("same question", temperature=temperature))
            await gateway.chat(b.token, body("same question", temperature=temperature))
            return gateway

    for cache, temperature in ((True, 0.7), (False, 0.0)):
        server.reset()
        gateway = asyncio.run(go(cache, temperature))
        assert len(server.calls) == 2, (cache, temperature)
        assert gateway.stats.cache_hits == 0
        assert_usage(gateway.ledger.by_role["executor"], 2, reported(server.calls))


def test_failed_call_is_not_cached_scripted() -> None:
    """A call the provider rejects (400) is refused to every caller waiting on it, and is not cached: the
    next identical call goes to the provider again."""
    async def go(server: ScriptedLLM) -> tuple[Gateway, list[Any], list[str]]:
        async with gateway_on(server) as gateway:
            tickets = [gateway.open_sample("wf", f"s{i}") for i in range(3)]
            request = body("a prompt the provider rejects once", temperature=0)
            outcomes = await asyncio.gather(*(gateway.chat(t.token, request) for t in tickets[:2]),
                                            return_exceptions=True)
            again = await gateway.chat(tickets[2].token, request)
            return gateway, list(outcomes), again

    with ScriptedLLM(reply, latency_s=0.2) as server:
        server.fail_next(1, 400)
        gateway, outcomes, again = asyncio.run(go(server))
        exchanges = server.calls
    assert [e.status for e in exchanges] == [400, 200]
    assert all(isinstance(o, GatewayRejected) and o.status == 400 for o in outcomes), outcomes
    assert again == [reply(exchanges[1].call)]
    assert gateway.fatal is None  # a rejected prompt is the workflow's error, not the run's
    assert gateway.stats.cache_hits == 0
    assert_usage(gateway.ledger.by_role["executor"], 1, reported(exchanges))


# -- tokens and validation -------------------------------------------------------------------------------------


def test_unknown_and_revoked_tokens_are_401_scripted(server: ScriptedLLM) -> None:
    async def go() -> list[GatewayRejected]:
        async with gateway_on(server) as gateway:
            ticket = gateway.open_sample("wf", "a")
            await gateway.chat(ticket.token, body("while open", temperature=0.7))
            out = [await rejected(gateway, "not-a-token", body("hi")), await rejected(gateway, None, body("hi"))]
            closed = gateway.close_sample(ticket.token)
            assert closed is ticket and closed.calls == 1
            out.append(await rejected(gateway, ticket.token, body("after close", temperature=0.7)))
            with pytest.raises(GatewayRejected) as twice:
                gateway.close_sample(ticket.token)
            assert twice.value.status == 404
            assert gateway.stats.rejected == 3
            return out

    refusals = asyncio.run(go())
    assert [r.status for r in refusals] == [401, 401, 401]
    assert all("token" in str(r) for r in refusals)
    assert len(server.calls) == 1


def test_call_limit_per_sample_is_429_scripted(server: ScriptedLLM) -> None:
    async def go() -> tuple[GatewayRejected, Any, Any]:
        async with gateway_on(server, max_calls=2) as gateway:
            a, b = gateway.open_sample("wf", "a"), gateway.open_sample("wf", "b")
            for i in range(2):
                await gateway.chat(a.token, body(f"call {i}", temperature=0.7))
            over = await rejected(gateway, a.token, body("call 2", temperature=0.7))
            await gateway.chat(b.token, body("another sample has its own limit", temperature=0.7))
            return over, a, b

    over, a, b = asyncio.run(go())
    assert over.status == 429 and "sandbox.maxLlmCallsPerSample" in str(over) and "2" in str(over)
    assert len(server.calls) == 3  # the refused call never reached the provider
    assert a.usage.calls == 2 and b.usage.calls == 1


def test_malformed_requests_are_400_naming_the_field_scripted(server: ScriptedLLM) -> None:
    cases = [
        ({"temperature": 0}, "messages"),
        ({"messages": []}, "messages"),
        (body("hi", n=0), "n"),
        (body("hi", n=2.5), "n"),
        (body("hi", temperature="hot"), "temperature"),
        (body("hi", temperature=float("nan")), "temperature"),
        (body("hi", max_tokens=0), "max_tokens"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "role"),
        (["not", "an", "object"], "JSON object"),
        (body("hi", model="nope"), "unknown executor"),
    ]

    async def go() -> list[GatewayRejected]:
        async with gateway_on(server, two_executors=True) as gateway:
            ticket = gateway.open_sample("wf", "a")
            return [await rejected(gateway, ticket.token, request) for request, _ in cases]

    refusals = asyncio.run(go())
    for (request, field), refusal in zip(cases, refusals, strict=True):
        assert refusal.status == 400, (request, refusal)
        assert field in str(refusal), (request, str(refusal))
    unknown = str(refusals[-1])
    assert "'nope'" in unknown and "'big'" in unknown and "'default'" in unknown  # lists the available ones
    assert server.calls == []


# -- HTTP ------------------------------------------------------------------------------------------------------


async def _http_session(listen: str) -> aiohttp.ClientSession:
    if listen.startswith("unix:"):
        return aiohttp.ClientSession("http://gateway", connector=aiohttp.UnixConnector(path=listen[5:]))
    return aiohttp.ClientSession(f"http://{listen}")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_http_data_and_admin_planes_scripted(server: ScriptedLLM, transport: str) -> None:
    socket_dir = Path(tempfile.mkdtemp(prefix="w4s-gw-test-"))
    listen = f"unix:{socket_dir / 'gw.sock'}" if transport == "unix" else f"127.0.0.1:{free_port()}"

    async def go() -> dict[str, Any]:
        ledger = Ledger()
        async with gateway_on(server, ledger) as gateway:
            gw_server = GatewayServer(build_app(gateway, ADMIN), listen)
            await gw_server.start()
            try:
                async with await _http_session(listen) as http:
                    return await exercise(http)
            finally:
                await gw_server.stop()

    async def exercise(http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get("/healthz") as r:
            assert r.status == 200 and (await r.json()) == {"ok": True}
        # Admin routes need the admin token.
        for headers in ({}, _auth("wrong"), {"Authorization": ADMIN}):
            async with http.post("/v1/samples", json={"workflow": "wf", "sample": "a"}, headers=headers) as r:
                assert r.status == 401
            async with http.get("/v1/usage", headers=headers) as r:
                assert r.status == 401
            async with http.delete("/v1/samples/anything", headers=headers) as r:
                assert r.status == 401
        tokens = []
        for sample in ("a", "b"):
            async with http.post("/v1/samples", json={"workflow": "wf", "sample": sample},
                                 headers=_auth(ADMIN)) as r:
                assert r.status == 200
                tokens.append((await r.json())["token"])
        async with http.post("/v1/samples", json={"workflow": "wf"}, headers=_auth(ADMIN)) as r:
            assert r.status == 400
        # The data plane needs a sample token; the admin token is not one.
        for headers in ({}, _auth("wrong"), _auth(ADMIN)):
            async with http.post("/v1/chat", json=body("hi"), headers=headers) as r:
                assert r.status == 401 and "token" in (await r.json())["error"]["message"]
        chats = [(tokens[0], "first question"), (tokens[0], "second question here"), (tokens[1], "third")]
        for token, content in chats:
            async with http.post("/v1/chat", json=body(content, temperature=0.7), headers=_auth(token)) as r:
                assert r.status == 200
                texts = (await r.json())["texts"]
                assert texts == [reply(server.calls[-1].call)]
        async with http.post("/v1/chat", data=b"{not json", headers=_auth(tokens[1])) as r:
            assert r.status == 400 and "JSON" in (await r.json())["error"]["message"]
        async with http.post("/v1/chat", json=body("x", n=0), headers=_auth(tokens[1])) as r:
            assert r.status == 400 and "n must be" in (await r.json())["error"]["message"]
        # Closing a sample returns its usage and revokes its token.
        async with http.delete(f"/v1/samples/{tokens[0]}", headers=_auth(ADMIN)) as r:
            assert r.status == 200
            closed = await r.json()
        async with http.post("/v1/chat", json=body("after close"), headers=_auth(tokens[0])) as r:
            assert r.status == 401
        async with http.delete(f"/v1/samples/{tokens[0]}", headers=_auth(ADMIN)) as r:
            assert r.status == 404
        async with http.get("/v1/usage", headers=_auth(ADMIN)) as r:
            assert r.status == 200
            usage = await r.json()
        return {"closed": closed, "usage": usage}

    try:
        result = asyncio.run(go())
    finally:
        for path in socket_dir.iterdir():
            path.unlink()
        socket_dir.rmdir()
    exchanges = server.calls
    assert len(exchanges) == 3 and all(e.status == 200 for e in exchanges)
    tokens_in, tokens_out, dollars = reported(exchanges)
    usage = result["usage"]
    assert usage["by_role"]["executor"]["calls"] == 3
    assert (usage["by_role"]["executor"]["input_tokens"], usage["by_role"]["executor"]["output_tokens"]) == (
        tokens_in, tokens_out)
    assert usage["total_cost_usd"] == pytest.approx(dollars, rel=1e-9) and dollars > 0
    assert usage["by_model"][f"executor/{MODEL_A}"]["input_tokens"] == tokens_in
    assert (usage["requests"], usage["rejected"], usage["cache_hits"], usage["fatal"]) == (8, 5, 0, None)
    closed = result["closed"]
    assert (closed["calls"], closed["cached_calls"]) == (2, 0)
    first_two = reported(exchanges[:2])
    assert (closed["usage"]["input_tokens"], closed["usage"]["output_tokens"]) == first_two[:2]
    assert closed["usage"]["cost_usd"] == pytest.approx(first_two[2], rel=1e-9)


def test_embedded_gateway_app_serves_no_admin_routes_scripted(server: ScriptedLLM) -> None:
    """Without an admin token (the sandbox's embedded gateway) only the data plane exists: a sandbox that can
    reach the socket cannot open samples or read usage, whatever it sends."""
    socket_dir = Path(tempfile.mkdtemp(prefix="w4s-gw-test-"))
    listen = f"unix:{socket_dir / 'gw.sock'}"

    async def go() -> list[int]:
        async with gateway_on(server) as gateway:
            ticket = gateway.open_sample("wf", "a")
            gw_server = GatewayServer(build_app(gateway), listen)
            await gw_server.start()
            statuses = []
            try:
                async with await _http_session(listen) as http:
                    for headers in ({}, _auth(ticket.token), _auth("")):
                        async with http.post("/v1/samples", json={"workflow": "w", "sample": "x"},
                                             headers=headers) as r:
                            statuses.append(r.status)
                        async with http.get("/v1/usage", headers=headers) as r:
                            statuses.append(r.status)
                    async with http.post("/v1/chat", json=body("hi", temperature=0.7),
                                         headers=_auth(ticket.token)) as r:
                        statuses.append(r.status)
            finally:
                await gw_server.stop()
            return statuses

    try:
        statuses = asyncio.run(go())
    finally:
        for path in socket_dir.iterdir():
            path.unlink()
        socket_dir.rmdir()
    assert statuses[:-1] == [404] * 6 and statuses[-1] == 200
    assert len(server.calls) == 1


# -- the `w4s gateway` service ---------------------------------------------------------------------------------

W4S = str(Path(sys.executable).with_name("w4s"))


def gateway_config(path: Path, base_url: str) -> Path:
    """A spec whose executor is the scripted server, priced (an unknown model is never billed as $0)."""
    path.write_text(f"""executors:
  - provider: openai-compatible
    model: {MODEL_A}
    baseUrl: {base_url}
    price: {{inputPerMtok: "3", outputPerMtok: "7"}}
""")
    return path


def test_gateway_cli_refuses_to_start_without_admin_token_scripted(server: ScriptedLLM, tmp_path: Path) -> None:
    config = gateway_config(tmp_path / "gw.yaml", server.base_url)
    env = {k: v for k, v in os.environ.items() if k != ADMIN_ENV}
    for extra in ({}, {ADMIN_ENV: "too-short"}):
        port = free_port()
        done = subprocess.run([W4S, "gateway", "--listen", f"127.0.0.1:{port}", "--config", str(config)],
                              env={**env, **extra}, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 2, (extra, done.stdout, done.stderr)
        assert ADMIN_ENV in done.stderr and "16" in done.stderr
    assert server.calls == []


def test_gateway_cli_serves_until_sigterm_scripted(server: ScriptedLLM, tmp_path: Path) -> None:
    config = gateway_config(tmp_path / "gw.yaml", server.base_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [W4S, "gateway", "--listen", f"127.0.0.1:{port}", "--config", str(config), "--max-llm-calls", "2"],
            env={**os.environ, ADMIN_ENV: ADMIN}, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            def healthy() -> bool:
                try:
                    return http.get("/healthz").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(healthy, timeout_s=30, what="w4s gateway", proc=proc, log=log)
            assert http.post("/v1/samples", json={"workflow": "wf", "sample": "a"}).status_code == 401
            opened = http.post("/v1/samples", json={"workflow": "wf", "sample": "a"}, headers=_auth(ADMIN))
            assert opened.status_code == 200
            token = opened.json()["token"]
            for content in ("first question", "second question"):
                answer = http.post("/v1/chat", json=body(content, temperature=0.7), headers=_auth(token))
                assert answer.status_code == 200, answer.text
                assert answer.json()["texts"] == [reply(server.calls[-1].call)]
            over = http.post("/v1/chat", json=body("third", temperature=0.7), headers=_auth(token))
            assert over.status_code == 429 and "maxLlmCallsPerSample" in over.json()["error"]["message"]
            closed = http.delete(f"/v1/samples/{token}", headers=_auth(ADMIN))
            assert closed.status_code == 200 and closed.json()["usage"]["calls"] == 2
            assert http.post("/v1/chat", json=body("late"), headers=_auth(token)).status_code == 401
            usage = http.get("/v1/usage", headers=_auth(ADMIN)).json()
        exchanges = server.calls
        tokens_in, tokens_out, dollars = reported(exchanges)
        assert len(exchanges) == 2
        role = usage["by_role"]["executor"]
        assert (role["calls"], role["input_tokens"], role["output_tokens"]) == (2, tokens_in, tokens_out)
        assert usage["total_cost_usd"] == pytest.approx(dollars, rel=1e-9) and dollars > 0
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, log.read_text(errors="replace")
        assert time.monotonic() - started < 10
    finally:
        stop_process(proc)
