"""Budget alerts: which thresholds of the day's and month's budgets are newly crossed, and their text."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.notify import Notifier
from core.text import money

if TYPE_CHECKING:
    from collections.abc import Iterable

    from core.config import Config
    from core.costs.budgets import BudgetStatus
    from core.costs.tracker import CostTracker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BudgetAlert:
    key: str  # alert:day:2026-11-25:80
    threshold: int
    status: BudgetStatus
    text: str
    channels: list[str] = field(default_factory=list)


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
        Notifier(tracker.config, store, tracker.clock, channels=targets).budget_alert(alert.key, alert.text)
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


__all__ = ["BudgetAlert", "check_budget_alerts"]
