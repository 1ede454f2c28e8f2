"""The Slack transport: slack-bolt's AsyncApp at the edge, neutral messages inside.

Slash commands (``/orchestra status``), app mentions (``@Orchestra fix the login bug``), direct
messages and Block Kit button taps become :class:`core.messages.Inbound`, pass the
:class:`core.access.Gate` and are answered by :class:`core.commands.Commands`, exactly as on
Telegram. Every listener journals the request in the store, then calls ``ack()`` (Slack's 3 s
deadline) and works after it; requests acknowledged but not handled when the bot was killed are
handled at the next start, before it listens again. Answers go into the outbox and are sent by
:class:`SlackSender` (bot/slack_messages.py, with the conversions both ways); what only one person
should see (a refusal, the answer to a tap) is an ephemeral message sent at once.

Socket Mode is the default (``connect_async`` inside the bot's loop, never ``start_async``); HTTP
mode serves Bolt on aiohttp, after checking each request's size, signature and timestamp (before
anything parses or logs its body). A task's messages go in the thread of the message that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.signature import SignatureVerifier

from bot.files import Intake
from bot.outage import Outage
from bot.outbox import Outbox
from bot.slack_messages import (
    ACTION_PREFIX,
    SlackSender,
    action_to_inbound,
    escape,
    event_to_inbound,
    payload_problem,
    slash_to_inbound,
    web_client,
)
from core.access import Gate
from core.clock import Clock
from core.commands import CommandHandler
from core.config import SlackConfig
from core.errors import OrchestraError
from core.messages import Inbound, OutKind
from core.store import Store

log = logging.getLogger(__name__)

INBOUND_MEMORY_S = 30 * 86400
MAX_BODY_BYTES = 1024 * 1024  # Slack's payloads are a few KB; anything this big is not from Slack
_NOT_KEPT = ("token", "response_url", "response_urls")  # credentials of a sort: never journalled


def journal_payload(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """What the inbound journal keeps of a request until it is handled: never its token or response URL."""
    return {"kind": kind, "body": {k: v for k, v in body.items() if k not in _NOT_KEPT}}


# -- the transport ------------------------------------------------------------------------------
class SlackTransport:
    """Bolt's AsyncApp inside the bot process: receives commands, mentions, DMs and taps; answers via the outbox."""

    platform = "slack"

    def __init__(
        self,
        settings: SlackConfig,
        *,
        bot_token: str,
        commands: CommandHandler,
        gate: Gate,
        store: Store,
        clock: Clock,
        app_token: str = "",
        signing_secret: str = "",
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_fatal = on_fatal or (lambda _reason: None)
        self.commands = commands
        self.gate = gate
        self.store = store
        self.clock = clock
        self.app_token = app_token
        self.client = web_client(settings, bot_token, retry_rate_limits=True)
        # In HTTP mode _on_http checks the signature before Bolt parses (or logs) anything.
        self._verifier = SignatureVerifier(signing_secret) if settings.mode == "http" else None
        self.app = AsyncApp(
            client=self.client,
            signing_secret=signing_secret,
            request_verification_enabled=False,
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
        self._watchdog: asyncio.Task[None] | None = None
        self.last_contact: float | None = None  # clock time Slack was last heard from (socket up, a request)
        self.intake: Intake | None = None  # fetches a message's files between the gate and the commands

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
            server = web.Application(client_max_size=MAX_BODY_BYTES)
            server.router.add_post(http.path, self._on_http)
            self._runner = web.AppRunner(server, access_log=None, logger=_HTTP_LOG)
            await self._runner.setup()
            site = web.TCPSite(self._runner, http.listen, http.port)
            await site.start()
            addresses = self._runner.addresses
            self.port = int(addresses[0][1]) if addresses else http.port
            where = f"http on {http.listen}:{self.port}{http.path}"
        else:
            self._socket = AsyncSocketModeHandler(self.app, self.app_token, web_client=self.client)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            self._watchdog = asyncio.create_task(self._watch(), name="slack:watchdog")
            where = "socket mode"
        log.info("slack: @%s is listening (%s)", identity.get("user", "?"), where)

    async def stop(self) -> None:
        """Stop receiving (reverse of start); the outbox is stopped by its owner."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
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

    # -- health ----------------------------------------------------------------------------------
    def connected(self) -> bool:
        """Receiving: the Socket Mode WebSocket is open and answers pings, or the HTTP server listens."""
        if self._runner is not None:
            return bool(self._runner.addresses)
        client = self._socket.client if self._socket is not None else None
        if client is None or client.closed or client.stale:
            return False
        session = client.current_session
        pong = client.last_ping_pong_time
        failing = pong is not None and time.time() - pong >= client.ping_interval * 4
        return session is not None and not session.closed and not failing

    async def _watch(self) -> None:
        """Every second: note the connection; exit after ``exit_after_s`` without one (slack-sdk reconnects
        by itself, but a socket that never comes back must not leave a deaf bot running)."""
        outage = Outage("slack", self.settings.exit_after_s, self.on_fatal, recovered="Socket Mode is connected again")
        while True:
            await asyncio.sleep(1.0)
            up = self.connected()
            if up:
                self.last_contact = self.clock.now()
            if outage.observe(None if up else "no Socket Mode connection"):
                return

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
        """Size, then signature, then shape, each refused in one bounded log line; only then Bolt.

        A stranger's request is answered 413 or 401 without being parsed or logged; a signed one
        that is not a Slack payload gets 400.
        """
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _refused(413, "a %d-byte request (the limit is %d)", request.content_length, MAX_BODY_BYTES)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refused(413, "a request over %d bytes", MAX_BODY_BYTES)
        assert self._verifier is not None
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        signature = request.headers.get("X-Slack-Signature")
        try:
            signed = self._verifier.is_valid(raw, timestamp, signature)
        except ValueError:  # a timestamp that is not a number
            signed = False
        if not signed:
            return _refused(401, "a %d-byte request without a valid signature", len(raw))
        try:
            bolt_request = AsyncBoltRequest(
                body=raw.decode("utf-8"),
                query=request.query_string,
                headers=request.headers,  # type: ignore[arg-type]
            )
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            return _refused(400, "a signed request that is not a Slack payload (%s)", type(exc).__name__)
        problem = payload_problem(bolt_request.body) if isinstance(bolt_request.body, dict) else "not an object"
        if problem is not None:
            return _refused(400, "a signed request that is not a Slack payload (%s)", problem)
        self.last_contact = self.clock.now()
        response = await self.app.async_dispatch(bolt_request)
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
        await self._handle(inbound, slash=True)

    async def _on_event(self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any]) -> None:
        inbound = event_to_inbound(body, self.bot_user_id)
        wanted = inbound is not None and bool(inbound.text or inbound.files)
        if inbound is not None and wanted:
            inbound = self._keep("event", body, inbound)
        await ack()
        if inbound is not None and wanted:
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
        self.last_contact = self.clock.now()  # Bolt checked it (signature in HTTP mode): Slack is reaching us
        self.store.journal_inbound(inbound.event_id, "slack", journal_payload(kind, body), self.clock.now())
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
            await self._handle(replace(inbound, event_id=key), slash=kind == "command")

    async def _handle(self, inbound: Inbound, *, slash: bool = False) -> None:
        """Gate, then commands; answers into the outbox, refusals and tap answers as ephemerals.

        A slash command leaves no message in the channel, so what only its sender needs (help,
        status, an error: ``Outbound.personal``) is an ephemeral too; the rest goes to the channel,
        an answer about a task in that task's thread.
        """
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
            inbound, declined = await self.intake.take(inbound) if self.intake else (inbound, None)
            answers = declined if declined is not None else await self.commands.handle_async(inbound)
            for n, out in enumerate(answers):
                alone = slash and out.personal and not (out.buttons or out.code or out.attachment)
                if out.kind == OutKind.TOAST or alone:
                    if out.text:
                        await self._ephemeral(inbound, out.text)
                else:
                    self.outbox.put(out, chat_id=inbound.chat.chat_id, key=f"{inbound.event_id}:{n}")
        if self.intake is not None:
            self.intake.done(inbound)
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


class _OneLineForBadHttp(logging.Filter):
    """aiohttp logs a malformed request (bad Content-Length, ...) with a traceback quoting it: one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "slack: HTTP 400 for a malformed request (%s)", (type(exc).__name__,)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_HTTP_LOG = logging.getLogger("bot.slack.http")
_HTTP_LOG.addFilter(_OneLineForBadHttp())


def _refused(status: int, what: str, *args: object) -> web.Response:
    log.warning("slack: HTTP %d for " + what, status, *args)
    return web.Response(status=status, text=_REASONS[status])


_REASONS = {400: "not a Slack request", 401: "invalid request", 413: "request body too large"}

__all__ = ["MAX_BODY_BYTES", "SlackTransport", "journal_payload"]
