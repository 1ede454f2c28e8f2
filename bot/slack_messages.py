"""Slack's messages and ours: slash commands, mentions, DMs and button taps become
:class:`core.messages.Inbound`; outbox rows become mrkdwn and Block Kit, posted or updated by
:class:`SlackSender`.

Text is escaped for mrkdwn (``&``, ``<``, ``>``), so task text shows as typed; a button's value is
``action:task_id``. In a mention or a DM a command word counts only where it means one
(``command_text``). The sender turns Web API errors into the outbox's: a 429 pauses the channel,
a 5xx or a dropped connection retries the row, a refusal gives it up.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbox import attachment_bytes, text_length
from bot.slack_files import files_of
from core.commands import COMMANDS, Syntax
from core.config import SlackConfig
from core.errors import DeliveryFailed, RetryLater
from core.messages import CARD_KINDS, Button, ChatRef, Inbound, Keyboard, OutboxItem, Tap
from core.store import Store
from core.text import clip

MAX_CHARS = 3000  # a section block's text
ACTION_PREFIX = "orchestra:"
_NAMES = {c.name for c in COMMANDS}
_TASK_ID = re.compile(r"(#?t?|p)\d+\Z", re.IGNORECASE)  # a task (t3, 3) or a permission request (p12)
_LEADING_MENTION = re.compile(r"^\s*(<@[A-Z0-9]+(\|[^>]*)?>[\s,:]*)+")
_TRANSIENT = {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}


# -- text ---------------------------------------------------------------------------------------
def escape(text: str) -> str:
    """Plain text as Slack mrkdwn control characters need it: ``&``, ``<`` and ``>`` shown literally."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """What a person typed: Slack sends ``&``, ``<`` and ``>`` escaped."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def to_mrkdwn(text: str, code: str = "") -> str:
    """Plain text (and a monospace block) as mrkdwn with every control character escaped."""
    parts = [escape(text)] if text else []
    if code:
        parts.append("```" + escape(code) + "```")
    return "\n".join(parts)


def to_blocks(text: str, code: str, keyboard: Keyboard) -> list[dict[str, Any]]:
    """A message as Block Kit: the text, the code block, then one actions block per row of buttons."""
    blocks: list[dict[str, Any]] = []
    if text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(escape(text)), "verbatim": True}})
    if code:
        body = "```" + _clip(escape(code), MAX_CHARS - 6, tail=True) + "```"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body, "verbatim": True}})
    for row in keyboard:
        elements = [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": b.label[:75], "emoji": True},
                "action_id": f"{ACTION_PREFIX}{b.action}:{b.task_id}"[:255],
                "value": f"{b.action}:{b.task_id}",
                **({"url": b.url[:3000]} if b.url else {}),
            }
            for b in row
        ]
        blocks.append({"type": "actions", "elements": elements})
    return blocks


def from_blocks(blocks: list[dict[str, Any]] | None) -> Keyboard:
    """The neutral buttons of a message's blocks (buttons that are not ours are left out)."""
    rows: list[tuple[Button, ...]] = []
    for block in blocks or []:
        if block.get("type") != "actions":
            continue
        row = []
        for element in block.get("elements", []):
            value = element.get("value")
            if element.get("type") == "button" and isinstance(value, str) and ":" in value:
                action, _, task_id = value.partition(":")
                label = (element.get("text") or {}).get("text", action)
                url = element.get("url")
                row.append(Button(str(label), action, task_id, url=url if isinstance(url, str) else ""))
        if row:
            rows.append(tuple(row))
    return tuple(rows)


def _clip(text: str, limit: int = MAX_CHARS, *, tail: bool = False) -> str:
    """The shared ``clip``, lines kept and counted as Slack counts (UTF-16 units)."""
    return clip(text, limit, flat=False, tail=tail, length=text_length)


