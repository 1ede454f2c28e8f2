"""The bot's scheduled jobs: digest on time across DST, caught up once, budget alerts, watchdog."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.console import render
from bot.scheduler import Scheduler, SchedulerDeps, digest_trigger, start
from core.config import Config
from core.messages import Attachment
from core.store import Store
from tests.test_costs import PARIS, ManualClock, add_task, at, make_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "orchestra.db")


def scheduler(store: Store, clock: ManualClock, tmp_path: Path, config: Config | None = None,
              channels: tuple[str, ...] = ("console", "telegram")) -> Scheduler:  # fmt: skip
    deps = SchedulerDeps(config or make_config(), store, clock, tmp_path, lambda: list(channels))
    return Scheduler(deps)


def fires(config: Config, after: str, count: int) -> list[str]:
    """The next ``count`` digest times after a Paris wall time, as Paris wall times with their offset."""
    trigger = digest_trigger(config)
    fire = trigger.get_next_fire_time(None, datetime.fromtimestamp(at(after), UTC))
    out = []
    for _ in range(count):
        assert fire is not None
        out.append(datetime.fromtimestamp(fire.timestamp(), PARIS).strftime("%m-%d %H:%M%z"))
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return out


# -- the schedule ----------------------------------------------------------------------------------
def test_digest_stays_at_0800_local_across_both_dst_changes() -> None:
    config = make_config(digest={"time": "08:00"})
    assert fires(config, "2026-03-27 12:00", 4) == [
        "03-28 08:00+0100", "03-29 08:00+0200", "03-30 08:00+0200", "03-31 08:00+0200",
    ]  # fmt: skip
    assert fires(config, "2026-10-23 12:00", 4) == [
        "10-24 08:00+0200", "10-25 08:00+0100", "10-26 08:00+0100", "10-27 08:00+0100",
    ]  # fmt: skip
    # in UTC the digest moves an hour earlier in spring and back in autumn
    trigger = digest_trigger(config)
    spring = trigger.get_next_fire_time(None, datetime(2026, 3, 29, 0, 0, tzinfo=UTC))
    assert spring is not None and spring.astimezone(UTC).hour == 6


def test_a_time_inside_the_changing_hour_still_sends_one_digest_a_day(store: Store, tmp_path: Path) -> None:
    config = make_config(digest={"time": "02:30"})
    # spring: 02:30 does not exist on 29 March; that day's digest comes at 03:30 summer time
    assert fires(config, "2026-03-27 12:00", 3) == ["03-28 02:30+0100", "03-29 03:30+0200", "03-30 02:30+0200"]
    # autumn: 02:30 happens twice on 25 October; the trigger moves on instead of looping
    autumn = fires(config, "2026-10-23 12:00", 4)
    assert autumn == ["10-24 02:30+0200", "10-25 02:30+0200", "10-25 02:30+0100", "10-26 02:30+0100"]
    clock = ManualClock(0)
    jobs = scheduler(store, clock, tmp_path, config)
    sent = []
    for fire in (at("2026-10-25 00:30") + 2 * 3600, at("2026-10-25 00:30") + 3 * 3600):  # both 02:30s
        clock.ts = fire
        sent.append(asyncio.run(jobs.send_due_digest()))
    assert sent == [True, False]
    assert [n.dedupe_key for n in store.outbox_queue("console")] == ["console:digest:2026-10-25"]


async def test_the_bot_process_schedules_and_shuts_down(store: Store, tmp_path: Path) -> None:
    clock = ManualClock(at("2026-11-25 07:00"))  # before today's digest: the catch-up has nothing to send
    jobs = start(SchedulerDeps(make_config(), store, clock, tmp_path, lambda: ["console"]))
    try:
        assert jobs.running
        next_at = jobs.next_digest_at()
        assert next_at is not None and next_at.astimezone(PARIS).strftime("%H:%M") == "08:00"
        assert next_at.timestamp() > time.time()
        ids = {job.id for job in jobs._aps.get_jobs()}
        assert {"digest", "budgets", "watchdog"} <= ids
        await _until(lambda: not any(j.id == "digest-catch-up" for j in jobs._aps.get_jobs()))
    finally:
        jobs.shutdown()
    assert not jobs.running
    jobs.shutdown()  # twice is fine
    assert store.outbox_queue("console") == []


async def test_start_sends_a_digest_missed_while_down(store: Store, tmp_path: Path) -> None:
    add_task(store, at("2026-11-25 06:00"), text="done overnight")
    clock = ManualClock(at("2026-11-25 09:15"))  # the bot comes back after 08:00
    jobs = start(SchedulerDeps(make_config(), store, clock, tmp_path, lambda: ["console"]))
    try:
        await _until(lambda: store.digest_sent("2026-11-25"))
    finally:
        jobs.shutdown()
    [note] = store.outbox_queue("console")
    assert note.kind == "digest" and "done overnight" in note.text
    chart = tmp_path / "digests" / "2026-11-25.png"
    assert f"Chart: {chart}" in render(note) and chart.read_bytes().startswith(PNG_SIGNATURE)
    assert note.attachment == Attachment("photo", "chart.png", path=str(chart)) and note.buttons == ()


# -- catching up -----------------------------------------------------------------------------------
async def test_a_missed_digest_is_caught_up_once(store: Store, tmp_path: Path) -> None:
    store.record_digest("2026-11-24", at("2026-11-24 08:00"), 0, at("2026-11-24 08:00"), 0)
    add_task(store, at("2026-11-24 20:00"), text="Add REST endpoint for orders")
    clock = ManualClock(at("2026-11-25 10:30"))  # down at 08:00, back 2.5 h later (grace: 6 h)
    assert await scheduler(store, clock, tmp_path).send_due_digest()
    for channel in ("console", "telegram"):
        [note] = store.outbox_queue(channel)
        assert note.kind == "digest" and "Add REST endpoint for orders" in note.text
        assert note.dedupe_key == f"{channel}:digest:2026-11-25"
    assert "Chart:" not in store.outbox_queue("telegram")[0].text  # the chart file is for the chat, not its text
    restarted = scheduler(store, clock, tmp_path)
    clock.ts = at("2026-11-25 11:00")
    assert not await restarted.send_due_digest()  # a second restart the same morning sends nothing
    assert len(store.outbox_queue("console")) == 1
    last = store.last_digest()
    assert last is not None and (last["period"], last["since"]) == ("2026-11-25", at("2026-11-24 08:00"))
    clock.ts = at("2026-11-26 08:00")
    assert await restarted.send_due_digest()  # the next morning as usual
    assert "Nothing finished since Wed 25 Nov 10:30." in store.outbox_queue("console")[-1].text


async def test_a_digest_missed_beyond_the_grace_time_is_skipped_loudly(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.record_digest("2026-11-24", at("2026-11-24 08:00"), at("2026-11-23 08:00"), at("2026-11-24 08:00"), 0)
    clock = ManualClock(at("2026-11-25 19:00"))  # 11 h late, grace 6 h
    with caplog.at_level(logging.WARNING, logger="bot.scheduler"):
        assert not await scheduler(store, clock, tmp_path).send_due_digest()
    assert store.outbox_queue("console") == [] and not store.digest_sent("2026-11-25")
    assert "digest of 2026-11-25 was missed by 11h00m" in caplog.text
    clock.ts = at("2026-11-26 08:00")
    assert await scheduler(store, clock, tmp_path).send_due_digest()


async def test_a_brand_new_store_has_missed_no_digest(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first start of a bot, hours after the digest time: nothing was missed, so nothing is said loudly."""
    clock = ManualClock(at("2026-11-25 19:00"))
    with caplog.at_level(logging.INFO, logger="bot.scheduler"):
        assert not await scheduler(store, clock, tmp_path).send_due_digest()
    assert [r.levelname for r in caplog.records] == ["INFO"] and "no digest sent yet" in caplog.text
    clock.ts = at("2026-11-26 08:00")
    assert await scheduler(store, clock, tmp_path).send_due_digest()


