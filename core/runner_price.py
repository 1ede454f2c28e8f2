"""The list price of a run's tokens, for the runner (live cost, the cap, a result the CLI did not price)."""

from __future__ import annotations

from core.agents.base import Usage
from core.agents.common import model_for_pricing


def list_price(usage: Usage, model: str | None, configured_model: str | None) -> tuple[float | None, str]:
    """The list price of ``usage`` on the model the CLI named, else on the configured ``model:``.

    The note says when the configured model's price stood in (a CLI may name a model version
    that has no price, e.g. Gemini's ``modelVersion``).
    """
    try:
        from core import pricing

        cost = pricing.price_usd(usage, model)
        configured = model_for_pricing(configured_model)
        if cost is not None or not configured or configured == model_for_pricing(model):
            return cost, ""
        cost = pricing.price_usd(usage, configured)
    except Exception:  # noqa: BLE001 - pricing is optional for the runner
        return None, ""
    if cost is None:
        return None, ""
    return cost, f"priced as {configured}, the configured model: {model or 'the CLI named none'} has no price"
