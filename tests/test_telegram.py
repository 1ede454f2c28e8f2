"""The Telegram transport at handler level: real PTB Application and handlers, the Bot API mocked by respx.

Updates are built as Telegram sends them (JSON) and fed to ``Application.process_update``; what the
bot sends is read back from the mocked HTTP calls.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from telegram import Update

from bot.app import App
from bot.outbox import Outbox
from bot.telegram import TelegramTransport
from bot.telegram_health import PollHealth
from bot.telegram_messages import TelegramSender, to_html, to_inbound
from core.access import Gate
from core.commands import Commands
from core.errors import DeliveryFailed, RetryLater
from core.messages import Button, OutboxItem
from core.progress import Progress
from tests.conftest import requires_tmux

TOKEN = "1:test-token"
API = f"https://api.telegram.org/bot{TOKEN}"
BOT = {"id": 999, "is_bot": True, "first_name": "Orchestra", "username": "orch_bot"}
ALICE = {"id": 111, "is_bot": False, "first_name": "Alice", "username": "alice"}


def message_update(update_id: int, text: str, *, user: dict[str, Any] = ALICE, chat: dict[str, Any] | None = None,
                   reply_to: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    chat = chat or {"id": user["id"], "type": "private", "first_name": user["first_name"]}
    message: dict[str, Any] = {"message_id": 10 + update_id, "date": 1_800_000_000, "chat": chat, "from": user,
                               "text": text}  # fmt: skip
    if reply_to is not None:
        message["reply_to_message"] = reply_to
    return {"update_id": update_id, "message": message}


def tap_update(update_id: int, data: str, message: dict[str, Any], *, user: dict[str, Any] = ALICE) -> dict[str, Any]:
    query = {"id": f"q{update_id}", "from": user, "chat_instance": "c", "data": data, "message": message}
    return {"update_id": update_id, "callback_query": query}


@dataclass
class Api:
    """What the mocked Bot API received, per method, as parsed parameters."""

    router: respx.MockRouter
    next_id: int = 100

    def params(self, method: str) -> list[dict[str, Any]]:
        return [_form(call.request) for call in self.router.calls if call.request.url.path.endswith("/" + method)]

    def message(self, request: httpx.Request) -> httpx.Response:
        params = _form(request)
        self.next_id += 1
        result = {"message_id": self.next_id, "date": 1_800_000_000, "chat": {"id": int(params["chat_id"]),
                  "type": "private"}, "from": BOT, "text": params.get("text", "")}  # fmt: skip
        if "reply_markup" in params:
            result["reply_markup"] = params["reply_markup"]
        return httpx.Response(200, json={"ok": True, "result": result})

    def message_document(self, request: httpx.Request) -> httpx.Response:
        self.next_id += 1
        result = {"message_id": self.next_id, "date": 1, "chat": {"id": 111, "type": "private"}, "from": BOT,
                  "document": {"file_id": "f", "file_unique_id": "u"}}  # fmt: skip
        return httpx.Response(200, json={"ok": True, "result": result})


def _form(request: httpx.Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("multipart/"):
        return {"multipart": request.content}
    params: dict[str, Any] = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    for key in ("reply_markup", "reply_parameters", "commands"):
        if key in params:
            params[key] = json.loads(params[key])
    return params


@pytest.fixture
def api() -> Iterator[Api]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        mock = Api(router)
        ok = httpx.Response(200, json={"ok": True, "result": True})
        router.post("/getMe").respond(json={"ok": True, "result": BOT})
        router.post("/setMyCommands").mock(return_value=ok)
        router.post("/answerCallbackQuery").mock(return_value=ok)
        router.post("/sendMessage").mock(side_effect=mock.message)
        router.post("/editMessageText").mock(side_effect=mock.message)
        router.post("/editMessageReplyMarkup").mock(side_effect=mock.message)
        yield mock


@dataclass
class Bridge:
    app: App
    transport: TelegramTransport
    outbox: Outbox

    async def receive(self, payload: dict[str, Any]) -> None:
        await self.transport.app.process_update(Update.de_json(payload, self.transport.app.bot))
        await self.transport.answered()  # tap answers go on the side

    async def deliver(self) -> None:
        for _ in range(3):
            await self.outbox.deliver_due()


@pytest.fixture
async def bridge(make_app: Any, repo: Path, api: Api) -> AsyncIterator[Bridge]:
    app: App = make_app(workspace=str(repo), policy__approval_for=["devops"],
                        telegram={"enabled": True, "allowed_user_ids": [111], "progress_interval_s": 0})  # fmt: skip
    assert app.engine.acquire()
    await app.engine.start()
    settings = app.config.telegram
    commands = Commands(app.service, app.clock)
    gate = Gate(app.service, app.clock, allowed_users=["111"], allowed_chats=[], per_minute=30)
    transport = TelegramTransport(settings, TOKEN, commands=commands, gate=gate, store=app.store, clock=app.clock,
                                  on_fatal=lambda reason: None)  # fmt: skip
    outbox = Outbox(app.store, app.clock, transport.sender)
    progress = Progress(app.service, app.clock, interval_s=0, refresh_s=60, wake=outbox.wake)
    commands.changed = progress.touch
    app.engine.listeners.append(progress.on_event)
    await transport.app.initialize()
    transport.outbox = outbox
    yield Bridge(app, transport, outbox)
    progress.close()
    await transport.app.shutdown()
    await app.engine.stop()


@requires_tmux
async def test_a_task_message_is_acknowledged_with_buttons_then_completed(bridge: Bridge, api: Api) -> None:
    await bridge.receive(message_update(1, "Create User model"))
    await bridge.deliver()
    [ack] = api.params("sendMessage")
    assert ack["chat_id"] == "111" and ack["parse_mode"] == "HTML"
    assert ack["text"].startswith("🏃 t1 · standin · backend\nCreate User model")
    assert ack["reply_parameters"]["message_id"] == 11
    buttons = [b["callback_data"] for row in ack["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["cancel:t1", "peek:t1"]
    await bridge.app.engine.wait_finished("t1", timeout=30)
    await bridge.deliver()
    sent = api.params("sendMessage")
    assert len(sent) == 2, "the completion is a new message"
    assert sent[1]["text"].startswith("✅ t1 succeeded · standin") and "user_model.py +" in sent[1]["text"]
    assert [b["callback_data"] for row in sent[1]["reply_markup"]["inline_keyboard"] for b in row] == [
        "log:t1", "retry:t1",
    ]  # fmt: skip
    edits = api.params("editMessageText")
    assert edits and edits[-1]["message_id"] == "101" and "✅ succeeded" in edits[-1]["text"]
    assert "reply_markup" not in edits[-1], "the acknowledgement loses its buttons when the task ends"


@requires_tmux
async def test_task_text_is_escaped_and_shown_literally(bridge: Bridge, api: Api) -> None:
    await bridge.receive(message_update(1, "@echo Fix <b>bold</b> & `code` _under_ *star*"))
    await bridge.deliver()
    text = api.params("sendMessage")[0]["text"]
    assert "Fix &lt;b&gt;bold&lt;/b&gt; &amp; `code` _under_ *star*" in text
    await bridge.app.engine.wait_finished("t1", timeout=30)


@requires_tmux
async def test_approve_button_is_answered_and_a_second_tap_is_told_who(bridge: Bridge, api: Api) -> None:
    await bridge.receive(message_update(1, "set up the GitHub Actions CI pipeline"))
    await bridge.deliver()
    card = api.params("sendMessage")[0]
    assert "Needs approval" in card["text"]
    message = {"message_id": 101, "date": 1, "chat": {"id": 111, "type": "private"}, "from": BOT,
               "text": card["text"], "reply_markup": card["reply_markup"]}  # fmt: skip
    await bridge.receive(tap_update(2, "approve:t1", message))
    await bridge.receive(tap_update(3, "approve:t1", message))
    answers = api.params("answerCallbackQuery")
    assert answers[0]["callback_query_id"] == "q2" and answers[0]["text"].startswith("✅ t1 approved")
    assert re.fullmatch(r"t1 was already approved by @alice at \d\d:\d\d", answers[1]["text"])
    assert len(bridge.app.store.approvals("t1")) == 1
    await bridge.app.engine.wait_finished("t1", timeout=30)


@requires_tmux
async def test_strangers_are_refused_once_and_audited(bridge: Bridge, api: Api) -> None:
    stranger = {"id": 666, "is_bot": False, "first_name": "M", "username": "mallory"}
    await bridge.receive(message_update(1, "/status", user=stranger))
    await bridge.receive(message_update(2, "Create User model", user=stranger))
    await bridge.deliver()
    [refusal] = api.params("sendMessage")
    assert refusal["text"] == (
        "⛔ This bot is private. Its owner can let you in by adding your user id 666 to "
        "telegram.allowed_user_ids in bots.yaml."
    )
    assert bridge.app.store.list_tasks() == []
    assert [a["action"] for a in bridge.app.store.audit_log()] == ["refused", "refused"]


@requires_tmux
async def test_an_update_delivered_twice_is_handled_once(bridge: Bridge, api: Api) -> None:
    update = message_update(7, "@echo once")
    await bridge.receive(update)
    await bridge.receive(update)
    await bridge.deliver()
    assert len(bridge.app.store.list_tasks()) == 1 and len(api.params("sendMessage")) == 1
    await bridge.app.engine.wait_finished("t1", timeout=30)


# -- the sender: Bot API errors become the outbox's typed errors --------------------------------
def item(**kw: Any) -> OutboxItem:
    defaults: dict[str, Any] = {"id": 1, "channel": "telegram", "kind": "reply", "chat_id": "111", "text": "hi",
                                "dedupe_key": "k"}  # fmt: skip
    return OutboxItem(**{**defaults, **kw})


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, {"description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}}, "retry"),
        (502, {"description": "Bad Gateway"}, "transient"),
        (403, {"description": "Forbidden: bot was blocked by the user"}, "permanent"),
        (400, {"description": "Bad Request: chat not found"}, "permanent"),
    ],
)
async def test_send_errors_are_typed(status: int, body: dict[str, Any], expected: str) -> None:
    from telegram import Bot

    with respx.mock(base_url=API) as router:
        router.post("/sendMessage").respond(status, json={"ok": False, "error_code": status, **body})
        sender = TelegramSender(Bot(TOKEN))
        with pytest.raises((RetryLater, DeliveryFailed)) as caught:
            await sender.deliver(item())
    if expected == "retry":
        assert isinstance(caught.value, RetryLater) and caught.value.after_s == 7
    else:
        assert isinstance(caught.value, DeliveryFailed) and caught.value.permanent == (expected == "permanent")


async def test_an_edit_with_nothing_new_counts_as_done_and_long_text_becomes_a_file(api: Api) -> None:
    from telegram import Bot

    api.router.post("/editMessageText").respond(
        400, json={"ok": False, "error_code": 400, "description": "Bad Request: message is not modified: same"}
    )
    api.router.post("/sendDocument").mock(side_effect=api.message_document)
    sender = TelegramSender(Bot(TOKEN))
    assert await sender.deliver(item(kind="progress", edit_of=3, edit_message_id="55", text="same")) == "55"
    long = "\n".join(f"line {n}" for n in range(900))
    assert await sender.deliver(item(text=long, task_id="t4")) == "101"
    [call] = [c for c in api.router.calls if c.request.url.path.endswith("/sendDocument")]
    assert b'filename="t4.txt"' in call.request.content and b"line 899" in call.request.content


def test_html_and_buttons() -> None:
    assert to_html("a <b> & c", "x < y") == "a &lt;b&gt; &amp; c\n<pre>x &lt; y</pre>"
    assert to_html("_*`[]()~>#+-=|{}.!") == "_*`[]()~&gt;#+-=|{}.!"
    from bot.telegram_messages import from_markup, to_markup

    keyboard = ((Button("✅ Approve", "approve", "t3"), Button("✖ Reject", "reject", "t3")),)
    markup = to_markup(keyboard)
    assert markup is not None and from_markup(markup) == keyboard


# -- inbound ------------------------------------------------------------------------------------
def inbound(payload: dict[str, Any]) -> Any:
    return to_inbound(Update.de_json(payload, None), "orch_bot", 999)


def test_updates_become_neutral_messages() -> None:
    private = inbound(message_update(1, "Create User model"))
    assert (private.text, private.user_id, private.user_name, private.chat.private) == (
        "Create User model", "111", "@alice", True,
    )  # fmt: skip
    assert private.event_id == "telegram:1" and private.message_id == "11"
    group = {"id": -100, "type": "supergroup", "title": "team"}
    assert inbound(message_update(2, "/status@orch_bot", chat=group)).text == "/status"
    assert inbound(message_update(3, "/status@other_bot", chat=group)) is None
    assert inbound(message_update(4, "just chatting", chat=group)) is None
    assert inbound(message_update(5, "@orch_bot fix the tests", chat=group)).text == "fix the tests"
    ours = {"message_id": 50, "date": 1, "chat": group, "from": BOT, "text": "card"}
    assert inbound(message_update(6, "and the docs", chat=group, reply_to=ours)).text == "and the docs"
    bot_user = {"id": 5, "is_bot": True, "first_name": "B"}
    assert inbound(message_update(7, "hi", user=bot_user)) is None
    card = {"message_id": 50, "date": 1, "chat": {"id": 111, "type": "private"}, "from": BOT, "text": "x",
            "reply_markup": {"inline_keyboard": [[{"text": "⏹ Cancel", "callback_data": "cancel:t2"}]]}}  # fmt: skip
    tap = inbound(tap_update(8, "cancel:t2", card)).tap
    assert (tap.action, tap.task_id, tap.message_id) == ("cancel", "t2", "50")
    assert tap.keyboard == ((Button("⏹ Cancel", "cancel", "t2"),),)


# -- transport health ---------------------------------------------------------------------------
class Ticks:
    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


def test_conflicts_back_off_longer_than_the_poll_and_log_one_line(caplog: pytest.LogCaptureFixture) -> None:
    ticks = Ticks()
    health = PollHealth(poll_timeout_s=30, stall_after_s=120, exit_after_s=600, clock=ticks)
    with caplog.at_level(logging.WARNING, logger="bot.telegram_health"):
        for _ in range(3):
            health.begin()
            health.end(409)
    assert health.wait_s() == 4 * 31  # 31 s, then 62 s, then 124 s: always longer than the 30 s poll
    conflict_lines = [r for r in caplog.records if "409 Conflict" in r.getMessage()]
    assert len(conflict_lines) == 1
    assert health.verdict() is None
    ticks.value += 601
    assert health.verdict() == "exit"
    health.end(200)
    assert health.verdict() is None and health.wait_s() == 0


def test_a_poll_that_never_returns_is_a_stall() -> None:
    ticks = Ticks()
    health = PollHealth(poll_timeout_s=30, stall_after_s=120, exit_after_s=600, clock=ticks)
    health.begin()
    ticks.value += 100
    assert health.verdict() is None
    ticks.value += 21
    assert health.verdict() == "stalled"
    health.end(200)
    ticks.value += 121  # nothing polled since: the loop itself died
    assert health.verdict() == "stalled"
