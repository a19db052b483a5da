"""Tests of the scripted stand-in for remote OpenAI/Anthropic endpoints (tests/scripted_llm.py) itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from scripted_llm import Call, Fault, Reply, ScriptedLLM, start_process


def numbered(call: Call) -> Reply:
    """One distinct text per choice, so n>1 ordering is checkable."""
    last = call.messages[-1]["content"]
    return [f"answer {i} to {last}" for i in range(call.n)] if call.n > 1 else f"answer to {last}"


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM(numbered) as server:
        yield server


def test_openai_format_with_n_and_usage(llm: ScriptedLLM) -> None:
    body = {"model": "gpt-x", "messages": [{"role": "system", "content": "be brief"},
                                           {"role": "user", "content": "two plus two"}],
            "n": 3, "temperature": 0.7, "seed": 11, "max_completion_tokens": 50}
    reply = httpx.post(f"{llm.base_url}/chat/completions", json=body)
    assert reply.status_code == 200
    data = reply.json()
    assert data["object"] == "chat.completion" and data["model"] == "gpt-x" and data["created"] == 0
    texts = [c["message"]["content"] for c in data["choices"]]
    assert texts == [f"answer {i} to two plus two" for i in range(3)]
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert {c["finish_reason"] for c in data["choices"]} == {"stop"}
    # 2 + 3 prompt words; 6 words in each of the 3 answers.
    assert data["usage"] == {"prompt_tokens": 5, "completion_tokens": 18, "total_tokens": 23}
    call = llm.calls[0].call
    assert (call.api, call.n, call.seed, call.temperature, call.max_tokens) == ("openai", 3, 11, 0.7, 50)
    # The same request gets the same id: the server adds no nondeterminism.
    assert httpx.post(f"{llm.base_url}/chat/completions", json=body).json()["id"] == data["id"]


def test_a_single_text_is_repeated_for_n_and_a_wrong_count_is_a_500() -> None:
    with ScriptedLLM(lambda call: "same") as server:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 2}
        data = httpx.post(f"{server.base_url}/chat/completions", json=body).json()
        assert [c["message"]["content"] for c in data["choices"]] == ["same", "same"]
        server.responder = lambda call: ["only one"]
        reply = httpx.post(f"{server.base_url}/chat/completions", json=body)
        assert reply.status_code == 500 and "2 strs for n=2" in reply.json()["error"]["message"]
        assert server.calls[-1].status == 500 and "TypeError" in (server.calls[-1].error or "")


def test_anthropic_format_puts_system_first(llm: ScriptedLLM) -> None:
    body = {"model": "claude-x", "max_tokens": 64, "system": "you are terse",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "name a colour"}]}]}
    reply = httpx.post(f"{llm.base_url}/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert reply.status_code == 200
    data = reply.json()
    assert data["type"] == "message" and data["role"] == "assistant" and data["stop_reason"] == "end_turn"
    assert data["content"] == [{"type": "text", "text": "answer to name a colour"}]
    assert data["usage"] == {"input_tokens": 6, "output_tokens": 5}
    call = llm.calls[0].call
    assert call.api == "anthropic" and call.max_tokens == 64 and call.seed is None
    assert call.messages == [{"role": "system", "content": "you are terse"},
                             {"role": "user", "content": "name a colour"}]


def test_malformed_requests_are_400s(llm: ScriptedLLM) -> None:
    system_in_messages = {"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}
    no_max_tokens = {"model": "c", "messages": [{"role": "user", "content": "x"}]}
    for body in (system_in_messages, no_max_tokens):
        reply = httpx.post(f"{llm.base_url}/messages", json=body)
        assert reply.status_code == 400 and reply.json()["error"]["type"] == "invalid_request_error"
    bad_n = {"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0}
    null_temperature = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": None}
    for body in (bad_n, null_temperature):
        assert httpx.post(f"{llm.base_url}/chat/completions", json=body).status_code == 400
    assert llm.calls == []  # malformed requests are not calls


def test_models_endpoint() -> None:
    with ScriptedLLM(numbered, models=["weak", "strong"]) as server:
        data = httpx.get(f"{server.base_url}/models").json()
    assert data["object"] == "list" and [m["id"] for m in data["data"]] == ["weak", "strong"]


def test_json_mode_flag(llm: ScriptedLLM) -> None:
    messages = [{"role": "user", "content": "{}"}]
    for response_format in ({"type": "json_object"}, {"type": "text"}, None):
        body = {"model": "m", "messages": messages}
        if response_format is not None:
            body["response_format"] = response_format
        httpx.post(f"{llm.base_url}/chat/completions", json=body).raise_for_status()
    assert [e.call.json_mode for e in llm.calls] == [True, False, False]


def test_429_with_retry_after_then_success_and_the_log(llm: ScriptedLLM) -> None:
    llm.fail_next(2, 429, retry_after_s=1.5)
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    statuses = []
    for _ in range(3):
        reply = httpx.post(f"{llm.base_url}/chat/completions", json=body)
        statuses.append(reply.status_code)
        if reply.status_code == 429:
            assert reply.headers["retry-after"] == "1.5"
            assert reply.json()["error"]["type"] == "rate_limit_exceeded"
    assert statuses == [429, 429, 200]
    assert [(e.status, e.texts) for e in llm.calls] == [(429, ()), (429, ()), (200, ("answer to q",))]
    llm.reset()
    assert llm.calls == []


def test_faults_only_hit_matching_calls(llm: ScriptedLLM) -> None:
    llm.add_fault(Fault(status=503, match=lambda call: call.model == "flaky"))
    for model in ("steady", "flaky", "flaky"):
        body = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "q"}]}
        httpx.post(f"{llm.base_url}/messages", json=body)
    assert [(e.call.model, e.status) for e in llm.calls] == [("steady", 200), ("flaky", 503), ("flaky", 200)]


def test_hang_drives_a_client_past_its_timeout(llm: ScriptedLLM) -> None:
    llm.hang_next(1, seconds=1.0)
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{llm.base_url}/chat/completions", json=body, timeout=0.2)
    assert httpx.post(f"{llm.base_url}/chat/completions", json=body, timeout=0.5).status_code == 200


async def _concurrent(base_url: str, total: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                body = {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}
                reply = await client.post(f"{base_url}/chat/completions", json=body)
                assert reply.json()["choices"][0]["message"]["content"] == f"q{i}"

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(total)))
        return time.perf_counter() - start


def test_process_mode_serves_concurrently_and_stops() -> None:
    base_url, stop = start_process("scripted_llm:echo", latency_s=0.2)
    try:
        # 64 calls 32 at a time take two latency rounds (0.4 s) when concurrent; serially, 12.8 s.
        elapsed = asyncio.run(_concurrent(base_url, total=64, concurrency=32))
        assert elapsed < 2.5
    finally:
        stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/models", timeout=2)
    stop()  # idempotent


def test_process_mode_reports_a_bad_responder() -> None:
    with pytest.raises(RuntimeError, match="did not start"):
        start_process("scripted_llm:no_such_responder")
