"""The stand-in's ``--input-format stream-json``: user messages and control requests read from stdin.

As Claude Code 2.1.332 does (measured against the fake model server): the first user message is the
task; one sent while a turn runs is taken before the next step of that turn (and echoed with
``isReplay`` under ``--replay-user-messages``); one sent after a turn's result starts a new turn; an
``interrupt`` control request ends the turn at once (a ``control_response``, the "[Request
interrupted by user…]" message, a result); end of input ends the process once the turn is over.
"""

from __future__ import annotations

import json
import queue
import sys
import threading

from core.agents.standin.wire import write_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def message_text(obj: Any) -> str | None:
    """The text of a stream-json user message (a string, or its text blocks); None if it is none."""
    if not isinstance(obj, dict) or obj.get("type") != "user":
        return None
    message = obj.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return None


class Inbox:
    """Reads stdin on a thread: user messages queue up, an interrupt sets a flag, EOF is noted."""

    def __init__(self) -> None:
        self.messages: queue.Queue[str | None] = queue.Queue()  # None: end of input
        self.interrupted = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in sys.stdin.buffer:
            try:
                obj = json.loads(raw.decode("utf-8", "surrogateescape"))
            except ValueError:
                continue
            text = message_text(obj)
            if text is not None:
                self.messages.put(text)
            elif isinstance(obj, dict) and obj.get("type") == "control_request":
                request = obj.get("request")
                if isinstance(request, dict) and request.get("subtype") == "interrupt":
                    self.interrupted.set()
                response: dict[str, Any] = {"subtype": "success", "request_id": obj.get("request_id"), "response": {}}
                write_line(json.dumps({"type": "control_response", "response": response}))
        self.messages.put(None)

    def next(self, timeout: float | None = None) -> str | None:
        """The next message (None at end of input, or when ``timeout`` passes with none)."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def waiting(self) -> list[str]:
        """The messages sent so far and not yet taken (a None seen here is put back for ``next``)."""
        taken: list[str] = []
        while True:
            try:
                text = self.messages.get_nowait()
            except queue.Empty:
                return taken
            if text is None:
                self.messages.put(None)
                return taken
            taken.append(text)
