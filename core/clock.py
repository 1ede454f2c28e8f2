"""The clock is passed in, never read globally, so tests can control time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (wall clock, for records)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


def iso(ts: float | None) -> str:
    """Format an epoch timestamp as an ISO-8601 UTC string for display; '' for None."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
