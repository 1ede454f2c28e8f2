"""The composition root: config -> store -> tmux -> engine -> service, and back down on stop.

``open_app`` opens the config and the store; tmux, the engine and the Service are built on first
use (a CLI read such as ``orchestra status`` never imports libtmux or asyncio). ``run_engine`` is
the engine process (on demand, or the bot with its chat bridges from bot/bridges.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, TypeVar

from core.clock import Clock, SystemClock
from core.config.facts import load_facts
from core.errors import ConfigError
from core.redact import Redactor
from core.store import Store

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Coroutine
    from datetime import tzinfo
    from pathlib import Path

    from bot.bridges import SlackBridge, TelegramBridge
    from bot.outbox import Outbox
    from bot.web.server import WebServer
    from core.config import Config
    from core.engine import Engine
    from core.metrics import Metrics, MetricsServer
    from core.service import Service
    from core.tmux import TmuxManager

_T = TypeVar("_T")


class App:
    """One process's parts: the config and the store, open; tmux, the engine and the Service, built when asked for."""

    def __init__(
        self,
        config_path: Path,
        home: Path,
        store: Store,
        clock: Clock,
        config: Config | None = None,
        *,
        timezone: str = "UTC",
    ) -> None:
        self.timezone = timezone  # digest.timezone: where the times a person reads are shown
        self.config_path = config_path
        self.home = home
        self.store = store
        self.clock = clock
        if config is not None:
            self.config = config

    @cached_property
    def zone(self) -> tzinfo:
        """The configured time zone, for the times a person reads (from the facts: no config load)."""
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)

    @cached_property
    def config(self) -> Config:
        """The validated bots.yaml, loaded on first use: ``open_app`` starts from its cached facts alone."""
        from core.config import load_config

        return load_config(self.config_path)[0]

    @cached_property
    def tmux(self) -> TmuxManager:
        from core.tmux import TmuxManager

        tmux = self.config.tmux
        return TmuxManager(tmux.socket_name, tmux.session, config_file=tmux.config_file)

    @cached_property
    def engine(self) -> Engine:
        from core.engine import Engine

        return Engine(self.config, self.store, self.tmux, self.clock, self.home)

    @cached_property
    def service(self) -> Service:
        """The one way in; it builds the engine only for a call that needs one (not a read with nothing running)."""
        from core.service import Service

        return Service(lambda: self.config, self.store, lambda: self.tmux, self.clock, self.home,
                       engine=lambda: self.engine, config_path=self.config_path)  # fmt: skip

    def close(self) -> None:
        if "engine" in self.__dict__:  # an engine never built holds no lock
            self.engine.release()
        self.store.close()


def open_app(config_path: Path | None = None, *, clock: Clock | None = None) -> App:
    facts, path = load_facts(config_path)  # what opening needs, without pydantic when bots.yaml is unchanged
    home = facts.home()
    if home.exists() and not home.is_dir():
        raise ConfigError(f"the data directory {home} is a file, not a directory (see ORCHESTRA_HOME or data_dir)")
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(home, 0o700)
    store = Store(home / "orchestra.db", redactor=Redactor(facts.known_secrets()))
    return App(path, home, store, clock or SystemClock(), timezone=facts.timezone)


async def run_engine(app: App, *, console: bool, idle_exit_s: float | None) -> int:
    """Run the engine (and the console's delivery) until SIGTERM/SIGINT or, optionally, idle."""
    import asyncio  # here, not at the top: the CLI's reads open the app without it (~30 ms)

    from bot.bridges import slack_health, start_progress, start_slack, start_telegram, telegram_health
    from bot.logging_setup import configure_logging
    from core.protocol import EventKind

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
    progress = start_progress(app) if chats else None
    await app.engine.start()
    if progress is not None:
        progress.catch_up()  # and cards of tasks another engine finished, or still running
    scheduler = None
    if idle_exit_s is None:
        # The long-lived bot process also runs the digest, budget alerts, the watchdog and worktree housekeeping
        # (imported here: APScheduler is not worth its import time in every CLI command).
        from bot.scheduler import SchedulerDeps, preload_prices
        from bot.scheduler import start as start_scheduler

        deps = SchedulerDeps(
            app.config, app.store, app.clock, app.home, app.engine.channels, housekeeping=app.service,
            start_task=app.service.start_scheduled, schedules=app.service.all_schedules,
            forget=app.store.remove_schedule,
        )  # fmt: skip
        scheduler = start_scheduler(deps)
    print(f"orchestra engine: pid {os.getpid()}, data {app.home}, tmux -L {app.config.tmux.socket_name}", flush=True)
    if metrics is not None:
        print(f"metrics: {metrics.server.url}", flush=True)
    dashboard = await _start_web(app, metrics) if idle_exit_s is None and app.config.web.enabled else None
    hooks = None
    if idle_exit_s is None and app.config.triggers.enabled:
        from bot.triggers import start_triggers

        hooks = await start_triggers(app)
    idle_since = loop.time()
    failures: list[str] = []
    telegram: TelegramBridge | None = None
    slack: SlackBridge | None = None

    def fatal(reason: str) -> None:
        failures.append(reason)
        stop.set()

    try:
        if idle_exit_s is None and app.config.telegram.enabled:
            telegram = await _unless_stopped(start_telegram(app, fatal, progress), stop)
            if metrics is not None and telegram is not None:
                metrics.metrics.watch_transport("telegram", partial(telegram_health, telegram.transport))
        if idle_exit_s is None and app.config.slack.enabled and not stop.is_set():
            slack = await _unless_stopped(start_slack(app, progress, fatal), stop)
            if metrics is not None and slack is not None:
                metrics.metrics.watch_transport("slack", partial(slack_health, slack.transport, app.clock))
        if printer is not None:
            await printer.start()
        if scheduler is not None:  # the chats are up: warm the price table now, off the loop
            loop.run_in_executor(None, preload_prices)
        while not stop.is_set():
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop.wait(), wake.wait()), timeout=1.0)
            if app.store.active_tasks():
                idle_since = loop.time()
            elif idle_exit_s is not None and loop.time() - idle_since > idle_exit_s:
                break
    finally:
        if dashboard is not None:
            await dashboard.stop()
        if hooks is not None:
            await hooks.stop()
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
    from core.protocol import EventKind

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
        import logging

        logging.getLogger(__name__).warning(
            "metrics: %s has no authentication: whoever reaches it reads task counts and costs", server.url
        )
    app.engine.listeners.append(metrics.on_event)
    return _Metrics(metrics, server, store)


async def _start_web(app: App, metrics: _Metrics | None) -> WebServer | None:
    """The dashboard on this loop (bot/web), its viewers and frames in the metrics when those are served."""
    from bot.web.server import start_web

    server = await start_web(app)
    if server is not None:
        print(f"web: {server.url} (sign in: `orchestra web`)", flush=True)
        if metrics is not None:
            metrics.metrics.extra.append(server.hub.families)
    return server


async def _unless_stopped(starting: Coroutine[Any, Any, _T], stop: asyncio.Event) -> _T | None:
    """Start something that may retry for minutes (the Bot API unreachable) but give up on SIGTERM."""
    import asyncio

    task = asyncio.ensure_future(starting)
    await _first(asyncio.shield(task), stop.wait())
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _first(*aws: object) -> None:
    import asyncio

    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


__all__ = ["EXIT_TRANSPORT_FAILED", "App", "open_app", "run_engine"]