async def test_digest_goes_only_to_its_configured_live_channels(store: Store, tmp_path: Path) -> None:
    config = make_config(digest={"channels": ["telegram", "slack"], "chart": False})
    clock = ManualClock(at("2026-11-25 08:00"))
    assert await scheduler(store, clock, tmp_path, config).send_due_digest()
    assert store.outbox_queue("console") == [] and len(store.outbox_queue("telegram")) == 1  # slack is not configured


# -- budgets and the watchdog ----------------------------------------------------------------------
def test_budget_job_alerts_each_threshold_once(store: Store, tmp_path: Path) -> None:
    clock = ManualClock(at("2026-11-25 12:00"))
    jobs = scheduler(store, clock, tmp_path, make_config(budgets={"per_day_usd": 10}))
    add_task(store, at("2026-11-25 11:00"), cost=8.0)
    assert [a.key for a in jobs.check_budgets()] == ["alert:day:2026-11-25:80"]
    assert jobs.check_budgets() == []
    assert [n.kind for n in store.outbox_queue("telegram")] == ["budget_alert"]


def test_watchdog_alerts_once_per_silent_task(store: Store, tmp_path: Path) -> None:
    now = at("2026-11-25 12:00")
    quiet = _running(store, "Migrate the database", started=now - 3600, last_event=now - 20 * 60, live=0.3)
    busy = _running(store, "Busy task", started=now - 3600, last_event=now - 30, live=None)
    not_started = _running(store, "Runner never reported", started=None, last_event=None, live=None, at=now - 16 * 60)
    clock = ManualClock(now)
    jobs = scheduler(store, clock, tmp_path, make_config(watchdog={"silent_after_s": 900}))
    assert jobs.check_watchdog() == [quiet, not_started]
    [note, _] = store.outbox_queue("telegram")
    assert note.kind == "watchdog" and note.task_id == quiet
    assert note.text.splitlines() == [
        f"⏳ {quiet} has been silent for 20m00s · claude · backend · $0.30 so far",
        "Migrate the database",
        f"Peek: /peek {quiet} · Cancel: /cancel {quiet}",  # as typed in Telegram, where it is read
    ]
    assert [(b.label, b.action, b.task_id) for row in note.buttons for b in row] == [
        ("👀 Peek", "peek", quiet), ("⏹ Cancel", "cancel", quiet),
    ]  # fmt: skip
    clock.ts = now + 3600
    store.update_task(busy, last_event_at=clock.ts - 10)
    assert jobs.check_watchdog() == []  # one alert per task, however long it stays silent
    assert len(store.outbox_queue("console")) == 2
    assert "silent for 16m00s" in store.outbox_queue("console")[1].text
    console = store.outbox_queue("console")[0]
    assert f"Peek: orchestra peek {quiet} · Cancel: orchestra cancel {quiet}" in console.text  # as typed there
    assert console.buttons == () and render(console).count("orchestra peek") == 1
    off = scheduler(store, clock, tmp_path, make_config(watchdog={"silent_after_s": None}))
    assert off.check_watchdog() == []


