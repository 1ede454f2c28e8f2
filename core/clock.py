"""The clock is passed in, never read globally, so tests can control time."""

from __future__ import annotations

import time
from datetime import UTC
from typing import Protocol

from core.text import stamp


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (wall clock, for records)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


def iso(ts: float | None) -> str:
    """``ts`` as a UTC date and time, ``''`` for None; kept for bot/cli.py until it shows
    ``core.text.stamp(ts, config.digest.zone())``, the configured zone."""
    return stamp(ts, UTC)
