"""A stand-in for the ``claude`` CLI, for tests and the demo: no API key, no network.

It takes Claude Code's headless argv and prints what Claude Code 2.1.332 prints, so Orchestra's
real Claude path (adapter, runner, ``ClaudeParser``) runs end to end::

    python -m core.standin -p "Create User model" --output-format stream-json --verbose

Flags: ``-p/--print [PROMPT]`` (no PROMPT: read it from stdin), ``--output-format
text|json|stream-json`` (``stream-json`` needs ``--verbose``, as in the real CLI; ``json`` prints
only the result object), ``--verbose``, ``--permission-mode MODE``, ``--model M`` (default
``claude-sonnet-4-5``), ``--resume/-r ID`` (reused as the session id), ``--max-turns N`` (below
2 ends a normal run with ``error_max_turns``), ``-v/--version``. Any other flag is an error
(exit 1), like the real CLI.

By default it says what it will do, calls the Write tool with an absolute path in the current
directory (the name comes from the task: "Create User model" -> ``user_model.py``), really
writes that file, reads the tool result, and ends with a ``result`` line. Each assistant line
repeats its API call's ``message.id`` and ``usage`` as the real CLI does, and
``total_cost_usd`` is priced at the Claude Sonnet 4.5 list price whatever ``--model`` says.

Environment variables:

``ORCHESTRA_STANDIN_MODE``
    ``success`` (default); ``api_error``: a 401 reported as ``subtype: "success"`` with
    ``is_error: true`` and ``terminal_reason: "api_error"`` but **exit 0** (the real CLI exits
    1 here; 0 proves Orchestra trusts the in-band flag, not the exit code); ``crash``: init and
    a few lines, then a stderr line and exit 3 with no result; ``hang``: init, then sleep until
    signalled; ``spend``: a new assistant message with the per-call usage (default 100k input
    tokens) every ``ORCHESTRA_STANDIN_DELAY`` seconds (default 0.05), forever, for cost caps;
    ``max_turns``: one tool round trip, then ``error_max_turns`` and exit 1;
    ``permission_denied``: the Write is denied (tool_result ``is_error``, no file), the run ends
    ``success`` with the call in ``permission_denials``, exit 0; ``noop``: one short message
    and a success result at once, no file (for start-up benchmarks).
``ORCHESTRA_STANDIN_DELAY``
    Seconds (float, default 0) to sleep between steps, so a run can be watched or cancelled.
``ORCHESTRA_STANDIN_DURATION``
    Total seconds for a run, spread evenly over its steps; wins over ``..._DELAY``.
``ORCHESTRA_STANDIN_RECORD``
    A path; the prompt bytes received (argv element or stdin) are written there unchanged.
``ORCHESTRA_STANDIN_USAGE``
    JSON with per-API-call ``input_tokens``, ``output_tokens``, ``cache_read_input_tokens`` and
    ``cache_creation_input_tokens`` (Anthropic semantics; keys left out count as 0).

SIGTERM, SIGINT and SIGHUP end it at once, silently, with 128 + the signal number. Start-up is
kept fast: standard library only, nothing heavy imported.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any, NoReturn

VERSION = "2.1.332 (Claude Code stand-in)"
DEFAULT_MODEL = "claude-sonnet-4-5"
# Claude Sonnet 4.5 list prices in USD per million tokens; hard-coded to keep start-up light.
PRICE_INPUT = 3.00
PRICE_OUTPUT = 15.00
PRICE_CACHE_READ = 0.30
PRICE_CACHE_WRITE = 3.75

USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
DEFAULT_USAGE = {
    "input_tokens": 1200,
    "output_tokens": 150,
    "cache_read_input_tokens": 4000,
    "cache_creation_input_tokens": 800,
}
SPEND_USAGE = {
    "input_tokens": 100_000,
    "output_tokens": 500,
    "cache_read_input_tokens": 0,
    "cache_creation_input_tokens": 0,
}
MODES = ("success", "api_error", "crash", "hang", "spend", "max_turns", "permission_denied", "noop")
TOOLS = [
    "Task",
    "Bash",
    "Glob",
    "Grep",
    "LS",
    "Read",
    "Edit",
    "MultiEdit",
    "Write",
    "NotebookEdit",
    "WebFetch",
    "TodoWrite",
    "WebSearch",
]
_FORMATS = ("text", "json", "stream-json")
_PERMISSION_MODES = ("acceptEdits", "auto", "bypassPermissions", "manual", "dontAsk", "plan", "default")
_VALUE_FLAGS = {
    "--output-format": "format",
    "--permission-mode": "mode",
    "--model": "model",
    "--resume": "sessionId",
    "-r": "sessionId",
    "--max-turns": "turns",
}
_NO_INPUT = "Error: Input must be provided either through stdin or as a prompt argument when using --print"
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


class UsageError(Exception):
    """A bad command line; the message is printed to stderr and the exit code is 1."""


class Options:
    """The parsed command line."""

    def __init__(self) -> None:
        self.print_mode = False
        self.version = False
        self.verbose = False
        self.output_format = "text"
        self.permission_mode = "default"
        self.model = DEFAULT_MODEL
        self.resume: str | None = None
        self.max_turns: int | None = None
        self.prompt: bytes | None = None


def parse_args(argv: list[str]) -> Options:
    """Claude-style parsing; ``UsageError`` on anything the real CLI would reject."""
    opts = Options()
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positionals += argv[i:]
            break
        name, inline_sep, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _VALUE_FLAGS:
            if inline_sep:
                value = inline
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                raise UsageError(f"error: option '{name} <{_VALUE_FLAGS[name]}>' argument missing")
            _set_value(opts, name, value)
        elif name in ("-p", "--print"):
            opts.print_mode = True
        elif name == "--verbose":
            opts.verbose = True
        elif name in ("-v", "--version"):
            opts.version = True
        elif arg.startswith("-") and arg != "-":
            raise UsageError(f"error: unknown option '{name}'")
        else:
            positionals.append(arg)
    if len(positionals) > 1:
        raise UsageError(f"error: too many arguments. Expected 1 argument but got {len(positionals)}.")
    if positionals:
        opts.prompt = os.fsencode(positionals[0])  # the exact bytes execve delivered
    return opts


def _set_value(opts: Options, name: str, value: str) -> None:
    if name == "--output-format":
        if value not in _FORMATS:
            raise UsageError(
                f"error: option '--output-format <format>' argument '{value}' is invalid. "
                f"Allowed choices are {', '.join(_FORMATS)}."
            )
        opts.output_format = value
    elif name == "--permission-mode":
        if value not in _PERMISSION_MODES:
            raise UsageError(
                f"error: option '--permission-mode <mode>' argument '{value}' is invalid. "
                f"Allowed choices are {', '.join(_PERMISSION_MODES)}."
            )
        opts.permission_mode = value
    elif name == "--model":
        opts.model = value
    elif name == "--max-turns":
        try:
            opts.max_turns = int(value)
        except ValueError:
            raise UsageError(f"error: option '--max-turns <turns>' argument '{value}' is invalid.") from None
    else:
        opts.resume = value


class Run:
    """One scripted session: prints the stream and keeps the running totals for the result."""

    def __init__(self, opts: Options, prompt: str, mode: str, usage: dict[str, int], delay: float) -> None:
        self.opts = opts
        self.prompt = prompt
        self.mode = mode
        self.usage = usage
        self.delay = delay
        self.cwd = os.getcwd()
        self.session_id = opts.resume or _uuid4()
        self.started = time.monotonic()
        self.totals = dict.fromkeys(USAGE_KEYS, 0)
        self.calls = 0

    # -- output ----------------------------------------------------------------------------

    def emit(self, obj: dict[str, Any]) -> None:
        if self.opts.output_format == "stream-json":
            _write_line(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))

    def pause(self) -> None:
        if self.delay > 0:
            time.sleep(self.delay)

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
                "uuid": _uuid4(),
            }
        )

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
                "usage": _wire_usage(usage),
                "context_management": None,
            }
            self.emit(
                {
                    "type": "assistant",
                    "message": message,
                    "parent_tool_use_id": None,
                    "session_id": self.session_id,
                    "uuid": _uuid4(),
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
                "uuid": _uuid4(),
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
            "usage": _wire_usage(self.totals)
            | {
                "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "output_tokens_details": {"thinking_tokens": 0},
            },
            "modelUsage": self._model_usage(cost),
            "permission_denials": [],
            "terminal_reason": "completed",
            "uuid": _uuid4(),
        }
        obj |= extra
        if self.opts.output_format == "text":
            _write_line(text or "")
        elif self.opts.output_format == "json":
            _write_line(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
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
            self.api_call(_text("Nothing to do."))
            self.result("success", "Nothing to do: the stand-in ran in noop mode.")
            return 0
        self.pause()
        if self.mode == "hang":
            while True:
                time.sleep(3600)
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
        self.api_call(_text(f"I'll create {name} for this task."), write)
        if self.mode == "crash":
            self.pause()
            sys.stderr.write("Error: the stand-in crashed on purpose (ORCHESTRA_STANDIN_MODE=crash)\n")
            sys.stderr.flush()
            return 3
        self.pause()
        denied = self.mode == "permission_denied"
        error = None if denied else _write_file(path, content)
        if denied:
            message = f"Claude requested permissions to write to {path}, but you haven't granted it yet."
            self.tool_result(tool_id, message, is_error=True, extra=f"Error: {message}")
        elif error:
            self.tool_result(tool_id, error, is_error=True, extra=f"Error: {error}")
        else:
            created = {"type": "create", "filePath": path, "content": content, "structuredPatch": []}
            self.tool_result(tool_id, f"File created successfully at: {path}", is_error=False, extra=created)
        self.pause()
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
                f"Created {name} for the task: {_first_line(self.prompt)}\n"
                f"It is a placeholder written by the Orchestra stand-in agent in {self.cwd}.\n"
                "No model was called; the cost is computed from fixed token counts."
            )
        self.api_call(_text(summary))
        self.pause()
        denials = [{"tool_name": "Write", "tool_use_id": tool_id, "tool_input": write["input"]}] if denied else []
        self.result("success", summary, permission_denials=denials)
        return 0

    def _api_error(self) -> int:
        body = '{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
        text = f"API Error: 401 {body} · Please run /login"
        message = {
            "id": _uuid4(),
            "model": "<synthetic>",
            "role": "assistant",
            "type": "message",
            "content": [_text(text)],
            "stop_reason": "stop_sequence",
            "stop_sequence": "",
            "usage": _wire_usage(dict.fromkeys(USAGE_KEYS, 0)),
            "context_management": None,
        }
        self.emit(
            {
                "type": "assistant",
                "message": message,
                "parent_tool_use_id": None,
                "session_id": self.session_id,
                "uuid": _uuid4(),
            }
        )
        self.pause()
        self.result("success", text, is_error=True, api_error_status=401, terminal_reason="api_error")
        return 0  # the real CLI exits 1: see the module docstring

    def _spend(self) -> NoReturn:
        step = 0
        while True:
            step += 1
            self.api_call(_text(f"Working on step {step}…"))
            time.sleep(self.delay)


def price(usage: dict[str, int]) -> float:
    """Sonnet 4.5 list price of Anthropic-style usage (input excludes cache)."""
    dollars = (
        usage["input_tokens"] * PRICE_INPUT
        + usage["output_tokens"] * PRICE_OUTPUT
        + usage["cache_read_input_tokens"] * PRICE_CACHE_READ
        + usage["cache_creation_input_tokens"] * PRICE_CACHE_WRITE
    ) / 1_000_000
    return round(dollars, 10)


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


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _first_line(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _wire_usage(usage: dict[str, int]) -> dict[str, Any]:
    return {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage["cache_creation_input_tokens"],
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": usage["output_tokens"],
        "service_tier": "standard",
    }


def _uuid4() -> str:
    raw = bytearray(os.urandom(16))  # the uuid module costs start-up time for one call
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _write_line(line: str) -> None:
    try:
        sys.stdout.buffer.write(line.encode("utf-8", "replace") + b"\n")
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        os._exit(1)


def _on_signal(signum: int, _frame: Any) -> None:
    os._exit(128 + signum)


def _env_usage(mode: str) -> dict[str, int]:
    raw = os.environ.get("ORCHESTRA_STANDIN_USAGE")
    if not raw:
        return dict(SPEND_USAGE if mode == "spend" else DEFAULT_USAGE)
    try:
        given = json.loads(raw)
        if not isinstance(given, dict):
            raise TypeError
        return {key: int(given.get(key, 0)) for key in USAGE_KEYS}
    except (ValueError, TypeError):
        raise UsageError(f"stand-in: ORCHESTRA_STANDIN_USAGE is not a JSON object of counts: {raw!r}") from None


def _env_delay(mode: str) -> float:
    steps = {"success": 5, "permission_denied": 5, "max_turns": 4, "crash": 3, "api_error": 2}
    try:
        duration = os.environ.get("ORCHESTRA_STANDIN_DURATION")
        if duration and mode in steps:
            return max(float(duration), 0.0) / steps[mode]
        default = "0.05" if mode == "spend" else "0"
        return max(float(os.environ.get("ORCHESTRA_STANDIN_DELAY") or default), 0.0)
    except ValueError:
        raise UsageError("stand-in: ORCHESTRA_STANDIN_DELAY/_DURATION must be a number of seconds") from None


def _read_prompt(opts: Options) -> bytes:
    if opts.prompt is not None:
        return opts.prompt
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(_NO_INPUT)
    return sys.stdin.buffer.read()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
        if opts.version:
            _write_line(VERSION)
            return 0
        if not opts.print_mode:
            raise UsageError("stand-in: only print mode (-p) is supported")
        if opts.output_format == "stream-json" and not opts.verbose:
            raise UsageError("Error: When using --print, --output-format=stream-json requires --verbose")
        mode = os.environ.get("ORCHESTRA_STANDIN_MODE") or "success"
        if mode not in MODES:
            raise UsageError(f"stand-in: unknown ORCHESTRA_STANDIN_MODE {mode!r}; one of {', '.join(MODES)}")
        usage = _env_usage(mode)
        delay = _env_delay(mode)
        prompt = _read_prompt(opts)
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    record = os.environ.get("ORCHESTRA_STANDIN_RECORD")
    if record:
        with open(record, "wb") as handle:
            handle.write(prompt)
    text = prompt.decode("utf-8", "replace")
    if not text.strip():
        sys.stderr.write(f"{_NO_INPUT}\n")
        return 1
    return Run(opts, text, mode, usage, delay).play()


if __name__ == "__main__":
    sys.exit(main())
