"""The clock is passed in, never read globally, so tests can control time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (wall clock, for records)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()
