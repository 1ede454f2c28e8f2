"""Outbox delivery for one chat channel: at least once, de-duplicated, in order per chat, never dropped.

Every message to a chat is a row in the store's outbox before anything is sent. This loop sends
the rows through a :class:`Sender` (the transport's thin SDK wrapper) and records each one as
delivered with the platform's message id. Because the rows live in SQLite, a restarted bot sends
whatever its predecessor had not: a crash between sending and recording can repeat one message
(at least once); a ``dedupe_key`` makes sure nothing is queued twice.

Failures are typed by the sender: :class:`RetryLater` (the platform's flood control: the whole
channel pauses for ``retry_after``), :class:`DeliveryFailed` with ``permanent=False`` (5xx,
network: that row backs off exponentially while other chats go on), and ``permanent=True`` (the
platform will never take it: blocked bot, unknown chat; the row is kept, marked failed, and
logged). A chat's rows go out in the order they were queued: a row waiting for a retry holds
back the later rows of the same chat, so a completion never overtakes its acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from core.clock import Clock
from core.errors import DeliveryFailed, RetryLater
from core.messages import Attachment, Outbound, OutboxCopy, OutboxItem, OutKind
from core.store import Store

log = logging.getLogger(__name__)


class Sender(Protocol):
    """What a transport gives the outbox: one send (or edit) per call, errors typed as above."""

    channel: str
    max_chars: int
    max_caption: int

    async def deliver(self, item: OutboxItem) -> str | None:
        """Send or edit one message; return the platform's message id (None if it has none)."""
        ...


def text_length(text: str) -> int:
    """Length as chat platforms count it (UTF-16 code units: an emoji counts two)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int) -> list[str]:
    """Cut text into pieces of at most ``limit`` units, at line breaks where possible."""
    if text_length(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while text_length(line) > limit:
            head = _cut(line, limit)
            if current:
                pieces.append(current)
                current = ""
            pieces.append(head)
            line = line[len(head) :]
        if text_length(current + line) > limit:
            pieces.append(current)
            current = ""
        current += line
    if current:
        pieces.append(current)
    return [p.rstrip("\n") for p in pieces if p.strip()] or [text[:limit]]


def _cut(text: str, limit: int) -> str:
    low, high = 1, len(text)
    while low < high:  # the longest prefix within the limit (surrogate pairs count two)
        mid = (low + high + 1) // 2
        if text_length(text[:mid]) <= limit:
            low = mid
        else:
            high = mid - 1
    return text[:low]


def attachment_parts(
    text: str, attachment: Attachment | None, *, max_chars: int, max_caption: int
) -> list[tuple[str, Attachment | None]]:
    """The one rule for a message with a file, on every transport: the text is the file's caption
    when it fits the platform's caption limit; otherwise the text goes first, in as many messages
    as it takes, and the file after it, captioned with the text's first line. Nothing is cut."""
    if attachment is None or text_length(text) <= max_caption:
        return [(text, attachment)]
    first = text.splitlines()[0] if text else ""
    return [(piece, None) for piece in split_text(text, max_chars)] + [(first[:200], attachment)]


def plan_parts(out: Outbound, limit: int, *, max_parts: int = 4, max_caption: int | None = None) -> list[Outbound]:
    """One message per part when ``out`` is too long for one; a file when it would take too many.

    Buttons go on the last part of the text, the reply reference on the first. A message with a
    file follows :func:`attachment_parts` (``max_caption`` defaults to ``limit``).
    """
    if out.attachment is not None and out.kind != OutKind.EDIT:
        with_file = attachment_parts(out.text, out.attachment, max_chars=limit, max_caption=max_caption or limit)
        if len(with_file) == 1:
            return [out]
        last_text = len(with_file) - 2
        return [
            Outbound(
                text,
                kind=out.kind if i == 0 else OutKind.REPLY,
                buttons=out.buttons if i == last_text else (),
                task_id=out.task_id,
                reply_to=out.reply_to if i == 0 else None,
                attachment=attachment,
            )
            for i, (text, attachment) in enumerate(with_file)
        ]
    total = text_length(out.text) + text_length(out.code)
    if out.attachment is not None or out.kind == OutKind.EDIT or total + 2 <= limit:
        return [out]
    texts = split_text(out.text, limit) if out.text else []
    codes = split_text(out.code, limit - 16) if out.code else []
    if len(texts) + len(codes) > max_parts:
        first = out.text.splitlines()[0] if out.text else "message"
        name = f"{out.task_id or 'message'}.txt"
        body = out.text + ("\n\n" + out.code if out.code else "")
        return [
            Outbound(
                f"{first[:200]}\n(too long for one message: attached as {name})",
                kind=out.kind,
                buttons=out.buttons,
                task_id=out.task_id,
                reply_to=out.reply_to,
                attachment=Attachment("document", name, data=body),
            )
        ]
    pieces = [(t, "") for t in texts] + [("", c) for c in codes]
    parts = []
    for i, (text, code) in enumerate(pieces):
        last = i == len(pieces) - 1
        parts.append(
            Outbound(
                text,
                kind=out.kind if i == 0 else OutKind.REPLY,
                buttons=out.buttons if last else (),
                code=code,
                task_id=out.task_id,
                reply_to=out.reply_to if i == 0 else None,
            )
        )
    return parts