def slack_syntax(command: str = "/orchestra", mention: str = "@Orchestra") -> Syntax:
    """Commands as Slack people write them: ``/orchestra status``, or ``@Orchestra status`` in a mention."""
    tasks = (
        f"In a channel only mentions count: {mention} status is a command, {mention} TEXT a task"
        " (in a DM, just the text)."
    )
    return Syntax(prefix=f"{command} ", tasks=tasks)


# -- inbound ------------------------------------------------------------------------------------
def command_text(text: str, *, explicit: bool) -> str:
    """Slack words as a command line for :class:`Commands`: ``status`` is ``/status``, other text a task.

    ``explicit`` is the slash command, whose first word is always the command when it names one.
    In a mention or a DM, a command word counts only on its own, before a task id, or as
    ``delegate``/``reject`` — "log errors in the parser" stays a task.
    """
    stripped = text.strip()
    if not stripped:
        return "/help" if explicit else ""
    if stripped.startswith("/"):
        return stripped
    word, *rest_list = stripped.split(maxsplit=1)
    rest = rest_list[0] if rest_list else ""
    name = word.lower()
    if name not in _NAMES:
        return stripped
    first = rest.split(maxsplit=1)[0] if rest else ""
    budget = (name == "budget" and first.lower() in ("day", "month", "task")) or (
        name == "permissions" and first.lower() in ("allow", "ask", "deny", "remove")
    )
    if explicit or not rest or name == "delegate" or budget or (name != "kill" and _TASK_ID.match(first)):
        return f"/{name} {rest}".strip()
    return stripped


_ID_OR_OBJECT = ("user", "team", "channel", "enterprise")
_OBJECTS = ("event", "container", "message", "view")
_LISTS_OF_OBJECTS = ("actions", "authorizations")
_EVENT_STRINGS = ("type", "user", "text", "channel", "channel_type", "ts", "thread_ts", "subtype", "bot_id")


def payload_problem(body: dict[str, Any]) -> str | None:
    """Why a signed request's payload is not one Slack sends (the fields Bolt and we read), or None.

    Lenient where Slack varies (events we do not handle are not checked inside), strict where a
    wrong type would make Bolt or a listener fail half-way.
    """
    for key in _ID_OR_OBJECT:
        if body.get(key) is not None and not isinstance(body[key], str | dict):
            return f"{key} is a {type(body[key]).__name__}"
    for key in _OBJECTS:
        if key in body and not isinstance(body[key], dict):
            return f"{key} is a {type(body[key]).__name__}"
    for key in _LISTS_OF_OBJECTS:
        value = body.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            return f"{key} is not a list of objects"
    for action in body.get("actions") or []:
        if any(not isinstance(action.get(k, ""), str) for k in ("action_id", "value", "block_id", "action_ts")):
            return "an action's id or value is not a string"
    event = body.get("event") or {}
    if event.get("type") in ("app_mention", "message"):
        wrong = [k for k in _EVENT_STRINGS if event.get(k) is not None and not isinstance(event[k], str)]
        if wrong:
            return f"event.{wrong[0]} is a {type(event[wrong[0]]).__name__}"
    return None


def _private(channel: str, channel_type: str = "") -> bool:
    return channel_type == "im" or channel.startswith("D")


def _slack_time(ts: object) -> float | None:
    try:
        return float(str(ts))
    except ValueError:
        return None


def slash_to_inbound(body: dict[str, Any]) -> Inbound:
    """A slash command (``/orchestra status``); it has no message, so its answers start a new thread."""
    channel = str(body.get("channel_id", ""))
    user = str(body.get("user_id", ""))
    return Inbound(
        chat=ChatRef("slack", channel, _private(channel, "im" if body.get("channel_name") == "directmessage" else "")),
        user_id=user,
        user_name=f"@{body['user_name']}" if body.get("user_name") else user,
        text=command_text(unescape(str(body.get("text", ""))), explicit=True),
        event_id=f"slack:{body.get('trigger_id') or body.get('command', '') + ':' + str(time.time_ns())}",
        raw=body,
    )


