"""The Telegram transport: python-telegram-bot at the edge, neutral messages inside.

Updates become :class:`core.messages.Inbound`, pass the :class:`core.access.Gate`, and are
answered by :class:`core.commands.Commands`; every answer goes into the outbox and is sent by
:class:`TelegramSender` from the delivery loop (button-tap toasts, which are not messages, are
answered at once). The conversions both ways and the sender are in bot/telegram_messages.py.
The Application is started inside the bot process's loop (``initialize`` / ``start`` /
``updater.start_polling``, never ``run_polling``).

Transport health (observed in bot/telegram_health.py): every getUpdates goes through
:class:`PollHealth`. A 409 Conflict (a second poller with this token) is logged once and polling
backs off for longer than the poll timeout; a poll that hangs or a loop that stops polling is
restarted; and after ``exit_after_s`` without one successful getUpdates the process asks to exit
non-zero, so its supervisor restarts it. In webhook mode getWebhookInfo is asked every
``check_every_s`` instead: a webhook taken over by another process, or delivery errors with updates
piling up, for ``exit_after_s`` end the process the same way.

Nothing received is lost: every update is journalled in the store as it is queued
(:class:`JournalQueue`), which is before the updater confirms it to Telegram (the next getUpdates
offset) or answers the webhook; it is marked handled once its answers are in the outbox. Updates still pending when the
bot was killed are handled at the next start, before polling resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

from telegram import (
    BotCommand,
    Update,
)
from telegram.error import (
    InvalidToken,
    TelegramError,
)
from telegram.ext import AIORateLimiter, Application, ContextTypes, TypeHandler
from telegram.request import BaseRequest, HTTPXRequest

from bot.files import Intake
from bot.outage import Outage
from bot.outbox import Outbox
from bot.telegram_files import Albums
from bot.telegram_health import PollHealth, PollRequest, webhook_problem
from bot.telegram_messages import TelegramSender, to_inbound
from core.access import Gate
from core.clock import Clock
from core.commands import COMMANDS, CommandHandler
from core.config import TelegramConfig
from core.errors import OrchestraError
from core.messages import Inbound, Outbound, OutKind
from core.store import Store

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ("message", "callback_query")
_CONCURRENT_UPDATES = 4  # updates handled at once: a slow one (a long route) does not hold the next
INBOUND_MEMORY_S = 30 * 86400  # how long handled update ids (and one-shot button taps) are remembered


class JournalQueue(asyncio.Queue[object]):
    """The Application's update queue: each update is journalled as pending before it is queued.

    The updater puts a batch of updates here and only then asks for the next offset, and the
    webhook server answers 200 only after the put: so an update Telegram hears we received is
    always in the store first.
    """

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.last_update_at = 0.0  # wall time the last update arrived (the webhook watchdog reads it)

    async def put(self, item: object) -> None:
        if isinstance(item, Update):
            self.last_update_at = time.time()
            payload = json.loads(item.to_json())
            self.store.journal_inbound(f"telegram:{item.update_id}", "telegram", payload, self.clock.now())
        await super().put(item)


# -- the transport ------------------------------------------------------------------------------
class TelegramTransport:
    """The PTB Application inside the bot process: receives updates, answers through the outbox.

    ``on_fatal(reason)`` is called when the transport cannot recover (no successful poll for
    ``exit_after_s``); the composition root then stops the process with a non-zero code.
    """

    platform = "telegram"

    def __init__(
        self,
        settings: TelegramConfig,
        token: str,
        *,
        commands: CommandHandler,
        gate: Gate,
        store: Store,
        clock: Clock,
        on_fatal: Callable[[str], None],
        request: BaseRequest | None = None,
        intake: Intake | None = None,
    ) -> None:
        self.settings = settings
        self.intake = intake  # fetches a message's files between the gate and the commands (bot/files.py)
        self.albums = Albums()
        self.commands = commands
        self.gate = gate
        self.store = store
        self.clock = clock
        self.on_fatal = on_fatal
        self._queue = JournalQueue(store, clock)
        self.health = PollHealth(
            poll_timeout_s=settings.poll_timeout_s,
            stall_after_s=settings.stall_after_s,
            exit_after_s=settings.exit_after_s,
        )
        base = settings.api_base_url
        requests = request or HTTPXRequest(
            connection_pool_size=8, connect_timeout=5, read_timeout=20, write_timeout=30, pool_timeout=5
        )
        polls = PollRequest(self.health, connection_pool_size=2, connect_timeout=5, read_timeout=10, pool_timeout=5)
        self.app = (
            Application.builder()
            .token(token)
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .request(requests)
            .get_updates_request(polls)
            .update_queue(self._queue)
            .rate_limiter(AIORateLimiter(max_retries=0))
            .concurrent_updates(_CONCURRENT_UPDATES)
            .build()
        )
        self.app.add_handler(TypeHandler(Update, self._on_update))
        self.app.add_error_handler(self._on_error)
        self.sender = TelegramSender(self.app.bot)
        self.outbox: Outbox | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._answers: set[asyncio.Task[None]] = set()  # tap answers in flight
        self.webhook_ok = True  # webhook mode: False while getWebhookInfo reports a problem
        self._started = False
        # The outbox reports flood control in one line; PTB's limiter would add a traceback per 429.
        logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, outbox: Outbox) -> None:
        """Connect (getMe, retried with back-off), register the commands, start receiving updates."""
        self.outbox = outbox
        self.store.prune_inbound(self.clock.now() - INBOUND_MEMORY_S)
        await self._initialize()
        await self._set_commands()
        await self._replay_pending()
        await self.app.start()
        self._started = True
        updater = self.app.updater
        assert updater is not None
        if self.settings.mode == "webhook":
            hook = self.settings.webhook
            assert hook is not None
            await updater.start_webhook(
                listen=hook.listen, port=hook.port, url_path=hook.path, webhook_url=hook.url,
                secret_token=hook.secret(), allowed_updates=list(ALLOWED_UPDATES), drop_pending_updates=False,
            )  # fmt: skip
            self._watchdog = asyncio.create_task(self._watch_webhook(), name="telegram:webhook-watchdog")
        else:
            await self._start_polling()
            self._watchdog = asyncio.create_task(self._watch(), name="telegram:watchdog")
        log.info("telegram: @%s is listening (%s)", self.app.bot.username, self.settings.mode)

    async def stop(self) -> None:
        """Stop receiving, then shut the Application down (reverse of start)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        updater = self.app.updater
        if updater is not None and updater.running:
            with contextlib.suppress(Exception):
                await updater.stop()
        await self.answered(timeout=2)  # a tap answer is worth a moment; after that nobody watches the spinner
        for task in list(self._answers):
            task.cancel()
        if self._started and self.app.running:
            await self.app.stop()
        with contextlib.suppress(Exception):
            await self.app.shutdown()
        self._started = False

    async def _initialize(self) -> None:
        deadline = time.monotonic() + self.settings.exit_after_s
        delay = self.settings.retry_base_s
        while True:
            try:
                await self.app.initialize()
                return
            except InvalidToken as exc:
                raise OrchestraError(
                    f"telegram: the Bot API refused the token in ${self.settings.token_env} ({exc})"
                ) from None
            except TelegramError as exc:
                if time.monotonic() + delay > deadline:
                    api = self.settings.api_base_url
                    raise OrchestraError(f"telegram: cannot reach the Bot API at {api} ({exc})") from None
                log.warning("telegram: cannot reach the Bot API (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_s)

    async def _set_commands(self) -> None:
        try:
            await self.app.bot.set_my_commands([BotCommand(c.name, c.help[:256]) for c in COMMANDS])
        except TelegramError as exc:
            log.warning("telegram: could not register the command menu (%s); commands still work", exc)

    async def _start_polling(self) -> None:
        updater = self.app.updater
        assert updater is not None
        await updater.start_polling(
            poll_interval=0.0,
            timeout=self.settings.poll_timeout_s,
            allowed_updates=list(ALLOWED_UPDATES),
            drop_pending_updates=False,
            bootstrap_retries=-1,
            error_callback=self._on_poll_error,
        )

    def _on_poll_error(self, error: TelegramError) -> None:
        log.debug("telegram: getUpdates error: %s", error)  # PollHealth logs the first of each episode

    async def _watch(self) -> None:
        """Every second: exit after ``exit_after_s`` without a successful poll; restart a stalled one."""
        last_restart = time.monotonic()
        restarting: asyncio.Task[None] | None = None
        try:
            while True:
                await asyncio.sleep(min(1.0, self.settings.poll_timeout_s / 2))
                verdict = self.health.verdict()
                if verdict == "exit":
                    reason = (
                        f"telegram: no successful getUpdates for {self.settings.exit_after_s:.0f}s "
                        f"(last error: {self.health.last_error or 'none'}); exiting so the supervisor restarts the bot"
                    )
                    log.error("%s", reason)
                    self.on_fatal(reason)
                    return
                stale = time.monotonic() - last_restart > self.settings.stall_after_s
                if verdict == "stalled" and stale and (restarting is None or restarting.done()):
                    log.warning("telegram: the update loop stalled (no getUpdates answer); restarting the poller")
                    last_restart = time.monotonic()
                    restarting = asyncio.create_task(self._restart_polling(), name="telegram:restart-poller")
        finally:
            if restarting is not None and not restarting.done():
                restarting.cancel()

    async def _watch_webhook(self) -> None:
        """Every ``check_every_s``, ask Telegram how delivery to our webhook goes (getWebhookInfo).

        Telegram keeps the updates it cannot deliver and says why; a webhook URL that is not ours
        means another process took the token (the webhook's 409). Either, without a break for
        ``exit_after_s``: exit so the supervisor restarts the bot, which sets the webhook again.
        """
        hook = self.settings.webhook
        assert hook is not None
        outage = Outage("telegram", self.settings.exit_after_s, self.on_fatal, recovered="Telegram delivers again")
        started = time.time()
        while True:
            await asyncio.sleep(hook.check_every_s)
            problem = await webhook_problem(self.app.bot, hook.url, since=max(started, self._queue.last_update_at))
            self.webhook_ok = problem is None
            if outage.observe(problem):
                return

    async def _restart_polling(self) -> None:
        updater = self.app.updater
        assert updater is not None
        with contextlib.suppress(Exception):
            if updater.running:
                await updater.stop()
        try:
            await self._start_polling()
        except (TelegramError, RuntimeError) as exc:
            log.warning("telegram: restarting the poller failed (%s)", exc)

    # -- updates -------------------------------------------------------------------------------
    async def _replay_pending(self) -> None:
        """Handle updates received before the last stop (or kill) but not handled: oldest first."""
        pending = self.store.pending_inbound("telegram")
        if pending:
            log.info("telegram: handling %d update(s) received before the restart", len(pending))
        for key, payload in pending:
            try:
                update = Update.de_json(payload, self.app.bot)
            except Exception as exc:  # noqa: BLE001 - an unreadable journal entry is dropped, not retried
                log.warning("telegram: journalled update %s is unreadable (%s); dropped", key, exc)
                self.store.finish_inbound(key, self.clock.now(), error=f"unreadable: {exc}")
                continue
            await self._handle(update)

    async def _on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._handle(update)

    async def _handle(self, update: Update) -> None:
        """Gate, then commands, answers into the outbox; the update is marked handled after that."""
        key = f"telegram:{update.update_id}"
        if not self.store.begin_inbound(key, "telegram", self.clock.now()):
            log.info("telegram: update %s was already handled", update.update_id)
            return
        inbound = to_inbound(update, self.app.bot.username or "", self.app.bot.id)
        group = update.message.media_group_id if update.message is not None else None
        if inbound is not None and inbound.files and group:
            inbound = await self.albums.gather(inbound, group)  # None: the album's first message carries it
        toast = ""
        if inbound is not None:
            answers = self.gate.check(inbound)
            if answers is None and self.intake is not None:
                inbound, answers = await self.intake.take(inbound)
            if answers is None:  # off the loop (bot/command_pool.py): a slow route never holds other chats
                answers = await self.commands.handle_async(inbound)
            toast = self._emit(inbound, answers)
            if self.intake is not None:
                self.intake.done(inbound)
        self.store.finish_inbound(key, self.clock.now())
        if update.callback_query is not None:
            self._answer_tap(update, toast)

    def _emit(self, inbound: Inbound, answers: list[Outbound]) -> str:
        """Queue the messages among the answers; return the tap's toast (the first non-empty one)."""
        assert self.outbox is not None
        for n, out in enumerate(answers):
            if out.kind != OutKind.TOAST:
                self.outbox.put(out, chat_id=inbound.chat.chat_id, key=f"{inbound.event_id}:{n}")
        return next((a.text for a in answers if a.kind == OutKind.TOAST and a.text), "")

    async def answered(self, timeout: float | None = None) -> None:
        """Wait for the button-tap answers in flight (at shutdown, and in tests)."""
        if self._answers:
            await asyncio.wait(list(self._answers), timeout=timeout)

    def _answer_tap(self, update: Update, text: str) -> None:
        """Answer a tap on the side: updates are handled one at a time, so a hung answer must not hold the next."""
        query = update.callback_query
        assert query is not None

        async def answer() -> None:
            try:
                await query.answer(text or None)
            except TelegramError as exc:
                log.info("telegram: could not answer a button tap (%s)", exc)

        task = asyncio.create_task(answer(), name=f"telegram:answer-{update.update_id}")
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: handling an update failed: %r", context.error, exc_info=context.error)


__all__ = ["JournalQueue", "TelegramTransport"]
