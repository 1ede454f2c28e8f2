"""The live part of the dashboard: the viewers' sockets, one tailer per watched task, the task list.

A task's terminal is read from the stream its runner already appends to (``output.log`` for a
plain program, whose colours are its own; the readable view of ``events.jsonl`` for an agent
speaking JSON), by one tailer shared by every viewer of that task and stopped when the last one
leaves. The task list is read (off the loop) only while somebody watches, when the engine says
something happened, and at most every ``list_every_s`` otherwise. Nobody connected: no work.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

BACKLOG_BYTES = 64 * 1024  # what a new viewer of a task sees first: the end of its stream so far
_MARKERS = {"init": "●", "text": "›", "tool_use": "⚙", "tool_result": "↳", "usage": "$", "error": "✗"}


@dataclass(eq=False)
class Viewer:
    """One open WebSocket, whose session may be checked again, and the tasks it watches."""

    ws: web.WebSocketResponse
    user: str
    watching: set[str] = field(default_factory=set)


def render_events(lines: bytes) -> str:
    """``events.jsonl`` lines as the pane shows them (the raw and cost lines left out)."""
    out = []
    for line in lines.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        kind = str(event.get("kind", ""))
        if kind in ("raw", "cost") or not isinstance(event.get("text"), str):
            continue
        out.append(f"\x1b[2m{_MARKERS.get(kind, '·')}\x1b[0m {event['text'][:2000]}\r\n")
    return "".join(out)


class Tail:
    """One task's stream, read from where it was while anybody watches (a stat every ``interval_s``)."""

    def __init__(self, path: Path, events: bool, interval_s: float, send: Callable[[str, str], Awaitable[None]],
                 task_id: str) -> None:  # fmt: skip
        self.path = path
        self.events = events  # events.jsonl: whole lines only, rendered
        self.interval_s = interval_s
        self.send = send
        self.task_id = task_id
        self.offset = 0
        self.viewers: set[Viewer] = set()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._partial = b""
        self._runner: asyncio.Task[None] | None = None

    def backlog(self) -> str:
        """The end of the stream so far (for a viewer who just came), and where the tail goes on from."""
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as fh:
                fh.seek(max(0, size - BACKLOG_BYTES))
                data = fh.read(size)
        except OSError:
            return ""
        if self.offset == 0:
            self.offset = size
        if size > BACKLOG_BYTES:
            data = data.partition(b"\n")[2]  # from a whole line
        return render_events(data) if self.events else data.decode("utf-8", "replace")

    def start(self) -> None:
        self._runner = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            text = self._read()
            if text:
                await self.send(self.task_id, text)

    def _read(self) -> str:
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return ""
        if size <= self.offset:
            return ""
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(min(size - self.offset, 1 << 20))
        self.offset += len(data)
        if not self.events:
            return self._decoder.decode(data)
        data = self._partial + data
        whole, _, self._partial = data.rpartition(b"\n")
        return render_events(whole)


class Hub:
    """Every viewer, every tailer and the task list; counts what it sends for the metrics."""

    def __init__(self, home: Path, read_list: Callable[[], Awaitable[list[dict[str, Any]]]],
                 agent_kind: Callable[[str], str], *, tail_every_s: float = 0.03,
                 list_every_s: float = 2.0) -> None:  # fmt: skip
        self.home = home
        self.read_list = read_list
        self.agent_kind = agent_kind
        self.tail_every_s = tail_every_s
        self.list_every_s = list_every_s
        self.viewers: set[Viewer] = set()
        self.tails: dict[str, Tail] = {}
        self.frames_sent = 0
        self._changed = asyncio.Event()
        self._lister: asyncio.Task[None] | None = None
        self._last_list = ""

    # -- viewers ------------------------------------------------------------------------------
    async def join(self, viewer: Viewer) -> None:
        self.viewers.add(viewer)
        if self._lister is None:
            self._last_list = ""
            self._lister = asyncio.ensure_future(self._list_loop())
        else:
            await self._send(viewer, {"t": "tasks", "tasks": json.loads(self._last_list or "[]")})

    def leave(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        for task_id in list(viewer.watching):
            self.unwatch(viewer, task_id)
        if not self.viewers and self._lister is not None:
            self._lister.cancel()
            self._lister = None

    async def watch(self, viewer: Viewer, task_id: str) -> None:
        if task_id in viewer.watching:
            return
        tail = self.tails.get(task_id)
        if tail is None:
            events = self.agent_kind(task_id) != "command"
            folder = self.home / "tasks" / task_id
            path = folder / ("events.jsonl" if events else "output.log")
            tail = self.tails[task_id] = Tail(path, events, self.tail_every_s, self._broadcast_out, task_id)
            tail.start()
        viewer.watching.add(task_id)
        tail.viewers.add(viewer)
        await self._send(viewer, {"t": "out", "task": task_id, "d": tail.backlog(), "reset": True})

    def unwatch(self, viewer: Viewer, task_id: str) -> None:
        viewer.watching.discard(task_id)
        tail = self.tails.get(task_id)
        if tail is None:
            return
        tail.viewers.discard(viewer)
        if not tail.viewers:
            tail.stop()
            del self.tails[task_id]

    def changed(self) -> None:
        """Something happened to a task (the engine said so): read the list again now, if anyone looks."""
        self._changed.set()

    async def close(self) -> None:
        for viewer in list(self.viewers):
            with contextlib.suppress(Exception):
                await viewer.ws.close()
            self.leave(viewer)

    # -- sending ------------------------------------------------------------------------------
    async def _broadcast_out(self, task_id: str, text: str) -> None:
        tail = self.tails.get(task_id)
        for viewer in list(tail.viewers if tail else ()):
            await self._send(viewer, {"t": "out", "task": task_id, "d": text})

    async def _send(self, viewer: Viewer, message: dict[str, Any]) -> None:
        if viewer.ws.closed:
            return
        try:
            await viewer.ws.send_str(json.dumps(message, ensure_ascii=False))
        except (ConnectionError, RuntimeError):
            return
        self.frames_sent += 1

    async def _list_loop(self) -> None:
        while True:
            try:
                tasks = await self.read_list()
            except Exception:
                log.exception("web: reading the task list failed")
                tasks = None
            if tasks is not None:
                text = json.dumps(tasks, sort_keys=True, default=str)
                if text != self._last_list:
                    self._last_list = text
                    for viewer in list(self.viewers):
                        await self._send(viewer, {"t": "tasks", "tasks": tasks})
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.list_every_s)

    # -- metrics ------------------------------------------------------------------------------
    def families(self) -> Iterable[Any]:
        """``orchestra_web_viewers`` and ``orchestra_web_frames_sent_total``, for the metrics endpoint."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        viewers = GaugeMetricFamily("orchestra_web_viewers", "Dashboard WebSockets connected now")
        viewers.add_metric([], len(self.viewers))
        yield viewers
        tails = GaugeMetricFamily("orchestra_web_tails", "Task streams being read for the dashboard now")
        tails.add_metric([], len(self.tails))
        yield tails
        frames = CounterMetricFamily("orchestra_web_frames_sent", "WebSocket frames the dashboard sent")
        frames.add_metric([], self.frames_sent)
        yield frames


__all__ = ["BACKLOG_BYTES", "Hub", "Tail", "Viewer", "render_events"]
