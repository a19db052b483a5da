"""Turn the spec's endpoints into LLM clients: prices resolved (unknown = error, before anything runs),
credentials read, and the embedded models served locally when the spec asks for them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from w4s.artifacts import cache_root
from w4s.errors import SpecError
from w4s.llm.client import LLMClient
from w4s.llm.ledger import Ledger
from w4s.llm.pricing import resolve_price
from w4s.llm.providers import ChatProvider, api_key_for, build_provider
from w4s.spec import EndpointSpec, MetaAgentSpec, OptimizationSpec

if TYPE_CHECKING:
    from w4s.embedded.llama_server import LlamaServer


def executor_role(index: int, name: str) -> str:
    return "executor" if index == 0 else f"executor:{name}"


class Endpoints:
    """Async context manager holding the meta-agent client, the executor clients and any local servers."""

    def __init__(self, spec: OptimizationSpec, ledger: Ledger, log: Callable[[str], None] = print,
                 meta_agent: bool = True, executors: bool = True) -> None:
        """``meta_agent=False`` serves the executors only (``w4s eval`` runs a given workflow);
        ``executors=False`` the meta-agent only (in a cluster the gateway service calls the executors)."""
        self.spec = spec
        self.with_meta_agent = meta_agent
        self.with_executors = executors
        self.ledger = ledger
        self.log = log
        self.meta: LLMClient
        self.executors: dict[str, LLMClient] = {}
        self._providers: list[ChatProvider] = []
        self._servers: dict[str, LlamaServer] = {}

    async def _serve(self, endpoint: EndpointSpec) -> str:
        """Start (once per model and checkpoint) a local llama.cpp server for an embedded model; its base URL."""
        checkpoint = endpoint.checkpoint if isinstance(endpoint, MetaAgentSpec) else None
        key = f"{endpoint.model}@{checkpoint}" if checkpoint else endpoint.model
        if key not in self._servers:
            # Started from the main thread on purpose: the server's parent-death signal is tied to the thread
            # that forked it, and nothing else runs on the event loop yet.
            self._servers[key] = (self._serve_checkpoint(endpoint.model, checkpoint) if checkpoint
                                  else self._serve_registry(endpoint.model))
        return self._servers[key].base_url

    def _serve_registry(self, model: str) -> LlamaServer:
        from w4s.embedded.llama_server import serve_embedded

        self.log(f"serving embedded model {model} locally (first run downloads its weights)")
        return serve_embedded(model, progress=self.log)

    def _serve_checkpoint(self, model: str, checkpoint: str) -> LlamaServer:
        """A trained checkpoint, converted to GGUF on first use, served under the spec's model name. Its log has a
        name of its own: the same name may also be served from the registry (e.g. as the executor)."""
        from w4s.embedded.llama_server import LlamaServer
        from w4s.rlao.gguf_export import checkpoint_gguf

        path = checkpoint_gguf(checkpoint, progress=self.log)
        self.log(f"serving meta-agent checkpoint {checkpoint} as {model} from {path}")
        log_path = cache_root() / "logs" / f"llama-server-{model}-checkpoint.log"
        return LlamaServer(path, model, log_path=log_path).start()

    async def _client(self, endpoint: EndpointSpec, role: str) -> LLMClient:
        price = resolve_price(endpoint)
        base_url = await self._serve(endpoint) if endpoint.provider == "embedded" else None
        provider = build_provider(endpoint, base_url)
        self._providers.append(provider)
        return LLMClient(provider, price, self.ledger, role, endpoint.max_retries)

    @staticmethod
    def check(spec: OptimizationSpec, meta_agent: bool = True, executors: bool = True) -> None:
        """Fail before anything starts (or is written) if a price or a credential is missing."""
        if meta_agent and (spec.meta_agent.from_training or spec.meta_agent.weights_uri):
            raise SpecError("metaAgent.fromTraining and metaAgent.weightsUri work in a cluster only (the operator "
                            "serves that model); locally, give the checkpoint's folder as metaAgent.checkpoint")
        if meta_agent and spec.meta_agent.checkpoint:
            from w4s.rlao.gguf_export import read_checkpoint

            read_checkpoint(spec.meta_agent.checkpoint)
        for endpoint in ((spec.meta_agent,) if meta_agent else ()) + (tuple(spec.executors) if executors else ()):
            resolve_price(endpoint)
            api_key_for(endpoint)

    async def __aenter__(self) -> Endpoints:
        self.check(self.spec, self.with_meta_agent, self.with_executors)
        try:
            if self.with_meta_agent:
                self.meta = await self._client(self.spec.meta_agent, "meta_agent")
            for i, ex in enumerate(self.spec.executors if self.with_executors else ()):
                self.executors[ex.name] = await self._client(ex, executor_role(i, ex.name))
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        for provider in self._providers:
            await provider.aclose()
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                server.stop()
        self._servers.clear()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
