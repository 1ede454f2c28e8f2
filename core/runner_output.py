"""What the runner writes, redacted and bounded: its events, output.log, stderr.log, result.json, the pane.

Every event goes to the engine over its socket at once and to ``events.jsonl``; past the caps
(``log_max_bytes``, ``events_max_bytes``) chatty events are dropped and counted, the others thinned.
A full disk costs a file its writes, never the run: what it refused is kept in memory and retried.
Standard library only, like the runner.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.agents.base import AgentEvent
from core.protocol import EVENTS_FILE, RESULT_FILE, EventKind, encode, event_message
from core.redact import Redactor, StreamRedactor
from core.text import money

_READ_CHUNK = 65536
_CHATTY = frozenset({EventKind.TEXT, EventKind.RAW, EventKind.TOOL_USE, EventKind.TOOL_RESULT})  # dropped past a cap
_HELD_EVERY_S = 1.0  # past a cap, other events are kept at most this often per kind (the latest at the end)
_UNWRITTEN_MAX = 16 * 1024 * 1024  # events.jsonl bytes held in memory while the disk is full
_MARKERS = {
    EventKind.INIT: "●",
    EventKind.TEXT: "›",
    EventKind.TOOL_USE: "⚙",
    EventKind.TOOL_RESULT: "↳",
    EventKind.USAGE: "$",
    EventKind.ERROR: "✗",
}


class _Link:
    """A best-effort line-oriented connection to the engine; reconnects when it can."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock: socket.socket | None = None
        self._last_try = 0.0

    def send(self, line: bytes, *, force: bool = False) -> None:
        if self.sock is None:
            now = time.monotonic()
            if not force and now - self._last_try < 1.0:
                return
            self._last_try = now
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(2.0)
                sock.connect(self.path)
                self.sock = sock
            except OSError:
                return
        try:
            self.sock.sendall(line)
        except OSError:
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None


