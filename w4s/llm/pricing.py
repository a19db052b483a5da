"""Prices in USD per million tokens, and the rule that an unknown model is an error, never $0.

The table covers common OpenAI and Anthropic models; dated snapshots ("gpt-4o-2024-08-06",
"claude-3-5-sonnet-20241022") resolve to their base name. Matching is exact after that normalisation, never by
substring, so "gpt-4o-mini" can never be billed as "gpt-4o". A spec's ``price`` always wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from w4s.errors import UnknownPriceError
from w4s.spec import EndpointSpec


@dataclass(frozen=True)
class ModelPrice:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


# Public list prices (standard tier, no batch/cache discounts).
PRICE_TABLE: dict[str, ModelPrice] = {
    "gpt-3.5-turbo": ModelPrice(0.50, 1.50),
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4.1": ModelPrice(2.00, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-5": ModelPrice(1.25, 10.00),
    "gpt-5-mini": ModelPrice(0.25, 2.00),
    "gpt-5-nano": ModelPrice(0.05, 0.40),
    "o3": ModelPrice(2.00, 8.00),
    "o3-mini": ModelPrice(1.10, 4.40),
    "o4-mini": ModelPrice(1.10, 4.40),
    "claude-3-haiku": ModelPrice(0.25, 1.25),
    "claude-3-5-haiku": ModelPrice(0.80, 4.00),
    "claude-3-5-sonnet": ModelPrice(3.00, 15.00),
    "claude-3-7-sonnet": ModelPrice(3.00, 15.00),
    "claude-sonnet-4": ModelPrice(3.00, 15.00),
    "claude-sonnet-4-5": ModelPrice(3.00, 15.00),
    "claude-haiku-4-5": ModelPrice(1.00, 5.00),
    "claude-opus-4": ModelPrice(15.00, 75.00),
    "claude-opus-4-1": ModelPrice(15.00, 75.00),
    "claude-opus-4-5": ModelPrice(5.00, 25.00),
}

_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


def normalize_model(model: str) -> str:
    """Strip a provider prefix ("openai/") and a snapshot suffix so dated models share their base price."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    return _SNAPSHOT.sub("", name)


def resolve_price(endpoint: EndpointSpec) -> ModelPrice:
    """The price of an endpoint's model. Local embedded models cost nothing (the user's own CPU)."""
    if endpoint.price is not None:
        return ModelPrice(float(endpoint.price.input_per_mtok), float(endpoint.price.output_per_mtok))
    if endpoint.provider == "embedded":
        return ModelPrice(0.0, 0.0)
    price = PRICE_TABLE.get(normalize_model(endpoint.model))
    if price is None:
        raise UnknownPriceError(
            f"no known price for model {endpoint.model!r} (provider {endpoint.provider}); set "
            "price.inputPerMtok and price.outputPerMtok on this endpoint (use \"0\" for a self-hosted model)"
        )
    return price