def event_to_inbound(body: dict[str, Any], bot_user_id: str = "") -> Inbound | None:
    """An app mention or a direct message, or None when it is not for us (bots, edits, channel chatter)."""
    event = body.get("event") or {}
    subtype = event.get("subtype")
    if event.get("bot_id") or subtype not in (None, "file_share") or not event.get("user"):
        return None
    if event.get("user") == bot_user_id:
        return None
    channel = str(event.get("channel", ""))
    private = _private(channel, str(event.get("channel_type", "")))
    if event.get("type") == "message" and not private:
        return None  # in channels only mentions count (they arrive as app_mention)
    text = _LEADING_MENTION.sub("", unescape(str(event.get("text", ""))))
    thread = event.get("thread_ts") or (None if private else event.get("ts"))
    return Inbound(
        chat=ChatRef("slack", channel, private),
        user_id=str(event["user"]),
        user_name=str(event["user"]),
        text=command_text(text, explicit=False),
        message_id=None if thread is None else str(thread),
        event_id=f"slack:{body.get('event_id') or event.get('client_msg_id') or event.get('ts')}",
        replied_to=str(event["thread_ts"]) if event.get("thread_ts") not in (None, event.get("ts")) else None,
        sent_at=_slack_time(event.get("ts")),
        files=files_of(event),
        raw=body,
    )


def action_to_inbound(body: dict[str, Any]) -> Inbound | None:
    """A tap on one of our buttons (``block_actions``); the answers go in the tapped message's thread."""
    actions = body.get("actions") or []
    user = body.get("user") or {}
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
    if not actions or not user.get("id") or not channel:
        return None
    value = str(actions[0].get("value", ""))
    action, _, task_id = value.partition(":")
    message_ts = str(container.get("message_ts") or message.get("ts") or "")
    private = _private(channel)
    thread = message.get("thread_ts") or (None if private else message_ts or None)
    name = user.get("username") or user.get("name")
    return Inbound(
        chat=ChatRef("slack", channel, private),
        user_id=str(user["id"]),
        user_name=f"@{name}" if name else str(user["id"]),
        tap=Tap(action, task_id, message_ts, from_blocks(message.get("blocks"))),
        message_id=None if thread is None else str(thread),
        event_id=f"slack:{body.get('trigger_id') or actions[0].get('action_ts', '')}:{value}",
        raw=body,
    )


