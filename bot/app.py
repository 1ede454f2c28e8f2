"""The composition root: config -> store -> tmux -> engine -> service, and back down on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.clock import Clock, SystemClock
from core.config import Config, load_config
from core.engine import Engine
from core.models import TaskState
from core.service import Service
from core.store import Store
from core.tmux import TmuxManager

log = logging.getLogger(__name__)


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
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(home, 0o700)
    clock = clock or SystemClock()
    store = Store(home / "orchestra.db")
    tmux = TmuxManager(config.tmux.socket_name, config.tmux.session, config_file=config.tmux.config_file)
    engine = Engine(config, store, tmux, clock, home)
    service = Service(config, store, tmux, clock, home, engine=engine, config_path=path)
    return App(config, path, home, store, tmux, clock, engine, service)


class ConsoleSink:
    """Delivers the outbox's console messages by printing them, each exactly once."""

    def __init__(self, app: App, write: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.write = write or (lambda text: print(text, flush=True))

    def flush(self, task_id: str | None = None) -> int:
        sent = 0
        for note in self.app.store.pending("console", task_id=task_id):
            if self.app.store.mark_sent(note.id, self.app.clock.now()):
                self.write(f"\n── notification ({note.kind}) ──\n{note.text}\n")
                sent += 1
        return sent


async def run_engine(app: App, *, console: bool, idle_exit_s: float | None) -> int:
    """Run the engine (and the console sink) until SIGTERM/SIGINT or, optionally, idle."""
    if not app.engine.acquire():
        print("orchestra: an engine is already running for this data directory", file=sys.stderr)
        return 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    sink = ConsoleSink(app) if console else None
    wake = asyncio.Event()
    app.engine.listeners.append(lambda _t, kind, _d: wake.set() if kind == "finished" else None)
    await app.engine.start()
    print(f"orchestra engine: pid {os.getpid()}, data {app.home}, tmux -L {app.config.tmux.socket_name}", flush=True)
    idle_since = loop.time()
    try:
        while not stop.is_set():
            if sink is not None:
                sink.flush()
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop.wait(), wake.wait()), timeout=1.0)
            if app.store.active_tasks():
                idle_since = loop.time()
            elif idle_exit_s is not None and loop.time() - idle_since > idle_exit_s:
                break
    finally:
        await app.engine.stop()
    return 0


async def _first(*aws: object) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


__all__ = ["App", "ConsoleSink", "TaskState", "open_app", "run_engine"]
