"""``ask_owner``: the MCP tool Orchestra offers a CLI that has no question tool of its own.

A CLI with MCP support starts ``<python> -S <orchestra>/core/permissions/ask_owner.py`` (``server_argv``)
as a stdio MCP server. It speaks JSON-RPC 2.0, one message per line (the MCP stdio transport):
``initialize``, ``tools/list`` (one tool, ``ask_owner``), ``tools/call`` and ``ping``. A call asks the
person exactly as Claude Code's ``AskUserQuestion`` does (``core.permissions.hook.ask_questions``): the
question is a row in the store, reaches the chats with its options as buttons, survives an engine
restart, times out after the policy's ``ask_timeout_s`` (then the model is told to decide alone,
never that it was allowed), and is audited. The answer is the tool's text result.

The task comes from ``ORCHESTRA_TASK_DIR`` and its ``spec.json``, as for the permission hook; the
server is only configured for a task whose agent runs with the hook (the policy, hence the timeout,
is in the spec). Standard library only, started with ``python -S``.
"""

from __future__ import annotations

import json
import os
import sys
import threading

if __name__ == "__main__":  # run as a script: the package root, not this folder, goes first on the path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.permissions.call import Decision
from core.permissions.hook import _MARGIN_S, TASK_DIR_ENV, ask_questions
from core.permissions.policy import Policy
from core.questions import ASK_OWNER, MAX_OPTIONS, question_list

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SERVER = "orchestra"  # the server's name in a CLI's MCP config (Codex shows the tool as orchestra.ask_owner)
PROTOCOL = "2025-06-18"
TOOL = {
    "name": ASK_OWNER,
    "description": (
        "Ask the person who gave you this task a question and wait for the answer (it reaches their phone)."
        " Use it when you need a decision only they can make; offer options when there are a few clear"
        " choices. Do not use it for permission to run a command: that is asked for you."
    ),
    "inputSchema": {
        "type": "object",
        "properties": {
            "question": {"type": "string", "description": "The question, complete and on its own"},
            "options": {
                "type": "array",
                "items": {"type": "string"},
                "maxItems": MAX_OPTIONS,
                "description": "Short answers to pick from (the person may also write their own)",
            },
            "header": {"type": "string", "description": "A word or two naming the topic"},
        },
        "required": ["question"],
    },
}


def server_argv(kind: str) -> list[str]:
    """The command a CLI of ``kind`` starts from its MCP config (no shell: each an argument of its own)."""
    return [sys.executable, "-S", os.path.abspath(__file__), kind]


def answer(arguments: object, kind: str = "mcp", environ: dict[str, str] | None = None) -> tuple[str, bool]:
    """Ask the person; the text the model reads and whether it is an error (no answer: it decides)."""
    env = os.environ if environ is None else environ
    questions = question_list(arguments)
    directory = env.get(TASK_DIR_ENV, "")
    if not directory:
        return f"ask_owner runs only inside an Orchestra task ({TASK_DIR_ENV} unset); decide on your own.", True
    try:
        with open(os.path.join(directory, "spec.json"), encoding="utf-8") as fh:
            spec = json.load(fh)
        policy = Policy.from_dict(spec["permissions"])
    except (OSError, ValueError, KeyError, TypeError):
        return "This task cannot reach its owner (its spec has no permission policy); decide on your own.", True
    wait_s = policy.ask_timeout_s + min(_MARGIN_S, policy.ask_timeout_s)
    key = os.urandom(8).hex()
    answers = ask_questions(str(spec.get("socket", "")), str(spec.get("task_id", "")), key, questions, kind, wait_s)
    if isinstance(answers, Decision):
        return answers.reason, True
    return "\n".join(f"The person answered {q!r}: {a}" for q, a in answers.items()), False


class Server:
    """One MCP session over a pair of byte streams; calls run in threads so a ping is never blocked."""

    def __init__(self, reader: Any, writer: Any, kind: str = "mcp") -> None:
        self.reader, self.writer, self.kind = reader, writer, kind
        self.lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        line = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        with self.lock:
            self.writer.write(line)
            self.writer.flush()

    def reply(self, ident: Any, result: dict[str, Any] | None = None, error: tuple[int, str] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident}
        if error is not None:
            message["error"] = {"code": error[0], "message": error[1]}
        else:
            message["result"] = result if result is not None else {}
        self.send(message)

    def serve(self) -> None:
        for raw in self.reader:
            try:
                message = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                self.reply(None, error=(-32700, "parse error"))
                continue
            if isinstance(message, dict):
                self.handle(message)

    def handle(self, message: dict[str, Any]) -> None:
        method, ident, params = message.get("method"), message.get("id"), message.get("params")
        params = params if isinstance(params, dict) else {}
        if ident is None or not isinstance(method, str):
            return  # a notification (initialized, cancelled) or a response: nothing to say
        if method == "initialize":
            asked = params.get("protocolVersion")
            self.reply(ident, {
                "protocolVersion": asked if isinstance(asked, str) and asked else PROTOCOL,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": SERVER, "version": "1"},
            })  # fmt: skip
        elif method == "ping":
            self.reply(ident, {})
        elif method == "tools/list":
            self.reply(ident, {"tools": [TOOL]})
        elif method == "tools/call":
            if params.get("name") != ASK_OWNER:
                self.reply(ident, error=(-32602, f"unknown tool {params.get('name')!r}"))
                return
            threading.Thread(target=self._call, args=(ident, params.get("arguments")), daemon=True).start()
        else:
            self.reply(ident, error=(-32601, f"method not found: {method}"))

    def _call(self, ident: Any, arguments: object) -> None:
        try:
            text, failed = answer(arguments, self.kind)
        except Exception as exc:  # noqa: BLE001 - whatever breaks, the model hears it and goes on
            text, failed = f"ask_owner failed ({type(exc).__name__}); decide on your own.", True
        self.reply(ident, {"content": [{"type": "text", "text": text}], "isError": failed})


def main() -> int:
    Server(sys.stdin.buffer, sys.stdout.buffer, sys.argv[1] if len(sys.argv) > 1 else "mcp").serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
