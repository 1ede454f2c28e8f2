"""What the agent CLIs' pre-tool hooks share: the fail-closed hook line, neutral calls, replies.

Measured on Gemini CLI 0.61, Qwen Code 0.24.4, Droid 0.225.2 and opencode 1.18.34: each lets
the tool run when its hook crashes (exit 1, or any code but 2 for the Claude-format CLIs), hangs
past the CLI's own timeout, exits 2 without a word (Gemini, Qwen), or prints nothing or plain
text. So the CLI never runs ``settings.hook`` bare: ``guarded_command`` gives it its own deadline
and turns every failure into a deny that names itself, and the reply of a working hook always
exits 0 with its decision in JSON (a deny through exit 2 would trip the guard).

Standard library only: the hook program imports the adapters under ``python -S`` once per call.
"""

from __future__ import annotations

import json
import os
import re
import shlex

from core.permissions.call import BASH, EDIT, READ, WEB_FETCH, WEB_SEARCH, Decision, HookReply, ToolCall, clip
from core.questions import ASK_OWNER_CALLS

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: the hook imports this on every tool call
if TYPE_CHECKING:
    from typing import Any

FAILED = "the permission hook failed, so this tool call is denied"
DENIED = "denied by Orchestra's permission policy"
DEFAULT_TIMEOUT_S = 660  # when the settings name none: a person's 600 s to answer, and a margin
GRACE_S = 15  # the CLI waits this much longer than the guard, which kills the hook 5 s after its deadline

_NAMES = {
    BASH: {"run_shell_command", "Execute", "bash", "Bash", "shell", "exec_command"},
    EDIT: {"write_file", "replace", "edit", "write", "Create", "Edit", "MultiEdit", "Write", "ApplyPatch",
           "apply_patch", "notebook_edit", "NotebookEdit"},
    READ: {"read_file", "read_many_files", "list_directory", "glob", "grep_search", "read", "list", "grep", "Read",
           "LS", "Grep", "Glob"},
    WEB_FETCH: {"web_fetch", "webfetch", "FetchUrl", "WebFetch"},
    WEB_SEARCH: {"google_web_search", "web_search", "websearch", "WebSearch"},
}  # fmt: skip
NEUTRAL = {name: neutral for neutral, names in _NAMES.items() for name in names}
_PATH_KEYS = ("file_path", "filePath", "absolute_path", "notebook_path", "path", "dir_path", "directory_path")
_URL = re.compile(r"https?://[^\s<>\"'`]+")
_PATCH_FILE = re.compile(r"^\s*\*\*\*\s*(?:(?:Add|Update|Delete) File|Move to):\s*(.+?)\s*$", re.MULTILINE)


# -- adapter side: the line the CLI runs --------------------------------------------------------


def hook_timeout_s(timeout_s: int) -> int:
    """The hook's own deadline: the settings' ``hook_timeout_s``, or ``DEFAULT_TIMEOUT_S`` when unset."""
    return timeout_s if timeout_s > 0 else DEFAULT_TIMEOUT_S


def cli_timeout_s(timeout_s: int) -> int:
    """What the CLI is told to allow the guarded hook: longer than the guard, so the guard decides."""
    return hook_timeout_s(timeout_s) + GRACE_S


def guarded_command(hook: str, timeout_s: int) -> str:
    """``hook`` as a POSIX shell line that can only end in the hook's own JSON answer or a deny.

    The hook runs under ``timeout`` (killed 5 s after its deadline). Unless it exits 0 and prints
    one JSON object, the line prints a deny both ways the CLIs read one (JSON on stdout for
    Gemini, the reason on stderr with exit 2 for the Claude-format CLIs) and exits 2.
    """
    deny = json.dumps({"decision": "deny", "reason": FAILED})
    run = f"timeout -k 5 {hook_timeout_s(timeout_s)} /bin/sh -c {shlex.quote(hook)}"
    refuse = f"printf '%s\\n' {shlex.quote(deny)}; printf '%s\\n' {shlex.quote(FAILED)} >&2; exit 2"
    return f"out=$({run}) || out=; case $out in '{{'*'}}') printf '%s\\n' \"$out\" ;; *) {refuse} ;; esac"


# -- hook side: the payload in, the answer out ----------------------------------------------------


def neutral_call(payload: Any, event: str) -> ToolCall | None:
    """The ``ToolCall`` of a ``{hook_event_name, tool_name, tool_input, cwd}`` payload.

    None only for another event (not a tool call); a payload of ``event`` that names no tool
    is still a call (``unknown``), so the policy decides it rather than letting it through.
    """
    if not isinstance(payload, dict):
        return ToolCall("unknown")
    if payload.get("hook_event_name") not in (event, None):
        return None
    name = payload.get("tool_name")
    name = name if isinstance(name, str) and name else "unknown"
    if name in ASK_OWNER_CALLS:  # a question to the person: the ask_owner server asks it, no policy judges it
        return None
    tool_input = payload.get("tool_input")
    tool_input = tool_input if isinstance(tool_input, dict) else {}
    return tool_call(name, tool_input, _text(payload.get("cwd")))


