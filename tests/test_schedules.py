"""Schedules: a task that starts on its own at a cron time in the digest's zone, once per run however
often it is asked (restarts included), and a run missed while the bot was down following the rule:
the latest missed run starts at start-up if it is at most ``catch_up_s`` old, older ones are skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.scheduler import Scheduler, SchedulerDeps
from core.config import parse_config
from core.errors import ConfigError
from tests.conftest import requires_tmux

pytestmark = requires_tmux
MORNING = {"name": "morning", "cron": "0 7 * * *", "task": "Run the test suite and fix what fails", "catch_up_s": 3600}


class Clock:
    def __init__(self, when: str) -> None:
        self.value = datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp()

    def now(self) -> float:
        return self.value

    def at(self, when: str) -> None:
        self.value = datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp()


@pytest.fixture
async def app(make_app: Any, repo: Path) -> AsyncIterator[App]:
    made: App = make_app(workspace=str(repo), schedules=[MORNING], digest={"timezone": "UTC", "enabled": False})
    assert made.engine.acquire()
    await made.engine.start()
    yield made
    await made.engine.stop()


def scheduler(app: App, clock: Clock) -> Scheduler:
    deps = SchedulerDeps(app.config, app.store, clock, app.home, list, start_task=app.service.start_scheduled)
    return Scheduler(deps)


async def test_a_schedule_starts_its_task_at_its_time_once(app: App) -> None:
    clock = Clock("2026-12-03T06:59:50")
    jobs = scheduler(app, clock)
    assert jobs.run_schedule("morning") is None  # not yet
    clock.at("2026-12-03T07:00:01")
    first = jobs.run_schedule("morning")
    assert first is not None
    task = app.service.get(first)
    assert task.text == MORNING["task"] and task.source == "schedule" and task.requester == "schedule:morning"
    clock.at("2026-12-03T07:00:40")
    assert jobs.run_schedule("morning") == first  # the same run asked again: the same task
    assert scheduler(app, clock).catch_up_schedules() == [first]  # a restart right after: still the one task
    assert len(app.store.list_tasks(limit=10)) == 1
    assert [r["action"] for r in app.service.audit_log(first)] == ["delegate"]


async def test_a_missed_run_starts_at_start_up_only_when_recent(app: App, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock("2026-12-03T07:40:00")  # the bot was down at 07:00; 40 minutes is within catch_up_s
    [caught] = scheduler(app, clock).catch_up_schedules()
    assert app.service.get(caught).text == MORNING["task"]
    clock.at("2026-12-04T09:30:00")  # down again at 07:00 the next day, up 2.5 hours later: skipped
    assert scheduler(app, clock).catch_up_schedules() == []
    assert "the run due 2026-12-04T07:00:00+00:00 was missed while the bot was down" in caplog.text
    assert len(app.store.list_tasks(limit=10)) == 1


def test_a_bad_schedule_is_one_line(tmp_path: Path) -> None:
    from tests.conftest import base_config

    for bad, says in (
        (
            {**MORNING, "cron": "every morning"},
            "schedules.0.cron: 'every morning' is not five cron fields",
        ),
        ({**MORNING, "cron": "0 25 * * *"}, "is not a cron expression"),
        ({**MORNING, "agent": "nobody"}, "schedules.0.agent: 'nobody' is not a configured agent"),
    ):
        data = base_config("x") | {"schedules": [bad]}
        with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
            parse_config(data, source="bots.yaml")


async def test_the_cli_lists_the_schedules_with_their_next_run(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import json

    from bot.cli.schedules import schedule

    assert schedule(app, argparse.Namespace(action="list", json=True)) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["name"] == "morning" and row["next"].endswith("T07:00+00:00") and row["last_task"] is None


async def test_chat_schedules_run_like_bots_yamls_and_at_runs_once(app: App) -> None:
    from core.commands import Commands
    from core.messages import ChatRef, Inbound

    clock = Clock("2026-12-03T06:00:00")
    chat = Commands(app.service, clock)

    def say(text: str, n: int) -> str:
        inbound = Inbound(chat=ChatRef("telegram", "111", private=True), user_id="111", user_name="@alice",
                          text=text, message_id=str(n), event_id=f"e{n}")  # fmt: skip
        return chat.handle(inbound)[0].text

    assert say("/every weekday 08:30 Triage the new issues", 1).startswith(
        "⏰ s1: every weekday at 08:30 (30 8 * * mon-fri)"
    )
    app.service.clock = clock  # the service reads the same clock as the chat here
    assert say("/at 07:15 Check the nightly build", 2).startswith("⏰ s2: once at Thu 03 Dec 07:15")
    assert "'sometimes' is not a day" in say("/every sometimes 07:00 x", 3)
    listed = say("/schedules", 4)
    assert "morning · 0 7 * * *" in listed and "s1 · 30 8 * * mon-fri" in listed and "s2 · 15 7 3 12 * · once" in listed
    deps = SchedulerDeps(app.config, app.store, clock, app.home, list, start_task=app.service.start_scheduled,
                         schedules=app.service.all_schedules, forget=app.store.remove_schedule)  # fmt: skip
    jobs = Scheduler(deps)
    clock.at("2026-12-03T07:15:20")
    [once] = jobs.run_stored_schedules()
    assert app.service.get(once).text == "Check the nightly build"
    assert [s.name for s in app.service.all_schedules()] == ["morning", "s1"]  # /at ran: gone
    clock.at("2026-12-03T08:30:05")
    [triage] = jobs.run_stored_schedules()
    assert jobs.run_stored_schedules() == [triage]  # asked again in the same minute: the same task
    assert say("/unschedule s1", 5) == "⏰ s1 removed by @alice."
    assert "is in bots.yaml: remove it there" in say("/unschedule morning", 6)
    assert [r["action"] for r in app.service.audit_log("schedule")][:1] == ["schedule"]
