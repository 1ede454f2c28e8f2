"""The engine: listens to runners, ingests their events, and reconciles the store with them.

While it holds the engine lock (``core.engine.lock``) it is the one process that dispatches
(``core.engine.dispatch``) and records results (``core.engine.recorder``); every other process
only writes the store and pokes it over ``engine.sock``.

Runners report each event over that socket as it happens and also append it to the task's
``events.jsonl``; ``reconcile`` replays the files at start, so an engine that was down loses
nothing. Each state change is a compare-and-set in the store, so nothing is recorded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from core.engine.asks import Asks
from core.engine.dispatch import Dispatcher
from core.engine.lock import EngineLock, engine_running
from core.engine.recorder import Recorder
from core.engine.runners import kill_agent, request_cancel, runner_alive, signal_runner
from core.engine.workers import Workers
from core.hosts.follow import RemoteTasks
from core.launch import discard_launch
from core.models import Task, TaskState
from core.permissions.hook import ASK, DENIED
from core.protocol import (
    ANSWERED,
    CANCEL,
    CANCEL_FILE,
    ENGINE_SOCKET,
    EVENT,
    EVENTS_FILE,
    KICK,
    RESULT_FILE,
    EventKind,
    event_record,
    failed_result,
    message_type,
    read_result,
    task_dir,
)

if TYPE_CHECKING:
    from pathlib import Path

    from core.clock import Clock
    from core.config import Config
    from core.store import Store
    from core.tmux import TmuxManager, WindowInfo

log = logging.getLogger(__name__)

Listener = Callable[[str, str, dict[str, Any]], None]
"""Called as ``listener(task_id, kind, data)`` for every ingested event and state change."""

_SWEEP_S = 30.0
_UNREADABLE = "unreadable"


class Engine:
    """Owns dispatch and result recording while it holds the engine lock."""

    def __init__(self, config: Config, store: Store, tmux: TmuxManager, clock: Clock, home: Path) -> None:
        self.config = config
        self.store = store
        self.tmux = tmux
        self.clock = clock
        self.home = home
        self.socket_path = home / ENGINE_SOCKET
        self.listeners: list[Listener] = []
        self._lock = EngineLock(home)
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._finished: dict[str, asyncio.Event] = {}
        self._unrecorded: dict[str, dict[str, Any]] = {}  # results heard live that the store refused
        self._connections: set[asyncio.Task[Any]] = set()  # the handlers of open runner and hook connections
        self._workers = Workers()  # launches and summaries in flight: the sweep leaves their tasks alone
        self.recorder = Recorder(config, store, clock, home, self._workers, self._finished_run)
        self.remote = RemoteTasks(config, store, home, self.ingest, self.recorder)  # tasks on other hosts, over SSH
        self.listeners.append(self.remote.on_event)  # a cancel that came before a runner there was up
        self.dispatcher = Dispatcher(config, store, tmux, clock, home, workers=self._workers, recorder=self.recorder,
                                     notify=self._notify, remote=self.remote)  # fmt: skip
        self.asks = Asks(config, store, clock, home, self._notify)

    # -- ownership --------------------------------------------------------------------------
    def acquire(self, role: str = "engine") -> bool:
        """Take the engine lock as ``role`` (see ``lock_holder``); False if another live process holds it."""
        return self._lock.acquire(role)

    @property
    def owner(self) -> bool:
        return self._lock.held

    def release(self) -> None:
        if self._lock.held:
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
            self._lock.release()

    def task_dir(self, task_id: str) -> Path:
        return task_dir(self.home, task_id)

    # -- serving ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen for runners, reconcile with tmux and the result files, then dispatch."""
        assert self.owner, "acquire() the engine lock first"
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self.socket_path.parent.mkdir(mode=0o700, exist_ok=True)
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path), limit=64 * 1024 * 1024)
        os.chmod(self.socket_path, 0o600)
        self.reconcile()
        self.dispatch()
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def stop(self) -> None:
        await self._workers.wait(timeout=30)  # launches in flight record their window (or their failure)
        await self.remote.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        # Hang up on runners and hooks: they reconnect to the next engine (questions are in the store).
        for connection in list(self._connections):
            connection.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        self.release()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        runner_of: str | None = None
        handler = asyncio.current_task()
        assert handler is not None  # the server runs each connection in a task of its own
        self._connections.add(handler)
        try:
            while line := await reader.readline():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                kind = message_type(record)
                if kind == EVENT:
                    event = event_record(record)
                    if event is None:
                        log.warning("skipped a bad event record from a runner: %.200r", line)
                        continue
                    runner_of = event["task"]
                    self._ingest_live(event)
                elif kind == KICK:
                    self.dispatch()
                elif kind == CANCEL:
                    self.cancel_running(str(record.get("task", "")))
                elif kind == ASK:  # a hook waits on this connection for the answer
                    await self.asks.ask(record, writer)
                elif kind == DENIED:
                    self.asks.denied(record)
                elif kind == ANSWERED:
                    self.asks.answered(str(record.get("key", "")))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            runner_of = None  # the engine is stopping; the runner reconnects to the next one
        finally:
            writer.close()
            self._connections.discard(handler)
        if runner_of is not None:
            # A runner hung up: normally after its result; if not, it died and must not hang the task.
            asyncio.get_running_loop().call_later(0.5, self._check_hung_up, runner_of)

    def _ingest_live(self, event: dict[str, Any]) -> None:
        """Ingest an event from the socket; a store that cannot write (a full disk) costs it, not the engine."""
        try:
            self.ingest(event)
        except sqlite3.Error as exc:
            log.warning("could not record %s's %s event: %s", event["task"], event["kind"], exc)
            if event["kind"] == EventKind.RESULT:  # the runner may not get it on disk either: keep it to record later
                self._unrecorded[event["task"]] = event["data"]

    def _check_hung_up(self, task_id: str) -> None:
        if not self.owner:
            return
        task = self.store.find_task(task_id)
        if task is not None and task.state == TaskState.RUNNING:
            self._settle_one(task, self.tmux.windows(), grace=0.0)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_S)
            try:
                self.sweep()
                self.dispatch()  # and what waited for a host found down goes when it can
            except Exception:
                log.exception("sweep failed")

    async def wait_finished(self, task_id: str, timeout: float | None = None) -> Task:
        """Wait until the task's run has ended (or it was cancelled before running)."""
        event = self._finished.setdefault(task_id, asyncio.Event())
        task = self.store.get_task(task_id)
        if not task.state.finished:
            await asyncio.wait_for(event.wait(), timeout)
        return self.store.get_task(task_id)

    def _notify(self, task_id: str, kind: str, data: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(task_id, kind, data)
            except Exception:
                log.exception("listener failed for %s", task_id)

    def mark_finished(self, task_id: str) -> None:
        if (event := self._finished.get(task_id)) is not None:
            event.set()

    # -- dispatch and recording ------------------------------------------------------------
    def dispatch(self) -> list[str]:
        """Start queued tasks within the limits (``Dispatcher.dispatch``); nothing unless we own the lock."""
        return self.dispatcher.dispatch() if self.owner else []

    def finalize(self, task_id: str, payload: dict[str, Any]) -> bool:
        """Record a run's result once; False if it was already recorded."""
        return self.recorder.finalize(task_id, payload)

    def channels(self) -> list[str]:
        return self.recorder.channels()

    def _finished_run(self, task_id: str, state: TaskState, summary: dict[str, Any]) -> None:
        """After a run's ending is committed: its open questions closed, listeners told, waiters woken."""
        self.asks.close_task(task_id, f"The task ended ({state.value}).")
        self._notify(task_id, EventKind.FINISHED, {"state": state.value, "summary": summary})
        self.mark_finished(task_id)

    # -- ingest -----------------------------------------------------------------------------
    def ingest(self, record: dict[str, Any], *, replaying: bool = False) -> None:
        """Apply one runner event (live or replayed from disk); repeats are ignored.

        ``record`` has passed ``event_record``: every field has the type used here.
        """
        task_id: str = record["task"]
        kind: str = record["kind"]
        data: dict[str, Any] = record["data"]
        ts = float(record["ts"] or self.clock.now())
        seq: int = record["seq"]
        last = self.store.task_field(task_id, "last_seq")
        if last is not None and seq > int(last) + 1 and not replaying:
            # Events the runner could not send while no engine listened: they are in its file.
            self.replay(task_id)
            return
        kept = {} if kind == EventKind.RESULT else data  # a result's data is in the task row and result.json
        if not self.store.add_event(task_id, seq, ts, kind, record["text"][:2000], kept):
            return
        if kind == EventKind.STARTED:
            fields: dict[str, Any] = {"started_at": data.get("agent_started_at", ts)}
            if data.get("runner_pid"):
                fields["runner_pid"] = int(data["runner_pid"])
            self.store.update_task(task_id, **fields)
            if (self.task_dir(task_id) / CANCEL_FILE).exists():
                signal_runner(self.store, self.tmux, task_id)  # a cancel that came before the runner was up
        elif kind == EventKind.COST:
            self.store.update_task(task_id, live_cost_usd=float(data.get("cost_usd", 0)))
        elif kind == EventKind.USAGE:
            usage = data.get("usage") or {}
            self.store.update_task(
                task_id,
                input_tokens=int(usage.get("input_tokens", 0)),
                output_tokens=int(usage.get("output_tokens", 0)),
            )
        self._notify(task_id, kind, data)
        if kind == EventKind.RESULT and replaying:
            self.finalize(task_id, data)
            self.dispatch()
        elif kind == EventKind.RESULT:  # its summary (a git diff) is made off the loop
            self.recorder.finalize_soon(task_id, data, then=self.dispatch)

    # -- reconcile and sweep -------------------------------------------------------------------
    def replay(self, task_id: str) -> None:
        """Apply events from the task's events.jsonl that the store has not seen."""
        path = self.task_dir(task_id) / EVENTS_FILE
        last = int(self.store.task_field(task_id, "last_seq") or 0)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below; a missing file is the common case
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return
        with fh:
            self._replay_lines(task_id, path, fh, last)

    def _replay_lines(self, task_id: str, path: Path, lines: Iterable[bytes], last: int) -> None:
        for number, raw in enumerate(lines, 1):
            try:
                record = event_record(json.loads(raw))
            except ValueError:
                record = None
            if record is None or record["task"] != task_id:
                if raw.endswith(b"\n"):  # not a line cut short by a crash: say so once per read
                    log.warning("%s line %d is not an event of %s; skipped: %.200r", path, number, task_id, raw)
                continue
            if record["seq"] > last:
                self.ingest(record, replaying=True)

    def reconcile(self, *, grace: float = 0.0) -> None:
        """Bring the store in line with tmux and the runners' files after a (re)start (replaying the files);
        with a ``grace``, the slow sweep for runners that died without a result (no pane polling)."""
        windows = self.tmux.windows()
        for task in self.store.list_tasks(states=[TaskState.RUNNING], limit=1_000_000):
            self._settle_one(task, windows, grace=grace, replay=not grace)

    def sweep(self) -> None:
        self.reconcile(grace=5.0)

    def settle_unattended(self, tasks: Iterable[Task]) -> bool:
        """For readers (``status``, ``show``) while no engine runs: end the running tasks that have.

        Cheap: per running task a look for result.json and at the runner's pid in /proc; tmux is
        asked once, only for a task whose runner never reported its pid. True if a task changed.
        While an engine holds the lock this does nothing: recording is its job.
        """
        running = [t for t in tasks if t.state == TaskState.RUNNING]
        if not running or engine_running(self.home):
            return False
        unknown = []
        for task in running:
            alive = runner_alive(self.store, self.home, task.id)
            if alive is None:
                unknown.append(task)
            elif not alive or (self.task_dir(task.id) / RESULT_FILE).exists():
                self._settle_one(task, {}, grace=0.0, replay=True)
        if unknown:
            windows = self.tmux.windows()
            for task in unknown:
                self._settle_one(task, windows, grace=0.0, replay=True)
        return any(self.store.task_field(t.id, "state") != TaskState.RUNNING for t in running)

    def record_result(self, task_id: str) -> bool:
        """Catch up with the task's events and record its result.json if it has one.

        True once the task is no longer running. Safe from any process, engine or not: the
        store's compare-and-set records a result once.
        """
        self.replay(task_id)
        task = self.store.find_task(task_id)
        if task is None or task.state != TaskState.RUNNING:
            return task is not None
        payload = self._result_on_disk(task_id)
        if isinstance(payload, dict):
            self.finalize(task_id, payload)
        return bool(self.store.task_field(task_id, "state") != TaskState.RUNNING)

    def end_without_runner(self, task_id: str, state: TaskState, reason: str) -> bool:
        """End a running task whose runner is gone: stop its agent, record the reason once."""
        kill_agent(self.store, task_id)  # nothing else would ever stop or account for it
        return self.finalize(task_id, failed_result(state.value, reason))

    def _settle_one(self, task: Task, windows: dict[str, WindowInfo], *, grace: float, replay: bool = False) -> None:
        # One task's broken files or a bug they trigger must never keep the others from settling.
        try:
            if replay:
                self.replay(task.id)
                if self.store.task_field(task.id, "state") != TaskState.RUNNING:
                    return  # the replayed result finished it
            self._settle(task, windows, grace=grace)
        except Exception:
            log.exception("could not settle %s; the other tasks go on", task.id)

    def _settle(self, task: Task, windows: dict[str, WindowInfo], *, grace: float) -> None:
        if task.id in self._workers.busy or task.remote:  # a remote one is followed (``core.hosts.follow``)
            return self.remote.settle(task, grace) if task.remote and task.id not in self._workers.busy else None
        directory = self.task_dir(task.id)
        payload = self._result_on_disk(task.id)
        if payload is None and task.id in self._unrecorded:
            payload = self._unrecorded[task.id]
        if isinstance(payload, dict):
            self.replay(task.id)
            self.finalize(task.id, payload)
            self._unrecorded.pop(task.id, None)
            return
        window = windows.get(task.id)
        if window is not None and not window.dead:
            return
        discard_launch(str(directory))  # the window is gone: no launcher will ever read its secrets
        if self.clock.now() - float(self.store.task_field(task.id, "updated_at") or 0) < grace:
            return
        if payload == _UNREADABLE:
            self.end_without_runner(task.id, TaskState.FAILED, "its result.json could not be read")
            return
        if not (directory / EVENTS_FILE).exists():
            # The window never came up: the task never ran, so it can safely go back in the queue.
            if self.store.transition(task.id, [TaskState.RUNNING], TaskState.QUEUED, updated_at=self.clock.now()):
                log.warning("%s never started; queued again", task.id)
            return
        stopped = not windows and not self.tmux.server.is_alive()  # asked only for a runner that vanished
        reason = "its tmux server stopped" if stopped else "the runner vanished without a result"
        self.end_without_runner(task.id, TaskState.FAILED, reason)

    def _result_on_disk(self, task_id: str) -> dict[str, Any] | str | None:
        """The task's result.json if valid; None when there is none; ``_UNREADABLE`` when broken."""
        try:
            return read_result(self.task_dir(task_id))
        except ValueError as exc:
            log.warning("%s", exc)
            return _UNREADABLE

    # -- cancel -----------------------------------------------------------------------------
    def cancel_running(self, task_id: str) -> bool:
        """Ask a running task's runner to stop its agent (it ends the task as cancelled)."""
        task = self.store.find_task(task_id)
        if task is None or task.state != TaskState.RUNNING:
            return False
        self.asks.close_task(task_id, "The task was cancelled.")  # a hook waiting on a person stops waiting
        return self.remote.cancel(task) if task.remote else request_cancel(self.store, self.tmux, self.home, task_id)
