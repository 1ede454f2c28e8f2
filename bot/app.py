"""The composition root: config -> store -> tmux -> engine -> service, and back down on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from core.clock import Clock, SystemClock
from core.config import Config, load_config
from core.engine import Engine
from core.errors import ConfigError
from core.models import TaskState
from core.protocol import EventKind
from core.redact import Redactor
from core.service import Service
from core.store import Store
from core.tmux import TmuxManager

if TYPE_CHECKING:  # the Telegram bridge is imported only when it is enabled (PTB takes ~0.3 s to import)
    from bot.command_pool import CommandPool
    from bot.outbox import Outbox
    from bot.slack import SlackTransport
    from bot.telegram import TelegramTransport
    from core.commands import Syntax
    from core.config import SlackConfig, TelegramConfig
    from core.metrics import Metrics, MetricsServer, TransportHealth
    from core.progress import Progress

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass
class App:
    config: Config
    config_path: Path
    home: Path
    store: Store
    tmux: TmuxManager
    clock: Clock
    engine: Engine
    service: Service

    def close(self) -> None:
        self.engine.release()
        self.store.close()


def open_app(config_path: Path | None = None, *, clock: Clock | None = None) -> App:
    config, path = load_config(config_path)
    home = config.home()
    if home.exists() and not home.is_dir():
        raise ConfigError(f"the data directory {home} is a file, not a directory (see ORCHESTRA_HOME or data_dir)")
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(home, 0o700)
    clock = clock or SystemClock()
    store = Store(home / "orchestra.db", redactor=Redactor(config.known_secrets()))
    tmux = TmuxManager(config.tmux.socket_name, config.tmux.session, config_file=config.tmux.config_file)
    engine = Engine(config, store, tmux, clock, home)
    service = Service(config, store, tmux, clock, home, engine=engine, config_path=path)
    return App(config, path, home, store, tmux, clock, engine, service)


async def run_engine(app: App, *, console: bool, idle_exit_s: float | None) -> int:
    """Run the engine (and the console's delivery) until SIGTERM/SIGINT or, optionally, idle."""
    bot = idle_exit_s is None  # the long-lived bot process; otherwise the on-demand engine
    if not app.engine.acquire(role="bot" if bot else "engine"):
        if bot:  # another bot took the data directory between the hand-over and here
            print("orchestra: a bot or engine is already running for this data directory", file=sys.stderr)
            return 1
        print("orchestra: an engine is already running for this data directory", file=sys.stderr)
        return 0
    if idle_exit_s is None and app.config.telegram.enabled:
        app.config.telegram.token()  # a missing token is one line before anything starts
        if app.config.telegram.mode == "webhook" and app.config.telegram.webhook is not None:
            app.config.telegram.webhook.secret()
    if idle_exit_s is None and app.config.slack.enabled:
        app.config.slack.check_secrets()
    if bot:
        configure_logging()  # before the scheduler and the engine log; the bridges add their secrets
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop_on(sig: signal.Signals) -> None:
        print(f"orchestra: {sig.name} received: stopping", file=sys.stderr, flush=True)  # say why we exit
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop_on, sig)
    wake = asyncio.Event()
    app.engine.listeners.append(lambda _t, kind, _d: wake.set() if kind == EventKind.FINISHED else None)
    printer = _start_console(app) if console else None
    metrics = _start_metrics(app) if idle_exit_s is None and app.config.metrics.enabled else None
    chats = idle_exit_s is None and (app.config.telegram.enabled or app.config.slack.enabled)
    # Listening before the engine replays results recorded while we were down, so their cards end too.
    progress = _start_progress(app) if chats else None
    await app.engine.start()
    if progress is not None:
        progress.catch_up()  # and cards of tasks another engine finished, or still running
    scheduler = None
    if idle_exit_s is None:
        # The long-lived bot process also runs the digest, budget alerts and the watchdog
        # (imported here: APScheduler is not worth its import time in every CLI command).
        from bot.scheduler import SchedulerDeps
        from bot.scheduler import start as start_scheduler

        scheduler = start_scheduler(SchedulerDeps(app.config, app.store, app.clock, app.home, app.engine.channels))
    print(f"orchestra engine: pid {os.getpid()}, data {app.home}, tmux -L {app.config.tmux.socket_name}", flush=True)
    if metrics is not None:
        print(f"metrics: {metrics.server.url}", flush=True)
    idle_since = loop.time()
    failures: list[str] = []
    telegram: _Telegram | None = None
    slack: _Slack | None = None

    def fatal(reason: str) -> None:
        failures.append(reason)
        stop.set()

    try:
        if idle_exit_s is None and app.config.telegram.enabled:
            telegram = await _unless_stopped(_start_telegram(app, fatal, progress), stop)
            if metrics is not None and telegram is not None:
                metrics.metrics.watch_transport("telegram", partial(_telegram_health, telegram.transport))
        if idle_exit_s is None and app.config.slack.enabled and not stop.is_set():
            slack = await _unless_stopped(_start_slack(app, progress, fatal), stop)
            if metrics is not None and slack is not None:
                metrics.metrics.watch_transport("slack", partial(_slack_health, slack.transport, app.clock))
        if printer is not None:
            await printer.start()
        while not stop.is_set():
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop.wait(), wake.wait()), timeout=1.0)
            if app.store.active_tasks():
                idle_since = loop.time()
            elif idle_exit_s is not None and loop.time() - idle_since > idle_exit_s:
                break
    finally:
        if slack is not None:
            await slack.stop()
        if telegram is not None:
            await telegram.stop()
        if printer is not None:
            await printer.stop()
        if progress is not None:
            progress.close()
        if scheduler is not None:
            scheduler.shutdown()
        await app.engine.stop()
        if metrics is not None:
            metrics.stop()
    return EXIT_TRANSPORT_FAILED if failures else 0


