"""What the agents cost: per task, agent, category, day, week and month; budgets, alerts, savings.

Days, ISO weeks (Monday first) and months are calendar periods in the configured time zone
(``digest.timezone``), so a day lasts 23 or 25 hours across a daylight-saving change. Every figure
is read from the store when asked, at the time of the clock passed in; only model prices are
cached. The spend of the current day and month includes the live cost of running tasks, so a
budget stops new work before the running tasks have finished.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from core.agents.base import Usage
from core.clock import Clock
from core.config import BudgetsConfig, Config
from core.errors import BudgetExceeded
from core.store import Store

log = logging.getLogger(__name__)

PeriodKind = Literal["day", "week", "month"]
BudgetKind = Literal["day", "month"]
_PRICE_PROBE = 1000  # tokens priced to find a model's per-token rates (below any long-context tier)


# -- periods -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """One calendar day, ISO week or month in a time zone, as the epoch range ``[start, end)``."""

    kind: PeriodKind
    key: str  # 2026-11-25 | 2026-W48 | 2026-11
    first_day: date
    start: float
    end: float

    def contains(self, ts: float) -> bool:
        return self.start <= ts < self.end

    @property
    def label(self) -> str:
        d = self.first_day
        if self.kind == "day":
            return f"{d:%a} {d.day} {d:%b}"
        if self.kind == "week":
            return f"week of {d.day} {d:%b}"
        return f"{d:%b %Y}"


def local_midnight(day: date, tz: ZoneInfo) -> float:
    """The instant a local day begins (where midnight does not exist, the moment the clock jumps)."""
    return datetime.combine(day, time(0), tzinfo=tz).timestamp()


def _first_day(kind: PeriodKind, day: date) -> date:
    if kind == "week":
        return day - timedelta(days=day.weekday())
    if kind == "month":
        return day.replace(day=1)
    return day


def _add(kind: PeriodKind, first: date, n: int) -> date:
    if kind == "day":
        return first + timedelta(days=n)
    if kind == "week":
        return first + timedelta(weeks=n)
    months = first.year * 12 + first.month - 1 + n
    return date(months // 12, months % 12 + 1, 1)


def _period_from(kind: PeriodKind, first: date, tz: ZoneInfo) -> Period:
    if kind == "day":
        key = first.isoformat()
    elif kind == "week":
        iso = first.isocalendar()
        key = f"{iso.year}-W{iso.week:02d}"
    else:
        key = f"{first.year}-{first.month:02d}"
    return Period(kind, key, first, local_midnight(first, tz), local_midnight(_add(kind, first, 1), tz))


def period_of(kind: PeriodKind, ts: float, tz: ZoneInfo) -> Period:
    """The day, week or month holding the instant ``ts`` in zone ``tz``."""
    return _period_from(kind, _first_day(kind, datetime.fromtimestamp(ts, tz).date()), tz)


def shift(period: Period, n: int, tz: ZoneInfo) -> Period:
    """The period ``n`` steps later (earlier when negative) of the same kind."""
    return _period_from(period.kind, _add(period.kind, period.first_day, n), tz)


def recent(kind: PeriodKind, count: int, ts: float, tz: ZoneInfo) -> list[Period]:
    """The last ``count`` periods up to and including the one holding ``ts``, oldest first."""
    current = period_of(kind, ts, tz)
    return [shift(current, n, tz) for n in range(1 - count, 1)]


# -- figures -------------------------------------------------------------------------------------
def money(usd: float) -> str:
    """Dollars for people: $12.40, $0.42, $0.0031 (small amounts keep their digits)."""
    if usd != 0 and abs(usd) < 0.01:
        return f"${usd:.4f}"
    return f"${usd:,.2f}"


@dataclass(frozen=True)
class Spend:
    """Recorded spend over a range, with the breakdown by agent and category (largest first)."""

    total_usd: float
    tasks: int
    unknown: int
    by_agent: list[tuple[str, float, int]]
    by_category: list[tuple[str, float, int]]


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


@dataclass(frozen=True)
class BudgetAlert:
    key: str  # alert:day:2026-11-25:80
    threshold: int
    status: BudgetStatus
    text: str
    channels: list[str] = field(default_factory=list)


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


# -- the tracker ---------------------------------------------------------------------------------
BUDGET_NAMES: dict[str, str] = {"task": "per_task_usd", "day": "per_day_usd", "month": "per_month_usd"}
"""The budgets an admin can change at run time, by the word used in ``/budget day 25``."""


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


def render_budgets(lines: list[BudgetLine], statuses: list[BudgetStatus], tz: ZoneInfo) -> str:
    """The budgets in force, where each comes from, and the spend against the day's and month's."""
    spent: dict[str, BudgetStatus] = {status.period.kind: status for status in statuses}
    out = ["💰 Budgets"]
    for line in lines:
        text = f"• per {line.word}: {line.shown()}"
        if line.set_by:
            when = datetime.fromtimestamp(line.set_at, tz).strftime("%b %d %H:%M")
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


def effective_budgets(config: Config, store: Store) -> BudgetsConfig:
    """bots.yaml's budgets with the run-time overrides applied (one small query)."""
    overrides = store.budget_overrides()
    if not overrides:
        return config.budgets
    update = {name: value for name, (value, _, _) in overrides.items() if name in BUDGET_NAMES.values()}
    return config.budgets.model_copy(update=update)


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
        over = self.exceeded()
        if over is None:
            return False, ""
        when = "today" if over.period.kind == "day" else "this month"
        why = f"the {over.name} budget is spent: {over.describe()} {when}"
        if self.config.budgets.when_exceeded == "refuse":
            until = "tomorrow" if over.period.kind == "day" else "next month"
            raise BudgetExceeded(f"refused: {why}; new tasks are refused until {until} (budgets.when_exceeded)")
        return True, why

    def savings(self, start: float, end: float) -> Savings | None:
        """Savings over the range against ``budgets.reference_model`` (default: the priciest model used).

        Tokens are priced at each model's base per-token rates, since agents make many calls each
        below any long-context tier. None when no priced model or no tokens are known.
        """
        rows = self.store.cost_usage_by_model(start, end)
        if not rows:
            return None
        reference = self.config.budgets.reference_model or self._priciest([m for m, _, _, _ in rows])
        rates = unit_prices(reference) if reference else None
        if reference is None or rates is None:
            if reference:
                log.warning("no list price known for the reference model %s", reference)
            return None
        actual = sum(usd for _, _, usd, _ in rows)
        would = sum(price_at(usage, rates) for _, usage, _, _ in rows)
        only_reference = all(model == reference for model, _, _, _ in rows)
        return Savings(reference, actual, would, sum(n for _, _, _, n in rows), only_reference)

    def _priciest(self, used: Iterable[str]) -> str | None:
        configured = [a.model for a in self.config.agents.values() if a.model]
        best: tuple[float, str] | None = None
        for model in {*used, *configured}:
            rates = unit_prices(model) if model else None
            if rates is not None and (best is None or rates[0] + rates[1] > best[0]):
                best = (rates[0] + rates[1], model)
        return None if best is None else best[1]

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


