"""What a person reads: money, durations, times, clipping, state labels and icons.

One rule each, so a card, a digest, a summary and the terminal say the same thing the same way.
Times a person reads are shown in the configured time zone (``digest.timezone``), never the
host's: callers pass the zone (``config.digest.zone()``), there is no global one.
"""

from __future__ import annotations

import math
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from core.models import TaskState

if TYPE_CHECKING:
    from collections.abc import Callable

ELLIPSIS = "…"
HHMM = "%H:%M"
STAMP = "%Y-%m-%d %H:%M:%S"
_MAX_DECIMALS = 8  # below a millionth of a cent, a cost reads as $0.00

ICONS: dict[str, str] = {
    TaskState.QUEUED: "⏳",
    TaskState.WAITING: "⏸",
    TaskState.AWAITING_APPROVAL: "🔐",
    TaskState.RUNNING: "🏃",
    TaskState.SUCCEEDED: "✅",
    TaskState.NEEDS_REVIEW: "👀",
    TaskState.APPROVED: "✅",
    TaskState.REJECTED: "↩",
    TaskState.FAILED: "❌",
    TaskState.CANCELLED: "⏹",
    TaskState.TIMED_OUT: "⏱",
    TaskState.OVER_BUDGET: "💸",
}
"""The icon of each task state; keys are ``TaskState`` (a ``StrEnum``), so ``"failed"`` finds one too."""


def state_icon(state: str) -> str:
    """The state's icon, ``•`` for a state without one."""
    return ICONS.get(state, "•")


def state_label(state: str) -> str:
    """A state as words: ``needs review``, ``timed out``."""
    return str(state).replace("_", " ")


def clip(text: str, size: int, *, flat: bool = True, tail: bool = False, length: Callable[[str], int] = len) -> str:
    """``text`` in at most ``size`` units of ``length``, an ellipsis marking what was cut.

    ``flat`` folds every run of whitespace (line breaks too) into one space first; ``tail`` keeps
    the end instead of the start (``…`` then leads). ``length`` is how the limit is counted:
    ``len`` for characters, or a chat platform's count (UTF-16 units), which the result then fits.
    """
    if flat:
        text = " ".join(text.split())
    if length(text) <= size:
        return text
    keep = max(0, size - length(ELLIPSIS))
    part = text[len(text) - keep :] if tail and keep else text[:keep]
    while part and length(part) + length(ELLIPSIS) > size:  # only when a unit is not a character
        part = part[1:] if tail else part[:-1]
    return ELLIPSIS + part if tail else part + ELLIPSIS


def money(usd: float) -> str:
    """Dollars for people: cents from $1 up ($12.40, $1,234.00), four significant digits below
    ($0.42, $0.4213, $0.0031), never fewer than two decimals."""
    sign, amount = ("-" if usd < 0 else ""), abs(usd)
    if amount == 0 or amount >= 1:
        return f"{sign}${amount:,.2f}"
    decimals = min(_MAX_DECIMALS, max(2, 3 - math.floor(math.log10(amount))))
    digits = f"{amount:.{decimals}f}".rstrip("0")
    whole, _, fraction = digits.partition(".")
    return f"{sign}${whole}.{fraction.ljust(2, '0')}"


def format_cost(usd: float | None) -> str:
    """A task's cost as :func:`money`, or ``cost unknown`` when no price is known."""
    return "cost unknown" if usd is None else money(usd)


def format_duration(seconds: float | None) -> str:
    """``12.5s``, ``3m07s``, ``2h05m``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def token_count(n: int) -> str:
    """Tokens for people: ``950``, ``12.3k``."""
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def disk_size(n: int) -> str:
    """Bytes for people: ``512 B``, ``12.0 KB``, ``3.4 MB``, ``1.2 GB``."""
    size, unit = float(n), "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            break
        size /= 1024
    return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"


def local_time(ts: float, tz: tzinfo, fmt: str = HHMM) -> str:
    """The instant ``ts`` on the wall clock of ``tz`` (the configured zone), as ``fmt`` (``08:05``)."""
    return datetime.fromtimestamp(ts, tz).strftime(fmt)


def stamp(ts: float | None, tz: tzinfo) -> str:
    """Date and time of ``ts`` in ``tz`` (``2026-11-25 08:05:09``); ``''`` for None."""
    return "" if ts is None else local_time(ts, tz, STAMP)


__all__ = [
    "HHMM",
    "ICONS",
    "STAMP",
    "clip",
    "disk_size",
    "format_cost",
    "format_duration",
    "local_time",
    "money",
    "stamp",
    "state_icon",
    "state_label",
    "token_count",
]
