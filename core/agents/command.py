"""Any command as an agent: a script, a make target, a CLI Orchestra has no adapter for.

Placeholders in ``args`` say where the task goes: ``{task}`` is replaced by the task text inside
that one argv element, ``{task_file}`` is left for the runner to replace with the path of
``task.md``; with neither, the task is written to the command's stdin.

Output is plain text, one ``text`` event per line. A script can report what it cost by printing
one JSON line with an ``orchestra`` key; every report states totals so far, the last one wins::

    {"orchestra": {"usage": {"input_tokens": 1200, "output_tokens": 80,
                             "cache_read_tokens": 0, "cache_write_tokens": 0},
                   "model": "gpt-5", "cost_usd": 0.0031, "final_text": "Done: 3 files changed"}}

``usage`` uses ``Usage`` semantics (``input_tokens`` includes cache reads and writes).

Runner side: imports only the standard library and ``core.agents``.
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from typing import Any

from core.agents.base import AgentEvent, AgentResult, AgentSettings, Invocation, PromptMode, Usage
from core.agents.common import MAX_ARG_BYTES, shorten
from core.protocol import EventKind
from core.text import money

TASK = "{task}"
TASK_FILE = "{task_file}"
_MAX_LINE_CHARS = 4_000
_TAIL_LINES = 5
_TAIL_CHARS = 1_000
_REPORT_KEY = "orchestra"
# CSI (colours, cursor moves), OSC (titles, hyperlinks) and the two-byte escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class CommandAdapter:
    """Builds the argv of a generic command from its configured ``args`` and placeholders."""

    kind = "command"

    def build(self, task_text: str, settings: AgentSettings, *, resume: str | None = None) -> Invocation:
        """Substitute ``{task}`` with plain ``str.replace`` (task text may hold braces).

        ``resume`` is ignored: a generic command has no sessions. Raises ``ValueError`` when
        ``{task}`` is used but the text cannot travel as an argument (too long, or a NUL byte).
        """
        argv = [settings.command]
        prompt_mode: PromptMode = "stdin"
        uses_file = any(TASK_FILE in arg for arg in settings.args)
        for arg in settings.args:
            if TASK in arg:
                _check_arg(task_text)
                arg = arg.replace(TASK, task_text)
                prompt_mode = "arg"
            argv.append(arg)
        if uses_file:
            prompt_mode = "file"
        return Invocation(argv=argv, env=dict(settings.env), prompt_mode=prompt_mode, parser="command")

    def version_argv(self, settings: AgentSettings) -> list[str]:
        return [settings.command, "--version"]


def _check_arg(task_text: str) -> None:
    if len(task_text.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES:
        raise ValueError("task text too long for a command-line argument; use {task_file} in args")
    if "\0" in task_text:
        raise ValueError("task text contains a NUL byte, which no argument can carry; use {task_file} in args")


class CommandParser:
    """Turns plain output lines into ``text`` events and picks up in-band ``orchestra`` reports."""

    def __init__(self) -> None:
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._usage = Usage()
        self._model: str | None = None
        self._cost: float | None = None
        self._final_text: str | None = None
        self._session_id: str | None = None

    def feed(self, line: str) -> list[AgentEvent]:
        line = line.rstrip("\r\n")
        report = _report(line)
        if report is not None:
            return [self._on_report(report)]
        clean = clean_line(line)
        if not clean.strip():
            return []
        self._tail.append(clean.rstrip())
        return [AgentEvent(EventKind.TEXT, shorten(clean), {"line": clean[:_MAX_LINE_CHARS]})]

    def _on_report(self, report: dict[str, Any]) -> AgentEvent:
        if isinstance(report.get("usage"), dict):
            self._usage = _usage(report["usage"])
        model = report.get("model")
        if isinstance(model, str) and model:
            self._model = model
        cost = report.get("cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost):
            self._cost = float(cost)
        final_text = report.get("final_text")
        if isinstance(final_text, str):
            self._final_text = final_text
        session_id = report.get("session_id")
        if isinstance(session_id, str) and session_id:
            self._session_id = session_id
        text = f"tokens: {self._usage.input_tokens} in · {self._usage.output_tokens} out"
        if self._cost is not None:
            text += f" · {money(self._cost)}"
        data = {"usage": self._usage.to_dict(), "model": self._model, "cost_usd": self._cost}
        return AgentEvent(EventKind.USAGE, text, data)

    def live_usage(self) -> tuple[Usage, str | None]:
        return Usage(**self._usage.to_dict()), self._model

    def live_cost_usd(self) -> float | None:
        return self._cost

    def finish(self, exit_code: int, stderr_tail: str) -> AgentResult:
        errors: list[str] = []
        if exit_code != 0:
            errors.append(f"command exited with code {exit_code}")
            stderr_lines = [clean_line(line).strip() for line in stderr_tail.splitlines()]
            stderr_text = "\n".join(line for line in stderr_lines if line)[-500:]
            if stderr_text:
                errors.append(f"stderr: {stderr_text}")
        final_text = self._final_text if self._final_text is not None else "\n".join(self._tail)[-_TAIL_CHARS:]
        return AgentResult(
            status="succeeded" if exit_code == 0 else "failed",
            final_text=final_text,
            usage=Usage(**self._usage.to_dict()),
            cost_usd=self._cost,
            cost_source="cli" if self._cost is not None else "unknown",
            session_id=self._session_id,
            model=self._model,
            errors=errors,
            exit_code=exit_code,
        )


def clean_line(line: str) -> str:
    """What a terminal would show: escapes dropped, only the text after the last ``\\r``."""
    line = _ANSI.sub("", line)
    if "\r" in line:
        line = line.rsplit("\r", 1)[-1]
    return _CONTROL.sub("", line)


def _report(line: str) -> dict[str, Any] | None:
    stripped = line.strip()
    if not (stripped.startswith("{") and _REPORT_KEY in stripped):
        return None
    try:
        obj = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, dict) and isinstance(obj.get(_REPORT_KEY), dict):
        report: dict[str, Any] = obj[_REPORT_KEY]
        return report
    return None


def _usage(raw: dict[str, Any]) -> Usage:
    def count(key: str) -> int:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return 0
        return max(int(value), 0)

    return Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_read_tokens=count("cache_read_tokens"),
        cache_write_tokens=count("cache_write_tokens"),
    )
