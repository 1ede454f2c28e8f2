"""One scripted stand-in session: the stream Claude Code would print for a task, mode by mode."""

from __future__ import annotations

import json
import os
import re
import sys
import time

from core.agents.standin.wire import TOOLS, USAGE_KEYS, VERSION, price, text_block, uuid4, wire_usage, write_line
from core.text import clip

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from core.agents.standin.cli import Options
    from core.agents.standin.stream import Inbox


class _Interrupted(Exception):
    """An ``interrupt`` control request arrived: the turn ends at the next step."""


_STOP_WORDS = frozenset(
    "a an the create add make write build implement new please for with and to of in on some simple "  # noqa: SIM905
    "basic small file generate that this it".split()
)
_EXTENSIONS = (
    (frozenset({"readme", "markdown", "docs", "doc", "notes", "md"}), ".md", ""),
    (frozenset({"javascript", "js", "node"}), ".js", "// "),
    (frozenset({"shell", "bash", "sh"}), ".sh", "# "),
    (frozenset({"text", "txt"}), ".txt", ""),
)
_EXTENSION_WORDS = frozenset({"py", "python", "js", "sh", "md", "txt"})


class Run:
    """One scripted session: prints the stream and keeps the running totals for the result."""

    def __init__(
        self, opts: Options, prompt: str, mode: str, usage: dict[str, int], delay: float, inbox: Inbox | None = None
    ) -> None:
        self.opts = opts
        self.inbox = inbox  # --input-format stream-json: messages and interrupts arrive while it runs
        self.steered: list[str] = []  # messages taken during the turn
        self.prompt = prompt
        self.mode = mode
        self.usage = usage
        self.delay = delay
        self.cwd = os.getcwd()
        self.session_id = opts.resume or uuid4()
        self.started = time.monotonic()
        self.totals = dict.fromkeys(USAGE_KEYS, 0)
        self.calls = 0
        self.denials: list[dict[str, Any]] = []

    # -- output ----------------------------------------------------------------------------

    def emit(self, obj: dict[str, Any]) -> None:
        if self.opts.output_format == "stream-json":
            write_line(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))

    def pause(self) -> None:
        if self.delay > 0:
            time.sleep(self.delay)
        if self.inbox is not None:
            for text in self.inbox.waiting():  # taken before the next step, as Claude Code does
                self.replay(text)
                self.steered.append(text)
            if self.inbox.interrupted.is_set():
                raise _Interrupted

    def replay(self, text: str) -> None:
        if self.opts.replay:
            message = {"role": "user", "content": text}
            self.emit({"type": "user", "message": message, "session_id": self.session_id,
                       "parent_tool_use_id": None, "uuid": uuid4(), "isReplay": True})  # fmt: skip

    def converse(self) -> int:
        """Turns until the end of input: the task, then one per message sent after a turn's result."""
        code = self._turn(self.play)
        if self.mode == "crash":  # a crash ends the process, with no result and whatever is on stdin
            return code
        while self.inbox is not None and (text := self.inbox.next()) is not None:
            self.replay(text)
            code = self._turn(lambda said=text: self._follow_up(said))
        return code

    def _turn(self, turn: Any) -> int:
        assert self.inbox is not None
        self.inbox.interrupted.clear()
        try:
            return int(turn())
        except _Interrupted:
            interrupted = {"role": "user", "content": [text_block("[Request interrupted by user for tool use]")]}
            self.emit({"type": "user", "message": interrupted, "parent_tool_use_id": None,
                       "session_id": self.session_id, "uuid": uuid4()})  # fmt: skip
            self.result("error_during_execution", None, is_error=True, terminal_reason="aborted_tools")
            return 1

    def _follow_up(self, text: str) -> int:
        answer = f"Noted: {clip(text, 200)}"
        self.api_call(text_block(answer))
        self.pause()
        self.result("success", answer)
        return 0

    def init(self) -> None:
        self.emit(
            {
                "type": "system",
                "subtype": "init",
                "cwd": self.cwd,
                "session_id": self.session_id,
                "tools": TOOLS,
                "mcp_servers": [],
                "model": self.opts.model,
                "permissionMode": self.opts.permission_mode,
                "slash_commands": [],
                "apiKeySource": "none",
                "claude_code_version": VERSION.split()[0],
                "output_style": "default",
                "agents": [],
                "uuid": uuid4(),
            }
        )
        if self.inbox is not None:
            self.replay(self.prompt)

    def api_call(self, *blocks: dict[str, Any], usage: dict[str, int] | None = None) -> None:
        """One API response: a line per content block, all with the same id and usage."""
        usage = self.usage if usage is None else usage
        self.calls += 1
        for key in USAGE_KEYS:
            self.totals[key] += usage[key]
        message_id = "msg_01" + os.urandom(11).hex()
        for index, block in enumerate(blocks):
            if index:
                self.pause()
            message = {
                "model": self.opts.model,
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "content": [block],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": wire_usage(usage),
                "context_management": None,
            }
            self.emit(
                {
                    "type": "assistant",
                    "message": message,
                    "parent_tool_use_id": None,
                    "session_id": self.session_id,
                    "uuid": uuid4(),
                }
            )

    def tool_result(self, tool_use_id: str, content: str, *, is_error: bool, extra: Any) -> None:
        block: dict[str, Any] = {"tool_use_id": tool_use_id, "type": "tool_result", "content": content}
        if is_error:
            block["is_error"] = True
        self.emit(
            {
                "type": "user",
                "message": {"role": "user", "content": [block]},
                "parent_tool_use_id": None,
                "session_id": self.session_id,
                "uuid": uuid4(),
                "tool_use_result": extra,
            }
        )

    def result(self, subtype: str, text: str | None, *, is_error: bool = False, **extra: Any) -> None:
        """Print the final object in the chosen format."""
        cost = price(self.totals)
        elapsed_ms = int((time.monotonic() - self.started) * 1000)
        obj: dict[str, Any] = {
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "duration_ms": elapsed_ms,
            "duration_api_ms": elapsed_ms // 2,
            "num_turns": max(self.calls, 1),
        }
        if text is not None:
            obj["result"] = text
        obj |= {
            "session_id": self.session_id,
            "total_cost_usd": cost,
            "usage": wire_usage(self.totals)
            | {
                "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "output_tokens_details": {"thinking_tokens": 0},
            },
            "modelUsage": self._model_usage(cost),
            "permission_denials": [],
            "terminal_reason": "completed",
            "uuid": uuid4(),
        }
        obj |= extra
        if self.opts.output_format == "text":
            write_line(text or "")
        elif self.opts.output_format == "json":
            write_line(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
        else:
            self.emit(obj)

    def _model_usage(self, cost: float) -> dict[str, Any]:
        if not self.calls:
            return {}
        return {
            self.opts.model: {
                "inputTokens": self.totals["input_tokens"],
                "outputTokens": self.totals["output_tokens"],
                "cacheReadInputTokens": self.totals["cache_read_input_tokens"],
                "cacheCreationInputTokens": self.totals["cache_creation_input_tokens"],
                "webSearchRequests": 0,
                "costUSD": cost,
                "contextWindow": 200_000,
                "costBasis": "list",
            }
        }

    # -- scripts ---------------------------------------------------------------------------

    def play(self) -> int:
        """Run the script of ``self.mode``; return the exit code."""
        self.init()
        if self.mode == "noop":
            self.api_call(text_block("Nothing to do."))
            self.result("success", "Nothing to do: the stand-in ran in noop mode.")
            return 0
        self.pause()
        if self.mode == "hang":
            while True:
                time.sleep(3600 if self.inbox is None else 0.1)
                self.pause()
        if self.mode == "spend":
            return self._spend()
        if self.mode == "api_error":
            return self._api_error()
        return self._write_task()

    def _write_task(self) -> int:
        name, content = plan_file(self.prompt)
        path = os.path.join(self.cwd, name)
        tool_id = "toolu_01" + os.urandom(11).hex()
        write = {
            "type": "tool_use",
            "id": tool_id,
            "name": "Write",
            "input": {"file_path": path, "content": content},
        }
        self.api_call(text_block(f"I'll create {name} for this task."), write)
        if self.mode == "crash":
            self.pause()
            sys.stderr.write("Error: the stand-in crashed on purpose (ORCHESTRA_STANDIN_MODE=crash)\n")
            sys.stderr.flush()
            return 3
        self.pause()
        allowed, why = self.permitted("Write", tool_id, {"file_path": path, "content": content})
        denied = self.mode == "permission_denied" or not allowed
        error = None if denied else _write_file(path, content)
        if denied:
            message = why or f"Claude requested permissions to write to {path}, but you haven't granted it yet."
            self.tool_result(tool_id, message, is_error=True, extra=f"Error: {message}")
        elif error:
            self.tool_result(tool_id, error, is_error=True, extra=f"Error: {error}")
        else:
            created = {"type": "create", "filePath": path, "content": content, "structuredPatch": []}
            self.tool_result(tool_id, f"File created successfully at: {path}", is_error=False, extra=created)
        self.pause()
        self._run_commands()
        if self.mode == "max_turns" or (self.opts.max_turns is not None and self.opts.max_turns < 2):
            turns = self.opts.max_turns or 1
            self.result(
                "error_max_turns",
                None,
                is_error=True,
                terminal_reason="max_turns",
                errors=[f"Reached maximum number of turns ({turns})"],
            )
            return 1
        if denied or error:
            summary = f"I could not create {name}: {error or 'permission to write it was denied.'}"
        else:
            summary = (
                f"Created {name} for the task: {clip(self.prompt, 80)}\n"
                f"It is a placeholder written by the Orchestra stand-in agent in {self.cwd}.\n"
                "No model was called; the cost is computed from fixed token counts."
            )
            if self.steered:
                summary += "\nTaken into account while working: " + "; ".join(clip(t, 200) for t in self.steered)
        self.api_call(text_block(summary))
        self.pause()
        if self.mode == "permission_denied" and not self.denials:
            self.denials.append({"tool_name": "Write", "tool_use_id": tool_id, "tool_input": write["input"]})
        self.result("success", summary, permission_denials=self.denials)
        return 0

    def permitted(self, tool: str, tool_id: str, tool_input: dict[str, Any]) -> tuple[bool, str]:
        """Ask the ``PreToolUse`` hooks (``--settings``) and the permission mode about one call."""
        from core.agents.standin.hooks import decide, load_settings

        if self.opts.settings is None and tool == "Write":
            return True, ""  # no hooks: the stand-in writes, as it always did
        payload = {
            "session_id": self.session_id, "transcript_path": "", "cwd": self.cwd,
            "permission_mode": self.opts.permission_mode, "hook_event_name": "PreToolUse", "tool_name": tool,
            "tool_input": tool_input, "tool_use_id": tool_id,
        }  # fmt: skip
        allowed, why = decide(load_settings(self.opts.settings), self.opts.permission_mode, payload)
        if not allowed:
            self.denials.append({"tool_name": tool, "tool_use_id": tool_id, "tool_input": tool_input})
        return allowed, why

    def _run_commands(self) -> None:
        """``ORCHESTRA_STANDIN_COMMANDS`` (a JSON list): Bash tool calls, each through the hooks first."""
        from core.agents.standin.hooks import run_command

        for command in json.loads(os.environ.get("ORCHESTRA_STANDIN_COMMANDS") or "[]"):
            tool_id = "toolu_01" + os.urandom(11).hex()
            call = {"command": str(command), "description": "a step of the task"}
            self.api_call(
                text_block(f"Running {command}"), {"type": "tool_use", "id": tool_id, "name": "Bash", "input": call}
            )
            allowed, why = self.permitted("Bash", tool_id, call)
            if allowed:
                output, failed = run_command(str(command), self.cwd)
            else:
                output, failed = why or "Permission to use Bash has been denied.", True
            self.tool_result(
                tool_id, output, is_error=failed, extra={"stdout": output} if not failed else f"Error: {output}"
            )
            self.pause()

    def _api_error(self) -> int:
        body = '{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
        text = f"API Error: 401 {body} · Please run /login"
        message = {
            "id": uuid4(),
            "model": "<synthetic>",
            "role": "assistant",
            "type": "message",
            "content": [text_block(text)],
            "stop_reason": "stop_sequence",
            "stop_sequence": "",
            "usage": wire_usage(dict.fromkeys(USAGE_KEYS, 0)),
            "context_management": None,
        }
        self.emit(
            {
                "type": "assistant",
                "message": message,
                "parent_tool_use_id": None,
                "session_id": self.session_id,
                "uuid": uuid4(),
            }
        )
        self.pause()
        self.result("success", text, is_error=True, api_error_status=401, terminal_reason="api_error")
        return 0  # the real CLI exits 1: see the module docstring

    def _spend(self) -> NoReturn:
        step = 0
        while True:
            step += 1
            self.api_call(text_block(f"Working on step {step}…"))
            time.sleep(self.delay)


def plan_file(prompt: str) -> tuple[str, str]:
    """The file name and content a task asks for: "Create User model" -> ``user_model.py``."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    word_set = set(words)
    extension, comment = ".py", "# "
    for triggers, ext, prefix in _EXTENSIONS:
        if word_set & triggers:
            extension, comment = ext, prefix
            break
    kept: list[str] = []
    for word in words:
        if word not in _STOP_WORDS and word not in _EXTENSION_WORDS and word not in kept:
            kept.append(word)
        if len(kept) == 3:
            break
    name = "_".join(kept)[:40].strip("_") or "standin_output"
    lines = [
        f"{name}{extension}: written by the Orchestra stand-in agent (no model was called).",
        "",
        "Task:",
    ]
    lines += [line[:200] for line in prompt.splitlines()[:20]]
    content = "\n".join(f"{comment}{line}".rstrip() for line in lines) + "\n"
    return name + extension, content


def _write_file(path: str, content: str) -> str | None:
    try:
        with open(path, "w", encoding="utf-8", errors="replace") as handle:
            handle.write(content)
    except OSError as exc:
        return f"could not write {path}: {exc.strerror}"
    return None
