"""HTTP clients for the three provider wire formats, on one async interface.

Written on aiohttp rather than the vendor SDKs so that every call has the same explicit timeout, the same
classification of retryable errors (429, 5xx, timeouts, dropped connections) and no hidden SDK retries that
would multiply cost behind the ledger's back. aiohttp rather than httpx because evaluation keeps dozens of
calls in flight: httpx's connection pool spends milliseconds of CPU per request at that concurrency (measured
with bench/eval_overhead.py), which adds straight onto every evaluation's wall time.
"""

from __future__ import annotations

import abc
import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any

import aiohttp

from w4s.errors import ProviderError, TransientProviderError, W4SError
from w4s.spec import EndpointSpec

DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com/v1"}
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, str]]
    temperature: float
    max_tokens: int
    n: int = 1
    top_p: float | None = None
    seed: int | None = None
    json_mode: bool = False


@dataclass(frozen=True)
class ChatResult:
    texts: list[str]
    input_tokens: int
    output_tokens: int


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class ChatProvider(abc.ABC):
    """One model behind one endpoint."""

    def __init__(self, endpoint: EndpointSpec, base_url: str, api_key: str | None) -> None:
        self.endpoint = endpoint
        self.model = endpoint.model
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=endpoint.request_timeout,
                                              connect=min(30.0, endpoint.request_timeout))
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        """Created on first use, inside the event loop that will use it (aiohttp binds sessions to a loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300))
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            async with self._client().post(url, json=body, headers=headers) as response:
                status, text = response.status, await response.text()
                retry_after = _retry_after(response.headers.get("retry-after"))
        except TimeoutError:
            raise TransientProviderError(f"{self.model}: request to {url} timed out after "
                                         f"{self._timeout.total:g} s") from None
        except aiohttp.ClientError as err:
            raise TransientProviderError(f"{self.model}: cannot reach {url}: {type(err).__name__}: {err}") from None
        if status in _TRANSIENT_STATUS:
            err = TransientProviderError(f"{self.model}: HTTP {status}: {text[:300]}")
            err.retry_after = retry_after  # type: ignore[attr-defined]
            raise err
        if status >= 400:
            raise ProviderError(f"{self.model}: HTTP {status} from {url}: {text[:500]}", status=status)
        try:
            return json.loads(text)
        except ValueError:
            raise TransientProviderError(f"{self.model}: non-JSON reply from {url}") from None

    @abc.abstractmethod
    async def chat(self, request: ChatRequest) -> ChatResult:
        """Send one chat request and return ``request.n`` texts with the tokens they cost."""


class OpenAIChatProvider(ChatProvider):
    """OpenAI's chat completions API and every server that speaks it (vLLM, llama.cpp, proxies).

    ``native_n`` is off for self-hosted servers, several of which ignore ``n``: the n samples are then separate
    requests with consecutive seeds, so results stay reproducible.
    """

    def __init__(self, *args: Any, native_n: bool, token_field: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._native_n = native_n
        self._token_field = token_field

    async def _one(self, request: ChatRequest, n: int, seed: int | None) -> ChatResult:
        body: dict[str, Any] = {"model": self.model, "messages": request.messages,
                                "temperature": request.temperature, self._token_field: request.max_tokens}
        if n != 1:
            body["n"] = n
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if seed is not None:
            body["seed"] = seed
        if request.json_mode:
            body["response_format"] = {"type": "json_object"}
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        data = await self._post("/chat/completions", body, headers)
        try:
            texts = [choice["message"].get("content") or "" for choice in data["choices"]]
        except (KeyError, TypeError, AttributeError):
            raise ProviderError(f"{self.model}: malformed chat completion: {str(data)[:300]}") from None
        usage = data.get("usage") or {}
        return ChatResult(texts, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))

    async def chat(self, request: ChatRequest) -> ChatResult:
        if self._native_n or request.n == 1:
            return await self._one(request, request.n, request.seed)
        seeds = [None if request.seed is None else request.seed + k for k in range(request.n)]
        parts = await asyncio.gather(*(self._one(request, 1, s) for s in seeds))
        return ChatResult([t for p in parts for t in p.texts], sum(p.input_tokens for p in parts),
                          sum(p.output_tokens for p in parts))


class AnthropicProvider(ChatProvider):
    """Anthropic's messages API: system text is a separate field, and ``n`` is emulated by separate calls."""

    async def _one(self, request: ChatRequest) -> ChatResult:
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": self.model, "max_tokens": request.max_tokens, "temperature": request.temperature,
            "messages": [m for m in request.messages if m["role"] != "system"],
        }
        if system:
            body["system"] = system
        headers = {"x-api-key": self._api_key or "", "anthropic-version": "2023-06-01"}
        data = await self._post("/messages", body, headers)
        try:
            text = "".join(block.get("text", "") for block in data["content"] if block.get("type") == "text")
        except (KeyError, TypeError, AttributeError):
            raise ProviderError(f"{self.model}: malformed messages reply: {str(data)[:300]}") from None
        usage = data.get("usage") or {}
        return ChatResult([text], int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0))

    async def chat(self, request: ChatRequest) -> ChatResult:
        parts = await asyncio.gather(*(self._one(request) for _ in range(request.n)))
        return ChatResult([t for p in parts for t in p.texts], sum(p.input_tokens for p in parts),
                          sum(p.output_tokens for p in parts))


def api_key_for(endpoint: EndpointSpec) -> str | None:
    """Read the endpoint's key from the environment; hosted providers without one fail at start."""
    env_name = endpoint.api_key_env or DEFAULT_KEY_ENV.get(endpoint.provider)
    key = os.environ.get(env_name) if env_name else None
    if endpoint.provider in DEFAULT_KEY_ENV and not key:
        raise W4SError(f"provider {endpoint.provider} (model {endpoint.model}) needs an API key in "
                       f"${env_name}; set it or name another variable with apiKeyEnv")
    return key


def build_provider(endpoint: EndpointSpec, base_url: str | None = None) -> ChatProvider:
    """A provider for a spec endpoint; ``base_url`` is given for embedded models once w4s serves them."""
    key = api_key_for(endpoint)
    if endpoint.provider == "anthropic":
        return AnthropicProvider(endpoint, base_url or endpoint.base_url or DEFAULT_BASE_URLS["anthropic"], key)
    if endpoint.provider == "openai":
        return OpenAIChatProvider(endpoint, base_url or endpoint.base_url or DEFAULT_BASE_URLS["openai"], key,
                                  native_n=True, token_field="max_completion_tokens")
    url = base_url or endpoint.base_url
    if not url:
        raise W4SError(f"no base URL for {endpoint.provider} model {endpoint.model}")
    return OpenAIChatProvider(endpoint, url, key, native_n=False, token_field="max_tokens")
