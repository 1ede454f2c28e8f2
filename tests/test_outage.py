"""The transports' outage tracker: logs trouble once per change, gives up once after exit_after_s."""

from __future__ import annotations

import logging

import pytest

from bot.outage import Outage


def test_trouble_is_logged_once_per_change_and_ends_the_bot_only_after_exit_after_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    reasons: list[str] = []
    outage = Outage("slack", 10, reasons.append, recovered="connected again", clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="bot.outage"):
        assert not outage.observe(None)
        for t in (1, 2, 3):
            now[0] = t
            assert not outage.observe("no socket")
        now[0] = 4
        assert not outage.observe(None), "a break resets the clock"
        for t in (5, 9, 15):
            now[0] = t
            assert not outage.observe("no socket" if t < 9 else "refused")
        now[0] = 15.5
        assert outage.observe("refused")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "slack: no socket",
        "slack: connected again after 3s",
        "slack: no socket",
        "slack: refused",
        "slack: refused for 10s; exiting so the supervisor restarts the bot",
    ]
    assert reasons == ["slack: refused for 10s; exiting so the supervisor restarts the bot"]
