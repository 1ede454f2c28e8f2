"""A chat transport's trouble over time, for the watchdogs that keep a deaf bot from running on.

A watchdog reports what it sees (a problem in one line, or None) every time it looks;
:class:`Outage` logs when trouble starts, when it changes and when it ends, and once it has lasted
``exit_after_s`` without a break, tells ``on_fatal``: the bot then exits 75 so its supervisor
(systemd, Docker) restarts it, which reconnects and sets everything up again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Outage:
    def __init__(
        self,
        name: str,
        exit_after_s: float,
        on_fatal: Callable[[str], None],
        *,
        recovered: str = "working again",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.exit_after_s = exit_after_s
        self.on_fatal = on_fatal
        self.recovered = recovered
        self.clock = clock
        self.since: float | None = None  # when the trouble began; None while all is well
        self.problem: str | None = None

    def observe(self, problem: str | None) -> bool:
        """Record one look; True once the trouble has lasted ``exit_after_s`` (``on_fatal`` was told)."""
        now = self.clock()
        if problem is None:
            if self.since is not None:
                log.info("%s: %s after %.0fs", self.name, self.recovered, now - self.since)
            self.since, self.problem = None, None
            return False
        if problem != self.problem:
            log.warning("%s: %s", self.name, problem)
            self.problem = problem
        if self.since is None:
            self.since = now
        if now - self.since <= self.exit_after_s:
            return False
        reason = f"{self.name}: {problem} for {self.exit_after_s:.0f}s; exiting so the supervisor restarts the bot"
        log.error("%s", reason)
        self.on_fatal(reason)
        return True


__all__ = ["Outage"]
