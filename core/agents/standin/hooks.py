"""The stand-in's tool calls: its ``PreToolUse`` hooks run as Claude Code runs them, then the tool.

``--settings`` (inline JSON or a file) may name ``PreToolUse`` hooks, as Claude Code's settings do:
each matching hook's command runs through ``/bin/sh -c`` with the call's JSON on stdin (the
environment inherited, ``$CLAUDE_PROJECT_DIR`` set). Exit 2 blocks the call (stderr is the reason
the model reads); exit 0 with ``hookSpecificOutput.permissionDecision`` ``allow`` or ``deny``
decides it; anything else leaves it to the permission mode: edits run in ``acceptEdits`` and
``bypassPermissions``, a command only in ``bypassPermissions``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

_EDITS = ("Write", "Edit", "MultiEdit", "NotebookEdit")
_OUTPUT_CHARS = 30_000


def load_settings(value: str | None) -> dict[str, Any]:
    """``--settings``: JSON text, or the path of a JSON file; ValueError when it is neither."""
    if not value:
        return {}
    text = value
    if not value.lstrip().startswith("{"):
        with open(value, encoding="utf-8") as handle:
            text = handle.read()
    settings = json.loads(text)
    if not isinstance(settings, dict):
        raise ValueError("settings must be a JSON object")  # noqa: TRY004 - one error type for a bad flag
    return settings


def decide(settings: dict[str, Any], mode: str, payload: dict[str, Any]) -> tuple[bool, str]:
    """Whether the call in ``payload`` may run, and the reason the model reads when it may not."""
    tool = str(payload.get("tool_name", ""))
    for entry in (settings.get("hooks") or {}).get("PreToolUse") or []:
        matcher = str(entry.get("matcher") or "*")
        if matcher not in ("*", "") and re.fullmatch(matcher, tool) is None:
            continue
        for hook in entry.get("hooks") or []:
            verdict = _run_hook(hook, payload)
            if verdict is not None:
                return verdict
    if mode == "bypassPermissions" or (tool in _EDITS and mode == "acceptEdits"):
        return True, ""
    return False, f"Claude requested permissions to use {tool}, but you haven't granted it yet."


def _run_hook(hook: dict[str, Any], payload: dict[str, Any]) -> tuple[bool, str] | None:
    command = str(hook.get("command") or "")
    timeout = float(hook.get("timeout") or 60)
    env = dict(os.environ, CLAUDE_PROJECT_DIR=str(payload.get("cwd") or os.getcwd()))
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command], input=json.dumps(payload).encode(), capture_output=True,
            timeout=timeout, env=env, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None  # Claude Code treats a hook that timed out as a non-blocking error
    if done.returncode == 2:
        return False, done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        return None
    try:
        out = json.loads(done.stdout or b"{}")
    except ValueError:
        return None
    specific = out.get("hookSpecificOutput") if isinstance(out, dict) else None
    if not isinstance(specific, dict) or specific.get("permissionDecision") not in ("allow", "deny"):
        return None
    return specific["permissionDecision"] == "allow", str(specific.get("permissionDecisionReason") or "")


def run_command(command: str, cwd: str) -> tuple[str, bool]:
    """Run a Bash tool call as Claude Code does (``/bin/sh -c``); its output and whether it failed."""
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command], cwd=cwd, capture_output=True, timeout=120, check=False
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "Command timed out after 120 s", True
    output = (done.stdout + done.stderr).decode("utf-8", "replace")[:_OUTPUT_CHARS]
    if done.returncode:
        output = f"{output}\nExit code {done.returncode}".strip()
    return output, done.returncode != 0
