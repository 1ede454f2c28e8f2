"""Agent adapters, looked up by kind.

Parsers are imported lazily by dotted path so the runner pulls in only the one it needs.
"""

from __future__ import annotations

import importlib
from typing import Any

from core.agents.base import AgentAdapter, OutputParser

# kind -> "module:Class" of the adapter (engine side).
ADAPTERS: dict[str, str] = {
    "claude": "core.agents.claude:ClaudeAdapter",
    "command": "core.agents.command:CommandAdapter",
}

# parser name -> "module:Class" of the output parser (runner side, stdlib only).
PARSERS: dict[str, str] = {
    "claude": "core.agents.claude:ClaudeParser",
    "command": "core.agents.command:CommandParser",
}


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def adapter_for(kind: str) -> AgentAdapter:
    """Return the adapter for an agent kind; ``KeyError`` when there is none."""
    adapter: AgentAdapter = _load(ADAPTERS[kind])()
    return adapter


def parser_for(name: str) -> OutputParser:
    """Return a fresh output parser by name; ``KeyError`` when there is none."""
    parser: OutputParser = _load(PARSERS[name])()
    return parser
