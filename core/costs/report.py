"""The report behind `orchestra cost` and /cost, and the list of budgets behind /budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from core.costs.periods import Period, recent, shift
from core.text import local_time, money

if TYPE_CHECKING:
    from core.costs.budgets import BudgetLine, BudgetStatus
    from core.costs.savings import Savings
    from core.costs.tracker import CostTracker, Spend


@dataclass(frozen=True)
class CostReport:
    generated_at: float
    timezone: str
    scope: str
    spend: Spend
    periods: list[tuple[str, float, int]]  # today, yesterday, this week, this month
    budgets: list[BudgetStatus]
    running_usd: float
    running_tasks: int
    by_day: list[tuple[Period, float, int]]
    by_week: list[tuple[Period, float, int]]
    by_month: list[tuple[Period, float, int]]
    savings: Savings | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "scope": self.scope,
            "total_usd": self.spend.total_usd,
            "tasks": self.spend.tasks,
            "unknown": self.spend.unknown,
            "by_agent": self.spend.by_agent,
            "by_category": self.spend.by_category,
            "periods": {name: {"cost_usd": usd, "tasks": n} for name, usd, n in self.periods},
            "budgets": [
                {
                    "period": b.period.kind,
                    "key": b.period.key,
                    "spent_usd": b.spent_usd,
                    "limit_usd": b.limit_usd,
                    "percent": b.percent,
                    "exceeded": b.exceeded,
                }
                for b in self.budgets
            ],
            "running_usd": self.running_usd,
            "running_tasks": self.running_tasks,
            "by_day": _period_rows(self.by_day),
            "by_week": _period_rows(self.by_week),
            "by_month": _period_rows(self.by_month),
            "savings": None
            if self.savings is None
            else {
                "reference_model": self.savings.reference_model,
                "actual_usd": self.savings.actual_usd,
                "reference_usd": self.savings.reference_usd,
                "saved_usd": self.savings.saved_usd,
                "tasks": self.savings.tasks,
            },
        }


def _period_rows(items: list[tuple[Period, float, int]]) -> list[dict[str, Any]]:
    return [{"period": p.key, "cost_usd": usd, "tasks": n} for p, usd, n in items]


def cost_report(tracker: CostTracker, *, days: float | None = None, all_time: bool = False) -> CostReport:
    """Spend now: the named periods, budgets, breakdowns and savings over this month (or ``days``)."""
    now, tz = tracker.now(), tracker.tz
    month = tracker.period("month", now)
    if all_time:
        start, scope = 0.0, "all time"
    elif days:
        start, scope = now - days * 86400, f"last {days:g} days"
    else:
        start, scope = month.start, "this month"
    today = tracker.period("day", now)
    named = [
        ("today", today),
        ("yesterday", shift(today, -1, tz)),
        ("this week", tracker.period("week", now)),
        ("this month", month),
    ]
    running_usd, running_tasks = tracker.store.running_cost()
    return CostReport(
        generated_at=now,
        timezone=tracker.config.digest.timezone,
        scope=scope,
        spend=tracker.spend(start, now + 1),
        periods=[(name, *tracker.totals([p])[0][1:]) for name, p in named],
        budgets=tracker.budgets(),
        running_usd=running_usd,
        running_tasks=running_tasks,
        by_day=tracker.totals(recent("day", 7, now, tz)),
        by_week=tracker.totals(recent("week", 4, now, tz)),
        by_month=tracker.totals(recent("month", 6, now, tz)),
        savings=tracker.savings(start, now + 1),
    )


_SECTIONS = ("agent", "category", "day", "week", "month")


def render_cost_report(report: CostReport, *, only: str | None = None, sections: tuple[str, ...] = _SECTIONS) -> str:
    """Plain text for the terminal and the chat.

    ``only`` keeps one breakdown (agent, day, ...) and nothing else; ``sections`` picks the
    breakdowns shown under the totals (the chat shows just ``("agent",)`` to fit a phone).
    """
    lines: list[str] = []
    budget: dict[str, BudgetStatus] = {b.period.kind: b for b in report.budgets}
    if only is None:
        when = local_time(report.generated_at, ZoneInfo(report.timezone), "%Y-%m-%d %H:%M")
        lines.append(f"Costs at {when} ({report.timezone})")
        for name, usd, n in report.periods:
            kind = {"today": "day", "this month": "month"}.get(name)
            status = budget.get(kind) if kind else None
            shown = status.describe() + " budget" if status and status.limit_usd else money(usd)
            lines.append(f"  {name:<11} {shown:<36} {_tasks(n)}")
        if report.running_tasks:
            live = money(report.running_usd)
            lines.append(f"  running     {live:<36} {_tasks(report.running_tasks)} (live cost so far)")
    breakdowns: list[tuple[str, str, list[tuple[str, float, int]]]] = [
        ("agent", f"by agent ({report.scope})", report.spend.by_agent),
        ("category", f"by category ({report.scope})", report.spend.by_category),
        ("day", "by day", [(p.label, usd, n) for p, usd, n in report.by_day]),
        ("week", "by week", [(f"{p.key} ({p.label})", usd, n) for p, usd, n in report.by_week]),
        ("month", "by month", [(p.label, usd, n) for p, usd, n in report.by_month]),
    ]
    for key, title, rows in breakdowns:
        if (only is not None and only != key) or (only is None and key not in sections):
            continue
        lines.append(f"{title}:")
        lines += [f"  {name or '?':<26} {money(usd):>10}  {_tasks(n)}" for name, usd, n in rows] or ["  nothing yet"]
    if only is None:
        unknown = report.spend.unknown
        if unknown:
            lines.append(f"{_tasks(unknown)} ({report.scope}) with an unknown cost, not counted.")
        if report.savings is not None:
            lines.append(f"Savings ({report.scope}): {report.savings.sentence()}")
    return "\n".join(lines)


def _tasks(n: int) -> str:
    return f"{n} task" if n == 1 else f"{n} tasks"


def render_budgets(lines: list[BudgetLine], statuses: list[BudgetStatus], tz: ZoneInfo) -> str:
    """The budgets in force, where each comes from, and the spend against the day's and month's."""
    spent: dict[str, BudgetStatus] = {status.period.kind: status for status in statuses}
    out = ["💰 Budgets"]
    for line in lines:
        text = f"• per {line.word}: {line.shown()}"
        if line.set_by:
            when = local_time(line.set_at, tz, "%b %d %H:%M")
            was = "none" if line.configured is None else money(line.configured)
            text += f", set by {line.set_by} on {when} (bots.yaml: {was})"
        else:
            text += " (bots.yaml)"
        status = spent.get(line.word)
        if status is not None:
            when = "today" if line.word == "day" else "this month"
            share = f" ({status.percent:.0f}%)" if status.percent is not None else ""
            text += f" · {money(status.spent_usd)} spent {when}{share}"
        out.append(text)
    return "\n".join(out)


__all__ = ["CostReport", "cost_report", "render_budgets", "render_cost_report"]
