"""Cost estimates from token usage and a per-model price table (USD per million tokens).

The built-in table holds a few OpenAI list prices and is only a convenience: prices
change, so pass your own with ``--prices FILE`` (JSON ``{"model": {"input": x, "output": y}}``).
Models not in the table get no estimate (``cost_usd`` is null), never a guess.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import EngineError
from engine.llm.base import Usage


class Price(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0, description="USD per 1M prompt tokens")
    output: float = Field(ge=0, description="USD per 1M completion tokens")


#: OpenAI standard-tier list prices (openai.com/api/pricing, checked 2025); override freely.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(input=2.50, output=10.00),
    "gpt-4o-mini": Price(input=0.15, output=0.60),
    "gpt-4.1": Price(input=2.00, output=8.00),
    "gpt-4.1-mini": Price(input=0.40, output=1.60),
    "gpt-4.1-nano": Price(input=0.10, output=0.40),
}


class PriceTable:
    """Looks a model up by exact name, else by the longest ``name-`` prefix (dated snapshots)."""

    def __init__(self, prices: dict[str, Price] | None = None, discount: float = 1.0) -> None:
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self.discount = discount

    @classmethod
    def load(cls, path: Path | None, discount: float = 1.0) -> PriceTable:
        """The default table, updated from ``path`` when given."""
        table = cls(discount=discount)
        if path is None:
            return table
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            table.prices.update({k: Price.model_validate(v) for k, v in raw.items()})
        except (OSError, ValueError, AttributeError) as err:
            detail = err.errors()[0]["msg"] if isinstance(err, ValidationError) else err
            raise EngineError(
                f"--prices {path}: {detail}; expected "
                '{"model": {"input": USD_per_1M, "output": USD_per_1M}}'
            ) from None
        return table

    def price(self, model: str) -> Price | None:
        if model in self.prices:
            return self.prices[model]
        matches = [name for name in self.prices if model.startswith(name + "-")]
        return self.prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, usage: Usage | None) -> float | None:
        price = self.price(model)
        if price is None or usage is None:
            return None
        usd = (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1e6
        return round(usd * self.discount, 8)
