"""The neutral tool call every CLI's hook payload is turned into, and the answer it gets back.

Standard library only: the hook program (``core.permissions.hook``) imports this under
``python -S`` inside the agent's process tree, once per tool call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

BASH, EDIT, READ, WEB_FETCH, WEB_SEARCH = "Bash", "Edit", "Read", "WebFetch", "WebSearch"
NEUTRAL_TOOLS = (BASH, EDIT, READ, WEB_FETCH, WEB_SEARCH)
DETAIL_CHARS = 1500  # what a person is shown of an edit's content or diff


@dataclass(frozen=True)
class ToolCall:
    """One tool call in Orchestra's words, whatever CLI made it.

    ``tool`` is a neutral name (``Bash``, ``Edit``, ``Read``, ``WebFetch``, ``WebSearch``) or, for
    anything else, the CLI's own name (``Task``, ``mcp__github__create_issue``). ``subject`` is what
    a rule's pattern is matched against: the command line, the file path, the URL, the query.
    ``detail`` is what a person is shown besides it (an edit's new text or diff, clipped).
    """

    tool: str
    subject: str = ""
    detail: str = ""
    cli_tool: str = ""  # the name the CLI itself used (Write, run_shell_command, Execute, ...)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

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


@dataclass(frozen=True)
class Decision:
    """What the CLI is told: run the tool, or not and why (the model reads ``reason``)."""

    allow: bool
    reason: str = ""


@dataclass(frozen=True)
class HookReply:
    """How a CLI's hook answers: what it prints, on which stream, and its exit code."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


def clip(text: str, limit: int = DETAIL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
