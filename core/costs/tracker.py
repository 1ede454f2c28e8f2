"""The cost tracker: spend, budgets and savings read from the store at the time of the clock passed in.

The spend of the current day and month includes the live cost of running tasks, so a budget
stops new work before the running tasks have finished.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.costs.budgets import BudgetKind, BudgetStatus, admission, effective_budgets
from core.costs.periods import Period, PeriodKind, period_of
from core.costs.savings import Savings, price_at, priciest, unit_prices

if TYPE_CHECKING:
    from core.clock import Clock
    from core.config import BudgetsConfig, Config
    from core.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Spend:
    """Recorded spend over a range, with the breakdown by agent and category (largest first)."""

    total_usd: float
    tasks: int
    unknown: int
    by_agent: list[tuple[str, float, int]]
    by_category: list[tuple[str, float, int]]


class CostTracker:
    """Spend, budgets and savings read from the store; cheap to create, holds no state of its own."""

    def __init__(self, store: Store, config: Config, clock: Clock) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.tz = config.digest.zone()

    def now(self) -> float:
        return self.clock.now()

    def period(self, kind: PeriodKind, ts: float | None = None) -> Period:
        return period_of(kind, self.now() if ts is None else ts, self.tz)

    def spend(self, start: float, end: float) -> Spend:
        total, tasks, unknown = self.store.cost_sum(start, end)
        return Spend(
            total, tasks, unknown, self.store.cost_by("agent", start, end), self.store.cost_by("category", start, end)
        )

    def limits(self) -> BudgetsConfig:
        """The budgets in force: bots.yaml's, with what an admin set since (``/budget``)."""
        return effective_budgets(self.config, self.store)

    def budget(self, kind: BudgetKind, ts: float | None = None) -> BudgetStatus:
        now = self.now()
        period = self.period(kind, now if ts is None else ts)
        spent, _, _ = self.store.cost_sum(period.start, period.end)
        running = self.store.running_cost()[0] if period.contains(now) else 0.0
        budgets = self.limits()
        limit = budgets.per_day_usd if kind == "day" else budgets.per_month_usd
        return BudgetStatus(period, spent + running, running, limit)

    def budgets(self) -> list[BudgetStatus]:
        """The current day and month, budgeted or not."""
        return [self.budget("day"), self.budget("month")]

    def exceeded(self) -> BudgetStatus | None:
        """The spent budget that holds new tasks (the month's first: it lasts longer), or None."""
        budgets = self.limits()
        kinds: list[tuple[BudgetKind, float | None]] = [("month", budgets.per_month_usd), ("day", budgets.per_day_usd)]
        for kind, limit in kinds:
            if limit is not None and (status := self.budget(kind)).exceeded:
                return status
        return None

    def admission(self) -> tuple[bool, str]:
        """The budget policy for a new task: (needs approval, why).

        Raises ``BudgetExceeded`` when a budget is spent and ``budgets.when_exceeded`` is ``refuse``.
        """
        return admission(self.exceeded(), self.config.budgets)

    def savings(self, start: float, end: float) -> Savings | None:
        """Savings over the range against ``budgets.reference_model`` (default: the priciest model used).

        Tokens are priced at each model's base per-token rates, since agents make many calls each
        below any long-context tier. None when no priced model or no tokens are known.
        """
        rows = self.store.cost_usage_by_model(start, end)
        if not rows:
            return None
        configured = [a.model for a in self.config.agents.values() if a.model]
        reference = self.config.budgets.reference_model or priciest([*(m for m, _, _, _ in rows), *configured])
        rates = unit_prices(reference) if reference else None
        if reference is None or rates is None:
            if reference:
                log.warning("no list price known for the reference model %s", reference)
            return None
        actual = sum(usd for _, _, usd, _ in rows)
        would = sum(price_at(usage, rates) for _, usage, _, _ in rows)
        only_reference = all(model == reference for model, _, _, _ in rows)
        return Savings(reference, actual, would, sum(n for _, _, _, n in rows), only_reference)

    def by_agent_series(self, periods: list[Period]) -> dict[str, list[float]]:
        """Cost per agent in each period (0 where nothing was spent), agents by total, largest first."""
        if not periods:
            return {}
        bounds = [p.start for p in periods] + [periods[-1].end]
        series: dict[str, list[float]] = {}
        for i, agent, usd, _ in self.store.cost_buckets(bounds, by="agent"):
            series.setdefault(agent or "?", [0.0] * len(periods))[i] += usd
        return dict(sorted(series.items(), key=lambda kv: (-sum(kv[1]), kv[0])))

    def totals(self, periods: list[Period]) -> list[tuple[Period, float, int]]:
        """Total spend and task count per period, oldest first."""
        bounds = [p.start for p in periods] + [periods[-1].end] if periods else []
        found = {i: (usd, n) for i, _, usd, n in self.store.cost_buckets(bounds)}
        return [(p, *found.get(i, (0.0, 0))) for i, p in enumerate(periods)]


__all__ = ["CostTracker", "Spend"]
