"""Telegram's messages and ours: updates become :class:`core.messages.Inbound` (``to_inbound``),
outbox rows become HTML messages with inline keyboards, sent or edited by :class:`TelegramSender`.

Text is escaped for Telegram's HTML (``to_html``), so task text with ``<``, ``&`` or ``*`` is shown
as typed; a button's ``callback_data`` is ``action:task_id``. The sender turns the Bot API's
errors into the outbox's: a 429 pauses the channel, a 5xx or a dropped connection retries the row,
a refusal (blocked bot, bad request) gives it up.
"""

from __future__ import annotations

import datetime as dtm
import html
import warnings
from typing import Any

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyParameters,
    Update,
    WebAppInfo,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError

from bot.outbox import attachment_bytes, text_length
from bot.telegram_files import files_of
from core.errors import DeliveryFailed, RetryLater
from core.messages import Button, ChatRef, Inbound, Keyboard, OutboxItem, Tap

MAX_CHARS = 4096
CAPTION_CHARS = 1024


# -- inbound ------------------------------------------------------------------------------------
def to_inbound(update: Update, bot_username: str = "", bot_id: int | None = None) -> Inbound | None:
    """The neutral form of an update, or None when it is not for us (other bots, edits, other chats' noise).

    In groups only commands, messages that mention the bot and replies to it count; ``/cmd@ourbot``
    becomes ``/cmd`` and a command meant for another bot is ignored.
    """
    event_id = f"telegram:{update.update_id}"
    query = update.callback_query
    if query is not None:
        message = query.message
        if message is None or not query.data or query.from_user.is_bot:
            return None
        action, _, task_id = query.data.partition(":")
        markup = message.reply_markup if hasattr(message, "reply_markup") else None
        return Inbound(
            chat=ChatRef("telegram", str(message.chat.id), message.chat.type == "private"),
            user_id=str(query.from_user.id),
            user_name=_display_name(query.from_user),
            tap=Tap(action, task_id, str(message.message_id), from_markup(markup)),
            event_id=event_id,
            raw=update,
        )
    msg = update.message
    if msg is None or msg.from_user is None or msg.from_user.is_bot:
        return None
    private = msg.chat.type == "private"
    text = (msg.text or msg.caption or "").strip()
    files = files_of(msg)
    mention = f"@{bot_username}".lower() if bot_username else ""
    replied = msg.reply_to_message
    to_us = replied is not None and replied.from_user is not None and replied.from_user.id == bot_id
    if text.startswith("/"):
        command, rest = [*text.split(maxsplit=1), ""][:2]
        name, _, target = command.partition("@")
        if target and mention and f"@{target}".lower() != mention:
            return None  # a command for another bot in the same group
        text = f"{name} {rest}".strip()
    elif mention and text.lower().startswith(mention):
        text = text[len(mention) :].lstrip(" ,:")
    elif not private and not to_us:
        return None
    return Inbound(
        chat=ChatRef("telegram", str(msg.chat.id), private),
        user_id=str(msg.from_user.id),
        user_name=_display_name(msg.from_user),
        text=text,
        message_id=str(msg.message_id),
        event_id=event_id,
        replied_to=str(replied.message_id) if to_us and replied is not None else None,
        replied_keyboard=from_markup(replied.reply_markup) if to_us and replied is not None else (),
        sent_at=msg.date.timestamp() if msg.date else None,
        topic=str(msg.message_thread_id) if msg.is_topic_message and msg.message_thread_id else "",
        files=files,
        raw=update,
    )


def _display_name(user: Any) -> str:
    return f"@{user.username}" if user.username else (user.full_name or str(user.id))


# -- outbound -----------------------------------------------------------------------------------
def to_html(text: str, code: str = "") -> str:
    """Plain text (and a monospace block) as Telegram HTML: nothing in it is ever read as markup."""
    parts = []
    if text:
        parts.append(html.escape(text, quote=False))
    if code:
        parts.append(f"<pre>{html.escape(code, quote=False)}</pre>")
    return "\n".join(parts)


def from_markup(markup: InlineKeyboardMarkup | None) -> Keyboard:
    """The neutral form of a message's inline keyboard (buttons that are not ours are left out)."""
    if markup is None:
        return ()
    rows = []
    for row in markup.inline_keyboard:
        buttons = []
        for button in row:
            if isinstance(button.callback_data, str) and ":" in button.callback_data:
                action, _, task_id = button.callback_data.partition(":")
                buttons.append(Button(button.text, action, task_id))
            elif link := button.url or (button.web_app.url if button.web_app else None):
                buttons.append(Button(button.text, "open", "", url=link))
        if buttons:
            rows.append(tuple(buttons))
    return tuple(rows)