def test_the_watchdog_is_quiet_while_a_person_is_asked_and_counts_from_the_answer(store: Store, tmp_path: Path) -> None:
    """An agent blocked on a permission request is not silent: it waits for a person. Once answered,
    its silence counts from the answer, not from its last event before the question."""
    now = at("2026-11-25 12:00")
    asking = _running(store, "Install the deps", started=now - 3600, last_event=now - 40 * 60, live=None)
    call = {"tool": "Bash", "subject": "pip install requests"}
    request, _ = store.open_permission(key="k", task_id=asking, agent="claude", call=call, rule="Bash(pip install *)",
                                       why="installs a package", now=now - 39 * 60, deadline=now + 600)  # fmt: skip
    clock = ManualClock(now)
    jobs = scheduler(store, clock, tmp_path, make_config(watchdog={"silent_after_s": 900}))
    assert jobs.check_watchdog() == [], "waiting for a person is not silence"
    store.decide_permission(request.id, "allowed", by="@alice", via="telegram", now=now - 5 * 60)
    assert jobs.check_watchdog() == [], "answered 5 minutes ago: 5 minutes of silence"
    clock.ts = now + 11 * 60
    assert jobs.check_watchdog() == [asking]
    [note] = [n for n in store.outbox_queue("telegram") if n.kind == "watchdog"]
    assert note.text.startswith(f"⏳ {asking} has been silent for 16m00s")


def _running(store: Store, text: str, *, started: float | None, last_event: float | None, live: Any,
             at: float | None = None) -> str:  # fmt: skip
    task = store.create_task({"text": text, "agent": "claude", "category": "backend", "state": "running", "cwd": "/",
                              "created_at": at or (started or 0) - 5, "started_at": started,
                              "last_event_at": last_event, "live_cost_usd": live})  # fmt: skip
    return task.id


async def _until(check: Any, timeout: float = 10) -> None:
    """Let the event loop run the scheduler's jobs (real work, not a clock): no time is faked by waiting."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the scheduled job did not run"
        await asyncio.sleep(0.01)
