"""Talking to a running Claude Code from the phone, end to end: its questions, a reply mid-run, /stop.

The real Claude Code (pinned, ``.agents/``) runs against the fake model server, which makes the tool
calls of ``steps`` one per turn: an ``AskUserQuestion`` (the question must reach the fake Telegram
with its options as buttons, and the tapped or typed answer must be in the model's next request), or
a slow ``Bash`` (a reply to the task's card sent meanwhile must be in the next request; ``/stop``
must end the turn and keep the session). Real engine, tmux, hook and SQLite; the chat is the fake.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.bridges import start_telegram
from core.models import TaskState
from tests.conftest import requires_tmux
from tests.fakes.model_server import STEPS_DONE, FakeModelServer
from tests.fakes.telegram import ALICE, TOKEN, FakeTelegram
from tests.test_real_clis import CASES, _agent, _binary, cli_home  # noqa: F401 - cli_home: a fixture

pytestmark = [pytest.mark.real_cli, requires_tmux, pytest.mark.usefixtures("cli_home")]

CLAUDE = next(c for c in CASES if c.name == "claude")
GROUP: dict[str, Any] = {"id": ALICE["id"], "type": "private", "first_name": ALICE["first_name"]}  # her own chat
TOKEN_ENV = "ORCH_TALK_TELEGRAM_TOKEN"
QUESTION = {
    "questions": [
        {
            "question": "Which database should I use?",
            "header": "Database",
            "options": [
                {"label": "Postgres", "description": "a server"},
                {"label": "SQLite", "description": "one file"},
            ],
            "multiSelect": False,
        }
    ]
}
SLOW = ("Bash", {"command": "sleep 8", "description": "a slow step"})


async def until(probe: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


class Chat:
    """The app, its Telegram bridge over the fake, and the fake model."""

    def __init__(self, app: App, fake: FakeTelegram, server: FakeModelServer) -> None:
        self.app, self.fake, self.server = app, fake, server

    def messages(self, needle: str) -> list[Any]:
        return [m for m in self.fake.sent if m.chat_id == GROUP["id"] and needle in m.text]

    def bodies(self) -> str:
        return "\n".join(json.dumps(call.body) for call in self.server.model_calls("anthropic"))

    async def delegate(self, text: str) -> tuple[str, Any]:
        """Send a task as Alice would; the task's id and its card."""
        self.fake.say(f"@claude {text}", user=ALICE, chat=GROUP)
        task = await until(lambda: self.app.store.list_tasks(limit=1), "the task")
        card = await until(lambda: self.messages(task[0].id), "the task's card")
        return task[0].id, card[0]


