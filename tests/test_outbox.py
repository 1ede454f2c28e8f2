"""Outbox delivery on a real SQLite store, through a scripted sender standing in for a chat platform."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.console import console_outbox
from bot.outbox import Outbox, plan_parts, split_text, text_length
from core.errors import DeliveryFailed, RetryLater
from core.messages import Attachment, Button, Outbound, OutboxItem, OutKind, waiting_keyboard
from core.store import Store


class ManualClock:
    def __init__(self) -> None:
        self.value = 1_000.0

    def now(self) -> float:
        return self.value


class TickingClock(ManualClock):
    """Every reading is a millisecond later than the one before."""

    def now(self) -> float:
        self.value += 0.001
        return self.value


class ScriptedSender:
    """Records what it was asked to send; ``failures[chat]`` lists errors to raise first, in order."""

    channel = "telegram"
    max_chars = 100
    max_caption = 40

    def __init__(self) -> None:
        self.delivered: list[OutboxItem] = []
        self.failures: dict[str, list[Exception]] = {}
        self.calls = 0
        self._next = 500

    async def deliver(self, item: OutboxItem) -> str | None:
        self.calls += 1
        pending = self.failures.get(item.chat_id or "", [])
        if pending:
            raise pending.pop(0)
        self.delivered.append(item)
        if item.is_edit:
            return item.edit_message_id
        self._next += 1
        return str(self._next)

    def texts(self, chat: str | None = None) -> list[str]:
        return [i.text for i in self.delivered if chat is None or i.chat_id == chat]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "o.db")


def make(store: Store, clock: ManualClock, sender: ScriptedSender, **kw: object) -> Outbox:
    return Outbox(store, clock, sender, retry_base_s=1.0, retry_max_s=8.0, **kw)  # type: ignore[arg-type]


def column(store: Store, name: str, where: str = "1") -> list[object]:
    return [r[0] for r in store.db.execute(f"SELECT {name} FROM outbox WHERE {where} ORDER BY id").fetchall()]


async def test_delivered_once_with_the_platform_message_id(store: Store) -> None:
    clock, sender = ManualClock(), ScriptedSender()
    outbox = make(store, clock, sender)
    assert outbox.put(Outbound("hello", reply_to="7"), chat_id="1", key="u1:0") == 1
    assert outbox.put(Outbound("hello", reply_to="7"), chat_id="1", key="u1:0") == 0  # same key: once
    assert await outbox.deliver_due() == 1
    assert await outbox.deliver_due() == 0
    assert sender.texts() == ["hello"] and sender.delivered[0].reply_to == "7"
    assert column(store, "message_id") == ["501"]


async def test_flood_control_pauses_the_channel_for_retry_after(store: Store) -> None:
    clock, sender = ManualClock(), ScriptedSender()
    sender.failures["1"] = [RetryLater(3)]
    outbox = make(store, clock, sender)
    outbox.put(Outbound("one"), chat_id="1", key="a")
    outbox.put(Outbound("two"), chat_id="2", key="b")
    assert await outbox.deliver_due() == 0  # the 429 stops the pass: chat 2 waits too
    clock.value += 2.9
    assert await outbox.deliver_due() == 0 and sender.calls == 1
    clock.value += 0.2
    assert await outbox.deliver_due() == 2
    assert sender.texts() == ["one", "two"]
    assert column(store, "attempts") == [2, 1]


async def test_network_errors_back_off_one_chat_and_keep_its_order(store: Store) -> None:
    clock, sender = ManualClock(), ScriptedSender()
    sender.failures["1"] = [DeliveryFailed("502 Bad Gateway"), DeliveryFailed("connection dropped")]
    outbox = make(store, clock, sender)
    outbox.put(Outbound("ack"), chat_id="1", key="a")
    outbox.put(Outbound("other chat"), chat_id="2", key="b")
    outbox.put(Outbound("completion"), chat_id="1", key="c")
    assert await outbox.deliver_due() == 1
    assert sender.texts() == ["other chat"], "chat 2 is not held up; chat 1's completion waits for its ack"
    for _ in range(2):
        clock.value += 10
        await outbox.deliver_due()
    assert sender.texts("1") == ["ack", "completion"]
    assert column(store, "last_error", "chat_id = '1'")[0] == "connection dropped"


async def test_permanent_refusal_is_kept_failed_and_does_not_block(store: Store) -> None:
    clock, sender = ManualClock(), ScriptedSender()
    sender.failures["1"] = [DeliveryFailed("Forbidden: bot was blocked by the user", permanent=True)]
    outbox = make(store, clock, sender)
    outbox.put(Outbound("first"), chat_id="1", key="a")
    outbox.put(Outbound("second"), chat_id="1", key="b")
    assert await outbox.deliver_due() == 2  # the refused one counts as done: it will never go
    assert sender.texts() == ["second"]
    assert column(store, "failed_at IS NOT NULL") == [1, 0]
    assert "blocked" in str(column(store, "last_error")[0])
    assert store.outbox_queue("telegram") == []


async def test_a_restarted_outbox_sends_what_its_predecessor_did_not(store: Store, tmp_path: Path) -> None:
    clock, failing = ManualClock(), ScriptedSender()
    failing.failures["1"] = [DeliveryFailed("down")] * 10
    first = make(store, clock, failing)
    for n in range(3):
        first.put(Outbound(f"m{n}"), chat_id="1", key=f"k{n}")
    await first.deliver_due()
    store.close()
    reopened = Store(tmp_path / "o.db")  # the process restarts
    clock.value += 60
    sender = ScriptedSender()
    second = make(reopened, clock, sender)
    await second.deliver_due()
    await second.deliver_due()
    assert sender.texts() == ["m0", "m1", "m2"]


async def test_rows_for_every_chat_fan_out_once_per_chat(store: Store) -> None:
    clock, sender = ManualClock(), ScriptedSender()
    outbox = make(store, clock, sender, notify_chats=["1", "2"])
    outbox.put(Outbound("ack t1", kind=OutKind.ACK, task_id="t1"), chat_id="5", key="ack")
    done = Outbound("t1 done", kind=OutKind.COMPLETION, task_id="t1", buttons=((Button("📄 Log", "log", "t1"),),))
    store.enqueue("telegram", done, dedupe_key="telegram:t1:done", ts=clock.now())
    store.enqueue("telegram", Outbound("80% of today's budget", kind=OutKind.BUDGET_ALERT), dedupe_key="alert", ts=1.0)
    for _ in range(3):
        await outbox.deliver_due()
    assert sorted((i.chat_id, i.text) for i in sender.delivered) == [
        ("1", "80% of today's budget"), ("1", "t1 done"), ("2", "80% of today's budget"), ("2", "t1 done"),
        ("5", "ack t1"), ("5", "t1 done"),
    ]  # fmt: skip
    assert all(i.buttons[0][0].action == "log" for i in sender.delivered if i.text == "t1 done")
    store.enqueue("telegram", replace(done, buttons=()), dedupe_key="telegram:t1:done", ts=clock.now())
    await outbox.deliver_due()
    assert len(sender.delivered) == 6


async def test_a_completion_goes_out_in_the_pass_that_fans_it_out_before_the_cards_final_edit(store: Store) -> None:
    """The engine queues the completion for every chat, then the card's final edit: the user gets the
    completion first, without waiting for the edit's round trip or for another pass."""
    clock, sender = TickingClock(), ScriptedSender()  # time passes during the pass, as it does
    outbox = make(store, clock, sender)
    outbox.put(Outbound("card", kind=OutKind.ACK, task_id="t1"), chat_id="5", key="card")
    await outbox.deliver_due()
    done = Outbound("t1 done", kind=OutKind.COMPLETION, task_id="t1")
    store.enqueue("telegram", done, dedupe_key="telegram:t1:done", ts=clock.now())
    [card] = store.outbox_cards("t1")
    store.enqueue_progress(card, "card, done", buttons=(), ts=clock.now(), final=True, state="succeeded")

    assert await outbox.deliver_due() == 2
    assert [i.text for i in sender.delivered] == ["card", "t1 done", "card, done"]
    assert store.outbox_queue("telegram") == []


