"""Savings: what the same tokens would have cost on a reference model, at list prices (cached)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.agents.base import Usage
from core.text import money

if TYPE_CHECKING:
    from collections.abc import Iterable

_PRICE_PROBE = 1000  # tokens priced to find a model's per-token rates (below any long-context tier)


@dataclass(frozen=True)
class Savings:
    """What the same tokens would have cost on ``reference_model``, against what they did cost."""

    reference_model: str
    actual_usd: float
    reference_usd: float
    tasks: int
    all_on_reference: bool = False  # every priced task ran on the reference model itself

    @property
    def saved_usd(self) -> float:
        return self.reference_usd - self.actual_usd

    @property
    def percent(self) -> float:
        return 100.0 * self.saved_usd / self.reference_usd if self.reference_usd else 0.0

    def sentence(self) -> str:
        if self.all_on_reference:
            return (
                f"none to show: every priced task ran on {self.reference_model}, the reference "
                "(set budgets.reference_model to compare with another model)"
            )
        ref = f"the same tokens on {self.reference_model} would have cost {money(self.reference_usd)}"
        if self.saved_usd >= 0:
            return f"{money(self.saved_usd)} saved ({self.percent:.0f}%): {ref}, they cost {money(self.actual_usd)}"
        return f"{money(-self.saved_usd)} more than the reference: {ref}, they cost {money(self.actual_usd)}"


@functools.lru_cache(maxsize=256)
def unit_prices(model: str) -> tuple[float, float, float, float] | None:
    """List price per token of ``model``: (uncached input, output, cache read, cache write)."""
    from core import pricing

    n = _PRICE_PROBE
    base = pricing.price_usd(Usage(input_tokens=n), model)
    out = pricing.price_usd(Usage(output_tokens=n), model)
    if base is None or out is None:
        return None
    read = pricing.price_usd(Usage(input_tokens=n, cache_read_tokens=n), model)
    write = pricing.price_usd(Usage(input_tokens=n, cache_write_tokens=n), model)
    return base / n, out / n, (base if read is None else read) / n, (base if write is None else write) / n


def price_at(usage: Usage, rates: tuple[float, float, float, float]) -> float:
    """``usage`` priced per token at ``rates`` (input tokens include the cache reads and writes)."""
    inp, out, read, write = rates
    uncached = max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
    cached = usage.cache_read_tokens * read + usage.cache_write_tokens * write
    return uncached * inp + usage.output_tokens * out + cached


def priciest(models: Iterable[str]) -> str | None:
    """The model with the highest list input plus output price per token, None when none is priced."""
    best: tuple[float, str] | None = None
    for model in set(models):
        rates = unit_prices(model) if model else None
        if rates is not None and (best is None or rates[0] + rates[1] > best[0]):
            best = (rates[0] + rates[1], model)
    return None if best is None else best[1]


__all__ = ["Savings", "price_at", "priciest", "unit_prices"]
