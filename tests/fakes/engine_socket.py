"""A stand-in for the engine's Unix socket: keeps every line sent to it and answers the hooks' ``ask``.

Each connection is read a line at a time, as the engine reads it: a hook's ``ask`` is answered on
its own connection (``answer_message``, with ``allow`` and ``reason``) while the hook waits; with
``allow=None`` nothing is answered (a poke of ``answered``, a ``denied`` line: recorded only).
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

from core.permissions.hook import ANSWER, ASK, DENIED, answer_message


class FakeEngineSocket:
    """Start by constructing it; ``close()`` stops the thread and removes the socket."""

    def __init__(self, path: Path, *, allow: bool | None = None, reason: str = "") -> None:
        self.path, self.allow, self.reason = path, allow, reason
        self.lines: list[dict[str, Any]] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def asks(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("t") == ASK]

    @property
    def denied(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("t") == DENIED]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn, conn.makefile("rwb") as stream:
                conn.settimeout(5)
                for raw in stream:
                    if not raw.strip():
                        continue
                    message = json.loads(raw)
                    self.lines.append(message)
                    if message.get("t") == ASK and self.allow is not None:
                        reply = answer_message(message["key"], self.allow, self.reason)
                        assert reply["t"] == ANSWER
                        stream.write((json.dumps(reply) + "\n").encode())
                        stream.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()
        self.path.unlink(missing_ok=True)