class Outbox:
    """Queues a channel's outgoing messages in the store and runs the loop that delivers them.

    ``notify_chats`` are the chats that get rows queued for "every chat" (completions, alerts,
    digests), together with the chats where the row's task was acknowledged. A channel that is
    one place (the terminal: ``fan_out=False``) sends those rows as they are.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        sender: Sender,
        *,
        notify_chats: Iterable[str] = (),
        fan_out: bool = True,
        retry_base_s: float = 1.0,
        retry_max_s: float = 60.0,
        poll_s: float = 1.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.sender = sender
        self.channel = sender.channel
        self.notify_chats = list(dict.fromkeys(notify_chats))
        self.fan_out = fan_out
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._paused_until = 0.0
        self._next_due = float("inf")
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # -- queueing ------------------------------------------------------------------------------
    def put(self, out: Outbound, *, chat_id: str, key: str) -> int:
        """Queue one answer for a chat (split into parts if needed); returns the rows added.

        ``key`` identifies it (e.g. the update it answers): the same key is never queued twice.
        """
        if out.kind == OutKind.TOAST:
            raise ValueError("a toast is answered directly, never queued")
        added = 0
        for n, part in enumerate(plan_parts(out, self.sender.max_chars, max_caption=self.sender.max_caption)):
            added += self.store.enqueue(
                self.channel, part, chat_id=chat_id, dedupe_key=key if n == 0 else f"{key}:{n}", ts=self.clock.now()
            )
        if added:
            self.wake()
        return added

    def wake(self) -> None:
        """Something was queued: deliver now rather than at the next poll."""
        self._wake.set()

    # -- the loop ------------------------------------------------------------------------------
    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"outbox:{self.channel}")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop after the message being sent, if any (waiting at most ``grace_s``)."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:
                log.exception("%s delivery pass failed; trying again shortly", self.channel)
            if self._stopping:
                break
            now = self.clock.now()
            wait = min(self.poll_s, max(0.01, self._next_due - now))  # a retry due before the next poll
            if self._paused_until > now:
                wait = min(max(self._paused_until - now, 0.01), self.retry_max_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def deliver_due(self, *, task_id: str | None = None) -> int:
        """One pass over the queue (one task's rows, if given): send every row that is due, in
        order per chat. Returns rows sent."""
        now = self.clock.now()
        self._next_due = float("inf")
        if now < self._paused_until:
            return 0
        held: set[str] = set()
        sent = 0
        queue = deque(self.store.outbox_queue(self.channel, task_id=task_id))
        seen: set[int] = set()
        while queue:
            item = queue.popleft()
            if self._stopping:
                break
            if item.id in seen:
                continue  # a copy queued before (a fan-out cut short by a crash) came again from the fan-out
            seen.add(item.id)
            if item.chat_id is None and self.fan_out:
                # The copies take the row's place, ahead of rows queued after it (the card's final edit
                # is queued after a completion): a completion is not held behind another round trip.
                queue.extendleft(reversed(self._fan_out(item)))
                now = self.clock.now()  # the copies are due from now on
                continue
            chat = item.chat_id or ""
            if chat in held:
                continue
            if item.edit_of is not None and item.target_state == "pending":
                item = self.store.outbox_item(item.id) or item  # its message may have gone out earlier in this pass
            if item.next_attempt_at > now or (item.edit_of is not None and item.target_state == "pending"):
                self._next_due = min(self._next_due, item.next_attempt_at)
                held.add(chat)
                continue
            if item.edit_of is not None and item.target_state == "failed":
                self.store.mark_given_up(item.id, "the message it edits was never delivered", now)
                continue
            if await self._send(item):
                sent += 1
            else:
                held.add(chat)
            if self.clock.now() < self._paused_until:
                break
            now = self.clock.now()
        return sent

    async def _send(self, item: OutboxItem) -> bool:
        try:
            message_id = await self.sender.deliver(item)
        except RetryLater as exc:
            until = self.clock.now() + exc.after_s
            self._paused_until = max(self._paused_until, until)
            self.store.mark_failed_attempt(item.id, str(exc), until)
            log.warning("%s: flood control, pausing delivery for %.1fs", self.channel, exc.after_s)
            return False
        except DeliveryFailed as exc:
            if exc.permanent:
                self.store.mark_given_up(item.id, str(exc), self.clock.now())
                log.warning("%s: message %s to chat %s refused for good: %s", self.channel, item.id, item.chat_id, exc)
                return True
            self._back_off(item, str(exc))
            return False
        except Exception as exc:
            log.exception("%s: sending message %s failed unexpectedly", self.channel, item.id)
            self._back_off(item, f"{type(exc).__name__}: {exc}")
            return False
        self.store.mark_delivered(item.id, self.clock.now(), message_id)
        return True

    def _back_off(self, item: OutboxItem, reason: str) -> None:
        delay = min(self.retry_max_s, self.retry_base_s * 2 ** min(item.attempts, 16))
        delay *= random.uniform(0.8, 1.2)  # spread retries from many rows over time
        self._next_due = min(self._next_due, self.clock.now() + delay)
        self.store.mark_failed_attempt(item.id, reason, self.clock.now() + delay)
        log.info("%s: message %s not sent (%s); retrying in %.1fs", self.channel, item.id, reason, delay)

    def _fan_out(self, item: OutboxItem) -> list[OutboxItem]:
        """Replace a row for every chat by one row per chat; return those still to send, in order."""
        chats = list(self.notify_chats)
        if item.task_id:
            chats += self.store.task_chats(self.channel, item.task_id)
        chats = [c for c in dict.fromkeys(chats) if c not in item.shown_in]  # not where it already shows
        copies: list[OutboxCopy] = []
        pieces = attachment_parts(
            item.text, item.attachment, max_chars=self.sender.max_chars, max_caption=self.sender.max_caption
        )
        last_text = len(pieces) - 2 if len(pieces) > 1 else 0  # the buttons go with the text, not the file
        about_card = item.kind == OutKind.PERMISSION and item.task_id  # a question answers the task's card
        for chat in chats:
            key = f"{item.dedupe_key}|{chat}"
            thread = self.store.card_thread(self.channel, chat, item.task_id) if about_card and item.task_id else None
            for n, (text, file) in enumerate(pieces):
                part = Outbound(
                    text,
                    buttons=item.buttons if n == last_text else (),
                    code=item.code if n == 0 else "",
                    attachment=file,
                    reply_to=thread if n == 0 else None,
                )
                part_key = key if n == 0 else f"{key}|file" if file is not None else f"{key}|{n}"
                copies.append(OutboxCopy(chat, part_key, part))
        self.store.fan_out(item.id, copies, self.clock.now())
        if not chats:
            log.info("%s: no chat to notify for %s (%s)", self.channel, item.kind, item.dedupe_key)
            return []
        keys = {copy.dedupe_key for copy in copies}
        found = [row for row in self.store.outbox_queue(self.channel, task_id=item.task_id) if row.dedupe_key in keys]
        if len(found) < len(keys):
            self._wake.set()  # some are past the first page of a long backlog (or sent already): another pass
        return found


MAX_FILE_BYTES = 49 * 1024 * 1024
"""The most of a file a sender reads (the end of it: logs grow at the bottom); both platforms take 50 MB."""


async def attachment_bytes(path: str | None, data: str | None, render: str) -> bytes:
    """What an :class:`~core.messages.Attachment` sends: an ANSI screen drawn as a PNG, its data, or a file's tail."""
    if render == "ansi":
        from bot.screen import render_png  # Pillow: only once a screen is drawn

        return await asyncio.to_thread(render_png, data or "")
    if data is not None:
        return data.encode("utf-8", "replace")
    if path is None or not Path(path).is_file():
        raise DeliveryFailed(f"the file to send is gone ({path})", permanent=True)
    return await asyncio.to_thread(_read_tail, Path(path), MAX_FILE_BYTES)


def _read_tail(path: Path, limit: int) -> bytes:
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - limit))
        return fh.read()


__all__ = [
    "MAX_FILE_BYTES",
    "DeliveryFailed",
    "Outbox",
    "RetryLater",
    "Sender",
    "attachment_bytes",
    "attachment_parts",
    "plan_parts",
    "split_text",
    "text_length",
]
