"""One role's view of one model: budget check, bounded retries of transient errors, usage into the ledger."""

from __future__ import annotations

import asyncio
import random

from w4s.errors import TransientProviderError
from w4s.llm.ledger import Ledger, RoleUsage
from w4s.llm.pricing import ModelPrice
from w4s.llm.providers import ChatProvider, ChatRequest


class LLMClient:
    def __init__(self, provider: ChatProvider, price: ModelPrice, ledger: Ledger, role: str,
                 max_retries: int, backoff_base: float = 1.0, backoff_max: float = 30.0) -> None:
        self.provider = provider
        self.price = price
        self.ledger = ledger
        self.role = role
        self.max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max

    @property
    def model(self) -> str:
        return self.provider.model

    async def chat(self, request: ChatRequest) -> tuple[list[str], RoleUsage]:
        """Return the texts and this call's usage. Raises BudgetExceeded before spending past the limit, and
        TransientProviderError only after ``max_retries`` retries."""
        attempt = 0
        while True:
            self.ledger.check()
            try:
                result = await self.provider.chat(request)
                break
            except TransientProviderError as err:
                if attempt >= self.max_retries:
                    raise TransientProviderError(f"{err} (gave up after {attempt + 1} attempts)") from None
                delay = getattr(err, "retry_after", None)
                if delay is None:
                    delay = min(self._backoff_max, self._backoff_base * 2**attempt) * (0.5 + random.random() / 2)
                attempt += 1
                await asyncio.sleep(delay)
        usage = RoleUsage(1, result.input_tokens, result.output_tokens,
                          self.price.cost(result.input_tokens, result.output_tokens))
        self.ledger.record(self.role, usage)
        return result.texts, usage
