"""Talking to running tasks on the real engine, tmux and store, with the stand-in agent (which reads
Claude Code's stream-json input as Claude does) and a ``command`` agent (which reads nothing while it
runs): what is said is delivered, or kept and sent as a follow-up in the same session, exactly once.
The real Claude Code is driven the same way in ``tests/test_talk_e2e.py``."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from core.errors import InvalidTransition
from core.models import TaskState
from core.service import Actor
from tests.conftest import requires_tmux
from tests.test_engine import standin, started

pytestmark = requires_tmux

SLOW_COMMAND = {  # reads its prompt once (an argument) and takes its time
    "kind": "command",
    "command": sys.executable,
    "args": ["-c", "import sys, time; time.sleep(float(sys.argv[1])); print('done:', sys.argv[2][:40])", "3", "{task}"],
    "max_concurrent": 2,
}


async def until(probe: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


def running(app: App, task_id: str) -> bool:
    return app.store.get_task(task_id).state == TaskState.RUNNING


async def test_a_message_reaches_the_running_agent_and_its_summary_says_so(make_app: Any, tmp_path: Path) -> None:
    app: App = make_app(agents__steady=standin(delay="0.6"))
    await started(app)
    try:
        task_id = app.service.delegate("add the login form", agent="steady", cwd=str(tmp_path)).task.id
        await until(lambda: running(app, task_id), "the task to run")
        line = app.service.say(task_id, "use the v2 API instead", actor=Actor("@alice", "telegram", ref="u1"))
        assert line.startswith(f"💬 Sent to {task_id}'s running agent (steady)")
        again = app.service.say(task_id, "use the v2 API instead", actor=Actor("@alice", "telegram", ref="u1"))
        assert again == line, "a redelivered chat update says it once"
        task = await app.engine.wait_finished(task_id, timeout=60)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error
    [taken] = [line for line in (task.final_text or "").splitlines() if "Taken into account while working" in line]
    assert "use the v2 API instead" in taken
    [said] = app.store.task_says(task_id)
    assert (said.how, said.state, said.said_by) == ("live", "delivered", "@alice")
    assert [t.id for t in app.store.list_tasks()] == [task_id], "delivered: no follow-up"
    assert app.store.audit_search(task_id, action="say"), "who said what is audited"


async def test_an_agent_that_reads_nothing_gets_the_messages_as_one_follow_up(make_app: Any, tmp_path: Path) -> None:
    app: App = make_app(agents__slow=SLOW_COMMAND)
    await started(app)
    try:
        task_id = app.service.delegate("write the report", agent="slow", cwd=str(tmp_path)).task.id
        await until(lambda: running(app, task_id), "the task to run")
        first = app.service.say(task_id, "add a chart", actor=Actor("@alice", "telegram", ref="u1"))
        assert first.startswith(f"💬 Kept for {task_id}: slow cannot read messages while it runs")
        app.service.say(task_id, "and a summary table", actor=Actor("@bob", "slack", ref="u2"))
        await app.engine.wait_finished(task_id, timeout=30)
        follow_id = (
            await until(lambda: [t for t in app.store.list_tasks() if t.parent_id == task_id], "the follow-up")
        )[0].id
        follow = await app.engine.wait_finished(follow_id, timeout=30)
    finally:
        await app.engine.stop()
    assert follow.state == TaskState.SUCCEEDED and follow.agent == "slow"
    assert "write the report" in follow.text
    assert follow.text.endswith("- @alice: add a chart\n- @bob: and a summary table")
    assert [s.state for s in app.store.task_says(task_id)] == ["followed", "followed"]
    assert len(app.store.list_tasks()) == 2, "two messages, one follow-up"
    [ack] = [i for i in app.store.outbox_queue("console") if f"{follow_id} continues {task_id}" in i.text]
    assert "• @alice: add a chart" in ack.text and "• @bob: and a summary table" in ack.text


async def test_what_was_said_to_a_task_that_is_then_cancelled_is_dropped(make_app: Any, tmp_path: Path) -> None:
    app: App = make_app(agents__slow=SLOW_COMMAND, limits__cancel_grace_s=1)
    await started(app)
    try:
        task_id = app.service.delegate("write the report", agent="slow", cwd=str(tmp_path)).task.id
        await until(lambda: running(app, task_id), "the task to run")
        app.service.say(task_id, "add a chart")
        app.service.cancel(task_id)
        await app.engine.wait_finished(task_id, timeout=30)
        await until(lambda: app.store.task_says(task_id)[0].state != "waiting", "the message to settle")
    finally:
        await app.engine.stop()
    assert app.store.task_says(task_id)[0].state == "dropped"
    assert [t.id for t in app.store.list_tasks()] == [task_id], "a cancel is not undone by a follow-up"


async def test_stop_ends_the_turn_of_an_agent_that_allows_it_and_cancels_the_rest(
    make_app: Any, tmp_path: Path
) -> None:
    app: App = make_app(agents__steady=standin(delay="1.5"), agents__slow=SLOW_COMMAND, limits__cancel_grace_s=1)
    await started(app)
    try:
        live = app.service.delegate("add the login form", agent="steady", cwd=str(tmp_path)).task.id
        other = app.service.delegate("write the report", agent="slow", cwd=str(tmp_path)).task.id
        await until(lambda: running(app, live) and running(app, other), "both to run")
        assert app.service.stop(live).startswith(f"⏹ {live} stops after its current step; its session is kept")
        assert "cannot be interrupted mid-turn, so" in app.service.stop(other)
        stopped = await app.engine.wait_finished(live, timeout=30)
        cancelled = await app.engine.wait_finished(other, timeout=30)
        with pytest.raises(InvalidTransition, match="there is no turn to stop"):
            app.service.stop(live)
        line = app.service.say(live, "go on, but skip the tests")
    finally:
        await app.engine.stop()
    assert stopped.state == TaskState.CANCELLED and "session is kept" in (stopped.error or "")
    assert stopped.session_id, "the session id is kept for the reply"
    assert cancelled.state == TaskState.CANCELLED
    assert line.startswith(f"💬 {live} had finished, so t3 continues it in the same session")
    assert app.store.get_task("t3").parent_id == live
