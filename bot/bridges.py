"""The chat bridges' wiring: for Telegram and Slack, gate -> commands -> outbox -> sender, and the cards.

``run_engine`` (bot/app.py) starts each enabled bridge here and stops it in reverse; both bridges
share one card tracker (``Progress``) listening to the engine. The SDKs are imported only when a
bridge starts (python-telegram-bot alone takes ~0.3 s).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from bot.logging_setup import configure_logging
from core.clock import Clock
from core.protocol import EventKind

if TYPE_CHECKING:
    from bot.app import App
    from bot.command_pool import CommandPool
    from bot.outbox import Outbox
    from bot.slack import SlackTransport
    from bot.telegram import TelegramTransport
    from core.commands import Commands, Syntax
    from core.config import SlackConfig, TelegramConfig
    from core.metrics import TransportHealth
    from core.progress import Progress

log = logging.getLogger(__name__)


def telegram_health(transport: TelegramTransport) -> TransportHealth:
    """Up while updates arrive: polls succeed (no 409, no failure, not stalled) or the webhook server runs."""
    from core.metrics import TransportHealth

    updater = transport.app.updater
    receiving = bool(transport.app.running and updater is not None and updater.running)
    if transport.settings.mode == "webhook":
        return TransportHealth(receiving and transport.webhook_ok)  # Telegram calls us: no poll to time
    health = transport.health
    healthy = not health.conflicts and not health.failures and health.verdict() is None
    return TransportHealth(receiving and healthy, max(0.0, health.clock() - health.last_ok))


def slack_health(transport: SlackTransport, clock: Clock) -> TransportHealth:
    """Up while the Socket Mode connection is open and answers pings, or the HTTP server listens."""
    from core.metrics import TransportHealth

    seen = transport.last_contact
    return TransportHealth(transport.connected(), None if seen is None else max(0.0, clock.now() - seen))


class _Stoppable(Protocol):
    async def stop(self) -> None: ...


_Transport = TypeVar("_Transport", bound=_Stoppable)


@dataclass
class Bridge(Generic[_Transport]):
    """A running chat bridge: its transport, its outbox delivery loop and the progress cards."""

    transport: _Transport
    outbox: Outbox
    progress: Progress
    owns_progress: bool = True  # False when it shares another bridge's Progress
    commands: CommandPool | None = None

    async def stop(self) -> None:
        """Reverse of the start: finish the message being sent, stop receiving, drop progress timers."""
        await self.outbox.stop()
        await self.transport.stop()
        if self.commands is not None:
            await asyncio.to_thread(self.commands.close)
        if self.owns_progress:
            self.progress.close()


TelegramBridge = Bridge["TelegramTransport"]
SlackBridge = Bridge["SlackTransport"]


def start_progress(app: App) -> Progress:
    """The cards of every chat bridge, listening to the engine; each bridge's outbox joins its wake."""
    from core.progress import Progress

    settings = app.config.telegram if app.config.telegram.enabled else app.config.slack
    progress = Progress(
        app.service,
        app.clock,
        interval_s=settings.progress_interval_s,
        refresh_s=settings.progress_refresh_s,
        wake=lambda: None,
    )
    app.engine.listeners.append(progress.on_event)
    return progress


def _share(progress: Progress, outbox: Outbox) -> None:
    """Make the shared cards wake this outbox too."""
    first_wake = progress.wake

    def wake_both() -> None:
        first_wake()
        outbox.wake()

    progress.wake = wake_both


async def start_telegram(app: App, fatal: Callable[[str], None], shared: Progress | None = None) -> TelegramBridge:
    """Wire the Telegram bridge: gate -> commands -> outbox -> sender, progress edits from the engine."""
    from bot.files import Intake
    from bot.outbox import Outbox
    from bot.telegram import TelegramTransport
    from bot.telegram_files import TELEGRAM_DOWNLOAD_BYTES, telegram_fetch
    from core.access import Gate

    settings = app.config.telegram
    token = settings.token()
    configure_logging(secrets=app.config.secret_values())
    commands = command_pool(app)
    gate = Gate(
        app.service,
        app.clock,
        allowed_users=[str(u) for u in settings.allowed_user_ids],
        allowed_chats=[str(c) for c in settings.allowed_chat_ids],
        per_minute=settings.rate_limit_per_minute,
        notify_chats=[str(c) for c in settings.notify_chat_ids],
    )
    transport = TelegramTransport(
        settings, token, commands=commands, gate=gate, store=app.store, clock=app.clock, on_fatal=fatal
    )
    transport.intake = Intake(
        lambda: app.config, app.home, telegram_fetch(transport.app.bot), platform_max_bytes=TELEGRAM_DOWNLOAD_BYTES
    )
    outbox = Outbox(
        app.store,
        app.clock,
        transport.sender,
        notify_chats=[str(c) for c in settings.notify_chat_ids],
        retry_base_s=settings.retry_base_s,
        retry_max_s=settings.retry_max_s,
    )
    progress = _card_tracker(app, settings, outbox, shared)
    commands.changed = progress.touch
    await transport.start(outbox)  # the Bot must be initialized before the outbox sends through it
    await outbox.start()
    if not settings.allowed_user_ids:
        log.warning("telegram: telegram.allowed_user_ids is empty, so nobody can use the bot (deny by default)")
    return TelegramBridge(transport, outbox, progress, owns_progress=shared is None, commands=commands)