@pytest.fixture
async def chat(
    make_app: Any, repo: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[Chat]:
    _binary(CLAUDE)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    steps = request.param
    fake = FakeTelegram().start()
    with FakeModelServer(workdir=str(repo), steps=steps) as server:
        agent = {**_agent(CLAUDE, server, repo.parent), "permissions": {"allow": ["Bash(sleep *)"]}}
        telegram = {
            "enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV, "allowed_user_ids": [ALICE["id"]],
            "allowed_chat_ids": [GROUP["id"]], "notify_chat_ids": [GROUP["id"]], "poll_timeout_s": 1,
            "progress_interval_s": 0, "retry_base_s": 0.2, "retry_max_s": 1,
        }  # fmt: skip
        app: App = make_app(
            workspace=str(repo), agents__claude=agent, routing={"default_agent": "claude"},
            notify={"console": False}, digest={"enabled": False}, telegram=telegram,
        )  # fmt: skip
        assert app.engine.acquire()
        await app.engine.start()
        bridge = await start_telegram(app, fatal=lambda reason: None)
        try:
            yield Chat(app, fake, server)
        finally:
            await bridge.stop()
            await app.engine.stop()
            fake.stop()


@pytest.mark.parametrize("chat", [[("AskUserQuestion", QUESTION)]], indirect=True)
async def test_the_agents_question_reaches_the_phone_and_the_tapped_answer_reaches_the_model(chat: Chat) -> None:
    task_id, _ = await chat.delegate("set up the storage")
    [asked] = await until(lambda: chat.messages("asks"), "the question in Telegram")
    assert asked.text.startswith(f"❓ {task_id} · claude asks [Database]: Which database should I use?")
    assert "1. Postgres — a server" in asked.text and "2. SQLite — one file" in asked.text
    buttons = [b["callback_data"] for row in asked.markup["inline_keyboard"] for b in row]
    assert buttons == ["answer_0:p1", "answer_1:p1", "answer_skip:p1"]
    assert [b["text"] for row in asked.markup["inline_keyboard"] for b in row][:2] == ["Postgres", "SQLite"]

    chat.fake.tap(asked, "answer_1:p1", user=ALICE)
    task = await chat.app.engine.wait_finished(task_id, timeout=240)

    assert task.state == TaskState.SUCCEEDED, task.error
    assert '\\"Which database should I use?\\"=\\"SQLite\\"' in chat.bodies(), "the answer reached the model"
    assert "✅ @alice (telegram) answered: SQLite" in chat.fake.current(asked).text
    [request] = chat.app.store.task_permissions(task_id)
    assert (request.tool, request.state, request.reason, request.via) == ("Question", "allowed", "SQLite", "telegram")
    assert chat.app.store.audit_search(task_id, action="answer"), "the answer is audited"


@pytest.mark.parametrize("chat", [[("AskUserQuestion", QUESTION)]], indirect=True)
async def test_a_typed_reply_to_the_question_is_the_answer(chat: Chat) -> None:
    task_id, _ = await chat.delegate("set up the storage")
    [asked] = await until(lambda: chat.messages("asks"), "the question in Telegram")
    chat.fake.say("DuckDB, it is embedded", user=ALICE, chat=GROUP, reply_to=asked.message_id)
    task = await chat.app.engine.wait_finished(task_id, timeout=240)
    assert task.state == TaskState.SUCCEEDED, task.error
    assert '=\\"DuckDB, it is embedded\\"' in chat.bodies()


@pytest.mark.parametrize("chat", [[SLOW]], indirect=True)
async def test_a_reply_to_the_card_mid_run_reaches_the_running_session(chat: Chat) -> None:
    task_id, card = await chat.delegate("do the slow thing")
    await until(lambda: any(c.reply == "tool:Bash" for c in chat.server.model_calls()), "the slow step to start")
    chat.fake.say("use the v2 API instead", user=ALICE, chat=GROUP, reply_to=card.message_id)
    await until(lambda: chat.messages("Sent to"), "the answer to the reply")
    task = await chat.app.engine.wait_finished(task_id, timeout=240)

    assert task.state == TaskState.SUCCEEDED, task.error
    calls = chat.server.model_calls("anthropic")
    assert "use the v2 API instead" in json.dumps(calls[-1].body), "the model's next request carries the message"
    assert STEPS_DONE in (task.final_text or "")
    [said] = chat.app.store.task_says(task_id)
    assert (said.how, said.state) == ("live", "delivered")
    assert len([t for t in chat.app.store.list_tasks(limit=10)]) == 1, "delivered: no follow-up was needed"


@pytest.mark.parametrize("chat", [[SLOW]], indirect=True)
async def test_stop_ends_the_turn_and_keeps_the_session(chat: Chat) -> None:
    task_id, card = await chat.delegate("do the slow thing")
    await until(lambda: any(c.reply == "tool:Bash" for c in chat.server.model_calls()), "the slow step to start")
    started = time.monotonic()
    chat.fake.say("/stop", user=ALICE, chat=GROUP, reply_to=card.message_id)
    task = await chat.app.engine.wait_finished(task_id, timeout=60)

    assert time.monotonic() - started < 7, "the turn ended before the 8 s step would have"
    assert task.state == TaskState.CANCELLED
    assert "stopped by request" in (task.error or "") and "session is kept" in (task.error or "")
    assert task.session_id, "the session id is kept, so a reply resumes it"
    assert task.cost_usd is not None and task.cost_usd > 0, "the stopped turn's cost is recorded"
