"""Claude Code's ``PreToolUse`` hook: its payload as a neutral tool call, a decision in its reply format.

Measured on 2.1.332 (``reference/agent-clis.md`` §1.5 and the permission addendum):

* the hook goes in ``--settings '<json>'`` (only the last ``--settings`` flag counts, so a user's own
  is merged into ours) with ``"disableAllHooks": false``, which overrides a ``true`` in user or
  project settings; the CLI runs it through a shell, in the Bash tool's current directory, with
  the CLI's whole environment (``ORCHESTRA_TASK_DIR`` included), and honours a ``timeout`` in
  seconds (700 s allowed a 75 s wait);
* it fires for every tool call (Bash, Read, Write, Edit, WebFetch, WebSearch, Agent, ...) in every
  permission mode, after the tool's own input checks; a deny is final even when another hook
  allows, and an allow lifts the mode's refusals except writes inside ``.git/`` and ``.claude/``;
* ``--permission-mode dontAsk``: what no hook decided is refused (an ``ask`` answer, a hook that
  exits 1, prints nothing or garbage, or times out), except the commands Claude Code itself deems
  read-only inside the working directory (``echo``, ``cat`` of a file there); ``--bare`` and
  ``--safe-mode`` skip the hook and then everything else is refused too;
* a denied call's reason reaches the model as ``PreToolUse:Bash hook error: <reason>`` and the call
  is listed in the result's ``permission_denials`` (an ``Agent`` call is listed as ``Task``).

Standard library only: ``core.permissions.hook`` imports it under ``python -S`` on every tool call.
"""

from __future__ import annotations

import json
import os

from core.permissions.call import (
    BASH,
    EDIT,
    READ,
    WEB_FETCH,
    WEB_SEARCH,
    Decision,
    HookReply,
    ToolCall,
    clip,
    pre_tool_use,
)
from core.questions import ASK_USER_QUESTION, claude_answers, question_list

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: the hook imports this on every tool call
if TYPE_CHECKING:
    from typing import Any

ASKING_MODE = "dontAsk"  # with the hook on: whatever the hook did not allow is refused, never run
_EDITS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
_READS = frozenset({"Read", "Glob", "Grep", "LS"})
_GLOB = "*?[{"


