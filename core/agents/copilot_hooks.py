"""GitHub Copilot CLI's ``preToolUse`` hook: its payload as a neutral tool call, a decision in its format.

Measured on 1.0.102 with the hook in ``$COPILOT_HOME/settings.json`` (``hooks.preToolUse``):

* the payload is ``{sessionId, timestamp, cwd, toolName, toolArgs}`` (no event name), ``toolArgs``
  an object (older builds sent a JSON string: both are read). Tools: ``bash`` (``command``),
  ``create`` (``path``, ``file_text``), ``edit`` (``path``, ``old_str``, ``new_str``), ``view``,
  ``grep``, ``glob`` and Copilot's own (``task``, ``skill``, ``sql``, ...);
* the answer is a bare ``{"permissionDecision": "allow"|"deny", "permissionDecisionReason": ...}``
  with exit 0 (Claude's ``hookSpecificOutput`` wrapper is ignored). An ``allow`` runs the call
  without ``--allow-tool`` and even outside the working folder; a ``deny`` reaches the model as
  ``Denied by preToolUse hook: <reason>``;
* fail-closed on its own for what needs a permission: exit 1 or 2 denies ("hook errored", "hook
  exited with code 2"); no output or a timeout leaves the call to the CLI's own rules, which in
  ``-p`` mode refuse what they would ask about ("no interactive user response was available").
  The guard (``core.agents.hooks.guarded_command``) turns those into a deny as well.

Standard library only: ``core.permissions.hook`` imports it under ``python -S`` on every tool call.
"""

from __future__ import annotations

import json

from core.agents.hooks import DENIED, tool_call
from core.permissions.call import Decision, HookReply, ToolCall
from core.questions import ASK_OWNER_CALLS

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: the hook imports this on every tool call
if TYPE_CHECKING:
    from typing import Any

# Copilot's tool names -> a name of the same meaning and argument keys in ``core.agents.hooks``.
_AS = {"bash": "bash", "create": "write", "edit": "edit", "view": "read", "grep": "grep", "glob": "glob",
       "web_fetch": "web_fetch"}  # fmt: skip


def hook_call(payload: Any) -> ToolCall | None:
    """The neutral ``ToolCall`` of a ``preToolUse`` payload; a payload naming no tool is ``unknown``."""
    if not isinstance(payload, dict):
        return ToolCall("unknown")
    name = payload.get("toolName")
    name = name if isinstance(name, str) and name else "unknown"
    if name in ASK_OWNER_CALLS:  # a question to the person: the ask_owner server asks it, no policy judges it
        return None
    args = payload.get("toolArgs")
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            args = {}
    args = dict(args) if isinstance(args, dict) else {}
    if name == "create" and "content" not in args and isinstance(args.get("file_text"), str):
        args["content"] = args["file_text"]
    cwd = payload.get("cwd")
    call = tool_call(_AS.get(name, name), args, cwd if isinstance(cwd, str) else "")
    return ToolCall(call.tool, call.subject, call.detail, name)


def hook_reply(decision: Decision) -> HookReply:
    """``{"permissionDecision": ...}`` on stdout, exit 0 (a deny always carries its reason)."""
    body = {"permissionDecision": "allow" if decision.allow else "deny"}
    reason = decision.reason.strip() or ("" if decision.allow else DENIED)
    if reason:
        body["permissionDecisionReason"] = reason
    return HookReply(stdout=json.dumps(body, ensure_ascii=False) + "\n")
