"""LLM providers and the client around them, against the scripted server (a stand-in for remote LLM APIs):
retries, give-up, timeouts, the budget, the Anthropic and OpenAI wire formats, and credential handling."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from scripted_llm import Call, ScriptedLLM

from w4s.errors import BudgetExceeded, ProviderError, TransientProviderError, W4SError
from w4s.llm.client import LLMClient
from w4s.llm.ledger import Ledger, RoleUsage
from w4s.llm.pricing import ModelPrice
from w4s.llm.providers import ChatProvider, ChatRequest, build_provider
from w4s.spec import EndpointSpec

SECRET = "sk-test-DO-NOT-LEAK-0123456789"
PRICE = ModelPrice(input_per_mtok=3.0, output_per_mtok=7.0)
REPLY = "four words of reply"
MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "two plus two"}]


@pytest.fixture
def server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM(lambda call: REPLY) as s:
        yield s


def compatible(server: ScriptedLLM, **fields: Any) -> EndpointSpec:
    return EndpointSpec(provider="openai-compatible", model="scripted-model", base_url=server.base_url, **fields)


def request(**fields: Any) -> ChatRequest:
    return ChatRequest(**{"messages": MESSAGES, "temperature": 0.0, "max_tokens": 64, **fields})


def chat(provider: ChatProvider, req: ChatRequest, ledger: Ledger | None = None, max_retries: int = 3,
         price: ModelPrice = PRICE) -> tuple[list[str], RoleUsage]:
    """One call through a fresh LLMClient (tiny backoff), closing the provider's HTTP client afterwards."""
    client = LLMClient(provider, price, ledger or Ledger(), "executor", max_retries, backoff_base=0.01,
                       backoff_max=0.05)

    async def go() -> tuple[list[str], RoleUsage]:
        try:
            return await client.chat(req)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def record_headers(provider: ChatProvider) -> list[dict[str, str]]:
    """Remember the headers of each request the provider sends (the scripted server keeps only bodies)."""
    seen: list[dict[str, str]] = []
    post = provider._post

    async def recording_post(path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        seen.append({k.lower(): v for k, v in headers.items()})
        return await post(path, body, headers)

    provider._post = recording_post  # type: ignore[method-assign]
    return seen


def prompt_words(call: Call) -> int:
    return sum(len(m["content"].split()) for m in call.messages)


def test_429_with_retry_after_is_retried_and_counted_once_scripted_llm(server: ScriptedLLM) -> None:
    server.fail_next(1, 429, retry_after_s=0.3)
    ledger = Ledger()
    started = time.monotonic()
    texts, usage = chat(build_provider(compatible(server)), request(), ledger)
    elapsed = time.monotonic() - started
    assert texts == [REPLY]
    assert [e.status for e in server.calls] == [429, 200]
    assert elapsed >= 0.3  # Retry-After is honoured, not replaced by the (much shorter) backoff
    tokens_in, tokens_out = prompt_words(server.calls[1].call), len(REPLY.split())
    expected = RoleUsage(1, tokens_in, tokens_out, (tokens_in * 3.0 + tokens_out * 7.0) / 1e6)
    assert usage == expected
    assert ledger.by_role == {"executor": expected}
    assert ledger.total_cost == pytest.approx(expected.cost_usd) and expected.cost_usd > 0


def test_5xx_gives_up_after_max_retries_scripted_llm(server: ScriptedLLM) -> None:
    server.fail_next(10, 500)
    ledger = Ledger()
    with pytest.raises(TransientProviderError, match="gave up after 3 attempts"):
        chat(build_provider(compatible(server)), request(), ledger, max_retries=2)
    assert [e.status for e in server.calls] == [500, 500, 500]
    assert ledger.by_role == {}  # failed calls cost nothing


def test_400_is_not_retried_scripted_llm(server: ScriptedLLM) -> None:
    server.fail_next(1, 400)
    with pytest.raises(ProviderError) as info:
        chat(build_provider(compatible(server)), request(), max_retries=4)
    assert not isinstance(info.value, TransientProviderError)
    assert info.value.status == 400 and info.value.caused_by_request
    assert len(server.calls) == 1


def test_request_timeout_is_retried_scripted_llm(server: ScriptedLLM) -> None:
    server.hang_next(1, seconds=1.5)
    endpoint = compatible(server, request_timeout_seconds="0.3")
    started = time.monotonic()
    texts, usage = chat(build_provider(endpoint), request(), max_retries=2)
    elapsed = time.monotonic() - started
    assert texts == [REPLY] and usage.calls == 1
    assert 0.3 <= elapsed < 1.5  # the client gave up on the hung request instead of waiting for it


def test_timeouts_exhaust_retries_scripted_llm(server: ScriptedLLM) -> None:
    server.hang_next(2, seconds=1.0)
    endpoint = compatible(server, request_timeout_seconds="0.2")
    with pytest.raises(TransientProviderError, match=r"timed out.*gave up after 2 attempts"):
        chat(build_provider(endpoint), request(), max_retries=1)


def test_budget_already_spent_stops_before_any_request_scripted_llm(server: ScriptedLLM) -> None:
    ledger = Ledger(max_cost_usd=0.01)
    ledger.record("meta_agent", RoleUsage(1, 100, 100, 0.0125))
    with pytest.raises(BudgetExceeded, match="budget exhausted"):
        chat(build_provider(compatible(server)), request(), ledger)
    assert server.calls == []
    # Just under the limit a call may still start, and it is recorded under its own role.
    ledger = Ledger(max_cost_usd=0.01)
    ledger.record("meta_agent", RoleUsage(1, 100, 100, 0.0099))
    chat(build_provider(compatible(server)), request(), ledger)
    assert len(server.calls) == 1 and ledger.by_role["executor"].calls == 1


def test_anthropic_wire_format_scripted_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count()
    monkeypatch.setenv("MY_ANTHROPIC_KEY", SECRET)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with ScriptedLLM(lambda call: f"sample {next(counter)}") as server:
        endpoint = EndpointSpec(provider="anthropic", model="claude-3-5-haiku-20241022", base_url=server.base_url,
                                api_key_env="MY_ANTHROPIC_KEY")
        provider = build_provider(endpoint)
        headers = record_headers(provider)
        texts, usage = chat(provider, request(n=3, temperature=0.4, max_tokens=99))
        calls = server.calls
    assert sorted(texts) == ["sample 0", "sample 1", "sample 2"]
    assert len(calls) == 3 and all(e.status == 200 for e in calls)
    for exchange in calls:
        raw = exchange.call.raw
        assert exchange.call.api == "anthropic" and raw["model"] == "claude-3-5-haiku-20241022"
        assert raw["system"] == "You are terse."
        assert raw["messages"] == [{"role": "user", "content": "two plus two"}]
        assert "n" not in raw and raw["max_tokens"] == 99 and raw["temperature"] == 0.4
    assert [h["x-api-key"] for h in headers] == [SECRET] * 3
    assert all(h["anthropic-version"] and "authorization" not in h for h in headers)
    # Usage: input words (system included) per call, output words per sample, summed over the 3 calls.
    assert (usage.calls, usage.input_tokens, usage.output_tokens) == (1, 3 * 6, 3 * 2)
    assert usage.input_tokens == sum(prompt_words(e.call) for e in calls)


def test_openai_compatible_n_is_separate_seeded_requests_scripted_llm(server: ScriptedLLM) -> None:
    texts, usage = chat(build_provider(compatible(server)), request(n=3, seed=1000, max_tokens=77))
    calls = [e.call for e in server.calls]
    assert texts == [REPLY] * 3 and len(calls) == 3
    assert sorted(c.seed for c in calls) == [1000, 1001, 1002]  # type: ignore[type-var]
    assert all(c.n == 1 and "n" not in c.raw for c in calls)
    assert all(c.raw["max_tokens"] == 77 and "max_completion_tokens" not in c.raw for c in calls)
    assert usage.output_tokens == 3 * len(REPLY.split())


def test_openai_native_n_and_bearer_key_scripted_llm(server: ScriptedLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    provider = build_provider(EndpointSpec(provider="openai", model="gpt-4o-mini", base_url=server.base_url))
    headers = record_headers(provider)
    texts, _ = chat(provider, request(n=3, seed=5, json_mode=True))
    assert texts == [REPLY] * 3
    (call,) = [e.call for e in server.calls]
    assert call.n == 3 and call.seed == 5 and call.json_mode
    assert call.raw["max_completion_tokens"] == 64
    assert [h["authorization"] for h in headers] == [f"Bearer {SECRET}"]


def test_openai_without_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(W4SError, match="OPENAI_API_KEY"):
        build_provider(EndpointSpec(provider="openai", model="gpt-4o-mini"))
    monkeypatch.setenv("OPENAI_API_KEY", "")
    with pytest.raises(W4SError, match="OPENAI_API_KEY"):
        build_provider(EndpointSpec(provider="openai", model="gpt-4o-mini"))
    monkeypatch.delenv("TEAM_KEY", raising=False)
    with pytest.raises(W4SError, match="TEAM_KEY"):
        build_provider(EndpointSpec(provider="anthropic", model="claude-3-haiku", api_key_env="TEAM_KEY"))


def test_key_never_appears_in_errors_scripted_llm(server: ScriptedLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    errors: list[Exception] = []
    for provider_name, model in (("openai", "gpt-4o-mini"), ("anthropic", "claude-3-haiku")):
        endpoint = EndpointSpec(provider=provider_name, model=model, base_url=server.base_url,
                                request_timeout_seconds="0.3")
        for fault in ("400", "500", "401", "timeout"):
            if fault == "timeout":
                server.hang_next(1, seconds=0.8)
            else:
                server.fail_next(1, int(fault))
            with pytest.raises(ProviderError) as info:
                chat(build_provider(endpoint), request(), max_retries=0)
            errors.append(info.value)
        # Nothing listens on this port: a connection error.
        dead = endpoint.model_copy(update={"base_url": "http://127.0.0.1:9/v1"})
        with pytest.raises(TransientProviderError) as info:
            chat(build_provider(dead), request(), max_retries=0)
        errors.append(info.value)
    assert len(errors) == 10
    for err in errors:
        assert SECRET not in str(err) and SECRET not in repr(err)
        assert SECRET not in "".join(map(str, (err.__cause__, err.__context__)))
