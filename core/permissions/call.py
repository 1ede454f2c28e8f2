"""The neutral tool call every CLI's hook payload is turned into, and the answer it gets back.

Standard library only, and not even ``dataclasses`` or ``typing`` at run time: the hook program
(``core.permissions.hook``) imports this under ``python -S`` in a fresh process on every tool call,
where those two cost ~18 ms. ``Record`` gives the small value classes equality, a hash and a repr.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

BASH, EDIT, READ, WEB_FETCH, WEB_SEARCH = "Bash", "Edit", "Read", "WebFetch", "WebSearch"
NEUTRAL_TOOLS = (BASH, EDIT, READ, WEB_FETCH, WEB_SEARCH)
DETAIL_CHARS = 1500  # what a person is shown of an edit's content or diff


class Record:
    """A value: its ``__slots__`` are its fields (equality, hash and repr come from them)."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, Record) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({shown})"


class ToolCall(Record):
    """One tool call in Orchestra's words, whatever CLI made it.

    ``tool`` is a neutral name (``Bash``, ``Edit``, ``Read``, ``WebFetch``, ``WebSearch``) or, for
    anything else, the CLI's own name (``Task``, ``mcp__github__create_issue``). ``subject`` is what
    a rule's pattern is matched against: the command line, the file path, the URL, the query.
    ``detail`` is what a person is shown besides it (an edit's new text or diff, clipped).
    """

    __slots__ = ("cli_tool", "detail", "subject", "tool")

    def __init__(self, tool: str, subject: str = "", detail: str = "", cli_tool: str = "") -> None:
        self.tool = tool
        self.subject = subject
        self.detail = detail
        self.cli_tool = cli_tool  # the name the CLI itself used (Write, run_shell_command, Execute, ...)

    def to_dict(self) -> dict[str, str]:
        return {"tool": self.tool, "subject": self.subject, "detail": self.detail, "cli_tool": self.cli_tool}

    @classmethod
    def from_dict(cls, data: Any) -> ToolCall:
        data = data if isinstance(data, dict) else {}
        return cls(
            tool=str(data.get("tool") or ""),
            subject=str(data.get("subject") or ""),
            detail=str(data.get("detail") or "")[:DETAIL_CHARS],
            cli_tool=str(data.get("cli_tool") or ""),
        )

    def shown(self) -> str:
        """``Bash(pytest -q)``: the call as a rule would name it."""
        return f"{self.tool}({self.subject})" if self.subject else self.tool


class Decision(Record):
    """What the CLI is told: run the tool, or not and why (the model reads ``reason``).

    ``updated`` is the tool's input as it should run instead (an ``AskUserQuestion`` with the
    person's answers filled in), for the CLIs whose hook can say so; None leaves the input alone.
    """

    __slots__ = ("allow", "reason", "updated")

    def __init__(self, allow: bool, reason: str = "", updated: dict[str, Any] | None = None) -> None:
        self.allow = allow
        self.reason = reason
        self.updated = updated


class HookReply(Record):
    """How a CLI's hook answers: what it prints, on which stream, and its exit code."""

    __slots__ = ("exit_code", "stderr", "stdout")

    def __init__(self, stdout: str = "", stderr: str = "", exit_code: int = 0) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.exit_code = exit_code


def pre_tool_use(payload: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The tool's name and input of a Claude-format ``PreToolUse`` payload (Claude Code, Codex);
    None for another event. A call that names no tool is ``unknown tool``: the policy decides it."""
    name = payload.get("tool_name")
    if payload.get("hook_event_name", "PreToolUse") != "PreToolUse" and not isinstance(name, str):
        return None
    raw = payload.get("tool_input")
    return (name if isinstance(name, str) and name else "unknown tool"), (raw if isinstance(raw, dict) else {})


def clip(text: str, limit: int = DETAIL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
