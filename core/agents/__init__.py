"""Agent adapters, looked up by kind.

Parsers are imported lazily by dotted path so the runner pulls in only the one it needs, and
importing this package costs next to nothing (the stand-in agent, ``core.agents.standin``, is a
process of its own that must start fast).
"""

from __future__ import annotations

import importlib
import json

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from core.agents.base import AgentAdapter, OutputParser

# kind -> "module:Class" of the adapter (engine side).
ADAPTERS: dict[str, str] = {
    "claude": "core.agents.claude:ClaudeAdapter",
    "codex": "core.agents.codex:CodexAdapter",
    "gemini": "core.agents.gemini:GeminiAdapter",
    "qwen": "core.agents.qwen:QwenAdapter",
    "opencode": "core.agents.opencode:OpencodeAdapter",
    "droid": "core.agents.droid:DroidAdapter",
    "aider": "core.agents.aider:AiderAdapter",
    "copilot": "core.agents.copilot:CopilotAdapter",
    "cursor": "core.agents.cursor:CursorAdapter",
    "command": "core.agents.command:CommandAdapter",
}

# parser name -> "module:Class" of the output parser (runner side, stdlib only).
PARSERS: dict[str, str] = {
    "claude": "core.agents.claude:ClaudeParser",
    "codex": "core.agents.codex:CodexParser",
    "gemini": "core.agents.gemini:GeminiParser",
    "qwen": "core.agents.qwen:QwenParser",
    "opencode": "core.agents.opencode:OpencodeParser",
    "droid": "core.agents.droid:DroidParser",
    "aider": "core.agents.aider:AiderParser",
    "copilot": "core.agents.copilot:CopilotParser",
    "cursor": "core.agents.cursor:CursorParser",
    "command": "core.agents.command:CommandParser",
}

# Kinds whose CLI runs Orchestra's pre-tool hook (``core.permissions.hook``): their module has
# ``hook_call`` and ``hook_reply``, and their adapter writes the hook when ``settings.hook`` is set.
HOOKED: frozenset[str] = frozenset({"claude", "codex", "gemini", "qwen", "droid", "opencode", "copilot"})


def hooked(kind: str) -> bool:
    """Whether an agent of ``kind`` can ask before each tool call."""
    return kind in HOOKED


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def adapter_for(kind: str) -> AgentAdapter:
    """Return the adapter for an agent kind; ``KeyError`` when there is none."""
    adapter: AgentAdapter = _load(ADAPTERS[kind])()
    return adapter


def parser_for(name: str, *, resumed_from: dict[str, Any] | None = None) -> OutputParser:
    """Return a fresh output parser from a ``parser_ref`` string; ``KeyError`` when there is none.

    ``resumed_from`` (the ``session_totals`` the session's previous run reported, ``{}`` when
    unknown) tells a parser of a CLI that reports session totals that this run continues one.
    """
    from core.agents.base import SessionStart

    key, _, options = name.partition(" ")
    cls = _load(PARSERS[key])
    parser: OutputParser = cls(**json.loads(options)) if options else cls()
    resume = getattr(parser, "resume_from", None)
    if resumed_from is not None and callable(resume):
        resume(SessionStart.from_dict(resumed_from))
    return parser
