"""Who may use a chat bot, and how often: checked before the command layer sees a message."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from core.commands.answers import toast
from core.messages import Inbound, Outbound
from core.service import Actor, Service

if TYPE_CHECKING:
    from collections.abc import Iterable

    from core.clock import Clock

log = logging.getLogger(__name__)


class Gate:
    """Who may use the bot and how often: checked before :class:`core.commands.Commands` sees anything.

    Unknown users and chats get one refusal line (at most once per ``refuse_every_s``) and an
    audit entry, and learn nothing about tasks; the line names their id and the bots.yaml list
    (``users_key``, ``chats_key``) that would let them in. Buttons are tapped where the bot posts
    them, so taps are accepted in ``notify_chats`` too. Allowed users get ``per_minute`` commands
    a minute as a token bucket, counted by when each message was sent: a backlog read at once
    after an outage or a restart is not a flood, and is not refused as one. Refusals are audited
    through the Service, which redacts secrets before it clips.
    """

    def __init__(
        self,
        service: Service,
        clock: Clock,
        *,
        allowed_users: list[str],
        allowed_chats: list[str],
        per_minute: int,
        refuse_every_s: float = 600.0,
        notify_chats: Iterable[str] = (),
        users_key: str = "telegram.allowed_user_ids",
        chats_key: str = "telegram.allowed_chat_ids",
    ) -> None:
        self.service = service
        self.clock = clock
        self.allowed_users = set(allowed_users)
        self.allowed_chats = set(allowed_chats)
        self.notify_chats = set(notify_chats)
        self.users_key = users_key
        self.chats_key = chats_key
        self.per_minute = per_minute
        self.refuse_every_s = refuse_every_s
        self._tokens: dict[str, tuple[float, float]] = {}
        self._last_notice: dict[str, float] = {}

    def check(self, inbound: Inbound) -> list[Outbound] | None:
        """None when the message may go on to the commands; else what to answer instead."""
        now = self.clock.now()
        refusal = self._refusal(inbound)
        if refusal is not None:
            what = "tap " + inbound.tap.action if inbound.tap else self.service.quote(inbound.text, 100)
            who = Actor(
                name=f"{inbound.user_name} ({inbound.user_id})", source=inbound.chat.platform,
                where=f"chat {inbound.chat.chat_id} user {inbound.user_id}",
            )  # fmt: skip
            self.service.audit(who, "refused", None, f"chat {inbound.chat.chat_id}: {what}")
            log.warning("refused %s user %s in chat %s", inbound.chat.platform, inbound.user_id, inbound.chat.chat_id)
            if inbound.tap is not None:
                return [toast(refusal)]
            if not self._notice_due(f"refused:{inbound.user_id}", now):
                return []
            return [Outbound(refusal, reply_to=inbound.message_id)]
        sent = now if inbound.sent_at is None else min(now, inbound.sent_at)
        if not self._take_token(inbound.user_id, sent):
            if inbound.tap is not None:
                return [toast(f"Too many taps: at most {self.per_minute} a minute.")]
            if not self._notice_due(f"slow:{inbound.user_id}", now, every=60.0):
                return []
            return [
                Outbound(f"⏳ Slow down: at most {self.per_minute} commands a minute.", reply_to=inbound.message_id)
            ]
        return None

    def _refusal(self, inbound: Inbound) -> str | None:
        if inbound.user_id not in self.allowed_users:
            return (
                f"⛔ This bot is private. Its owner can let you in by adding your user id {inbound.user_id} "
                f"to {self.users_key} in bots.yaml."
            )
        chat = inbound.chat.chat_id
        tap_here = inbound.tap is not None and chat in self.notify_chats
        if not inbound.chat.private and chat not in self.allowed_chats and not tap_here:
            return (
                f"⛔ This chat is not allowed to use the bot: its owner can add its id {chat} "
                f"to {self.chats_key} in bots.yaml."
            )
        return None

    def _take_token(self, user_id: str, now: float) -> bool:
        tokens, stamp = self._tokens.get(user_id, (float(self.per_minute), now))
        now = max(now, stamp)  # send times of a backlog may run behind the last one seen
        tokens = min(float(self.per_minute), tokens + (now - stamp) * self.per_minute / 60.0)
        if tokens < 1.0:
            self._tokens[user_id] = (tokens, now)
            return False
        self._tokens[user_id] = (tokens - 1.0, now)
        return True

    def _notice_due(self, key: str, now: float, every: float | None = None) -> bool:
        last = self._last_notice.get(key)
        if last is not None and now - last < (every if every is not None else self.refuse_every_s):
            return False
        self._last_notice[key] = now
        return True


__all__ = ["Gate"]