def tool_call(name: str, tool_input: dict[str, Any], cwd: str = "") -> ToolCall:
    """One CLI tool call in neutral words: a shell command, an edit, a read, a fetch, a search."""
    neutral = NEUTRAL.get(name)
    if neutral == BASH:
        command = _text(tool_input.get("command")) or _text(tool_input.get("cmd"))
        where = _text(tool_input.get("dir_path")) or _text(tool_input.get("workdir")) or _text(tool_input.get("cwd"))
        where = _absolute(where, cwd)
        if where and where != os.path.normpath(cwd or where):
            # Run elsewhere (Gemini's dir_path, opencode's workdir): judged as the ``cd`` it amounts to.
            command = f"cd {shlex.quote(where)} && {command}"
        return ToolCall(BASH, command, "", name)
    if neutral == EDIT:
        return _edit(name, tool_input, cwd)
    if neutral == READ:
        path = _path(tool_input) or cwd
        pattern = tool_input.get("pattern") or tool_input.get("patterns") or ""
        detail = pattern if isinstance(pattern, str) else json.dumps(pattern)
        return ToolCall(READ, _absolute(path, cwd), clip(detail), name)
    if neutral == WEB_FETCH:
        url = _text(tool_input.get("url"))
        urls = [url] if url else list(dict.fromkeys(_URL.findall(_text(tool_input.get("prompt")))))
        # Several URLs in one call (Gemini's prompt): no single one may stand for the rest in a rule.
        subject = urls[0] if len(urls) == 1 else ""
        return ToolCall(WEB_FETCH, subject, clip(_text(tool_input.get("prompt")) or "\n".join(urls)), name)
    if neutral == WEB_SEARCH:
        return ToolCall(WEB_SEARCH, _text(tool_input.get("query")), "", name)
    subject = _path(tool_input) or _text(tool_input.get("url")) or _text(tool_input.get("query"))
    return ToolCall(name, subject, clip(json.dumps(tool_input, ensure_ascii=False, default=str)), name)


def decision_reply(decision: Decision) -> HookReply:
    """``{"decision": "allow"}`` or ``{"decision": "deny", "reason": ...}``, exit 0 (Gemini, opencode's plugin)."""
    body = {"decision": "allow"} if decision.allow else {"decision": "deny", "reason": _reason(decision)}
    return HookReply(stdout=json.dumps(body, ensure_ascii=False) + "\n")


def claude_reply(decision: Decision, event: str = "PreToolUse") -> HookReply:
    """Claude Code's ``hookSpecificOutput`` answer, exit 0 (also Qwen Code's and Droid's format).

    An allow is a ``permissionDecision`` of ``allow``, which Droid measured as overriding its
    autonomy level (a person's or the policy's yes is the answer); a deny's reason reaches the model.
    """
    output = {"hookEventName": event, "permissionDecision": "allow" if decision.allow else "deny"}
    if decision.reason or not decision.allow:
        output["permissionDecisionReason"] = decision.reason if decision.allow else _reason(decision)
    return HookReply(stdout=json.dumps({"hookSpecificOutput": output}, ensure_ascii=False) + "\n")


def _edit(name: str, tool_input: dict[str, Any], cwd: str) -> ToolCall:
    patch = _text(tool_input.get("input")) or _text(tool_input.get("patchText")) or _text(tool_input.get("patch"))
    if name in ("ApplyPatch", "apply_patch") and patch:
        paths = list(dict.fromkeys(_absolute(path, cwd) for path in _PATCH_FILE.findall(patch)))
        if not paths:  # no file Orchestra can name: not an edit a path rule could allow
            return ToolCall(name, "", clip(patch), name)
        # A rule judges one path: with several, the first outside the working folder stands for
        # the patch (the riskiest the policy can tell apart), else the first; a person sees them all.
        outside = [path for path in paths if cwd and not _inside(path, cwd)]
        return ToolCall(EDIT, (outside or paths)[0], clip(patch), name)
    path = _absolute(_path(tool_input), cwd)
    if not path:  # an edit of no file Orchestra can name: judged under the CLI's own name
        return ToolCall(name, "", clip(json.dumps(tool_input, ensure_ascii=False, default=str)), name)
    content = tool_input.get("content")
    if isinstance(content, str):
        return ToolCall(EDIT, path, clip(content), name)
    old = _text(tool_input.get("old_string")) or _text(tool_input.get("oldString")) or _text(tool_input.get("old_str"))
    new = _text(tool_input.get("new_string")) or _text(tool_input.get("newString")) or _text(tool_input.get("new_str"))
    diff = "\n".join([*(f"- {line}" for line in old.splitlines()), *(f"+ {line}" for line in new.splitlines())])
    return ToolCall(EDIT, path, clip(diff or json.dumps(tool_input, ensure_ascii=False, default=str)), name)


def _path(tool_input: dict[str, Any]) -> str:
    return next((value for key in _PATH_KEYS if (value := _text(tool_input.get(key)))), "")


def _absolute(path: str, cwd: str) -> str:
    """``path`` made absolute against the call's ``cwd``, ``~`` expanded (a rule never meets ``..``)."""
    if not path:
        return ""
    path = os.path.expanduser(path)
    return os.path.normpath(os.path.join(cwd, path) if cwd and not os.path.isabs(path) else path)


def _inside(path: str, cwd: str) -> bool:
    root = os.path.normpath(cwd)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _reason(decision: Decision) -> str:
    return decision.reason.strip() or DENIED


# The CLIs whose hook speaks this module's generic format: the payload's event name, and whether
# the answer is Claude's ``hookSpecificOutput`` form or a bare ``{"decision": ...}``.
GENERIC: dict[str, tuple[str, bool]] = {
    "gemini": ("BeforeTool", False),
    "qwen": ("PreToolUse", True),
    "droid": ("PreToolUse", True),
    "opencode": ("tool.execute.before", False),
}


def generic_call(kind: str, payload: dict[str, Any]) -> ToolCall | None:
    """``hook_call`` of a CLI in ``GENERIC``."""
    return neutral_call(payload, GENERIC[kind][0])


def generic_reply(kind: str, decision: Decision) -> HookReply:
    """``hook_reply`` of a CLI in ``GENERIC``."""
    return claude_reply(decision) if GENERIC[kind][1] else decision_reply(decision)
