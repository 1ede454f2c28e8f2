"""A conversation with an agent that reads its input as it runs (Claude Code's ``--input-format stream-json``).

The runner writes the task as the first user message and keeps the agent's stdin open, so that:

* what a person says to the running task (``core.service.talk`` drops it in the task's ``say/``
  folder and wakes the runner) is written as another user message: Claude Code hands it to the
  model before its next step (measured on 2.1.332: the next model request carries it, in the same
  turn), and echoes each message it took (``--replay-user-messages``, ``isReplay``);
* ``/stop`` (a ``stop`` file) sends the ``interrupt`` control request: the turn ends at once, the
  session is kept and a result with its cost is written;
* a ``can_use_tool`` control request (the CLI's own permission prompt, ``--permission-prompt-tool
  stdio``) is answered: ``AskUserQuestion`` goes to a person like the hook's questions, anything
  else is refused (the permission hook, when on, decided the call already).

When a turn ends and every message written was taken, stdin is closed and the agent exits as a
``-p`` run does. A message that arrives after that stays in ``say/``: the engine makes it a
follow-up in the same session (``core.engine.says``).

Standard library only: the runner imports it under ``python -S``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from core.protocol import SAID_DIR, SAY_DIR, STOP_FILE, EventKind

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_ASK_WAIT_S = 615.0  # a question without a permission policy in the spec: the default ask timeout and margin


def user_message(text: str) -> bytes:
    """One stream-json user message (the task text is JSON data here, never shell or argv)."""
    message = {"type": "user", "message": {"role": "user", "content": text}}
    return (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "surrogateescape")


class Conversation:
    """The agent's stdin for one run; ``poll`` each pump pass, ``saw`` each output line."""

    def __init__(
        self,
        fd: int,
        first: bytes,
        task_dir: Path,
        emit: Callable[[str, str, dict[str, Any]], None],
        spec: Any,
    ) -> None:
        self.dir = task_dir
        self.emit = emit
        self.spec = spec
        self.written = 0  # user messages written
        self.taken = 0  # user messages the agent echoed as taken
        self.stopping = False
        self.closed = False
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._fd = fd
        threading.Thread(target=self._write, daemon=True).start()
        self._user(first.decode("utf-8", "surrogateescape"))

    # -- in ----------------------------------------------------------------------------------
    def poll(self) -> None:
        """Pass on a ``stop`` and what was said since the last pass (in the order it was said)."""
        if self.closed:
            return
        stop = self.dir / STOP_FILE
        if stop.exists() and not self.stopping:
            self.stopping = True
            with contextlib.suppress(OSError):
                stop.unlink()
            request = {"type": "control_request", "request_id": "orchestra-stop", "request": {"subtype": "interrupt"}}
            self._queue.put((json.dumps(request) + "\n").encode())
            self.emit(EventKind.NOTICE, "⏹ stopping after the current step (the session is kept)", {"stop": True})
            return
        for path in pending_says(self.dir):
            try:
                said = json.loads(path.read_text(encoding="utf-8"))
                text, by = str(said["text"]), str(said.get("by") or "someone")
            except (OSError, ValueError, KeyError, TypeError):
                continue
            self._user(f"Message from {by} while you work (take it into account now): {text}")
            done = self.dir / SAID_DIR
            done.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):
                os.replace(path, done / path.name)
            self.emit(EventKind.NOTICE, f"💬 {by}: {text[:300]}", {"said": path.stem, "by": by})

    def _user(self, text: str) -> None:
        self.written += 1
        self._queue.put(user_message(text))

    # -- out ---------------------------------------------------------------------------------
    def saw(self, line: str) -> None:
        """Follow the agent's output: messages taken, turns ended, control requests."""
        if self.closed or not line.startswith("{"):
            return
        if "isReplay" not in line and '"result"' not in line and "control_request" not in line:
            return
        try:
            obj = json.loads(line)
        except ValueError:
            return
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "user" and obj.get("isReplay") is True:
            self.taken += 1
        elif kind == "result":
            if self.stopping or (self.taken >= self.written and not pending_says(self.dir)):
                self.close()
        elif kind == "control_request":
            self._control(obj)

    def _control(self, obj: dict[str, Any]) -> None:
        raw = obj.get("request")
        request: dict[str, Any] = raw if isinstance(raw, dict) else {}
        request_id = str(obj.get("request_id") or "")
        if request.get("subtype") != "can_use_tool":
            self._respond(request_id, {}, error="Orchestra's runner does not handle this request")
            return
        if request.get("tool_name") == "AskUserQuestion":
            given = request.get("input")
            tool_input: dict[str, Any] = given if isinstance(given, dict) else {}
            threading.Thread(target=self._ask, args=(request_id, tool_input), daemon=True).start()
            return
        refusal = "Orchestra's policy for this task does not allow this tool call without its permission hook."
        self._respond(request_id, {"behavior": "deny", "message": refusal})

    def _ask(self, request_id: str, tool_input: dict[str, Any]) -> None:
        from core.permissions.hook import ask_questions
        from core.questions import ASK_USER_QUESTION, claude_answers, question_list

        policy = self.spec.permissions or {}
        wait_s = float(policy.get("ask_timeout_s") or 0) * 1.05 + 15 if policy else _ASK_WAIT_S
        key = os.urandom(8).hex()
        questions = question_list(tool_input)
        answers = ask_questions(self.spec.socket, self.spec.task_id, key, questions, ASK_USER_QUESTION, wait_s)
        if isinstance(answers, dict):
            self._respond(request_id, {"behavior": "allow", "updatedInput": claude_answers(tool_input, answers)})
        else:
            self._respond(request_id, {"behavior": "deny", "message": answers.reason})

    def _respond(self, request_id: str, response: dict[str, Any], error: str = "") -> None:
        body: dict[str, Any] = {"subtype": "error", "request_id": request_id, "error": error}
        if not error:
            body = {"subtype": "success", "request_id": request_id, "response": response}
        self._queue.put((json.dumps({"type": "control_response", "response": body}) + "\n").encode())

    def close(self) -> None:
        """No more input: the agent ends once its turn is over (its stdin reaches end of file)."""
        if not self.closed:
            self.closed = True
            self._queue.put(None)

    def _write(self) -> None:
        with contextlib.suppress(OSError), open(self._fd, "wb", buffering=0, closefd=True) as pipe:
            while (chunk := self._queue.get()) is not None:
                pipe.write(chunk)


def pending_says(task_dir: Path) -> list[Path]:
    """What was said to a task and not yet passed on, oldest first (files are named by the say's id)."""
    try:
        paths = [p for p in (task_dir / SAY_DIR).iterdir() if p.suffix == ".json" and p.stem.isdigit()]
    except OSError:
        return []
    return sorted(paths, key=lambda p: int(p.stem))
