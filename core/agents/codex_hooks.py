"""Codex's ``PreToolUse`` hook: its payload as a neutral tool call, a decision in its reply format.

Measured on 0.169.0 (``reference/agent-clis.md`` §2.5 and the permission addendum):

* hooks from ``-c hooks.PreToolUse=[...]`` run only with ``--dangerously-bypass-hook-trust`` (or a
  persisted trust hash); that flag does not wake the hooks of an untrusted project's own
  ``.codex/``. Codex runs the hook through a shell, with its whole environment, in the session's
  directory, and honours a ``timeout`` in seconds (700 s allowed a 75 s wait);
* payloads: ``exec_command`` arrives as ``tool_name: "Bash"``, ``tool_input: {"command"}``, with the
  call's ``workdir`` as the payload's ``cwd``; ``apply_patch`` as ``tool_input: {"command": <patch>}``;
  ``view_image`` as ``{"path"}``. ``write_stdin`` (typing into a running program) fires no hook;
* only a ``deny`` blocks (JSON ``permissionDecision: "deny"`` or ``decision: "block"`` with exit 0,
  or exit 2 with the reason on stderr): the model reads ``Command blocked by PreToolUse hook:
  <reason>. Command: <call>``. Everything else runs the call: ``allow``, ``ask``, exit 1 (even
  with a JSON deny), no output, garbage, and a timeout. The hook program must therefore answer,
  and deny, before the timeout Codex gives it;
* an ``allow`` does not lift the sandbox (``workspace-write`` still refuses writes outside the
  workspace and, unless ``network_access`` is on, the network).

Standard library only: ``core.permissions.hook`` imports it under ``python -S`` on every tool call.
"""

from __future__ import annotations

import json
import os
import shlex

from core.permissions.call import BASH, EDIT, READ, Decision, HookReply, ToolCall, clip, pre_tool_use
from core.questions import ASK_OWNER_CALLS

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: the hook imports this on every tool call
if TYPE_CHECKING:
    from typing import Any

SHELL_TOOLS = frozenset({"Bash", "exec_command", "shell", "local_shell", "container.exec"})
_PATCH_MARKS = ("*** Add File:", "*** Update File:", "*** Delete File:", "*** Move to:")
BLOCKED = "Command blocked by PreToolUse hook: "  # how Codex words a denial to the model


def hook_call(payload: dict[str, Any], here: str | None = None) -> ToolCall | None:
    """The tool call a ``PreToolUse`` payload announces; None for any other event.

    ``here`` is the session's directory (the hook runs in it; default: the current one). A shell
    call whose ``cwd`` is elsewhere (the model gave ``workdir``) is shown as ``cd DIR && command``
    so the policy and the person see where it runs.
    """
    announced = pre_tool_use(payload)
    if announced is None:
        return None
    name, tool_input = announced
    if name in ASK_OWNER_CALLS:  # a question to the person: the ask_owner server asks it, no policy judges it
        return None
    cwd = payload.get("cwd") if isinstance(payload.get("cwd"), str) else ""
    here = os.getcwd() if here is None else here
    if name in SHELL_TOOLS:
        command = _text(tool_input, "command") or _text(tool_input, "cmd")
        if cwd and not _same_dir(cwd, here):
            command = f"cd {shlex.quote(cwd)} && {command}"
        return ToolCall(BASH, command, cli_tool=name)
    if name == "apply_patch":
        patch = _text(tool_input, "command") or _text(tool_input, "input") or _text(tool_input, "patch")
        files = patch_files(patch, cwd if cwd and not _same_dir(cwd, here) else "")
        if not files:  # nothing Orchestra can read as a file: a call no path rule matches, so it is asked
            return ToolCall(name, "", clip(patch), cli_tool=name)
        return ToolCall(EDIT, _riskiest(files, here), clip(patch), cli_tool=name)
    if name == "view_image":
        return ToolCall(READ, _text(tool_input, "path"), cli_tool=name)
    target = next((_text(tool_input, key) for key in ("path", "url", "query", "command") if _text(tool_input, key)), "")
    detail = json.dumps(tool_input, ensure_ascii=False, sort_keys=True) if tool_input else ""
    return ToolCall(name, target, clip(detail), cli_tool=name)


def hook_reply(decision: Decision) -> HookReply:
    """An allow prints its JSON and exits 0; a deny also exits 2 with its reason on stderr.

    Exit 2 is the form every Codex version reads as "blocked" (it fails open on anything it does
    not understand), and the JSON says the same for one that reads stdout first.
    """
    verdict = "allow" if decision.allow else "deny"
    reason = decision.reason or ("allowed by Orchestra's permission policy" if decision.allow else "denied")
    output = {"hookEventName": "PreToolUse", "permissionDecision": verdict, "permissionDecisionReason": reason}
    stdout = json.dumps({"hookSpecificOutput": output}, ensure_ascii=False) + "\n"
    return HookReply(stdout=stdout) if decision.allow else HookReply(stdout=stdout, stderr=reason + "\n", exit_code=2)


def hook_overrides(command: str, timeout_s: int) -> list[str]:
    """The ``-c`` flags that make ``command`` Codex's hook for this run (whatever ``CODEX_HOME`` holds).

    Hooks on, the hook before every tool, and no terminal sessions: ``write_stdin`` fires no hook,
    so a shell the model starts with ``tty`` could be fed any command; without a TTY its stdin is
    closed ("stdin is closed for this session").
    """
    timeout = f",timeout={timeout_s}" if timeout_s > 0 else ""
    hook = f'{{type="command",command={json.dumps(command)}{timeout}}}'
    return [
        "-c",
        "features.hooks=true",
        "-c",
        "features.unified_exec_tty=false",
        "-c",
        f'hooks.PreToolUse=[{{matcher="*",hooks=[{hook}]}}]',
    ]


def patch_files(patch: str, base: str = "") -> list[str]:
    """The files an ``apply_patch`` patch adds, updates, deletes or moves to, in order (``base`` joined)."""
    files: list[str] = []
    for line in patch.splitlines():
        stripped = line.strip()
        for mark in _PATCH_MARKS:
            if stripped.startswith(mark):
                path = stripped[len(mark) :].strip()
                path = os.path.join(base, path) if base and path else path
                if path and path not in files:
                    files.append(path)
    return files


# -- helpers -------------------------------------------------------------------------------------


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _same_dir(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _riskiest(files: list[str], here: str) -> str:
    """The file a patch's one subject names: the first outside the session's directory, else the first.

    A rule judges one path; the person sees the whole patch in the detail.
    """
    root = os.path.realpath(here).rstrip("/") + "/"
    for path in files:
        full = os.path.realpath(os.path.join(here, os.path.expanduser(path)))
        if not (full + "/").startswith(root):
            return path
    return files[0]