class RunOutput:
    """The files of one run and the engine link; ``redactor`` keeps every known secret out of them.

    ``stderr_fd`` (the agent's stderr) is copied into ``stderr.log`` by a thread as it arrives.
    """

    def __init__(
        self,
        directory: Path,
        task_id: str,
        *,
        socket_path: str,
        redactor: Redactor,
        log_max: int,
        events_max: int,
        stderr_fd: int | None,
    ) -> None:
        self.dir = directory
        self.task_id = task_id
        self.redactor = redactor
        self.link = _Link(socket_path)
        self.events_file = open(directory / EVENTS_FILE, "ab", buffering=0)  # noqa: SIM115
        # Unbuffered: ``orchestra logs`` and ``/log`` read the file while the agent runs.
        self.log_file = open(directory / "output.log", "ab", buffering=0)  # noqa: SIM115
        self.log_max = log_max
        self.log_written = 0
        self.events_max = events_max
        self.events_written = 0
        self.events_dropped = 0
        self.seq = 0
        self._kept_at: dict[str, float] = {}  # past a cap: when each kind was last kept
        self._held: dict[str, tuple[str, dict[str, Any]]] = {}  # past a cap: the latest not yet kept
        self._unwritten = bytearray()  # events.jsonl bytes a failed write (a full disk) left for later
        self._write_failures: set[str] = set()  # files a write failed on, each told once in the pane
        self._stderr: threading.Thread | None = None
        if stderr_fd is not None:
            self._stderr = threading.Thread(target=self._copy_stderr, args=(stderr_fd,), daemon=True)
            self._stderr.start()

    # -- events -------------------------------------------------------------------------------
    def emit(self, kind: str, text: str = "", data: dict[str, Any] | None = None, *, force: bool = False) -> None:
        """Send an event to the engine and append it to events.jsonl; ``force`` reconnects at once."""
        self.seq += 1
        line = self.redactor.data(encode(event_message(self.task_id, self.seq, time.time(), kind, text, data or {})))
        self._append_events(line)
        self.events_written += len(line)
        self.link.send(line, force=force)

    def admit(self, kind: str, text: str, data: dict[str, Any]) -> bool:
        """Whether to keep an agent event; what ``events.jsonl`` and the store hold stays bounded.

        Past ``events_max_bytes`` (or the log cap) output events are dropped and counted; the
        others (usage, cost, errors, ...) are kept at most once a second per kind, and the latest
        one held back is written at the end, so the final usage and cost are never lost.
        """
        over_log = bool(self.log_max) and self.log_written > self.log_max
        if not over_log and not (self.events_max and self.events_written > self.events_max):
            return True
        if kind in _CHATTY:
            self.events_dropped += 1
            return False
        now = time.monotonic()
        if now - self._kept_at.get(kind, -_HELD_EVERY_S) >= _HELD_EVERY_S:
            self._kept_at[kind] = now
            self._held.pop(kind, None)
            return True
        if kind in self._held:
            self.events_dropped += 1  # superseded by this one
        self._held[kind] = (text, data)
        return False

    def flush_held(self) -> None:
        """At the end: the latest event of each kind held back by a cap, and how many were dropped."""
        for kind, (text, data) in self._held.items():
            self.emit(kind, text, data)
        self._held.clear()
        if self.events_dropped:
            caps = "limits.events_max_bytes or log_max_bytes"
            note = f"{self.events_dropped} events dropped past the cap ({caps}); output.log has the text"
            self.emit(EventKind.NOTICE, note, {"events_dropped": self.events_dropped})
            sys.stdout.write(f"orchestra {self.task_id}: {note}\n")

    def retry_events(self) -> None:
        """Try again to write what the disk refused of events.jsonl."""
        if self._unwritten:
            self._append_events(b"")

    def _append_events(self, line: bytes) -> None:
        """Append to events.jsonl; what a full disk refuses waits in memory (bounded) for the next try.

        The engine has each event over the socket already; the file catches up once there is space.
        """
        if len(self._unwritten) + len(line) <= _UNWRITTEN_MAX:
            self._unwritten += line
        while self._unwritten:
            try:
                written = self.events_file.write(self._unwritten) or 0
            except OSError as exc:
                self._write_failed("events.jsonl", exc)
                return
            del self._unwritten[:written]

    # -- the log, stderr.log and result.json ---------------------------------------------------
    def log(self, chunk: bytes) -> None:
        """Append whole lines (so a secret is never split across two writes), redacted, up to the cap."""
        chunk = self.redactor.data(chunk)
        if self.log_max and self.log_written > self.log_max:
            return  # past the cap: the marker below is written once, so a full log always says it was capped
        if self.log_max and self.log_written + len(chunk) > self.log_max:
            chunk = chunk[: self.log_max - self.log_written] + b"\n[orchestra: log capped here]\n"
        try:
            self.log_file.write(chunk)
        except OSError as exc:
            self._write_failed("output.log", exc)  # a full disk: this output is lost from the log, not the run
        self.log_written += len(chunk)

    def _copy_stderr(self, fd: int) -> None:
        """Copy the agent's stderr into ``stderr.log`` as it arrives, redacted before it is written."""
        stream = StreamRedactor(self.redactor)
        out = os.open(self.dir / "stderr.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while chunk := os.read(fd, _READ_CHUNK):
                os.write(out, stream.feed(chunk))
            os.write(out, stream.flush())
        except OSError:
            pass
        finally:
            os.close(out)
            os.close(fd)

    def stderr_tail(self, size: int) -> str:
        """The end of ``stderr.log`` once the agent's stderr is in it (waited for briefly: a leftover
        child may hold stderr open)."""
        if self._stderr is not None:
            self._stderr.join(2.0)
        try:
            with open(self.dir / "stderr.log", "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - size))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def write_result(self, payload: dict[str, Any], visible: Callable[[], None] | None = None) -> bool:
        """Write result.json atomically; False (no stray temp left) if the disk refused it.

        ``visible`` is called once the whole file is in place, before the fsync that makes it
        durable: the engine need not wait for the disk to hear the result (a reader still sees
        all of the file or none of it).
        """
        tmp = self.dir / (RESULT_FILE + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, ensure_ascii=False)
                fh.flush()
                os.replace(tmp, self.dir / RESULT_FILE)
                if visible is not None:
                    visible()
                os.fsync(fh.fileno())
        except OSError as exc:
            self._write_failed(RESULT_FILE, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False
        return True

    def close(self) -> None:
        self.link.close()
        for fh in (self.log_file, self.events_file):
            with contextlib.suppress(OSError):
                fh.close()

    # -- the pane -----------------------------------------------------------------------------
    def show(self, event: AgentEvent, live_cost: float | None) -> None:
        """The readable view in the pane, for a person who attaches."""
        if event.kind == EventKind.RAW:
            return
        text = event.text.replace("\n", " ")[:300]
        if event.kind == EventKind.USAGE and live_cost is not None:
            text = f"{text}  (≈ {money(live_cost)} so far)"
        self.say(f"{_MARKERS.get(event.kind, '·')} {text}\n")

    def say(self, text: str) -> None:
        with contextlib.suppress(OSError):  # the pane can be gone too (its tmux server stopped)
            sys.stdout.write(text)
            sys.stdout.flush()

    def _write_failed(self, name: str, exc: OSError) -> None:
        if name not in self._write_failures:
            self._write_failures.add(name)
            reason = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
            self.say(f"orchestra {self.task_id}: cannot write {name} ({reason}); the run goes on\n")