async def start_slack(
    app: App, shared: Progress | None = None, fatal: Callable[[str], None] | None = None
) -> SlackBridge:
    """Wire the Slack bridge like Telegram's; with both running, one Progress keeps every card current."""
    from bot.files import Intake
    from bot.outbox import Outbox
    from bot.slack import SlackTransport
    from bot.slack_files import slack_fetch
    from bot.slack_messages import slack_syntax
    from core.access import Gate

    settings = app.config.slack
    bot_token = settings.bot_token()
    app_token = settings.app_token() if settings.mode == "socket" else ""
    signing_secret = settings.signing_secret() if settings.mode == "http" else ""
    configure_logging(secrets=app.config.secret_values())
    commands = command_pool(app, syntax=slack_syntax(settings.command))
    gate = Gate(
        app.service,
        app.clock,
        allowed_users=list(settings.allowed_user_ids),
        allowed_chats=list(settings.allowed_channel_ids),
        per_minute=settings.rate_limit_per_minute,
        notify_chats=list(settings.notify_channel_ids),
        users_key="slack.allowed_user_ids",
        chats_key="slack.allowed_channel_ids",
    )
    transport = SlackTransport(
        settings, bot_token=bot_token, app_token=app_token, signing_secret=signing_secret, commands=commands,
        gate=gate, store=app.store, clock=app.clock, on_fatal=fatal,
    )  # fmt: skip
    transport.intake = Intake(lambda: app.config, app.home, slack_fetch(bot_token, settings.api_base_url))
    outbox = Outbox(
        app.store,
        app.clock,
        transport.sender,
        notify_chats=list(settings.notify_channel_ids),
        retry_base_s=settings.retry_base_s,
        retry_max_s=settings.retry_max_s,
    )
    progress = _card_tracker(app, settings, outbox, shared)
    commands.changed = progress.touch
    await transport.start(outbox)
    await outbox.start()
    if not settings.allowed_user_ids:
        log.warning("slack: slack.allowed_user_ids is empty, so nobody can use the bot (deny by default)")
    return SlackBridge(transport, outbox, progress, owns_progress=shared is None, commands=commands)


def _card_tracker(
    app: App, settings: TelegramConfig | SlackConfig, outbox: Outbox, shared: Progress | None
) -> Progress:
    """The one card tracker both bridges share (made by the first), told when this outbox has work."""
    from core.progress import Progress

    if shared is not None:
        progress = shared
        _share(shared, outbox)
    else:
        progress = Progress(
            app.service,
            app.clock,
            interval_s=settings.progress_interval_s,
            refresh_s=settings.progress_refresh_s,
            wake=outbox.wake,
        )
        app.engine.listeners.append(progress.on_event)
    wakes = (EventKind.FINISHED, EventKind.PERMISSION)  # a completion, a permission request or its outcome
    app.engine.listeners.append(lambda _t, kind, _d: outbox.wake() if kind in wakes else None)
    return progress


def command_pool(app: App, syntax: Syntax | None = None) -> CommandPool:
    """The bridge's commands, in worker threads: each its own store connection and a Service that
    queues and pokes the engine (this process's, over its socket) instead of dispatching itself."""
    from bot.command_pool import CommandPool
    from core.commands import Commands
    from core.service import Service
    from core.store import Store

    def make(changed: Callable[[str], None]) -> Commands:
        store = Store(app.store.path, redactor=app.store.redactor)
        service = Service(app.config, store, app.tmux, app.clock, app.home, autostart_engine=False,
                          config_path=app.config_path)  # fmt: skip
        return Commands(service, app.clock, changed=changed, syntax=syntax)

    return CommandPool(make)
