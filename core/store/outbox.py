"""The outbox: messages queued for a channel, then for each chat, with edits and fan-out."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core.models import ACTIVE_STATES
from core.store._base import _Base

if TYPE_CHECKING:  # the message types load with the first message (a CLI read never needs them)
    from collections.abc import Sequence

    from core.messages import Keyboard, Outbound, OutboxCopy, OutboxItem


class OutboxMixin(_Base):
    """The ``outbox`` table."""

    # -- queueing: one row per message, for one chat or for every chat of its channel ---------
    def enqueue(
        self,
        channel: str,
        message: Outbound,
        *,
        dedupe_key: str,
        ts: float,
        chat_id: str | None = None,
        edit_of: int | None = None,
        shown_in: Sequence[str] = (),
    ) -> bool:
        """Queue a message (or an edit of one); the same ``dedupe_key`` is queued once only. True if new.

        ``chat_id`` None asks the channel's delivery to fan the row out to every chat it notifies,
        except the chats in ``shown_in`` (they already show it). An edit names its message
        directly (``message.edit_message_id``) or as the outbox row that sent it (``edit_of``),
        which may not have been delivered yet.
        """
        return self._insert(channel, message.kind, message, dedupe_key, ts, chat_id, edit_of, shown_in)

    def _insert(
        self,
        channel: str,
        kind: str,
        message: Outbound,
        dedupe_key: str,
        ts: float,
        chat_id: str | None,
        edit_of: int | None = None,
        shown_in: Sequence[str] = (),
    ) -> bool:
        from core.messages import keyboard_to_json

        payload: dict[str, Any] = {}
        if message.code:
            payload["code"] = message.code
        if message.reply_to:
            payload["reply_to"] = message.reply_to
        if message.attachment is not None:
            payload["attachment"] = message.attachment.to_dict()
        if shown_in:
            payload["shown_in"] = list(shown_in)
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO outbox (dedupe_key, channel, kind, task_id, text, payload_json, created_at, "
            "attempts, next_attempt_at, chat_id, markup_json, edit_of, edit_message_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
            (
                dedupe_key,
                channel,
                str(kind),
                message.task_id,
                message.text,
                json.dumps(payload, ensure_ascii=False),
                ts,
                ts,
                chat_id,
                keyboard_to_json(message.buttons) if message.buttons else None,
                edit_of,
                message.edit_message_id,
            ),
        )
        return cursor.rowcount == 1

    def mark_failed_attempt(self, notification_id: int, error: str, retry_at: float) -> None:
        self._conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
            (error[:500], retry_at, notification_id),
        )

    def enqueue_progress(
        self, card_id: int, text: str, *, buttons: Keyboard, ts: float, final: bool = False, state: str = ""
    ) -> bool:
        """Queue an edit of a card (an acknowledgement) and drop older edits of it not yet sent.

        Only the newest state of a card matters, so a backlog of progress edits collapses into one.
        A ``final`` edit is queued once per ``state``. True if an edit was queued (False when the
        card is unknown, or this final state was already queued).
        """
        from core.messages import Outbound, OutKind

        card = self._conn.execute("SELECT channel, chat_id, task_id FROM outbox WHERE id = ?", (card_id,)).fetchone()
        if card is None:
            return False
        channel, chat_id, task_id = card
        with self.atomic():
            count = self._conn.execute("SELECT COUNT(*) FROM outbox WHERE edit_of = ?", (card_id,)).fetchone()[0]
            suffix = f"final-{state}" if final else str(count + 1)  # each final state is written once
            added = self.enqueue(
                channel,
                Outbound(text, kind=OutKind.PROGRESS, buttons=buttons, task_id=task_id),
                chat_id=chat_id,
                dedupe_key=f"{channel}:{chat_id}:card:{card_id}:{suffix}",
                ts=ts,
                edit_of=card_id,
            )
            if added:
                newest = self._conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                self._conn.execute(
                    "UPDATE outbox SET sent_at = ?, last_error = 'superseded' WHERE edit_of = ? AND kind = 'progress' "
                    "AND sent_at IS NULL AND failed_at IS NULL AND id < ?",
                    (ts, card_id, newest),
                )
        return added

    def outbox_queue(self, channel: str, *, task_id: str | None = None, limit: int = 200) -> list[OutboxItem]:
        """Undelivered rows of a channel (of one task's, if given) in the order they were queued, due
        or not, given-up ones left out."""
        where = " AND o.task_id = ?" if task_id is not None else ""
        rows = self._conn.execute(
            _OUTBOX_ITEM_SQL
            + " WHERE o.channel = ? AND o.sent_at IS NULL AND o.failed_at IS NULL"
            + where
            + " ORDER BY o.id LIMIT ?",
            (channel, *([task_id] if task_id is not None else []), limit),
        ).fetchall()
        return [_outbox_item(row) for row in rows]

    def outbox_backlog(self, channel: str) -> dict[str, Any]:
        """A channel's delivery at a glance (what metrics and ``orchestra doctor`` show).

        ``pending``: rows not delivered and not given up, due or not; ``oldest_at``: the
        ``created_at`` of the oldest of them (None when there is none); ``given_up``: rows the
        platform refused for good (kept forever, so it only grows); ``delivered_at``: when the
        platform last accepted a message and gave it an id, among the channel's last 500 rows
        marked sent (None when none has one: the console, or a run of superseded edits).
        """
        pending, oldest, given_up = self._conn.execute(
            "SELECT COUNT(*) - COUNT(failed_at), MIN(CASE WHEN failed_at IS NULL THEN created_at END), "
            "COUNT(failed_at) FROM outbox WHERE channel = ? AND sent_at IS NULL",
            (channel,),
        ).fetchone()
        delivered = self._conn.execute(  # bounded: a channel without message ids is not scanned to its start
            "SELECT MAX(sent_at) FROM (SELECT sent_at, message_id FROM outbox WHERE channel = ? "
            "AND sent_at IS NOT NULL ORDER BY sent_at DESC LIMIT 500) WHERE message_id IS NOT NULL",
            (channel,),
        ).fetchone()
        return {
            "pending": int(pending or 0),
            "oldest_at": None if oldest is None else float(oldest),
            "given_up": int(given_up or 0),
            "delivered_at": None if delivered[0] is None else float(delivered[0]),
        }

    def outbox_item(self, item_id: int) -> OutboxItem | None:
        row = self._conn.execute(_OUTBOX_ITEM_SQL + " WHERE o.id = ?", (item_id,)).fetchone()
        return None if row is None else _outbox_item(row)

    def mark_delivered(self, item_id: int, ts: float, message_id: str | None) -> bool:
        """Record a chat message as delivered with the id the platform gave it; False if it already was."""
        cursor = self._conn.execute(
            "UPDATE outbox SET sent_at = ?, message_id = COALESCE(?, message_id), attempts = attempts + 1 "
            "WHERE id = ? AND sent_at IS NULL",
            (ts, message_id, item_id),
        )
        return cursor.rowcount == 1

    def mark_given_up(self, item_id: int, error: str, ts: float) -> None:
        """The platform refused the message for good (blocked bot, unknown chat): it stays, marked failed."""
        self._conn.execute(
            "UPDATE outbox SET failed_at = ?, last_error = ?, attempts = attempts + 1 WHERE id = ? AND sent_at IS NULL",
            (ts, error[:500], item_id),
        )

    def fan_out(self, item_id: int, copies: list[OutboxCopy], ts: float) -> None:
        """Replace a row meant for every chat by the given per-chat rows, atomically.

        The parent row is marked delivered in the same transaction, so a crash leaves either the
        parent (fanned out again later, its copies deduplicated) or the copies, never both.
        """
        parent = self.outbox_item(item_id)
        if parent is None:
            return
        with self.atomic():
            for copy in copies:
                message = replace(copy.message, task_id=parent.task_id)
                self._insert(parent.channel, parent.kind, message, copy.dedupe_key, ts, copy.chat_id)
            self._conn.execute(
                "UPDATE outbox SET sent_at = ?, last_error = ? WHERE id = ? AND sent_at IS NULL",
                (ts, f"fanned out to {len(copies)} chat(s)", item_id),
            )

    def outbox_cards(self, task_id: str) -> list[int]:
        """Outbox ids of the cards (acknowledgements, approval requests) showing this task, in any chat."""
        from core.messages import CARD_KINDS

        marks = ", ".join("?" for _ in CARD_KINDS)
        rows = self._conn.execute(
            f"SELECT id FROM outbox WHERE task_id = ? AND kind IN ({marks}) AND chat_id IS NOT NULL "
            "AND failed_at IS NULL ORDER BY id",
            (task_id, *CARD_KINDS),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def notification_rows(self, channel: str, task_id: str, key: str) -> list[tuple[int, str | None, bool]]:
        """The rows a notification about a task queued under ``key`` (``Notifier.post``) became in a channel: the
        row for every chat and its per-chat copies, never their edits or given-up ones, oldest first,
        as (outbox id, chat id or None, sent). A row for every chat that is "sent" was fanned out."""
        own = f"{channel}:{key}"
        rows = self._conn.execute(
            "SELECT id, chat_id, sent_at IS NOT NULL FROM outbox WHERE task_id = ? AND channel = ? AND edit_of IS NULL "
            "AND failed_at IS NULL AND (dedupe_key = ? OR substr(dedupe_key, 1, ?) = ?) ORDER BY id",
            (task_id, channel, own, len(own) + 1, own + "|"),
        ).fetchall()
        return [(int(row[0]), None if row[1] is None else str(row[1]), bool(row[2])) for row in rows]

    def rewrite_unsent(self, item_id: int, text: str, buttons: Keyboard) -> bool:
        """Change a message not sent yet (its text, its buttons; its code block goes): the chats get
        the new one instead. False when it went out meanwhile (edit it then)."""
        from core.messages import keyboard_to_json

        cursor = self._conn.execute(
            "UPDATE outbox SET text = ?, markup_json = ?, payload_json = json_remove(COALESCE(payload_json, '{}'), "
            "'$.code') WHERE id = ? AND sent_at IS NULL AND failed_at IS NULL",
            (text, keyboard_to_json(buttons) if buttons else None, item_id),
        )
        return cursor.rowcount == 1

    def tasks_with_stale_cards(self) -> list[str]:
        """Finished tasks with a card that never got the edit to that final state (oldest first).

        A task that finished while no bot listened (the bot was down, or an on-demand engine
        recorded it) leaves its cards showing it running; the bot brings them up to date at start.
        """
        from core.messages import CARD_KINDS

        marks = ", ".join("?" for _ in CARD_KINDS)
        active = ", ".join("?" for _ in ACTIVE_STATES)
        rows = self._conn.execute(
            f"SELECT DISTINCT t.id, t.num FROM outbox c JOIN tasks t ON t.id = c.task_id WHERE c.kind IN ({marks}) "
            f"AND c.chat_id IS NOT NULL AND c.failed_at IS NULL AND t.state NOT IN ({active}) "
            "AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.dedupe_key = "
            "c.channel || ':' || c.chat_id || ':card:' || c.id || ':final-' || t.state) ORDER BY t.num",
            (*CARD_KINDS, *ACTIVE_STATES),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def card_thread(self, channel: str, chat_id: str, task_id: str) -> str | None:
        """The thread of this task's first card in a chat: the message it answered, or else the card itself."""
        from core.messages import CARD_KINDS

        marks = ", ".join("?" for _ in CARD_KINDS)
        row = self._conn.execute(
            f"SELECT payload_json, message_id FROM outbox WHERE channel = ? AND chat_id = ? AND task_id = ? "
            f"AND kind IN ({marks}) AND failed_at IS NULL ORDER BY id LIMIT 1",
            (channel, chat_id, task_id, *CARD_KINDS),
        ).fetchone()
        if row is None:
            return None
        reply_to = (json.loads(row[0]) if row[0] else {}).get("reply_to")
        return str(reply_to) if reply_to else (None if row[1] is None else str(row[1]))

    def task_chats(self, channel: str, task_id: str) -> list[str]:
        """Chats of a channel where this task was acknowledged: its completion goes there too."""
        from core.messages import CARD_KINDS

        marks = ", ".join("?" for _ in CARD_KINDS)
        rows = self._conn.execute(
            f"SELECT DISTINCT chat_id FROM outbox WHERE channel = ? AND task_id = ? AND kind IN ({marks}) "
            "AND chat_id IS NOT NULL ORDER BY id",
            (channel, task_id, *CARD_KINDS),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def outbox_message(self, channel: str, chat_id: str, message_id: str) -> tuple[int, str, str | None] | None:
        """(outbox id, kind, task id) of the message we sent with this platform id, if it was ours."""
        row = self._conn.execute(
            "SELECT id, kind, task_id FROM outbox WHERE channel = ? AND chat_id = ? AND message_id = ? "
            "AND edit_of IS NULL AND edit_message_id IS NULL ORDER BY id LIMIT 1",
            (channel, chat_id, message_id),
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), row[2])

    def thread_task(self, channel: str, chat_id: str, thread: str) -> str | None:
        """The task whose card was posted in this thread (Slack: the thread of the message that asked)."""
        from core.messages import CARD_KINDS

        marks = ", ".join("?" for _ in CARD_KINDS)
        row = self._conn.execute(
            f"SELECT task_id FROM outbox WHERE channel = ? AND chat_id = ? AND kind IN ({marks}) "
            "AND task_id IS NOT NULL AND json_extract(payload_json, '$.reply_to') = ? ORDER BY id LIMIT 1",
            (channel, chat_id, *CARD_KINDS, thread),
        ).fetchone()
        return None if row is None else str(row[0])


_OUTBOX_ITEM_SQL = (
    "SELECT o.id, o.channel, o.kind, o.chat_id, o.text, o.dedupe_key, o.task_id, o.markup_json, o.payload_json, "
    "o.edit_of, COALESCE(o.edit_message_id, t.message_id), "
    "CASE WHEN o.edit_of IS NULL THEN NULL WHEN t.failed_at IS NOT NULL THEN 'failed' "
    "WHEN t.sent_at IS NOT NULL THEN 'sent' ELSE 'pending' END, o.attempts, o.next_attempt_at "
    "FROM outbox o LEFT JOIN outbox t ON t.id = o.edit_of"
)


def _outbox_item(row: tuple[Any, ...]) -> OutboxItem:
    from core.messages import Attachment, OutboxItem, keyboard_from_json

    (item_id, channel, kind, chat_id, text, key, task_id, markup, payload_json, edit_of, edit_id, target, attempts,
     next_at) = row  # fmt: skip
    payload: dict[str, Any] = json.loads(payload_json) if payload_json else {}
    attachment = payload.get("attachment")
    return OutboxItem(
        id=int(item_id),
        channel=str(channel),
        kind=str(kind),
        chat_id=None if chat_id is None else str(chat_id),
        text=str(text or ""),
        dedupe_key=str(key),
        task_id=task_id,
        buttons=keyboard_from_json(markup),
        code=str(payload.get("code") or ""),
        reply_to=payload.get("reply_to"),
        edit_of=edit_of,
        edit_message_id=None if edit_id is None else str(edit_id),
        target_state=target,
        attachment=Attachment.from_dict(attachment) if isinstance(attachment, dict) else None,
        attempts=int(attempts or 0),
        next_attempt_at=float(next_at or 0.0),
        shown_in=tuple(str(chat) for chat in payload.get("shown_in") or ()),
    )
