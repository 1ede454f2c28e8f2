"""What the agents cost: per task, agent, category, day, week and month; budgets, alerts, savings.

Days, ISO weeks (Monday first) and months are calendar periods in the configured time zone
(``digest.timezone``), so a day lasts 23 or 25 hours across a daylight-saving change. Every figure
is read from the store when asked, at the time of the clock passed in; only model prices are
cached. The spend of the current day and month includes the live cost of running tasks, so a
budget stops new work before the running tasks have finished.

The parts: ``periods`` (calendar periods), ``budgets`` (limits in force, status, admission),
``savings`` (list prices and the reference model), ``tracker`` (the ``CostTracker``), ``alerts``
(budget thresholds crossed) and ``report`` (``orchestra cost``, /cost and /budget).
"""

from __future__ import annotations

from core.costs.alerts import BudgetAlert, check_budget_alerts
from core.costs.budgets import BUDGET_NAMES, BudgetKind, BudgetLine, BudgetStatus, admission, effective_budgets
from core.costs.periods import Period, PeriodKind, local_midnight, period_of, recent, shift
from core.costs.report import CostReport, cost_report, render_budgets, render_cost_report
from core.costs.savings import Savings, price_at, unit_prices
from core.costs.tracker import CostTracker, Spend
from core.text import money

__all__ = [
    "BUDGET_NAMES",
    "BudgetAlert",
    "BudgetKind",
    "BudgetLine",
    "BudgetStatus",
    "CostReport",
    "CostTracker",
    "Period",
    "PeriodKind",
    "Savings",
    "Spend",
    "admission",
    "check_budget_alerts",
    "cost_report",
    "effective_budgets",
    "local_midnight",
    "money",
    "period_of",
    "price_at",
    "recent",
    "render_budgets",
    "render_cost_report",
    "shift",
    "unit_prices",
]