EXIT_TRANSPORT_FAILED = 75  # EX_TEMPFAIL: a chat transport could not recover; a supervisor should restart us


@dataclass
class _Metrics:
    metrics: Metrics
    server: MetricsServer
    store: Store  # the scrape threads' own connection to the store

    def stop(self) -> None:
        self.server.stop()
        self.store.close()


def _start_console(app: App) -> Outbox:
    """The console's delivery loop, woken when a task finishes (its summary is queued then)."""
    from bot.console import console_outbox

    printer = console_outbox(app.store, app.clock)
    app.engine.listeners.append(lambda _t, kind, _d: printer.wake() if kind == EventKind.FINISHED else None)
    return printer


def _start_metrics(app: App) -> _Metrics | None:
    """Serve ``GET /metrics``; a port that is taken costs the metrics, not the bot (one line on stderr)."""
    from core.errors import MetricsUnavailable
    from core.metrics import Metrics, MetricsServer
    from core.notify import chat_channels

    settings = app.config.metrics
    channels = app.config.channels()
    store = Store(app.store.path, redactor=app.store.redactor)
    metrics = Metrics(store, app.clock, channels=channels, transports=chat_channels(app.config))
    server = MetricsServer(metrics, settings.listen, settings.port)
    try:
        server.start()
    except MetricsUnavailable as exc:
        store.close()
        print(f"orchestra: {exc}; the bot runs without metrics (see `orchestra doctor`)", file=sys.stderr, flush=True)
        return None
    if settings.listen not in ("127.0.0.1", "localhost", "::1"):
        log.warning("metrics: %s has no authentication: whoever reaches it reads task counts and costs", server.url)
    app.engine.listeners.append(metrics.on_event)
    return _Metrics(metrics, server, store)


def _telegram_health(transport: TelegramTransport) -> TransportHealth:
    """Up while updates arrive: polls succeed (no 409, no failure, not stalled) or the webhook server runs."""
    from core.metrics import TransportHealth

    updater = transport.app.updater
    receiving = bool(transport.app.running and updater is not None and updater.running)
    if transport.settings.mode == "webhook":
        return TransportHealth(receiving and transport.webhook_ok)  # Telegram calls us: no poll to time
    health = transport.health
    healthy = not health.conflicts and not health.failures and health.verdict() is None
    return TransportHealth(receiving and healthy, max(0.0, health.clock() - health.last_ok))


def _slack_health(transport: SlackTransport, clock: Clock) -> TransportHealth:
    """Up while the Socket Mode connection is open and answers pings, or the HTTP server listens."""
    from core.metrics import TransportHealth

    seen = transport.last_contact
    return TransportHealth(transport.connected(), None if seen is None else max(0.0, clock.now() - seen))