async def test_rows_queued_in_the_old_payload_shapes_still_deliver_with_buttons_and_chart(tmp_path: Path) -> None:
    """A store from before the one button shape: its undelivered rows keep their buttons and chart."""
    chart = tmp_path / "chart.png"
    chart.write_bytes(b"\x89PNG fake")
    digest = "Morning digest\n" + "a line of the digest\n" * 3
    waiting = [{"task_id": "t3", "state": "awaiting_approval"}, {"task_id": "t4", "state": "running"}]
    old = Store(tmp_path / "old.db")
    rows = [
        ("telegram", "digest", None, digest, {"chart_png": str(chart), "buttons": waiting}),
        ("telegram", "watchdog", "t4", "t4 is silent", {"buttons": ["peek", "cancel"]}),
        ("telegram", "completion", "t5", "t5 done", {"buttons": [[["📄 Log", "log", "t5"]]]}),
        ("console", "watchdog", "t4", "t4 is silent\nPeek: orchestra peek t4", {"buttons": ["peek", "cancel"]}),
        ("console", "digest", None, f"{digest}\nChart: {chart}", {"chart_png": str(chart), "buttons": waiting}),
    ]
    for n, (channel, kind, task, body, payload) in enumerate(rows):  # as the old store.enqueue wrote them
        old.db.execute(
            "INSERT INTO outbox (dedupe_key, channel, kind, task_id, text, payload_json, created_at, attempts, "
            "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, 1.0, 0, 1.0)",
            (f"k{n}", channel, kind, task, body, json.dumps(payload)),
        )
    old.db.execute("DELETE FROM _migrations WHERE name = '009_one_button_shape'")
    old.close()
    store = Store(tmp_path / "old.db")
    clock, sender = ManualClock(), ScriptedSender()
    outbox = make(store, clock, sender, notify_chats=["1"])
    for _ in range(2):
        await outbox.deliver_due()
    text, photo, silent, done = sender.delivered
    assert text.text == digest.strip("\n") or text.text == digest
    assert [[b.action + ":" + b.task_id for b in row] for row in text.buttons] == [
        ["approve:t3", "reject:t3"], ["peek:t4"],
    ]  # fmt: skip
    assert photo.attachment is not None and photo.attachment.path == str(chart) and photo.text == "Morning digest"
    assert [b.label for row in silent.buttons for b in row] == ["👀 Peek", "⏹ Cancel"]
    assert [b.action for row in done.buttons for b in row] == ["log"]
    printed: list[str] = []
    await console_outbox(store, clock, printed.append).deliver_due()
    assert printed == [
        "\n── notification (watchdog) ──\nt4 is silent\nPeek: orchestra peek t4\n",
        f"\n── notification (digest) ──\n{digest}\nChart: {chart}\n",
    ], "the console's old rows print as they did: their commands and chart were in their text"