def hook_question(payload: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """The questions of an ``AskUserQuestion`` call (and its input), which a person answers instead of
    the policy judging it; None for any other call. In ``-p`` mode the CLI offers the tool only with
    ``--permission-prompt-tool stdio``, and takes the answers as the hook's ``updatedInput``."""
    announced = pre_tool_use(payload)
    if announced is None or announced[0] != ASK_USER_QUESTION:
        return None
    return question_list(announced[1]), announced[1]


def hook_answers(tool_input: dict[str, Any], answers: dict[str, str]) -> dict[str, Any]:
    """The ``updatedInput`` that hands the model the person's answers."""
    return claude_answers(tool_input, answers)


def hook_call(payload: dict[str, Any]) -> ToolCall | None:
    """The tool call a ``PreToolUse`` payload announces; None for any other event."""
    announced = pre_tool_use(payload)
    if announced is None:
        return None
    name, tool_input = announced
    if name == "Bash":
        return ToolCall(BASH, _text(tool_input, "command"), cli_tool=name)
    if name in _EDITS:
        path = _text(tool_input, "file_path") or _text(tool_input, "notebook_path")
        return ToolCall(EDIT, path, clip(_edit_detail(name, tool_input)), cli_tool=name)
    if name in _READS:
        return ToolCall(READ, _read_subject(name, tool_input), clip(_text(tool_input, "pattern")), cli_tool=name)
    if name == "WebFetch":
        return ToolCall(WEB_FETCH, _text(tool_input, "url"), clip(_text(tool_input, "prompt")), cli_tool=name)
    if name == "WebSearch":
        return ToolCall(WEB_SEARCH, _text(tool_input, "query"), cli_tool=name)
    return ToolCall(name, _target(tool_input), clip(_json(tool_input)), cli_tool=name)


def hook_reply(decision: Decision) -> HookReply:
    """The JSON decision on stdout; a denial also exits 2 with its reason on stderr.

    Claude Code reads the JSON even with exit code 2 (measured), and exit 2 alone still blocks if
    a future version stops reading it: either way the model reads the reason.
    """
    verdict = "allow" if decision.allow else "deny"
    reason = decision.reason or ("allowed by Orchestra's permission policy" if decision.allow else "denied")
    specific: dict[str, Any] = {"hookEventName": "PreToolUse", "permissionDecision": verdict}
    specific["permissionDecisionReason"] = reason
    if decision.allow and decision.updated is not None:
        specific["updatedInput"] = decision.updated
    output = {"hookSpecificOutput": specific}
    stdout = json.dumps(output, ensure_ascii=False) + "\n"
    return HookReply(stdout=stdout) if decision.allow else HookReply(stdout=stdout, stderr=reason + "\n", exit_code=2)


def hook_settings(command: str, timeout_s: int, base: dict[str, Any] | None = None) -> str:
    """The ``--settings`` JSON that runs ``command`` before every tool call, over the user's ``base``."""
    settings = dict(base or {})
    hooks = dict(settings.get("hooks") or {}) if isinstance(settings.get("hooks"), dict) else {}
    own: dict[str, Any] = {"type": "command", "command": command}
    if timeout_s > 0:
        own["timeout"] = timeout_s
    earlier = hooks.get("PreToolUse")
    hooks["PreToolUse"] = [*(earlier if isinstance(earlier, list) else []), {"matcher": "*", "hooks": [own]}]
    settings["hooks"] = hooks
    settings["disableAllHooks"] = False
    return json.dumps(settings, ensure_ascii=False)


def split_settings(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The user's ``args`` without ``--settings``, and what that flag held (inline JSON or a file).

    ``ValueError`` in one sentence when the file cannot be read or is not a JSON object.
    """
    rest: list[str] = []
    value: str | None = None
    items = iter(args)
    for arg in items:
        if arg == "--settings":
            value = next(items, "")
        elif arg.startswith("--settings="):
            value = arg.partition("=")[2]
        else:
            rest.append(arg)
    if value is None:
        return rest, {}
    try:
        if value.lstrip().startswith("{"):
            loaded = json.loads(value)
        else:
            with open(os.path.expanduser(value), encoding="utf-8") as fh:
                loaded = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"claude --settings {value!r} could not be merged with the permission hook: {exc}") from exc
    if isinstance(loaded, dict):
        return rest, loaded
    raise ValueError(f"claude --settings {value!r} is not a JSON object, so the permission hook cannot join it")


# -- helpers -------------------------------------------------------------------------------------


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True) if data else ""


def _edit_detail(name: str, tool_input: dict[str, Any]) -> str:
    if name == "Write":
        return _text(tool_input, "content")
    if name == "NotebookEdit":
        source = _text(tool_input, "new_source")
        return source if _text(tool_input, "edit_mode") != "delete" else "(deletes the cell)"
    edits = tool_input.get("edits") if name == "MultiEdit" else [tool_input]
    parts = [_diff(edit) for edit in edits if isinstance(edit, dict)] if isinstance(edits, list) else []
    return "\n…\n".join(part for part in parts if part)


def _diff(edit: dict[str, Any]) -> str:
    """``-old`` / ``+new`` lines: what an edit replaces with what."""
    old = [f"-{line}" for line in _text(edit, "old_string").splitlines()]
    new = [f"+{line}" for line in _text(edit, "new_string").splitlines()]
    every = ["(every occurrence)"] if edit.get("replace_all") is True else []
    return "\n".join([*old, *new, *every])


def _read_subject(name: str, tool_input: dict[str, Any]) -> str:
    """The file or folder a read looks at: its path, else the fixed start of its glob, else ``.``."""
    path = _text(tool_input, "file_path") or _text(tool_input, "path")
    if path:
        return path
    pattern = _text(tool_input, "pattern") if name == "Glob" else ""
    cut = min((i for i, c in enumerate(pattern) if c in _GLOB), default=len(pattern))
    base = pattern[:cut] if cut == len(pattern) else os.path.dirname(pattern[:cut])
    return base or "."


def _target(tool_input: dict[str, Any]) -> str:
    for key in ("file_path", "path", "url", "query", "command", "description", "skill", "name"):
        value = _text(tool_input, key)
        if value:
            return value
    return ""
