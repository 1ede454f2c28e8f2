"""Budgets: the limits in force (bots.yaml's with run-time overrides), the spend against them, admission."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from core.errors import BudgetExceeded
from core.text import money

if TYPE_CHECKING:
    from core.config import BudgetsConfig, Config
    from core.costs.periods import Period
    from core.store import Store

BudgetKind = Literal["day", "month"]

BUDGET_NAMES: dict[str, str] = {"task": "per_task_usd", "day": "per_day_usd", "month": "per_month_usd"}
"""The budgets an admin can change at run time, by the word used in ``/budget day 25``."""


@dataclass(frozen=True)
class BudgetStatus:
    period: Period
    spent_usd: float  # recorded spend plus, for the current period, the running tasks' live cost
    running_usd: float
    limit_usd: float | None

    @property
    def percent(self) -> float | None:
        return None if not self.limit_usd else 100.0 * self.spent_usd / self.limit_usd

    @property
    def exceeded(self) -> bool:
        return self.limit_usd is not None and self.spent_usd >= self.limit_usd

    @property
    def name(self) -> str:
        return "daily" if self.period.kind == "day" else "monthly"

    def describe(self) -> str:
        """``$8.12 of $10.00 (81%)``, or just the spend when there is no budget."""
        if self.limit_usd is None:
            return money(self.spent_usd)
        return f"{money(self.spent_usd)} of {money(self.limit_usd)} ({self.percent:.0f}%)"


@dataclass(frozen=True)
class BudgetLine:
    """One budget: ``value`` in force (None: none), ``configured`` in bots.yaml, who changed it and when."""

    word: str  # task, day, month
    name: str  # per_task_usd, ...
    value: float | None
    configured: float | None
    set_by: str = ""
    set_at: float = 0.0

    def shown(self) -> str:
        return "none" if self.value is None else money(self.value)


def effective_budgets(config: Config, store: Store) -> BudgetsConfig:
    """bots.yaml's budgets with the run-time overrides applied (one small query)."""
    overrides = store.budget_overrides()
    if not overrides:
        return config.budgets
    update = {name: value for name, (value, _, _) in overrides.items() if name in BUDGET_NAMES.values()}
    return config.budgets.model_copy(update=update)


def admission(over: BudgetStatus | None, budgets: BudgetsConfig) -> tuple[bool, str]:
    """The budget policy for a new task while ``over`` is spent (None: nothing is): (needs approval, why).

    Raises ``BudgetExceeded`` when a budget is spent and ``budgets.when_exceeded`` is ``refuse``.
    """
    if over is None:
        return False, ""
    when = "today" if over.period.kind == "day" else "this month"
    why = f"the {over.name} budget is spent: {over.describe()} {when}"
    if budgets.when_exceeded == "refuse":
        until = "tomorrow" if over.period.kind == "day" else "next month"
        raise BudgetExceeded(f"refused: {why}; new tasks are refused until {until} (budgets.when_exceeded)")
    return True, why


__all__ = ["BUDGET_NAMES", "BudgetKind", "BudgetLine", "BudgetStatus", "admission", "effective_budgets"]