async def test_edits_wait_for_their_message_and_give_up_with_it(store: Store) -> None:
    clock, sender = ManualClock(), ScriptedSender()
    sender.failures["1"] = [DeliveryFailed("down")]
    outbox = make(store, clock, sender)
    outbox.put(Outbound("card", kind=OutKind.ACK, task_id="t1"), chat_id="1", key="card")
    [card] = store.outbox_cards("t1")
    store.enqueue_progress(card, "card, running", buttons=(), ts=clock.now())
    await outbox.deliver_due()
    assert sender.delivered == []
    clock.value += 5
    await outbox.deliver_due()
    assert [(i.text, i.edit_message_id) for i in sender.delivered] == [("card", None), ("card, running", "501")]
    sender.failures["1"] = [DeliveryFailed("Bad Request: chat not found", permanent=True)]
    outbox.put(Outbound("card 2", kind=OutKind.ACK, task_id="t2"), chat_id="1", key="card2")
    [card2] = store.outbox_cards("t2")
    store.enqueue_progress(card2, "card 2, running", buttons=(), ts=clock.now())
    await outbox.deliver_due()
    assert len(sender.delivered) == 2 and store.outbox_queue("telegram") == []


def test_long_answers_are_split_or_sent_as_a_file() -> None:
    buttons = ((Button("Log", "log", "t1"),),)
    lines = "\n".join(f"line {n:02d} " + "x" * 30 for n in range(8))
    parts = plan_parts(Outbound(lines, buttons=buttons, reply_to="9", task_id="t1"), 100)
    assert len(parts) == 4 and "".join(p.text + "\n" for p in parts).strip() == lines
    assert all(text_length(p.text) <= 100 for p in parts)
    assert parts[0].reply_to == "9" and parts[-1].buttons == buttons and parts[0].buttons == ()
    huge = plan_parts(Outbound("head", code="y" * 1000, task_id="t1"), 100)
    assert len(huge) == 1 and huge[0].attachment is not None
    assert huge[0].attachment.filename == "t1.txt" and (huge[0].attachment.data or "").endswith("y" * 1000)
    assert split_text("🚀" * 60, 100) == ["🚀" * 50, "🚀" * 10]  # an emoji counts two, as Telegram counts


