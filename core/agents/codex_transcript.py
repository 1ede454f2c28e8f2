"""Codex's session transcript (the rollout file in ``CODEX_HOME``): what ``codex exec --json``
leaves out of its stream, namely the model, a resumed thread's earlier token totals, and the calls
the sandbox or the permission hook refused.

Runner side: imports only the standard library and ``core.agents``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from core.agents.codex_hooks import BLOCKED, patch_files
from core.agents.common import as_dict, as_str, load_json

_SHELL_WRAPPER = re.compile(r"^(?:/bin/)?(?:ba|z)?sh -l?c (?P<q>['\"])(?P<cmd>.*)(?P=q)$", re.DOTALL)
SANDBOX_HINTS = ("Read-only file system", "Operation not permitted", "Permission denied", "sandbox")
_EXIT_CODE = re.compile(r"Process exited with code (-?\d+)")


def find_transcript(home: str | None, session_id: str | None) -> str | None:
    """``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-...-<thread id>.jsonl``, when it exists."""
    if not (home and session_id):
        return None
    suffix = f"{session_id}.jsonl"
    for root, _dirs, names in os.walk(os.path.join(home, "sessions")):
        for name in names:
            if name.endswith(suffix):
                return os.path.join(root, name)
    return None


def last_token_usage(path: str | None) -> dict[str, Any]:
    """The thread's raw token totals so far (``{}`` if none), from the last ``token_count`` of its
    rollout file."""
    if not path:
        return {}
    last: dict[str, Any] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if '"token_count"' not in line:
                    continue
                obj = load_json(line)
                info = as_dict(as_dict(obj.get("payload")).get("info")) if obj else {}
                if info.get("total_token_usage"):
                    last = as_dict(info.get("total_token_usage"))
    except OSError:
        return {}
    return last


def unwrap_shell(command: str) -> str:
    """``printf hi > a`` from ``/bin/bash -lc "printf hi > a"``."""
    match = _SHELL_WRAPPER.match(command)
    return match.group("cmd") if match else command


def sandbox_denials(path: str | None, skip: int = 0) -> list[str]:
    """Shell calls the sandbox refused, from the rollout file (from line ``skip`` on).

    ``codex exec --json`` (0.169) reports the unified ``exec_command`` tool in no event at all:
    only the transcript shows the call and its output (``Process exited with code 1 ...
    Read-only file system``), so a blocked command would otherwise go unmentioned.
    """
    denials: list[str] = []
    for call, output in _calls(path, skip):
        code = _EXIT_CODE.search(output)
        if call.startswith("shell ") and code and code.group(1) != "0" and any(h in output for h in SANDBOX_HINTS):
            denials.append(f"{call} (blocked by the sandbox)")
    return denials


def hook_denials(path: str | None, skip: int = 0) -> list[str]:
    """Tool calls the permission hook refused (their output is Codex's ``Command blocked by ...``)."""
    refused = [call for call, output in _calls(path, skip) if output.startswith(BLOCKED)]
    return [f"{call} (refused by the permission hook)" for call in refused]


def _calls(path: str | None, skip: int) -> list[tuple[str, str]]:
    """``(call, output)`` for each shell command (``shell CMD``) and patch (``patch FILES``) answered."""
    if not path:
        return []
    calls: dict[str, str] = {}
    answered: list[tuple[str, str]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh):
                if number < skip or not ('"function_call' in line or '"custom_tool_call' in line):
                    continue
                obj = load_json(line)
                payload = as_dict(obj.get("payload")) if obj else {}
                call_id = as_str(payload.get("call_id")) or ""
                kind = payload.get("type")
                if kind == "function_call":
                    arguments = load_json(as_str(payload.get("arguments")) or "") or {}
                    command = as_str(arguments.get("cmd")) or as_str(arguments.get("command"))
                    if command:
                        calls[call_id] = f"shell {unwrap_shell(command)}"
                elif kind == "custom_tool_call" and payload.get("name") == "apply_patch":
                    files = patch_files(as_str(payload.get("input")) or "")
                    calls[call_id] = f"patch {', '.join(files) or '?'}"
                elif kind in ("function_call_output", "custom_tool_call_output") and call_id in calls:
                    answered.append((calls[call_id], as_str(payload.get("output")) or ""))
    except OSError:
        return answered
    return answered


def line_count(path: str | None) -> int:
    if not path:
        return 0
    try:
        with open(path, "rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return 0


def first_model(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh):
                if number > 200:
                    break
                obj = load_json(line)
                payload = as_dict(obj.get("payload")) if obj else {}
                model = as_str(payload.get("model"))
                if model:
                    return model
    except OSError:
        return None
    return None
