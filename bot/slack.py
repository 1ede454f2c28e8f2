"""The Slack transport: slack-bolt's AsyncApp at the edge, neutral messages inside.

Slash commands (``/orchestra status``), app mentions (``@Orchestra fix the login bug``), direct
messages and Block Kit button taps become :class:`core.messages.Inbound`, pass the
:class:`core.access.Gate` and are answered by :class:`core.commands.Commands`, exactly as on
Telegram. Every listener journals the request in the store, then calls ``ack()`` (Slack's 3 s
deadline) and works after it; requests acknowledged but not handled when the bot was killed are
handled at the next start, before it listens again. Answers go
into the outbox and are sent by :class:`SlackSender`; what only one person should see (a refusal,
the answer to a tap) is an ephemeral message sent at once.

Socket Mode is the default (``connect_async`` inside the bot's loop, never ``start_async``); HTTP
mode serves Bolt on aiohttp, where Bolt checks every request's signature and timestamp. A task's
messages go in the thread of the message that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbox import DeliveryFailed, Outbox, RetryLater, text_length
from bot.screen import render_png
from core.access import Gate
from core.clock import Clock
from core.commands import COMMANDS, Commands
from core.config import SlackConfig
from core.errors import OrchestraError
from core.messages import CARD_KINDS, Button, ChatRef, Inbound, Keyboard, OutboxItem, OutKind, Tap
from core.store import Store

log = logging.getLogger(__name__)

MAX_CHARS = 3000  # a section block's text
MAX_FILE_BYTES = 49 * 1024 * 1024
INBOUND_MEMORY_S = 30 * 86400
ACTION_PREFIX = "orchestra:"
_NAMES = {c.name for c in COMMANDS}
_TASK_ID = re.compile(r"#?t?\d+\Z", re.IGNORECASE)
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
        body = "```" + _clip(escape(code), MAX_CHARS - 6, head=False) + "```"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body, "verbatim": True}})
    for row in keyboard:
        elements = [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": b.label[:75], "emoji": True},
                "action_id": f"{ACTION_PREFIX}{b.action}:{b.task_id}"[:255],
                "value": f"{b.action}:{b.task_id}",
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
                row.append(Button(str(label), action, task_id))
        if row:
            rows.append(tuple(row))
    return tuple(rows)


def _clip(text: str, limit: int = MAX_CHARS, *, head: bool = True) -> str:
    if text_length(text) <= limit:
        return text
    return text[: limit - 1] + "…" if head else "…" + text[-(limit - 1) :]


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
    budget = name == "budget" and first.lower() in ("day", "month", "task")
    if explicit or not rest or name == "delegate" or budget or (name != "kill" and _TASK_ID.match(first)):
        return f"/{name} {rest}".strip()
    return stripped


def _private(channel: str, channel_type: str = "") -> bool:
    return channel_type == "im" or channel.startswith("D")


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
    if event.get("bot_id") or event.get("subtype") or not event.get("user") or event.get("user") == bot_user_id:
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
            data = await _attachment_bytes(attachment.path, attachment.data, attachment.render)
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


async def _attachment_bytes(path: str | None, data: str | None, render: str) -> bytes:
    if render == "ansi":
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


# -- the transport ------------------------------------------------------------------------------
class SlackTransport:
    """Bolt's AsyncApp inside the bot process: receives commands, mentions, DMs and taps; answers via the outbox."""

    platform = "slack"

    def __init__(
        self,
        settings: SlackConfig,
        *,
        bot_token: str,
        commands: Commands,
        gate: Gate,
        store: Store,
        clock: Clock,
        app_token: str = "",
        signing_secret: str = "",
    ) -> None:
        self.settings = settings
        self.commands = commands
        self.gate = gate
        self.store = store
        self.clock = clock
        self.app_token = app_token
        self.client = web_client(settings, bot_token, retry_rate_limits=True)
        self.app = AsyncApp(
            client=self.client,
            signing_secret=signing_secret,
            request_verification_enabled=settings.mode == "http",
            logger=logging.getLogger("slack_bolt"),
        )
        self.app.middleware(self._ignore_bots)
        self.app.command(settings.command)(self._on_command)
        self.app.event("app_mention")(self._on_event)
        self.app.event("message")(self._on_event)
        self.app.action(re.compile("^" + re.escape(ACTION_PREFIX)))(self._on_action)
        self.sender = SlackSender(web_client(settings, bot_token, retry_rate_limits=False), store)
        self.outbox: Outbox | None = None
        self.bot_user_id = ""
        self.port: int | None = None
        self._names: dict[str, str] = {}
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, outbox: Outbox) -> None:
        """Check the token (auth.test, retried with back-off), then listen: Socket Mode or HTTP."""
        self.outbox = outbox
        self.store.prune_inbound(self.clock.now() - INBOUND_MEMORY_S)
        identity = await self._auth_test()
        self.bot_user_id = str(identity.get("user_id", ""))
        await self._replay_pending()
        if self.settings.mode == "http":
            http = self.settings.http
            server = web.Application()
            server.router.add_post(http.path, self._on_http)
            self._runner = web.AppRunner(server, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, http.listen, http.port)
            await site.start()
            addresses = self._runner.addresses
            self.port = int(addresses[0][1]) if addresses else http.port
            where = f"http on {http.listen}:{self.port}{http.path}"
        else:
            self._socket = AsyncSocketModeHandler(self.app, self.app_token, web_client=self.client)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            where = "socket mode"
        log.info("slack: @%s is listening (%s)", identity.get("user", "?"), where)

    async def stop(self) -> None:
        """Stop receiving (reverse of start); the outbox is stopped by its owner."""
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for client in (self.client, self.sender.client):
            session = getattr(client, "session", None)
            if session is not None and not session.closed:
                await session.close()

    async def _auth_test(self) -> dict[str, Any]:
        delay = self.settings.retry_base_s
        deadline = time.monotonic() + max(60.0, self.settings.retry_max_s * 5)
        while True:
            try:
                response = await self.client.auth_test()
                return dict(response.data) if isinstance(response.data, dict) else {}
            except SlackApiError as exc:
                error = exc.response.get("error", "") if isinstance(exc.response.data, dict) else ""
                if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked"):
                    raise OrchestraError(
                        f"slack: the Web API refused the token in ${self.settings.bot_token_env} ({error})"
                    ) from None
                failure = f"{exc.response.status_code} {error}".strip()
            except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
            if time.monotonic() + delay > deadline:
                raise OrchestraError(f"slack: cannot reach the Web API at {self.settings.api_base_url} ({failure})")
            log.warning("slack: cannot reach the Web API (%s); retrying in %.1fs", failure, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.retry_max_s)

    async def _on_http(self, request: web.Request) -> web.Response:
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    # -- listeners -----------------------------------------------------------------------------
    async def _ignore_bots(self, body: dict[str, Any], next: Callable[[], Awaitable[Any]]) -> Any:
        """Drop other bots' messages and message edits (Bolt already drops our own): no loops."""
        event = body.get("event") or {}
        if event.get("bot_id") or event.get("subtype") in ("bot_message", "message_changed", "message_deleted"):
            return BoltResponse(status=200, body="")  # acknowledged, so Slack does not send it again
        return await next()

    async def _on_command(self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any]) -> None:
        inbound = self._keep("command", body, slash_to_inbound(body))
        await ack()
        await self._handle(inbound)

    async def _on_event(self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any]) -> None:
        inbound = event_to_inbound(body, self.bot_user_id)
        if inbound is not None and inbound.text:
            inbound = self._keep("event", body, inbound)
        await ack()
        if inbound is not None and inbound.text:
            await self._handle(inbound)

    async def _on_action(self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any]) -> None:
        inbound = action_to_inbound(body)
        if inbound is not None:
            inbound = self._keep("action", body, inbound)
        await ack()
        if inbound is not None:
            await self._handle(inbound)

    def _keep(self, kind: str, body: dict[str, Any], inbound: Inbound) -> Inbound:
        """Journal the request before it is acknowledged: a bot killed after the ack handles it on start."""
        payload = {"kind": kind, "event_id": inbound.event_id, "body": {k: v for k, v in body.items() if k != "token"}}
        self.store.journal_inbound(inbound.event_id, "slack", payload, self.clock.now())
        return inbound

    async def _replay_pending(self) -> None:
        """Handle requests acknowledged before the last stop (or kill) but not handled: oldest first."""
        pending = self.store.pending_inbound("slack")
        if pending:
            log.info("slack: handling %d request(s) received before the restart", len(pending))
        for key, payload in pending:
            body = payload.get("body") or {}
            kind = payload.get("kind")
            inbound: Inbound | None = None
            if kind == "command":
                inbound = slash_to_inbound(body)
            elif kind == "event":
                inbound = event_to_inbound(body, self.bot_user_id)
            elif kind == "action":
                inbound = action_to_inbound(body)
            if inbound is None:
                self.store.finish_inbound(key, self.clock.now(), error=f"unreadable {kind} request")
                continue
            await self._handle(replace(inbound, event_id=key))

    async def _handle(self, inbound: Inbound) -> None:
        """Gate, then commands; answers into the outbox, refusals and tap answers as ephemerals."""
        assert self.outbox is not None
        if not self.store.begin_inbound(inbound.event_id, "slack", self.clock.now()):
            log.info("slack: %s was already handled", inbound.event_id)
            return
        inbound = await self._named(inbound)
        refused = self.gate.check(inbound)
        if refused is not None:
            for out in refused:
                if out.text:
                    await self._ephemeral(inbound, out.text)
        else:
            for n, out in enumerate(self.commands.handle(inbound)):
                if out.kind == OutKind.TOAST:
                    if out.text:
                        await self._ephemeral(inbound, out.text)
                else:
                    self.outbox.put(out, chat_id=inbound.chat.chat_id, key=f"{inbound.event_id}:{n}")
        self.store.finish_inbound(inbound.event_id, self.clock.now())

    async def _ephemeral(self, inbound: Inbound, text: str) -> None:
        try:
            await self.client.chat_postEphemeral(
                channel=inbound.chat.chat_id, user=inbound.user_id, text=escape(text), thread_ts=inbound.message_id
            )
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("slack: could not send an ephemeral answer (%s)", exc)

    async def _named(self, inbound: Inbound) -> Inbound:
        """Events carry only a user id: look the name up once (users.info) so answers say who did what."""
        if inbound.user_name != inbound.user_id:
            return inbound
        name = self._names.get(inbound.user_id)
        if name is None:
            try:
                user = (await self.client.users_info(user=inbound.user_id)).get("user") or {}
                name = f"@{user.get('name')}" if user.get("name") else inbound.user_id
            except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.info("slack: users.info %s failed (%s)", inbound.user_id, exc)
                return inbound
            self._names[inbound.user_id] = name
        return replace(inbound, user_name=name)


__all__ = [
    "SlackSender",
    "SlackTransport",
    "action_to_inbound",
    "command_text",
    "escape",
    "event_to_inbound",
    "from_blocks",
    "slash_to_inbound",
    "to_blocks",
    "to_mrkdwn",
    "unescape",
    "web_client",
]
