"""Token prices from ``genai-prices``, for CLIs that report tokens but no dollars.

``genai_prices`` pulls in pydantic and a 1.6 MB price table (about 150 ms), so it is imported
lazily on first use; the runner calls ``preload`` in a background thread at start so the first
live price does not stall the pane. Prices ship inside the package: no network call is made.
"""

from __future__ import annotations

import functools
import logging
from types import ModuleType

from core.agents.base import Usage

logger = logging.getLogger(__name__)


@functools.cache
def _genai_prices() -> ModuleType:
    import genai_prices

    return genai_prices


def preload() -> None:
    """Import genai-prices now (safe to call from any thread, any number of times)."""
    _genai_prices()


def price_usd(usage: Usage, model: str | None, provider_id: str | None = None) -> float | None:
    """List price in USD of ``usage`` on ``model``; ``None`` when the model is absent or unknown.

    ``usage.input_tokens`` must be the total input, cache reads and writes included. An unknown
    model never prices as 0: the caller shows "unknown" rather than a misleading free run.
    """
    if not model:
        return None
    genai = _genai_prices()
    genai_usage = genai.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
    )
    try:
        calculation = genai.calc_price(genai_usage, model_ref=model, provider_id=provider_id)
    except LookupError:
        logger.debug("no price for model %s (provider %s)", model, provider_id)
        return None
    return float(calculation.total_price)
