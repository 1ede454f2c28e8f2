"""The stand-in's command line and environment, parsed as the real ``claude`` CLI would, and ``main``."""

from __future__ import annotations

import json
import os
import signal
import sys

from core.agents.standin.session import Run
from core.agents.standin.wire import DEFAULT_MODEL, USAGE_KEYS, VERSION, write_line
from core.errors import StandinUsageError

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

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
_FORMATS = ("text", "json", "stream-json")
_PERMISSION_MODES = ("acceptEdits", "auto", "bypassPermissions", "manual", "dontAsk", "plan", "default")
_VALUE_FLAGS = {
    "--output-format": "format",
    "--permission-mode": "mode",
    "--model": "model",
    "--resume": "sessionId",
    "-r": "sessionId",
    "--max-turns": "turns",
    "--settings": "file-or-json",
    "--input-format": "format",
    "--permission-prompt-tool": "tool",
}
_NO_INPUT = "Error: Input must be provided either through stdin or as a prompt argument when using --print"


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
        self.settings: str | None = None  # --settings: JSON text or a file (its PreToolUse hooks are run)
        self.prompt: bytes | None = None
        self.input_format = "text"  # stream-json: user messages and control requests on stdin (``stream``)
        self.replay = False  # --replay-user-messages: echo each user message taken


def parse_args(argv: list[str]) -> Options:
    """Claude-style parsing; ``StandinUsageError`` on anything the real CLI would reject."""
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
                raise StandinUsageError(f"error: option '{name} <{_VALUE_FLAGS[name]}>' argument missing")
            _set_value(opts, name, value)
        elif name in ("-p", "--print"):
            opts.print_mode = True
        elif name == "--verbose":
            opts.verbose = True
        elif name == "--replay-user-messages":
            opts.replay = True
        elif name in ("-v", "--version"):
            opts.version = True
        elif arg.startswith("-") and arg != "-":
            raise StandinUsageError(f"error: unknown option '{name}'")
        else:
            positionals.append(arg)
    if len(positionals) > 1:
        raise StandinUsageError(f"error: too many arguments. Expected 1 argument but got {len(positionals)}.")
    if positionals:
        opts.prompt = os.fsencode(positionals[0])  # the exact bytes execve delivered
    return opts


def _set_value(opts: Options, name: str, value: str) -> None:
    if name == "--output-format":
        if value not in _FORMATS:
            raise StandinUsageError(
                f"error: option '--output-format <format>' argument '{value}' is invalid. "
                f"Allowed choices are {', '.join(_FORMATS)}."
            )
        opts.output_format = value
    elif name == "--permission-mode":
        if value not in _PERMISSION_MODES:
            raise StandinUsageError(
                f"error: option '--permission-mode <mode>' argument '{value}' is invalid. "
                f"Allowed choices are {', '.join(_PERMISSION_MODES)}."
            )
        opts.permission_mode = value
    elif name == "--model":
        opts.model = value
    elif name == "--settings":
        opts.settings = value
    elif name == "--input-format":
        if value not in ("text", "stream-json"):
            raise StandinUsageError(f"error: option '--input-format <format>' argument '{value}' is invalid.")
        opts.input_format = value
    elif name == "--permission-prompt-tool":
        pass  # the stand-in asks no one but its hooks
    elif name == "--max-turns":
        try:
            opts.max_turns = int(value)
        except ValueError:
            raise StandinUsageError(f"error: option '--max-turns <turns>' argument '{value}' is invalid.") from None
    else:
        opts.resume = value


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
        raise StandinUsageError(f"stand-in: ORCHESTRA_STANDIN_USAGE is not a JSON object of counts: {raw!r}") from None


def _env_delay(mode: str) -> float:
    steps = {"success": 5, "permission_denied": 5, "max_turns": 4, "crash": 3, "api_error": 2}
    try:
        duration = os.environ.get("ORCHESTRA_STANDIN_DURATION")
        if duration and mode in steps:
            return max(float(duration), 0.0) / steps[mode]
        default = "0.05" if mode == "spend" else "0"
        return max(float(os.environ.get("ORCHESTRA_STANDIN_DELAY") or default), 0.0)
    except ValueError:
        raise StandinUsageError("stand-in: ORCHESTRA_STANDIN_DELAY/_DURATION must be a number of seconds") from None


def _read_prompt(opts: Options) -> bytes:
    if opts.prompt is not None:
        return opts.prompt
    if sys.stdin is None or sys.stdin.isatty():
        raise StandinUsageError(_NO_INPUT)
    return sys.stdin.buffer.read()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
        if opts.version:
            write_line(VERSION)
            return 0
        if not opts.print_mode:
            raise StandinUsageError("stand-in: only print mode (-p) is supported")
        if opts.output_format == "stream-json" and not opts.verbose:
            raise StandinUsageError("Error: When using --print, --output-format=stream-json requires --verbose")
        mode = os.environ.get("ORCHESTRA_STANDIN_MODE") or "success"
        if mode not in MODES:
            raise StandinUsageError(f"stand-in: unknown ORCHESTRA_STANDIN_MODE {mode!r}; one of {', '.join(MODES)}")
        usage = _env_usage(mode)
        delay = _env_delay(mode)
        inbox = None
        if opts.input_format == "stream-json":
            from core.agents.standin.stream import Inbox

            inbox = Inbox()
            first = inbox.next()
            prompt = first.encode("utf-8", "surrogateescape") if first is not None else b""
        else:
            prompt = _read_prompt(opts)
    except StandinUsageError as exc:
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
    if inbox is None:
        return Run(opts, text, mode, usage, delay).play()
    code = Run(opts, text, mode, usage, delay, inbox=inbox).converse()
    # The inbox's reader thread may be blocked in a read of stdin: a normal exit would wait on its
    # lock at finalization (Python aborts there), so flush and leave at once, as a crashed CLI does.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
