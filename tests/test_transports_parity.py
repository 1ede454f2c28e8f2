"""Telegram and Slack give the same answers to the same commands.

Each command goes in the way its platform sends it (a Telegram update as JSON, a Slack slash command
as Slack posts it), through that transport's inbound conversion, to the one command layer; the
answers are rendered in the platform's markup (HTML, mrkdwn) and read back as plain text. Each
transport gets its own data directory seeded alike, so a command that changes a task answers the
same on both.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot, Update

from bot.app import App
from bot.slack_messages import action_to_inbound, event_to_inbound, slack_syntax, slash_to_inbound, to_mrkdwn
from bot.telegram_messages import to_html, to_inbound
from core.commands import Commands, Syntax
from core.messages import Inbound, Outbound, OutKind
from core.service import Actor
from tests.conftest import requires_tmux
from tests.fakes.slack import CHANNEL, block_action, direct_message, mention, slash_command
from tests.fakes.slack import Message as SlackMessage

pytestmark = requires_tmux

TG_USER = {"id": 111, "is_bot": False, "first_name": "Alice", "username": "alice"}
SLACK_USER = {"id": "UALICE01", "name": "alice"}

COMMANDS = [
    "/start", "/help", "/status", "/agents", "/cost", "/digest", "/peek t1", "/screen t1", "/log t1",
    "/cancel t1", "/cancel", "/retry t1", "/approve t1", "/approve t99", "/reject t1 too risky", "/kill",
    "/delegate @echo say <hello> & *goodbye*", "/delegate", "set up the CI pipeline again",
]  # fmt: skip


def telegram_inbound(text: str) -> Inbound:
    message = {"message_id": 5, "date": 1_800_000_000, "chat": {"id": 111, "type": "private", "first_name": "Alice"},
               "from": TG_USER, "text": text}  # fmt: skip
    inbound = to_inbound(Update.de_json({"update_id": 1, "message": message}, Bot("1:parity")), "orch_bot", 999)
    assert inbound is not None
    return inbound


def slack_inbound(text: str) -> Inbound:
    if not text.startswith("/"):
        inbound = event_to_inbound(direct_message(text, user=SLACK_USER), "UBOT0001")
        assert inbound is not None and inbound.user_name == SLACK_USER["id"]
        return replace(inbound, user_name="@alice")  # events carry only the id: the transport asks users.info
    return slash_to_inbound(slash_command(text[1:], user=SLACK_USER, channel="DALICE001"))


SYNTAX = {"telegram": Syntax(), "slack": slack_syntax("/orchestra")}


def commands_for(app: App, platform: str) -> Commands:
    return Commands(app.service, app.clock, syntax=SYNTAX[platform])


def plain(out: Outbound, platform: str) -> dict[str, Any]:
    """What a person reads: the rendered markup back to text, the buttons, the file's name.

    Slack's command syntax is read back as Telegram's, so the rest of the answer can be compared."""
    if platform == "telegram":
        text = html.unescape(re.sub(r"</?pre>", "", to_html(out.text, out.code)))
    else:
        rendered = to_mrkdwn(out.text, out.code)
        text = rendered.replace("```", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        text = text.replace(SYNTAX["slack"].tasks, SYNTAX["telegram"].tasks).replace("/orchestra ", "/")
    return {
        "kind": out.kind.value,
        "personal": out.personal,
        "text": text,
        "buttons": [[(b.label, b.action, b.task_id) for b in row] for row in out.buttons],
        "file": out.attachment.filename if out.attachment else None,
    }


def seeded(make_app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, repo: Path, name: str) -> App:
    """A data directory of its own with t1 waiting for approval (no engine: nothing runs or changes)."""
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / name))
    app: App = make_app(workspace=str(repo), policy__approval_for=["devops"])
    app.service.autostart_engine = False
    app.service.delegate("set up the CI pipeline", actor=Actor("@alice", "cli"))
    return app


@pytest.mark.parametrize("command", COMMANDS)
async def test_telegram_and_slack_answer_alike(
    command: str, make_app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, repo: Path
) -> None:
    answers = {}
    for platform, convert in (("telegram", telegram_inbound), ("slack", slack_inbound)):
        app = seeded(make_app, monkeypatch, tmp_path, repo, platform)
        inbound = convert(command)
        assert inbound.text == command and inbound.user_name == "@alice", platform
        answers[platform] = [plain(out, platform) for out in commands_for(app, platform).handle(inbound)]
    assert answers["telegram"] == answers["slack"]
    assert answers["slack"] and answers["slack"][0]["text"], "every command answers something"


async def test_help_speaks_each_transports_syntax(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, repo: Path
) -> None:
    app = seeded(make_app, monkeypatch, tmp_path, repo, "help")
    telegram = commands_for(app, "telegram").handle(telegram_inbound("/help"))[0].text
    slack = commands_for(app, "slack").handle(slack_inbound("/help"))[0].text
    assert "/status — running" in telegram and "Plain text is a task." in telegram
    assert "/orchestra status — running" in slack and "Plain text" not in slack and "@Orchestra TEXT" in slack
    assert "\n/status" not in slack and "/orchestra" not in telegram


@pytest.mark.parametrize("action", ["approve", "reject", "peek", "cancel"])
async def test_buttons_answer_alike(
    action: str, make_app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, repo: Path
) -> None:
    answers = {}
    for platform in ("telegram", "slack"):
        app = seeded(make_app, monkeypatch, tmp_path, repo, platform)
        commands = commands_for(app, platform)
        if platform == "telegram":
            data = {"update_id": 2, "callback_query": {"id": "q", "from": TG_USER, "chat_instance": "c",
                    "data": f"{action}:t1", "message": {"message_id": 7, "date": 1, "chat": {"id": 111,
                    "type": "private"}, "text": "card"}}}  # fmt: skip
            inbound = to_inbound(Update.de_json(data, Bot("1:parity")))
        else:
            blocks = [{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"},
                       "action_id": f"orchestra:{action}:t1", "value": f"{action}:t1"}]}]  # fmt: skip
            message = SlackMessage(channel=CHANNEL, ts="1800000001.000100", text="card", blocks=blocks)
            inbound = action_to_inbound(block_action(message, f"{action}:t1", user=SLACK_USER))
        assert inbound is not None and inbound.tap is not None and inbound.tap.action == action
        answers[platform] = [plain(out, platform) for out in commands.handle(inbound) if out.text or out.code]
    assert answers["telegram"] == answers["slack"]


REPLIES = [
    ("approve", "approved", ""), ("yes", "approved", ""), ("/approve", "approved", ""),
    ("reject", "rejected", ""), ("reject too broad", "rejected", "too broad"),
    ("no, too risky", "rejected", "too risky"), ("/reject too broad", "rejected", "too broad"),
]  # fmt: skip
THREAD = "1799999999.000500"


def telegram_reply(text: str) -> Inbound:
    """A reply (Telegram's reply feature) to the bot's message 700, the task's card."""
    bot = {"id": 999, "is_bot": True, "first_name": "Orchestra", "username": "orch_bot"}
    ours = {"message_id": 700, "date": 1_800_000_000, "chat": {"id": 111, "type": "private", "first_name": "Alice"},
            "from": bot, "text": "card"}  # fmt: skip
    message = {"message_id": 8, "date": 1_800_000_001, "chat": ours["chat"], "from": TG_USER, "text": text,
               "reply_to_message": ours}  # fmt: skip
    inbound = to_inbound(Update.de_json({"update_id": 3, "message": message}, Bot("1:parity")), "orch_bot", 999)
    assert inbound is not None and inbound.replied_to == "700"
    return inbound


def slack_in_thread(text: str) -> Inbound:
    """``@Orchestra TEXT`` in the thread of the mention that started the task (its card is there)."""
    payload = mention(text, user=SLACK_USER, ts="1799999999.000600", event_id="EvReply")
    payload["event"]["thread_ts"] = THREAD
    inbound = event_to_inbound(payload, "UBOT0001")
    assert inbound is not None
    return replace(inbound, user_name="@alice")


@pytest.mark.parametrize(("text", "decision", "reason"), REPLIES)
async def test_a_reply_to_an_approval_request_decides_it_alike(
    text: str, decision: str, reason: str, make_app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, repo: Path
) -> None:
    """The words the README names work in a Telegram reply and in a Slack thread, with or without
    the slash: "approve", "/approve" (no id: the task replied to), "reject too broad" (a reason)."""
    answers = {}
    for platform, convert, chat in (("telegram", telegram_reply, "111"), ("slack", slack_in_thread, CHANNEL)):
        app = seeded(make_app, monkeypatch, tmp_path, repo, platform)
        card = Outbound("card", kind=OutKind.APPROVAL, task_id="t1", reply_to=THREAD if platform == "slack" else None)
        app.store.enqueue(platform, card, chat_id=chat, dedupe_key="card", ts=1.0)
        app.store.mark_delivered(app.store.outbox_queue(platform)[-1].id, 2.0, "700" if platform == "telegram" else "1")
        answers[platform] = [plain(out, platform) for out in commands_for(app, platform).handle(convert(text))]
        [row] = app.store.approvals("t1")
        assert (row["decision"], row["reason"]) == (decision, reason), platform
        assert [t.id for t in app.store.list_tasks()] == ["t1"], "the reply started no task"
    assert answers["telegram"] == answers["slack"]
    assert answers["slack"][0]["text"].startswith(f"{'✅' if decision == 'approved' else '✖'} t1 {decision} by @alice")