# -- outbound -----------------------------------------------------------------------------------
class SlackSender:
    """Sends (or edits) one outbox row through the Web API; errors become the outbox's typed errors.

    A row about a task with no thread of its own (a completion fanned out to every chat) goes in
    the thread where that task was acknowledged in that channel.
    """

    channel = "slack"
    max_chars = MAX_CHARS
    max_caption = MAX_CHARS

    def __init__(self, client: AsyncWebClient, store: Store) -> None:
        self.client = client
        self.store = store
        self._threads: dict[tuple[str, str], str] = {}

    async def deliver(self, item: OutboxItem) -> str | None:
        try:
            return await self._deliver(item)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
            if status == 429:
                raise RetryLater(_retry_after_s(exc.response.headers)) from None
            if status >= 500 or error in _TRANSIENT:
                raise DeliveryFailed(f"HTTP {status} {error}".strip()) from None
            raise DeliveryFailed(f"Slack refused it: {error or status}", permanent=True) from None
        except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None

    async def _deliver(self, item: OutboxItem) -> str | None:
        assert item.chat_id is not None
        chat = item.chat_id
        if item.is_edit:
            return await self._edit(chat, item)
        thread = item.reply_to or self._thread(chat, item.task_id)
        attachment = item.attachment
        if attachment is None and text_length(item.text) + text_length(item.code) + 2 > MAX_CHARS:
            body = item.text + ("\n\n" + item.code if item.code else "")
            first = item.text.splitlines()[0] if item.text else "message"
            note = f"{first[:200]}\n(too long for one message: attached)"
            return await self._with_file(
                chat, thread, note, item.buttons, f"{item.task_id or 'message'}.txt", body.encode()
            )
        if attachment is not None:
            data = await attachment_bytes(attachment.path, attachment.data, attachment.render)
            return await self._with_file(chat, thread, item.text, item.buttons, attachment.filename, data)
        ts = await self._post(chat, thread, item.text, item.code, item.buttons)
        if item.kind in CARD_KINDS and item.task_id and not chat.startswith("D"):
            self._threads[(chat, item.task_id)] = thread or ts
        return ts

    async def _post(self, chat: str, thread: str | None, text: str, code: str, buttons: Keyboard) -> str:
        response = await self.client.chat_postMessage(
            channel=chat,
            text=_clip(to_mrkdwn(text, code), 3900),
            blocks=to_blocks(text, code, buttons),
            thread_ts=thread,
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(response["ts"])

    async def _edit(self, chat: str, item: OutboxItem) -> str | None:
        if not item.edit_message_id:
            raise DeliveryFailed("the message to edit has no id", permanent=True)
        text, code = item.text, item.code
        if not text and not code:  # only the buttons change: Slack replaces the blocks, so resend the text too
            found = self.store.outbox_message("slack", chat, item.edit_message_id)
            original = self.store.outbox_item(found[0]) if found is not None else None
            if original is None:
                raise DeliveryFailed("cannot change the buttons of a message that is not ours", permanent=True)
            text, code = original.text, original.code
        await self.client.chat_update(
            channel=chat,
            ts=item.edit_message_id,
            text=_clip(to_mrkdwn(text, code), 3900),
            blocks=to_blocks(text, code, item.buttons),
        )
        return item.edit_message_id

    async def _with_file(
        self, chat: str, thread: str | None, text: str, buttons: Keyboard, filename: str, data: bytes
    ) -> str | None:
        """A file with its text: buttons need a message of their own, so then the file goes in its thread."""
        if buttons:
            ts = await self._post(chat, thread, text, "", buttons)
            await self.client.files_upload_v2(
                channel=chat, thread_ts=thread or ts, file=data, filename=filename, title=filename
            )
            return ts
        await self.client.files_upload_v2(
            channel=chat, thread_ts=thread, file=data, filename=filename, title=filename,
            initial_comment=_clip(escape(text), 3900) if text else None,
        )  # fmt: skip
        return None

    def _thread(self, chat: str, task_id: str | None) -> str | None:
        """The thread where ``task_id`` was acknowledged in ``chat`` (None in DMs and for unknown tasks)."""
        if not task_id or chat.startswith("D"):
            return None
        known = self._threads.get((chat, task_id))
        if known is None:
            known = self.store.card_thread("slack", chat, task_id)  # after a restart
        return known


def _retry_after_s(headers: Any) -> float:
    for key in ("Retry-After", "retry-after"):
        value = headers.get(key) if headers is not None else None
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            with contextlib.suppress(TypeError, ValueError):
                return max(0.0, float(value))
    return 1.0


def web_client(settings: SlackConfig, token: str, *, retry_rate_limits: bool) -> AsyncWebClient:
    """A Web API client on ``api_base_url``; dropped connections are retried once by slack-sdk.

    ``retry_rate_limits`` lets slack-sdk wait out a 429 itself (one retry): right for the direct
    calls (auth.test, ephemerals), wrong for the outbox, which pauses the whole channel instead.
    """
    handlers: list[Any] = [AsyncConnectionErrorRetryHandler(max_retry_count=1)]
    if retry_rate_limits:
        handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    return AsyncWebClient(token=token, base_url=settings.api_base_url, timeout=20, retry_handlers=handlers)


__all__ = [
    "ACTION_PREFIX",
    "MAX_CHARS",
    "SlackSender",
    "action_to_inbound",
    "command_text",
    "escape",
    "event_to_inbound",
    "from_blocks",
    "payload_problem",
    "slack_syntax",
    "slash_to_inbound",
    "to_blocks",
    "to_mrkdwn",
    "unescape",
    "web_client",
]