class _Stoppable(Protocol):
    async def stop(self) -> None: ...


_Transport = TypeVar("_Transport", bound=_Stoppable)


@dataclass
class _Bridge(Generic[_Transport]):
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


_Telegram = _Bridge["TelegramTransport"]
_Slack = _Bridge["SlackTransport"]


def _start_progress(app: App) -> Progress:
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


async def _start_telegram(app: App, fatal: Callable[[str], None], shared: Progress | None = None) -> _Telegram:
    """Wire the Telegram bridge: gate -> commands -> outbox -> sender, progress edits from the engine."""
    from bot.outbox import Outbox
    from bot.telegram import TelegramTransport
    from core.access import Gate

    settings = app.config.telegram
    token = settings.token()
    configure_logging(secrets=app.config.secret_values())
    commands = _command_pool(app)
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
    return _Telegram(transport, outbox, progress, owns_progress=shared is None, commands=commands)


async def _start_slack(app: App, shared: Progress | None = None, fatal: Callable[[str], None] | None = None) -> _Slack:
    """Wire the Slack bridge like Telegram's; with both running, one Progress keeps every card current."""
    from bot.outbox import Outbox
    from bot.slack import SlackTransport
    from bot.slack_messages import slack_syntax
    from core.access import Gate

    settings = app.config.slack
    bot_token = settings.bot_token()
    app_token = settings.app_token() if settings.mode == "socket" else ""
    signing_secret = settings.signing_secret() if settings.mode == "http" else ""
    configure_logging(secrets=app.config.secret_values())
    commands = _command_pool(app, syntax=slack_syntax(settings.command))
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
    return _Slack(transport, outbox, progress, owns_progress=shared is None, commands=commands)


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
    app.engine.listeners.append(lambda _t, kind, _d: outbox.wake() if kind == EventKind.FINISHED else None)
    return progress


def _command_pool(app: App, syntax: Syntax | None = None) -> CommandPool:
    """The bridge's commands, in worker threads: each its own store connection and a Service that
    queues and pokes the engine (this process's, over its socket) instead of dispatching itself."""
    from bot.command_pool import CommandPool
    from core.commands import Commands

    def make(changed: Callable[[str], None]) -> Commands:
        store = Store(app.store.path, redactor=app.store.redactor)
        service = Service(app.config, store, app.tmux, app.clock, app.home, autostart_engine=False,
                          config_path=app.config_path)  # fmt: skip
        return Commands(service, app.clock, changed=changed, syntax=syntax)

    return CommandPool(make)


class _Redacting(logging.Formatter):
    """Never let a secret (the bot token is in every Bot API URL) reach a log line."""

    def __init__(self, fmt: str, secrets: Sequence[str]) -> None:
        super().__init__(fmt)
        self.redactor = Redactor.of(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.text(super().format(record))


class _BoltTokenNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("As you gave `client` as well, `token` will be unused")


def configure_logging(*, secrets: Sequence[str] = ()) -> None:
    """Log INFO and up to stderr with secrets scrubbed; httpx's per-request lines (token in the URL) off."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "orchestra", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.orchestra = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    handler.setFormatter(_Redacting("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Bolt warns at every start when $SLACK_BOT_TOKEN is set (it reads it itself); we pass our own client.
    bolt = logging.getLogger("slack_bolt")
    if not any(isinstance(f, _BoltTokenNotice) for f in bolt.filters):
        bolt.addFilter(_BoltTokenNotice())
    # PTB 22 warns on every 429 that RetryAfter.retry_after will become a timedelta; we read both forms.
    warnings.filterwarnings("ignore", message=r".*attribute `retry_after` will be of type", module="telegram")


async def _unless_stopped(starting: Coroutine[Any, Any, _T], stop: asyncio.Event) -> _T | None:
    """Start something that may retry for minutes (the Bot API unreachable) but give up on SIGTERM."""
    task = asyncio.ensure_future(starting)
    await _first(asyncio.shield(task), stop.wait())
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _first(*aws: object) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


__all__ = ["EXIT_TRANSPORT_FAILED", "App", "TaskState", "configure_logging", "open_app", "run_engine"]
