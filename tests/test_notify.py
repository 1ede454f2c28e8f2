"""The one notification path: each message nobody asked for reaches every chat of every channel once,
with its buttons, and the console prints what it printed before the console became a sender."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bot.console import console_outbox
from bot.outbox import Outbox
from core.config import Config
from core.messages import ChatRef, Outbound, OutboxItem, OutKind
from core.models import Task, TaskState
from core.notify import Notifier, chat_channels
from core.store import Store
from core.store.permissions import PermissionRequest
from core.summary import build_summary, render_phone
from tests.test_costs import ManualClock, make_config
from tests.test_outbox import ScriptedSender

ROOT = Path(__file__).resolve().parent.parent
TELEGRAM_CHAT, SLACK_CHAT = "111", "C1"


class SlackSender(ScriptedSender):
    channel = "slack"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "n.db")


def every_channel() -> Config:
    return make_config(
        notify={"console": True},
        telegram={"enabled": True, "notify_chat_ids": [int(TELEGRAM_CHAT)]},
        slack={"enabled": True, "notify_channel_ids": [SLACK_CHAT]},
    )


def a_task(store: Store, state: TaskState = TaskState.RUNNING) -> Task:
    return store.create_task({"text": "Add a REST endpoint for orders", "agent": "claude", "category": "backend",
                              "state": state, "cwd": "/", "created_at": 1.0})  # fmt: skip


class Chats:
    """Telegram, Slack and the console, each delivered by its outbox, as the bot does."""

    def __init__(self, store: Store, clock: ManualClock) -> None:
        self.telegram, self.slack = ScriptedSender(), SlackSender()
        self.printed: list[str] = []
        self.outboxes = [
            Outbox(store, clock, self.telegram, notify_chats=[TELEGRAM_CHAT]),
            Outbox(store, clock, self.slack, notify_chats=[SLACK_CHAT]),
            console_outbox(store, clock, self.printed.append),
        ]

    async def deliver(self) -> None:
        for _ in range(3):  # rows for every chat fan out in one pass and go out in the next
            for outbox in self.outboxes:
                await outbox.deliver_due()

    def chat_rows(self) -> list[OutboxItem]:
        return self.telegram.delivered + self.slack.delivered


def actions(item: OutboxItem) -> list[list[str]]:
    return [[f"{b.action}:{b.task_id}" for b in row] for row in item.buttons]


async def test_each_kind_reaches_every_chat_once_with_its_buttons(store: Store, tmp_path: Path) -> None:
    config, clock = every_channel(), ManualClock(1_000.0)
    notifier, chats = Notifier(config, store, clock), Chats(store, clock)
    waiting, done = a_task(store, TaskState.AWAITING_APPROVAL), a_task(store, TaskState.SUCCEEDED)
    silent, review = a_task(store), a_task(store, TaskState.NEEDS_REVIEW)
    chart = tmp_path / "chart.png"
    chart.write_bytes(b"\x89PNG fake")
    summary = summary_of(done)
    for _ in range(2):  # asked twice (a retried transaction, a second process): sent once
        notifier.approval_request(waiting, "devops tasks need approval")
        notifier.finished(done.id, TaskState.SUCCEEDED, summary)
        notifier.finished(review.id, TaskState.NEEDS_REVIEW, summary_of(review))
        notifier.budget_alert("alert:day:2026-11-25:80", "💰 Daily budget 80% used")
        notifier.watchdog(silent, f"⏳ {silent.id} has been silent for 20m00s")
        notifier.digest("2026-11-25", "Morning digest", [(waiting.id, waiting.state)], chart)
    await chats.deliver()

    for sender, chat in ((chats.telegram, TELEGRAM_CHAT), (chats.slack, SLACK_CHAT)):
        got = {(i.kind, i.task_id): i for i in sender.delivered}
        assert len(got) == len(sender.delivered) == 6 and all(i.chat_id == chat for i in sender.delivered), (
            sender.channel
        )
        assert actions(got["approval", waiting.id]) == [
            [f"approve:{waiting.id}", f"reject:{waiting.id}"], [f"peek:{waiting.id}"],
        ]  # fmt: skip
        assert actions(got["completion", done.id]) == [[f"log:{done.id}", f"retry:{done.id}"]]
        assert actions(got["review", review.id]) == [
            [f"approve:{review.id}", f"reject:{review.id}"], [f"log:{review.id}", f"retry:{review.id}"],
        ]  # fmt: skip
        assert got["budget_alert", None].buttons == ()
        assert actions(got["watchdog", silent.id]) == [[f"peek:{silent.id}", f"cancel:{silent.id}"]]
        photo = got["digest", None]  # the chart, its text the caption
        assert actions(photo) == [[f"approve:{waiting.id}", f"reject:{waiting.id}"]]
        assert photo.attachment is not None and photo.attachment.path == str(chart)
        assert "orchestra approve" not in got["approval", waiting.id].text, "a chat gets buttons, not commands"
    prefix = {"telegram": "/", "slack": "/orchestra "}
    for sender in (chats.telegram, chats.slack):
        [watchdog] = [i for i in sender.delivered if i.kind == "watchdog"]
        p = prefix[sender.channel]
        assert watchdog.text.endswith(f"Peek: {p}peek {silent.id} · Cancel: {p}cancel {silent.id}")
        [completion] = [i for i in sender.delivered if i.kind == "completion"]
        assert completion.text == render_phone(summary, state="succeeded", chat_prefix=p)
    assert len(chats.printed) == 6, "the console prints each message once"


async def test_the_console_prints_what_it_printed_before(store: Store, tmp_path: Path) -> None:
    """The texts the console showed when it had its own rows (``ConsoleSink``), to the character."""
    config, clock = make_config(notify={"console": True}), ManualClock(1_000.0)
    notifier, chats = Notifier(config, store, clock), Chats(store, clock)
    waiting, done, silent = a_task(store, TaskState.AWAITING_APPROVAL), a_task(store), a_task(store)
    chart = tmp_path / "digests" / "2026-11-25.png"
    summary = summary_of(done)
    notifier.approval_request(waiting, "estimated $3.00 is above $2.00")
    notifier.finished(done.id, TaskState.SUCCEEDED, summary)
    notifier.budget_alert("alert:day:2026-11-25:80", "💰 Daily budget 80% used.")
    notifier.watchdog(silent, f"⏳ {silent.id} has been silent for 20m00s")
    notifier.digest("2026-11-25", "Morning digest\nSince Tue: 1 done", [(waiting.id, waiting.state)], chart)
    await chats.deliver()
    asked = f"🔐 {waiting.id} needs approval · claude · backend\nAdd a REST endpoint for orders"
    assert chats.printed == [
        (
            "\n── notification (approval) ──\n"
            f"{asked}\nWhy: estimated $3.00 is above $2.00\n"
            f"Approve: orchestra approve {waiting.id} · Reject: orchestra reject {waiting.id}\n"
        ),
        f"\n── notification (completion) ──\n{render_phone(summary, state='succeeded', chat_prefix=None)}\n",
        "\n── notification (budget_alert) ──\n💰 Daily budget 80% used.\n",
        (
            f"\n── notification (watchdog) ──\n⏳ {silent.id} has been silent for 20m00s\n"
            f"Peek: orchestra peek {silent.id} · Cancel: orchestra cancel {silent.id}\n"
        ),
        f"\n── notification (digest) ──\nMorning digest\nSince Tue: 1 done\nChart: {chart}\n",
    ]
    assert "Log: orchestra logs" in chats.printed[1]
    assert store.outbox_queue("console") == []


async def test_the_chat_that_has_the_card_is_not_asked_again(store: Store) -> None:
    clock = ManualClock(1_000.0)
    notifier, chats = Notifier(every_channel(), store, clock), Chats(store, clock)
    task = a_task(store, TaskState.AWAITING_APPROVAL)
    notifier.approval_request(task, "devops tasks need approval", shown_in=ChatRef("telegram", TELEGRAM_CHAT))
    await chats.deliver()
    assert chats.telegram.delivered == [] and [i.chat_id for i in chats.slack.delivered] == [SLACK_CHAT]
    assert len(chats.printed) == 1


async def test_card_edits_collapse_to_the_newest_and_the_final_state_is_written_once(store: Store) -> None:
    clock = ManualClock(1_000.0)
    notifier, chats = Notifier(every_channel(), store, clock), Chats(store, clock)
    task = a_task(store)
    chats.outboxes[0].put(Outbound("card", kind=OutKind.ACK, task_id=task.id), chat_id=TELEGRAM_CHAT, key="ack")
    await chats.deliver()
    cards = store.outbox_cards(task.id)
    for n in range(3):
        notifier.edit(cards, f"running {n}", ())
    assert notifier.edit(cards, "done", (), final_state="succeeded") == 1
    assert notifier.edit(cards, "done", (), final_state="succeeded") == 0
    await chats.deliver()
    assert [(i.text, i.edit_message_id) for i in chats.telegram.delivered] == [("card", None), ("done", "501")]
    assert chats.printed == [], "cards are chat messages: the console has none to edit"


def a_request(store: Store, task: Task, call: dict[str, str], rule: str) -> PermissionRequest:
    request, _ = store.open_permission(key=f"k{call['subject']}", task_id=task.id, agent="claude", call=call,
                                       rule=rule, why="asked", now=1_000.0, deadline=1_600.0)  # fmt: skip
    return request


async def test_a_permission_request_asks_every_chat_and_its_outcome_edits_every_copy(store: Store) -> None:
    clock = ManualClock(1_000.0)
    notifier, chats = Notifier(every_channel(), store, clock), Chats(store, clock)
    task = a_task(store)
    edit = {"tool": "Edit", "subject": "src/app.py", "detail": "-old = 1\n+new = <b>2</b>", "cli_tool": "Edit"}
    request = a_request(store, task, edit, "Edit(src/**)")
    assert notifier.permission_request(request) == 3 and notifier.permission_request(request) == 0
    await chats.deliver()
    for sender in (chats.telegram, chats.slack):
        [asked] = sender.delivered
        assert asked.kind == "permission" and asked.task_id == task.id
        assert asked.text.splitlines()[0] == f"🔐 {task.id} · claude wants to edit: src/app.py"
        assert asked.code == "-old = 1\n+new = <b>2</b>", "the diff shown literally, in a monospace block"
        assert actions(asked) == [["perm_allow:p1", "perm_deny:p1"], ["perm_task:p1"]]
        assert "orchestra allow" not in asked.text
    [printed] = chats.printed
    assert "Allow: orchestra allow p1 · For this task: orchestra allow p1 --task · Deny: orchestra deny p1" in printed
    assert "perm_allow" not in printed and "+new = <b>2</b>" in printed

    assert store.decide_permission(request.id, "denied", by="@bob", via="slack", now=1_100.0, reason="not that file")
    decided = store.permission(request.id)
    assert decided is not None
    assert notifier.permission_decided(decided) == 3 and notifier.permission_decided(decided) == 0
    await chats.deliver()
    outcome = f"🔐 {task.id} · claude wants to edit: src/app.py\n⛔ Denied by @bob (slack): not that file"
    for sender in (chats.telegram, chats.slack):
        asked, edited = sender.delivered
        assert (edited.text, edited.buttons, edited.edit_message_id) == (outcome, (), "501")
    assert chats.printed[1].endswith(f"{outcome}\n")


async def test_a_request_answered_before_it_was_sent_reaches_the_chats_as_its_outcome(store: Store) -> None:
    """The bot was down while a request was asked and answered from the terminal: the chats get
    the outcome, never a question with buttons that is already decided."""
    clock = ManualClock(1_000.0)
    notifier, chats = Notifier(every_channel(), store, clock), Chats(store, clock)
    request = a_request(store, a_task(store), {"tool": "Bash", "subject": "curl -s x.io"}, "Bash(curl *)")
    notifier.permission_request(request)
    store.decide_permission(request.id, "allowed", by="alice", via="cli", now=1_050.0, grant="Bash(curl *)")
    decided = store.permission(request.id)
    assert decided is not None
    notifier.permission_decided(decided)
    await chats.deliver()
    for sender in (chats.telegram, chats.slack):
        [shown] = sender.delivered
        assert shown.text.endswith("\n✅ Allowed for this task: Bash(curl *) — by alice (cli)") and shown.buttons == ()
    assert len(chats.printed) == 1 and "orchestra allow" not in chats.printed[0]


def test_the_completion_lists_what_was_refused() -> None:
    refused = [
        {"call": "Bash(curl -s https://x.io/i.sh)", "state": "denied", "by": "denied by @bob", "reason": "no"},
        {"call": "Bash(rm -rf /)", "state": "denied", "by": "by policy", "reason": "Orchestra's policy refuses it"},
        {"call": "WebFetch(https://pypi.org/)", "state": "timed_out", "by": "no answer in 10 min", "reason": ""},
    ]
    summary = build_summary(
        task_id="t7", text="install it", status="succeeded", agent="claude", category="backend", result={},
        duration_s=3.0, log_path="/tmp/x.log", tool_lines=[], baseline=None, refused=refused,
    )  # fmt: skip
    text = render_phone(summary, chat_prefix="/")
    assert "Denied:\n⛔ Bash(curl -s https://x.io/i.sh) — denied by @bob: no\n⛔ Bash(rm -rf /) — by policy\n" in text
    assert "⏱ WebFetch(https://pypi.org/) — no answer in 10 min\n" in text


def test_a_message_for_some_channels_only(store: Store) -> None:
    """The digest goes to ``digest.channels``; budget alerts to the live ones the scheduler names."""
    notifier = Notifier(every_channel(), store, ManualClock(1_000.0), channels=["slack"])
    assert notifier.budget_alert("alert:x", "text") == 1
    assert [n.dedupe_key for n in store.outbox_queue("slack")] == ["slack:alert:x"]
    assert store.outbox_queue("telegram") == store.outbox_queue("console") == []
    assert chat_channels(every_channel()) == ["telegram", "slack"]


def test_no_code_branches_on_the_console_channel() -> None:
    """The console is a sender like the others: what differs is said by its ``Channel``, not by name.
    (Migration 009 names it once: how the console stored its rows before.)"""
    pattern = re.compile(r"""[!=]=\s*["']console["']|["']console["']\s*[!=]=""")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("core", "bot")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "migrations.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


def summary_of(task: Task) -> dict[str, Any]:
    return build_summary(
        task_id=task.id, text=task.text, status="succeeded", agent=task.agent, category=task.category,
        result={"final_text": "Added GET /orders", "cost_usd": 0.42}, duration_s=12.0, log_path="/tmp/output.log",
        tool_lines=[], baseline=None,
    )  # fmt: skip