# -- alerts --------------------------------------------------------------------------------------
def check_budget_alerts(tracker: CostTracker, channels: Iterable[str]) -> list[BudgetAlert]:
    """Queue an alert for every budget threshold newly crossed in the current day and month.

    Each threshold alerts once per period and limit (recorded in the store under
    ``alert:day:<date>:<pct>``): a budget an admin changes starts its thresholds afresh.
    Thresholds crossed at once send one message, for the highest; the lower ones are recorded
    with it, so they never arrive late and out of order. Safe to call as often as wanted.
    """
    store, now = tracker.store, tracker.now()
    targets = list(channels)
    sent: list[BudgetAlert] = []
    for status in tracker.budgets():
        percent = status.percent
        if percent is None:
            continue
        crossed = [t for t in tracker.config.budgets.alert_thresholds if percent >= t]
        new = [t for t in crossed if not store.alert_recorded(_alert_key(tracker, status, t))]
        if not new:
            continue
        top = max(new)
        text = _alert_text(tracker.config, status, top)
        alert = BudgetAlert(_alert_key(tracker, status, top), top, status, text, targets)
        for channel in targets:
            key = f"{channel}:{alert.key}"
            store.enqueue(channel, "budget_alert", alert.text, task_id=None, dedupe_key=key, ts=now)
        for threshold in new:
            store.record_alert(_alert_key(tracker, status, threshold), "budget", now, alert.text)
        log.info("budget alert %s: %s", alert.key, alert.text)
        sent.append(alert)
    return sent


def _alert_key(tracker: CostTracker, status: BudgetStatus, threshold: int) -> str:
    """``alert:day:<date>:<pct>``; a limit an admin changed (``/budget``) gets its own alerts (``...:<usd>``)."""
    budgets = tracker.config.budgets
    configured = budgets.per_day_usd if status.period.kind == "day" else budgets.per_month_usd
    changed = "" if status.limit_usd == configured else f":{status.limit_usd:g}"
    return f"alert:{status.period.kind}:{status.period.key}:{threshold}{changed}"


def _alert_text(config: Config, status: BudgetStatus, threshold: int) -> str:
    when = "today" if status.period.kind == "day" else "this month"
    head = f"💰 {status.name.capitalize()} budget {threshold}% used: {status.describe()} {when}"
    if status.running_usd:
        head += f" (incl. {money(status.running_usd)} still running)"
    if not status.exceeded:
        return head + "."
    then = "need approval" if config.budgets.when_exceeded == "approve" else "are refused"
    until = "tomorrow" if status.period.kind == "day" else "next month"
    return f"🚨 {head.removeprefix('💰 ')}.\nNew tasks {then} until {until}."


# -- the report behind `orchestra cost` and /cost --------------------------------------------------
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
        when = datetime.fromtimestamp(report.generated_at, ZoneInfo(report.timezone))
        lines.append(f"Costs at {when:%Y-%m-%d %H:%M} ({report.timezone})")
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


__all__ = [
    "BUDGET_NAMES",
    "BudgetAlert",
    "BudgetLine",
    "BudgetStatus",
    "CostReport",
    "CostTracker",
    "Period",
    "Savings",
    "Spend",
    "check_budget_alerts",
    "cost_report",
    "effective_budgets",
    "local_midnight",
    "money",
    "period_of",
    "recent",
    "render_budgets",
    "render_cost_report",
    "shift",
]
