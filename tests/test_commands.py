"""The chat command layer and its gate, with no chat SDK: neutral messages in, neutral answers out.

A real service (real SQLite, real tmux on a private socket, the stand-in agent) sits behind it,
so every answer checked here is what a person in any chat would see.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from core.access import Gate
from core.commands import COMMANDS, Commands
from core.messages import Button, ChatRef, Inbound, Keyboard, Outbound, OutboxItem, OutKind, Tap
from core.models import TaskState
from core.progress import Progress
from tests.conftest import ROOT, requires_tmux

pytestmark = requires_tmux

ALICE = "111"
CHAT = ChatRef("telegram", ALICE, private=True)


class ManualClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.value = now

    def now(self) -> float:
        return self.value


def say(text: str, *, user: str = ALICE, name: str = "@alice", chat: ChatRef = CHAT, n: int = 1) -> Inbound:
    return Inbound(chat=chat, user_id=user, user_name=name, text=text, message_id=str(n), event_id=f"e{n}{text}")


def tap(action: str, task_id: str, message_id: str, keyboard: Keyboard = (), *, name: str = "@alice") -> Inbound:
    return Inbound(chat=CHAT, user_id=ALICE, user_name=name, tap=Tap(action, task_id, message_id, keyboard))


def only(answers: list[Outbound], kind: OutKind | None = None) -> Outbound:
    picked = [a for a in answers if kind is None or a.kind == kind]
    assert len(picked) == 1, answers
    return picked[0]


def actions(out: Outbound) -> list[str]:
    return [f"{b.action}:{b.task_id}" for row in out.buttons for b in row]


@pytest.fixture
async def chat_app(make_app: Any, repo: Path) -> AsyncIterator[App]:
    app: App = make_app(workspace=str(repo), policy__approval_for=["devops"], policy__review_for=["docs"])
    assert app.engine.acquire()
    await app.engine.start()
    yield app
    await app.engine.stop()


def deliver_as(app: App, out: Outbound, message_id: str) -> None:
    """Record an answer as sent in the outbox, as the delivery loop would, so taps can find it."""
    app.store.enqueue("telegram", out, chat_id=ALICE, dedupe_key=f"k{message_id}", ts=1.0)
    row = app.store.outbox_queue("telegram")[-1]
    app.store.mark_delivered(row.id, 2.0, message_id)


async def test_help_lists_every_command_and_the_readme_documents_them(chat_app: App) -> None:
    commands = Commands(chat_app.service, chat_app.clock)
    text = only(commands.handle(say("/help"))).text
    readme = (ROOT / "README.md").read_text()
    for spec in COMMANDS:
        assert f"/{spec.name}" in text
        assert f"`/{spec.name}" in readme, f"/{spec.name} is missing from the README's Telegram table"
    assert "@standin" in text and "@claude" not in text, "only agents whose CLI is installed are offered"
    assert re.search(r"Not installed here: [^\n]*\bclaude\b", text)
    assert "Orchestra routes coding tasks" in only(commands.handle(say("/start"))).text


async def test_plain_text_delegates_and_acknowledges_with_cancel_and_peek(chat_app: App, repo: Path) -> None:
    commands = Commands(chat_app.service, chat_app.clock)
    ack = only(commands.handle(say("Create User model", n=7)))
    assert ack.kind == OutKind.ACK and ack.reply_to == "7"
    assert ack.text.startswith("🏃 t1 · standin · backend")
    assert "Create User model" in ack.text and "estimate $0.50" in ack.text
    assert actions(ack) == ["cancel:t1", "peek:t1"]
    task = await chat_app.engine.wait_finished("t1", timeout=30)
    assert task.state == TaskState.SUCCEEDED
    assert task.requester == "@alice" and task.source == "telegram"
    assert task.cwd == str(repo)


async def test_agent_override_and_delegate_command(chat_app: App) -> None:
    commands = Commands(chat_app.service, chat_app.clock)
    ack = only(commands.handle(say("@echo hello <there>")))
    assert "t1 · echo" in ack.text and "hello <there>" in ack.text
    ack = only(commands.handle(say("/delegate  write the README\nsecond line")))
    assert chat_app.store.get_task("t2").text == "write the README\nsecond line"
    assert "usage" in only(commands.handle(say("/delegate"))).text.lower()
    assert "Unknown command /frobnicate" in only(commands.handle(say("/frobnicate now"))).text
    for task_id in ("t1", "t2"):
        await chat_app.engine.wait_finished(task_id, timeout=30)


async def test_approval_button_starts_the_task_once_and_a_second_tap_says_who(chat_app: App) -> None:
    touched: list[str] = []
    commands = Commands(chat_app.service, chat_app.clock, changed=touched.append)
    card = only(commands.handle(say("set up the GitHub Actions CI pipeline")))
    assert card.kind == OutKind.APPROVAL
    assert "Needs approval: devops tasks need approval" in card.text
    assert actions(card) == ["approve:t1", "reject:t1", "peek:t1"]
    deliver_as(chat_app, card, "500")
    assert chat_app.store.get_task("t1").state == TaskState.AWAITING_APPROVAL

    first = commands.handle(tap("approve", "t1", "500", card.buttons))
    assert only(first, OutKind.TOAST).text.startswith("✅ t1 approved")
    assert touched == ["t1"]  # the card itself is re-rendered by the progress editor
    assert [a for a in first if a.kind == OutKind.EDIT] == []
    second = commands.handle(tap("approve", "t1", "500", card.buttons, name="@bob"))
    assert re.fullmatch(r"t1 was already approved by @alice at \d\d:\d\d", only(second, OutKind.TOAST).text)
    assert len(chat_app.store.approvals("t1")) == 1
    task = await chat_app.engine.wait_finished("t1", timeout=30)
    assert task.state == TaskState.SUCCEEDED


async def test_stale_buttons_are_answered_and_removed_from_a_summary(chat_app: App) -> None:
    commands = Commands(chat_app.service, chat_app.clock)
    commands.handle(say("write docs for the API"))  # docs end in review
    task = await chat_app.engine.wait_finished("t1", timeout=30)
    assert task.state == TaskState.NEEDS_REVIEW
    review: Keyboard = (
        (Button("✅ Approve", "approve", "t1"), Button("↩ Reject", "reject", "t1")),
        (Button("📄 Log", "log", "t1"), Button("🔁 Retry", "retry", "t1")),
    )
    deliver_as(chat_app, Outbound("review", kind=OutKind.REPLY, buttons=review, task_id="t1"), "600")
    answers = commands.handle(tap("reject", "t1", "600", review))
    assert only(answers, OutKind.TOAST).text == "✖ t1 rejected"
    edit = only(answers, OutKind.EDIT)
    assert edit.text == "" and edit.edit_message_id == "600"
    assert [b.action for row in edit.buttons for b in row] == ["log", "retry"]
    again = commands.handle(tap("approve", "t1", "600", review))
    assert "already rejected by @alice" in only(again, OutKind.TOAST).text
    retry = commands.handle(tap("retry", "t1", "600", edit.buttons))
    assert only(retry, OutKind.ACK).task_id == "t2"
    assert [b.action for row in only(retry, OutKind.EDIT).buttons for b in row] == ["log"]
    twice = commands.handle(tap("retry", "t1", "600", edit.buttons))
    assert only(twice, OutKind.TOAST).text == "t1 was already retried from this message"
    assert chat_app.store.find_task("t3") is None
    await chat_app.engine.wait_finished("t2", timeout=30)
    assert "no longer works" in only(commands.handle(tap("explode", "t1", "600")), OutKind.TOAST).text
    assert "There is no task 't42'" in only(commands.handle(tap("approve", "t42", "600")), OutKind.TOAST).text


async def test_commands_on_tasks(chat_app: App, tmp_path: Path) -> None:
    commands = Commands(chat_app.service, chat_app.clock)
    commands.handle(say("Create User model"))
    await chat_app.engine.wait_finished("t1", timeout=30)
    status = only(commands.handle(say("/status"))).text
    assert "Nothing running." in status and "✅ t1 succeeded · standin" in status
    peek = only(commands.handle(say("/peek 1")))
    assert peek.text.startswith("👀 t1 · standin · succeeded") and "user_model.py" in peek.code
    log = only(commands.handle(say("/log t1")))
    assert log.attachment is not None and log.attachment.kind == "document"
    assert Path(log.attachment.path or "").read_text().count('"type":"result"') == 1
    screen = only(commands.handle(say("/screen t1"))).text
    assert "has no live window" in screen and "/log t1" in screen
    cost = only(commands.handle(say("/cost"))).text
    assert "today       $0.02" in cost
    assert "by agent (last 7 days):" in cost
    assert "standin" in cost
    assert "by day" not in cost  # the phone gets the totals and the agents, the terminal the rest
    digest = only(commands.handle(say("/digest")))
    assert "t1" in digest.text
    assert digest.attachment is not None
    assert Path(digest.attachment.path or "").read_bytes().startswith(b"\x89PNG")
    agents = only(commands.handle(say("/agents"))).text
    assert "@standin: claude · 2.1.332 (Claude Code stand-in) · 0/4 running · default" in agents
    assert "@claude: claude · CLI not found" in agents
    assert "There is no task 't9'" in only(commands.handle(say("/cancel t9"))).text
    assert "Usage: /reject ID REASON" in only(commands.handle(say("/reject"))).text
    assert "t1 is succeeded; there is nothing to approve" in only(commands.handle(say("/approve t1"))).text


async def test_screen_of_a_running_task_is_the_pane_with_colours(make_app: Any, tmp_path: Path) -> None:
    hang = {"kind": "claude", "command": "{python} -S {orchestra}/core/agents/standin",
            "env": {"ORCHESTRA_STANDIN_MODE": "hang"}, "max_concurrent": 2}  # fmt: skip
    app: App = make_app(workspace=str(tmp_path), agents__hang=hang, limits__cancel_grace_s=1)
    assert app.engine.acquire()
    await app.engine.start()
    try:
        commands = Commands(app.service, app.clock)
        commands.handle(say("@hang wait here"))
        deadline = time.monotonic() + 15
        while app.store.get_task("t1").started_at is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        screen = only(commands.handle(say("/screen")))
        assert screen.attachment is not None and screen.attachment.render == "ansi"
        assert screen.attachment.kind == "photo" and screen.text.startswith("🖼 t1 · hang · running")
        assert "orchestra t1: hang running" in (screen.attachment.data or "")
        peek = only(commands.handle(say("/peek")))
        assert actions(peek) == ["peek:t1", "screen:t1"]
        stop = only(commands.handle(say("/cancel t1")))
        assert stop.text.startswith("⏹ Stopping t1")
        assert (await app.engine.wait_finished("t1", timeout=15)).state == TaskState.CANCELLED
    finally:
        await app.engine.stop()


async def test_kill_asks_first_then_cancels_everything_once(make_app: Any, tmp_path: Path) -> None:
    app: App = make_app(workspace=str(tmp_path), policy__approval_for=["backend", "devops", "docs"])
    assert app.engine.acquire()
    await app.engine.start()
    try:
        commands = Commands(app.service, app.clock)
        assert only(commands.handle(say("/kill"))).text == "Nothing is running or queued."
        for text in ("add an endpoint", "write docs"):
            commands.handle(say(text))
        ask = only(commands.handle(say("/kill")))
        assert ask.text == "⚠️ Cancel every active task (2): t1, t2?"
        assert [b.action for row in ask.buttons for b in row] == ["kill", "keep"]
        done = commands.handle(tap("kill", "", "700"))
        assert only(done, OutKind.TOAST).text == "Cancelled 2 task(s)"
        assert "Kill switch by @alice" in only(done, OutKind.EDIT).text
        assert [t.state for t in app.store.list_tasks()] == [TaskState.CANCELLED] * 2
        assert only(commands.handle(tap("kill", "", "700")), OutKind.TOAST).text == "Already answered."
        audit = [(a["actor"], a["source"], a["action"]) for a in app.store.audit_log()]
        assert ("@alice", "telegram", "cancel") in audit
    finally:
        await app.engine.stop()


# -- the gate -------------------------------------------------------------------------------------
async def test_unknown_users_get_one_refusal_and_an_audit_entry(make_app: Any) -> None:
    app: App = make_app()
    clock = ManualClock()
    gate = Gate(app.service, clock, allowed_users=[ALICE], allowed_chats=["-100"], per_minute=5)
    stranger = say("/status", user="666", name="@mallory", chat=ChatRef("telegram", "666"))
    refusal = gate.check(stranger)
    assert refusal is not None
    assert only(refusal).text == (
        "⛔ This bot is private. Its owner can let you in by adding your user id 666 to "
        "telegram.allowed_user_ids in bots.yaml."
    )
    assert gate.check(stranger) == []  # one refusal line, not one per message
    clock.value += 601
    assert len(gate.check(stranger) or []) == 1  # ten minutes later: one more line
    assert gate.check(stranger) == []
    audit = app.store.audit_log()
    assert len(audit) == 4 and {a["action"] for a in audit} == {"refused"}
    assert audit[0]["actor"] == "@mallory (666)" and "chat 666: /status" in audit[0]["detail"]
    [refused_tap] = gate.check(replace(tap("approve", "t1", "5"), user_id="666")) or []
    assert refused_tap.kind == OutKind.TOAST and refused_tap.text == only(refusal).text, "a tap is told why too"


async def test_groups_must_be_allowed_and_commands_are_rate_limited(make_app: Any) -> None:
    app: App = make_app()
    clock = ManualClock()
    gate = Gate(app.service, clock, allowed_users=[ALICE], allowed_chats=["-100"], per_minute=2)
    other_group = ChatRef("telegram", "-200", private=False)
    assert "This chat is not allowed" in only(gate.check(say("/status", chat=other_group)) or []).text
    group = ChatRef("telegram", "-100", private=False)
    assert gate.check(say("/status", chat=group)) is None
    assert gate.check(say("/status")) is None
    slow = gate.check(say("/status"))
    assert slow is not None and only(slow).text == "⏳ Slow down: at most 2 commands a minute."
    assert gate.check(say("/status")) == []
    clock.value += 30  # a minute refills two commands; half of one refills one
    assert gate.check(say("/status")) is None


async def test_a_backlog_read_at_once_is_judged_by_when_it_was_sent(make_app: Any) -> None:
    """Messages sent at the allowed rate while the bot was down all go through when it comes back."""
    app: App = make_app()
    clock = ManualClock()
    clock.value = 10_000.0
    gate = Gate(app.service, clock, allowed_users=[ALICE], allowed_chats=[], per_minute=6)
    backlog = [replace(say(f"task {n}"), sent_at=clock.value - 600 + n * 10) for n in range(30)]  # 6 a minute
    assert [gate.check(m) for m in backlog] == [None] * 30
    flood = [replace(say(f"again {n}"), sent_at=clock.value) for n in range(8)]  # 8 sent in one second
    answers = [gate.check(m) for m in flood]
    assert answers[:6] == [None] * 6 and answers[6] is not None and answers[7] == []


# -- progress edits -------------------------------------------------------------------------------
async def test_progress_edits_the_card_at_a_bounded_rate(make_app: Any, tmp_path: Path) -> None:
    app: App = make_app(workspace=str(tmp_path))
    app.service.autostart_engine = False  # no engine: the task stays queued and we drive its state
    wakes: list[int] = []
    commands = Commands(app.service, app.clock)
    progress = Progress(app.service, app.clock, interval_s=0.3, refresh_s=60, wake=lambda: wakes.append(1))
    card = only(commands.handle(say("@echo hi")))
    deliver_as(app, card, "900")
    app.store.transition("t1", ["queued"], "running", started_at=time.time(), live_cost_usd=0.01)
    for _ in range(20):
        progress.on_event("t1", "tool_use", {})
    edits = _progress_rows(app)
    assert len(edits) == 1 and "$0.01 so far" in edits[0].text
    app.store.update_task("t1", live_cost_usd=0.02)
    progress.on_event("t1", "cost", {})
    assert _progress_rows(app) == edits, "no second edit within the interval"
    await asyncio.sleep(0.5)  # the held-back edit goes out at the end of the interval
    edits = _progress_rows(app)
    assert len(edits) == 1, "the unsent older edit is superseded by the newer one"
    assert re.search(r"🏃 Running · \d\.\ds · \$0\.02 so far", edits[0].text)
    assert [b.action for row in edits[0].buttons for b in row] == ["cancel", "peek"]
    app.store.transition("t1", ["running"], "succeeded", finished_at=time.time(), cost_usd=0.03)
    progress.on_event("t1", "finished", {"state": "succeeded"})
    progress.on_event("t1", "finished", {"state": "succeeded"})
    final = _progress_rows(app)
    assert len(final) == 1 and "✅ succeeded" in final[0].text and "$0.03" in final[0].text
    assert final[0].buttons == ()
    total = app.store.db.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'progress'").fetchone()[0]
    assert total == 3 and wakes
    progress.close()


def _progress_rows(app: App) -> list[OutboxItem]:
    return [i for i in app.store.outbox_queue("telegram") if i.kind == "progress"]


def reply(text: str, replied_to: str, n: int) -> Inbound:
    return replace(say(text, n=n), replied_to=replied_to)


async def test_a_reply_to_a_task_message_acts_on_that_task_and_never_starts_another(chat_app: App) -> None:
    """Other bridges queue "yes" sent in reply to an approval request as a new task. Here a reply
    decides the approval, and a reply to a finished task's message is a follow-up in its session."""
    commands = Commands(chat_app.service, chat_app.clock)
    [card] = commands.handle(say("set up the GitHub Actions CI pipeline", n=1))  # devops: approval
    deliver_as(chat_app, card, "500")
    [waits] = commands.handle(reply("what will it touch?", "500", n=2))
    assert waits.text == "t1 waits for approval: reply yes or no, or tap a button."
    [approved] = commands.handle(reply("Yes!", "500", n=3))
    assert approved.text.startswith("✅ t1 approved by @alice")
    [running] = commands.handle(reply("and the nightly job", "500", n=4))
    assert running.text.startswith("💬 Sent to t1's running agent (standin)"), "the stand-in reads input as it runs"
    task = await chat_app.engine.wait_finished("t1", timeout=30)
    assert "and the nightly job" in (task.final_text or ""), "said while it ran, and taken into account"
    assert [t.id for t in chat_app.store.list_tasks()] == ["t1"], "no reply became a task of its own"

    summary = Outbound(f"✅ {task.id} succeeded", task_id=task.id)
    deliver_as(chat_app, summary, "501")
    [follow] = commands.handle(reply("also add a badge to the README", "501", n=5))
    follow_up = chat_app.store.get_task("t2")
    assert follow.task_id == "t2" and follow_up.parent_id == "t1"
    assert follow_up.text.endswith("Feedback on the previous attempt: also add a badge to the README")
    assert "set up the GitHub Actions CI pipeline" in follow_up.text

    [card3] = commands.handle(say("set up the GitHub Actions deploy", n=6))
    deliver_as(chat_app, card3, "502")
    [rejected] = commands.handle(reply("no", "502", n=7))
    assert rejected.text == "✖ t3 rejected by @alice"
    assert chat_app.store.get_task("t3").state == TaskState.REJECTED
    [new] = commands.handle(reply("write the changelog", "999", n=8))  # not a message about a task
    assert new.task_id == "t4"
    await chat_app.engine.wait_finished("t2", timeout=30)
    await chat_app.engine.wait_finished("t4", timeout=30)
