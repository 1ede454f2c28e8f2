"""Calendar periods in the configured time zone: days, ISO weeks (Monday first) and months.

A period is the epoch range ``[start, end)`` between two local midnights, so a day lasts 23 or
25 hours across a daylight-saving change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

PeriodKind = Literal["day", "week", "month"]


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


__all__ = ["Period", "PeriodKind", "local_midnight", "period_of", "recent", "shift"]