def to_markup(keyboard: Keyboard, *, private: bool = False) -> InlineKeyboardMarkup | None:
    """Inline buttons; a link button opens as a Mini App in a private chat (Telegram allows that
    nowhere else) and as a plain link in a group."""
    if not keyboard:
        return None

    def one(b: Button) -> InlineKeyboardButton:
        if b.url and private:
            return InlineKeyboardButton(b.label, web_app=WebAppInfo(b.url))
        if b.url:
            return InlineKeyboardButton(b.label, url=b.url)
        return InlineKeyboardButton(b.label, callback_data=f"{b.action}:{b.task_id}"[:64])

    return InlineKeyboardMarkup([[one(b) for b in row] for row in keyboard])


class TelegramSender:
    """Sends (or edits) one outbox row through the Bot API; errors become the outbox's typed errors."""

    channel = "telegram"
    max_chars = MAX_CHARS
    max_caption = CAPTION_CHARS

    def __init__(self, bot: Any) -> None:
        self.bot = bot

    async def deliver(self, item: OutboxItem) -> str | None:
        try:
            return await self._deliver(item)
        except RetryAfter as exc:
            raise RetryLater(_retry_after_s(exc)) from None
        except BadRequest as exc:
            if "message is not modified" in str(exc).lower():
                return item.edit_message_id  # the edit's content is already there: done
            raise DeliveryFailed(f"Bad Request: {exc}", permanent=True) from None
        except (Forbidden, ChatMigrated) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}", permanent=True) from None
        except TelegramError as exc:  # TimedOut, NetworkError (5xx, dropped connections), InvalidToken
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None

    async def _deliver(self, item: OutboxItem) -> str | None:
        assert item.chat_id is not None
        chat: int | str = int(item.chat_id) if item.chat_id.lstrip("-").isdigit() else item.chat_id
        markup = to_markup(item.buttons, private=isinstance(chat, int) and chat > 0)
        no_preview = LinkPreviewOptions(is_disabled=True)
        if item.is_edit:
            if not item.edit_message_id:
                raise DeliveryFailed("the message to edit has no id", permanent=True)
            message_id = int(item.edit_message_id)
            if item.text or item.code:
                text = to_html(*_fit(item.text, item.code, MAX_CHARS))
                await self.bot.edit_message_text(
                    text, chat_id=chat, message_id=message_id, parse_mode=ParseMode.HTML, reply_markup=markup,
                    link_preview_options=no_preview,
                )  # fmt: skip
            else:
                await self.bot.edit_message_reply_markup(chat_id=chat, message_id=message_id, reply_markup=markup)
            return item.edit_message_id
        reply = ReplyParameters(int(item.reply_to), allow_sending_without_reply=True) if item.reply_to else None
        attachment = item.attachment
        if attachment is None and text_length(item.text) + text_length(item.code) + 2 > MAX_CHARS:
            body = item.text + ("\n\n" + item.code if item.code else "")
            first = item.text.splitlines()[0] if item.text else "message"
            caption = to_html(f"{first[:200]}\n(too long for one message: attached)")
            sent = await self.bot.send_document(
                chat, document=body.encode(), filename=f"{item.task_id or 'message'}.txt", caption=caption,
                parse_mode=ParseMode.HTML, reply_markup=markup, reply_parameters=reply,
            )  # fmt: skip
            return str(sent.message_id)
        if attachment is not None:
            data = await attachment_bytes(attachment.path, attachment.data, attachment.render)
            caption = to_html(*_fit(item.text, "", CAPTION_CHARS))
            send = self.bot.send_photo if attachment.kind == "photo" else self.bot.send_document
            field = "photo" if attachment.kind == "photo" else "document"
            sent = await send(
                chat, **{field: data}, filename=attachment.filename, caption=caption, parse_mode=ParseMode.HTML,
                reply_markup=markup, reply_parameters=reply,
            )  # fmt: skip
            return str(sent.message_id)
        sent = await self.bot.send_message(
            chat, to_html(item.text, item.code), parse_mode=ParseMode.HTML, reply_markup=markup,
            reply_parameters=reply, link_preview_options=no_preview,
        )  # fmt: skip
        return str(sent.message_id)


def _fit(text: str, code: str, limit: int) -> tuple[str, str]:
    """Shorten text and code so they fit one message (the outbox splits long ones before this)."""
    if text_length(text) + text_length(code) + 2 <= limit:
        return text, code
    room = max(0, limit - text_length(text) - 3)
    if code and room > 40:
        return text, "…" + code[-(room - 1) :]
    return text[: limit - 1] + "…", ""


def _retry_after_s(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


__all__ = [
    "CAPTION_CHARS", "MAX_CHARS", "TelegramSender", "from_markup", "to_html", "to_inbound", "to_markup",
]  # fmt: skip
