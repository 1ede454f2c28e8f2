"""What a person reads, said one way everywhere: clipping, money, durations, times, state icons."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.app import App
from bot.outbox import text_length
from core.audit import audit_line
from core.messages import Outbound, OutKind
from core.models import TaskState
from core.progress import Progress
from core.summary import render_phone
from core.text import (
    ICONS,
    clip,
    format_cost,
    format_duration,
    local_time,
    money,
    stamp,
    state_icon,
    state_label,
    token_count,
)

PARIS = ZoneInfo("Europe/Paris")


def test_clip_flattens_whitespace_and_marks_the_cut() -> None:
    assert clip("fix\n  the   login\tbug", 40) == "fix the login bug"
    assert clip("fix the login bug", 8) == "fix the…"
    assert len(clip("x" * 500, 60)) == 60


def test_clip_can_keep_lines_and_the_end() -> None:
    """A log's tail is what matters: the ellipsis leads and line breaks stay."""
    assert clip("line one\nline two", 100, flat=False) == "line one\nline two"
    assert clip("line one\nline two", 9, flat=False, tail=True) == "…line two"
    assert clip("short", 5, tail=True) == "short"


def test_clip_counted_as_a_chat_platform_counts_fits_the_limit() -> None:
    """Slack and Telegram count UTF-16 units: an emoji is two, and the clipped text must still fit."""
    text = "✅ done " + "🚀" * 20
    clipped = clip(text, 21, flat=False, length=text_length)
    assert text_length(clipped) <= 21 and clipped.endswith("…") and clipped.startswith("✅ done 🚀")
    tail = clip(text, 9, flat=False, tail=True, length=text_length)
    assert text_length(tail) <= 9 and tail == "…🚀🚀🚀🚀"


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        (0, "$0.00"),
        (0.42, "$0.42"),  # not $0.4200
        (0.5, "$0.50"),
        (0.4213, "$0.4213"),  # a task's cost keeps its digits below a dollar
        (0.0031, "$0.0031"),
        (0.00021, "$0.00021"),
        (0.01, "$0.01"),
        (1, "$1.00"),
        (12.4, "$12.40"),
        (12.4567, "$12.46"),  # cents from a dollar up
        (1234.5, "$1,234.50"),
        (-0.42, "-$0.42"),
    ],
)
def test_money_has_one_rule(usd: float, shown: str) -> None:
    assert money(usd) == shown


def test_a_cost_nobody_could_price_says_so() -> None:
    assert format_cost(None) == "cost unknown"
    assert format_cost(0.03) == "$0.03"


def test_durations_and_token_counts() -> None:
    assert [format_duration(s) for s in (None, 12.54, 187, 7500)] == ["—", "12.5s", "3m07s", "2h05m"]
    assert [token_count(n) for n in (950, 12_345)] == ["950", "12.3k"]


def test_every_state_has_one_icon_and_a_label() -> None:
    assert set(ICONS) == set(TaskState)
    assert state_icon("needs_review") == state_icon(TaskState.NEEDS_REVIEW) == "👀"
    assert state_icon(TaskState.RUNNING) == "🏃" and state_icon("no-such-state") == "•"
    assert state_label(TaskState.TIMED_OUT) == "timed out"


def test_the_summary_uses_the_same_icons_and_money_as_the_card() -> None:
    summary = {
        "task_id": "t1", "task": "Add REST endpoint", "status": "timed_out", "agent": "claude",
        "category": "backend", "duration_s": 61.0, "digest": [], "files": [],
        "tokens": {"input": 1200, "output": 30}, "cost_usd": 0.42,
    }  # fmt: skip
    text = render_phone(summary)
    assert text.startswith(f"{ICONS[TaskState.TIMED_OUT]} t1 timed out · claude · backend · 1m01s")
    assert "Tokens: 1.2k in / 30 out · $0.42" in text


def test_times_are_shown_in_the_configured_zone_across_daylight_saving() -> None:
    summer = datetime(2026, 7, 1, 6, 5, tzinfo=UTC).timestamp()
    winter = datetime(2026, 12, 1, 6, 5, tzinfo=UTC).timestamp()
    assert (local_time(summer, PARIS), local_time(winter, PARIS)) == ("08:05", "07:05")
    assert local_time(winter, UTC) == "06:05"
    assert stamp(summer, PARIS) == "2026-07-01 08:05:00" and stamp(None, PARIS) == ""


def test_an_audit_line_reads_in_the_zone_it_is_given() -> None:
    ts = datetime(2026, 11, 25, 21, 40, 9, tzinfo=UTC).timestamp()
    row = {"ts": ts, "actor": "@alice", "source": "telegram", "chat": "chat 111", "action": "approve",
           "task_id": "t42", "detail": "start"}  # fmt: skip
    assert audit_line(row, PARIS) == "2026-11-25 22:40:09 @alice (telegram chat 111) approve t42 — start"
    assert audit_line(row).startswith("2026-11-25 21:40:09 ")  # UTC until a caller passes the zone


def test_a_card_shows_who_approved_at_what_time_in_the_configured_zone(make_app: Any, tmp_path: Path) -> None:
    """The host runs in UTC; the person lives in Tokyo (digest.timezone): the card says Tokyo's time."""
    app: App = make_app(workspace=str(tmp_path), digest__timezone="Asia/Tokyo")
    app.service.autostart_engine = False
    delegation = app.service.delegate("@echo hi")
    task_id = delegation.task.id
    card = Outbound("card", kind=OutKind.ACK, task_id=task_id)
    app.store.enqueue("telegram", card, chat_id="111", dedupe_key="card", ts=1.0)
    app.store.mark_delivered(app.store.outbox_queue("telegram")[-1].id, 2.0, "900")
    approved_at = datetime(2026, 11, 25, 23, 30, tzinfo=UTC).timestamp()  # 08:30 the next morning in Tokyo
    app.store.record_approval(task_id, "start", "approved", "@alice", "", approved_at)
    progress = Progress(app.service, app.clock, interval_s=0, refresh_s=60, wake=lambda: None)
    progress.flush(task_id)
    [edit] = [i for i in app.store.outbox_queue("telegram") if i.kind == "progress"]
    assert "Approved by @alice at 08:30" in edit.text, edit.text
    progress.close()