async def test_the_loop_delivers_at_once_when_woken_and_stops_cleanly(store: Store) -> None:
    from core.clock import SystemClock

    sender = ScriptedSender()
    outbox = Outbox(store, SystemClock(), sender, poll_s=30)
    await outbox.start()
    try:
        started = time.monotonic()
        outbox.put(Outbound("fast"), chat_id="1", key="x")
        while not sender.delivered:
            assert time.monotonic() - started < 2, "a put must wake the loop, not wait for the 30 s poll"
            await asyncio.sleep(0.01)
    finally:
        await outbox.stop()
    with pytest.raises(ValueError, match="toast"):
        outbox.put(Outbound("x", kind=OutKind.TOAST), chat_id="1", key="t")


async def test_a_file_whose_text_is_too_long_for_a_caption_gets_it_as_messages_first(
    store: Store, tmp_path: Path
) -> None:
    """One rule for a reply (e.g. /digest) and a row for every chat (the scheduled digest) alike."""
    clock, sender = ManualClock(), ScriptedSender()
    outbox = make(store, clock, sender, notify_chats=["2"])
    chart = tmp_path / "chart.png"
    chart.write_bytes(b"\x89PNG fake")
    text = "Digest\n" + "".join(f"line {n:02d} of the digest, long enough\n" for n in range(6)) + "Savings: $1"
    buttons = ((Button("✅ Approve", "approve", "t3"),),)
    photo = Attachment("photo", "digest.png", path=str(chart))
    outbox.put(Outbound(text, buttons=buttons, reply_to="9", attachment=photo), chat_id="1", key="demand")
    scheduled = Outbound(text, kind=OutKind.DIGEST, buttons=waiting_keyboard([("t3", "awaiting_approval")]),
                         attachment=Attachment("photo", "chart.png", path=str(chart)))  # fmt: skip
    store.enqueue("telegram", scheduled, dedupe_key="d", ts=1.0)
    for _ in range(3):
        await outbox.deliver_due()
    for chat in ("1", "2"):
        parts = [i for i in sender.delivered if i.chat_id == chat]
        *texts, file = parts
        assert "\n".join(p.text for p in texts) == text, "every line arrives, in order"
        assert all(text_length(p.text) <= sender.max_chars and p.attachment is None for p in texts)
        assert file.attachment is not None and file.text == "Digest" and text_length(file.text) <= sender.max_caption
        assert [p.buttons != () for p in parts] == [False] * (len(texts) - 1) + [True, False]
    assert sender.delivered[0].reply_to == "9"
