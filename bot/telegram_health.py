"""Whether Telegram reaches us: the getUpdates watch (:class:`PollHealth`, fed by every poll
through :class:`PollRequest`) and, in webhook mode, what getWebhookInfo says is wrong.

Only observations live here; :class:`bot.telegram.TelegramTransport` acts on them (backs off,
restarts the poller, asks the process to exit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from telegram import Bot
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

log = logging.getLogger(__name__)


class PollHealth:
    """Watches getUpdates: when it last succeeded, whether one hangs, and 409 Conflicts.

    ``clock`` is monotonic seconds. Conflicts back off for longer than the poll timeout (doubling,
    at most five minutes), so a second poller is not fought request for request.
    """

    def __init__(
        self,
        *,
        poll_timeout_s: float,
        stall_after_s: float,
        exit_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.poll_timeout_s = poll_timeout_s
        self.stall_after_s = stall_after_s
        self.exit_after_s = exit_after_s
        self.clock = clock
        now = clock()
        self.last_ok = now
        self.last_done = now
        self.in_flight_since: float | None = None
        self.conflicts = 0
        self.failures = 0
        self.last_error = ""
        self.backoff_until = 0.0

    def wait_s(self) -> float:
        return max(0.0, self.backoff_until - self.clock())

    def begin(self) -> None:
        self.in_flight_since = self.clock()

    def end(self, status: int | None, error: str = "") -> None:
        now = self.clock()
        self.in_flight_since = None
        self.last_done = now
        if status is not None and 200 <= status < 300:
            if self.conflicts or self.failures:
                log.info("telegram: getUpdates works again (after %s)", self.last_error)
            self.last_ok, self.conflicts, self.failures, self.last_error = now, 0, 0, ""
            return
        if status == 409:
            self.conflicts += 1
            delay = min(max(300.0, self.poll_timeout_s + 1), (self.poll_timeout_s + 1) * 2 ** (self.conflicts - 1))
            self.backoff_until = now + delay
            self.last_error = "409 Conflict"
            if self.conflicts == 1:
                log.error(
                    "telegram: 409 Conflict: another process is getting this bot's updates (a second bot "
                    "with the same token?); backing off %.0fs, exiting after %.0fs without updates",
                    delay,
                    self.exit_after_s,
                )
            return
        self.failures += 1
        self.last_error = f"HTTP {status}" if status is not None else error or "no answer"
        if self.failures == 1:
            log.warning("telegram: getUpdates failed (%s); retrying", self.last_error)

    def verdict(self) -> str | None:
        """``"exit"``, ``"stalled"`` or None (healthy)."""
        now = self.clock()
        if now - self.last_ok > self.exit_after_s:
            return "exit"
        if self.in_flight_since is not None and now - self.in_flight_since > self.stall_after_s:
            return "stalled"
        if self.in_flight_since is None and now >= self.backoff_until and now - self.last_done > self.stall_after_s:
            return "stalled"
        return None


class PollRequest(HTTPXRequest):
    """The getUpdates connection, reporting every poll to :class:`PollHealth` (and waiting out back-offs)."""

    def __init__(self, health: PollHealth, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.health = health

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        if not url.endswith("/getUpdates"):
            return await super().do_request(url, method, *args, **kwargs)
        delay = self.health.wait_s()
        if delay > 0:
            await asyncio.sleep(delay)
        self.health.begin()
        status: int | None = None
        error = ""
        try:
            status, payload = await super().do_request(url, method, *args, **kwargs)
        except asyncio.CancelledError:
            self.health.in_flight_since = None  # stopped by us, not a failure
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.health.end(None, error)
            raise
        self.health.end(status, error)
        return status, payload


async def webhook_problem(bot: Bot, url: str, *, since: float) -> str | None:
    """What keeps updates from reaching us, or None: a webhook that is not ours, or updates waiting
    behind a delivery error newer than ``since`` (the last update that did reach us)."""
    try:
        info = await bot.get_webhook_info()
    except TelegramError as exc:
        return f"cannot ask the Bot API about the webhook ({exc})"
    if info.url != url:
        return f"the webhook is {info.url or 'not set'}, not {url}: another process may use this token"
    error_at = info.last_error_date.timestamp() if info.last_error_date else 0.0
    if info.pending_update_count and error_at > since:
        waiting = f"{info.pending_update_count} update(s) waiting"
        return f"Telegram cannot deliver to the webhook: {info.last_error_message or 'unknown error'} ({waiting})"
    return None
