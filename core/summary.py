"""The summary protocol: what every finished task reports, and its phone-sized rendering."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import Any

from core.text import clip, format_cost, format_duration, state_icon, state_label, token_count

PHONE_LIMIT = 1000
_UNTRACKED = ("ls-files", "--others", "--exclude-standard", "-z")


def git_root(cwd: str) -> Path | None:
    """The enclosing git work tree, found without running git."""
    path = Path(cwd).resolve()
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _git(root: Path, *commands: tuple[str, ...]) -> list[str]:
    """The stdout of each git command ("" for one that failed), run side by side: they only read,
    so a dispatch or a completion waits for the slowest of them instead of for their sum."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    argvs = [["git", "-C", str(root), *args] for args in commands]
    procs = [subprocess.Popen(a, stdout=PIPE, stderr=DEVNULL, stdin=DEVNULL, text=True, env=env) for a in argvs]
    outputs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=20)
            outputs.append(out if proc.returncode == 0 else "")
    except subprocess.TimeoutExpired:
        for proc in procs:  # as subprocess.run does: none is left running
            proc.kill()
            proc.communicate()
        raise
    return outputs


def git_baseline(cwd: str, *, state_paths: list[str] | None = None) -> dict[str, Any] | None:
    """Snapshot the work tree before a run, so the files a task changed can be told apart.

    ``git stash create`` records tracked changes without touching the tree; untracked files are
    listed so new ones can be found at the end. ``state_paths`` are the agent CLI's own cache
    files (``Invocation.state_paths``), left out of the files changed.
    """
    root = git_root(cwd)
    if root is None:
        return None
    stash, head, untracked = _git(root, ("stash", "create"), ("rev-parse", "--verify", "-q", "HEAD"), _UNTRACKED)
    base = stash.strip() or head.strip()
    baseline = {"root": str(root), "base": base, "untracked": [u for u in untracked.split("\0") if u]}
    return baseline | ({"state_paths": list(state_paths)} if state_paths else {})


def _agent_state(name: str, state_paths: list[str]) -> bool:
    return any(name.startswith(p) if p.endswith("/") else name == p for p in state_paths)


def files_changed(baseline: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Files changed since the baseline with +/- line counts (new untracked files count as added)."""
    if not baseline:
        return []
    root = Path(baseline["root"])
    state_paths = [str(p) for p in baseline.get("state_paths", [])]
    changes: list[dict[str, Any]] = []
    base = baseline.get("base")
    if baseline.get("tip"):  # a branch brought back from a host (``core.hosts.git``): its commits, no working tree
        diff, untracked = _git(root, ("diff", "--numstat", str(base), str(baseline["tip"])))[0], ""
    elif base:
        diff, untracked = _git(root, ("diff", "--numstat", base), _UNTRACKED)
    else:
        diff, untracked = "", _git(root, _UNTRACKED)[0]
    if base:
        for line in diff.splitlines():
            parts = line.split("\t", 2)
            if len(parts) == 3 and not _agent_state(parts[2], state_paths):
                added, removed, name = parts
                changes.append(
                    {
                        "path": name,
                        "added": int(added) if added.isdigit() else 0,
                        "removed": int(removed) if removed.isdigit() else 0,
                    }
                )
    before = set(baseline.get("untracked", []))
    for name in untracked.split("\0"):
        if name and name not in before and not _agent_state(name, state_paths):
            try:
                with open(root / name, "rb") as fh:
                    lines = sum(1 for _ in fh)
            except OSError:
                lines = 0
            changes.append({"path": name, "added": lines, "removed": 0})
    return changes


def digest_lines(final_text: str, tool_lines: list[str], errors: list[str], limit: int = 3) -> list[str]:
    """Up to three short lines saying what was done, from the agent's final text first."""
    lines: list[str] = list(errors[:1])
    for raw in final_text.splitlines():
        text = raw.strip().lstrip("-*• ").strip()
        if text and not text.startswith("```") and not any(text in line for line in lines):
            lines.append(text)  # a CLI's error text often is its final text too: say it once
        if len(lines) >= limit:
            break
    for tool in tool_lines:
        if len(lines) >= limit:
            break
        lines.append(tool)
    return [clip(line, 140) for line in lines[:limit]]


def build_summary(
    *,
    task_id: str,
    text: str,
    status: str,
    agent: str,
    category: str,
    result: dict[str, Any],
    duration_s: float | None,
    log_path: str,
    tool_lines: list[str],
    baseline: dict[str, Any] | None,
    refused: list[dict[str, str]] | None = None,
    project: str | None = None,
) -> dict[str, Any]:
    """``refused``: the task's tool calls the policy or a person refused (``core.permission_text.refusals``)."""
    usage = result.get("usage", {})
    errors = list(result.get("errors", []))
    return {
        "task_id": task_id,
        "task": text,
        "status": status,
        "agent": agent,
        "category": category,
        "project": project,
        "digest": digest_lines(str(result.get("final_text", "")), tool_lines, errors),
        "files": files_changed(baseline),
        "tokens": {
            "input": int(usage.get("input_tokens", 0)),
            "output": int(usage.get("output_tokens", 0)),
            "cache_read": int(usage.get("cache_read_tokens", 0)),
            "cache_write": int(usage.get("cache_write_tokens", 0)),
        },
        "cost_usd": result.get("cost_usd"),
        "cost_source": result.get("cost_source", "unknown"),
        "cost_note": result.get("cost_note") or "",
        "duration_s": duration_s,
        "errors": errors,
        "permission_denials": list(result.get("permission_denials", [])),
        "refused": list(refused or []),
        "tool_errors": list(result.get("tool_errors", [])),
        "session_id": result.get("session_id"),
        "session_totals": _session_totals(result),
        "log": log_path,
    } | _branch(baseline)


def _branch(baseline: dict[str, Any] | None) -> dict[str, Any]:
    """The branch a task in its own worktree ran on, and what it counts against (``core.worktrees``)."""
    if not baseline or not baseline.get("branch"):
        return {}
    return {"branch": str(baseline["branch"]), "base": str(baseline.get("base_name") or "")}


def _session_totals(result: dict[str, Any]) -> dict[str, Any] | None:
    """The CLI's session-wide totals (``AgentResult.session_totals``), kept for the next resumed run."""
    if result.get("session_usage") is None and result.get("session_cost_usd") is None:
        return None
    return {"usage": result.get("session_usage"), "cost_usd": result.get("session_cost_usd")}


def _calls(n: int) -> str:
    return "1 tool call" if n == 1 else f"{n} tool calls"


def _refused_lines(refused: list[dict[str, str]], limit: int = 3) -> list[str]:
    """``Denied:`` and one line per refused call: ``⛔ Bash(curl …) — denied by bob: not now``, ``— by policy``."""
    lines = ["Denied:"]
    for entry in refused[:limit]:
        icon = "⏱" if entry.get("state") == "timed_out" else "⛔"
        by = str(entry.get("by", ""))
        why = f": {entry['reason']}" if entry.get("reason") and by.startswith("denied by") else ""
        lines.append(clip(f"{icon} {entry.get('call', '')} — {by}{why}", 140))
    if len(refused) > limit:
        lines.append(f"(+{len(refused) - limit} more)")
    return lines


def command_hint(chat_prefix: str | None, cli: str, chat: str) -> str:
    """A command as the reader types it: ``orchestra logs t1`` in a terminal (``chat_prefix`` None),
    ``/log t1`` in Telegram (``"/"``), ``/orchestra log t1`` in Slack (``"/orchestra "``)."""
    return f"orchestra {cli}" if chat_prefix is None else f"{chat_prefix}{chat}"


def render_phone(summary: dict[str, Any], *, state: str | None = None, chat_prefix: str | None = None) -> str:
    """The chat rendering: plain text, at most 1,000 characters, the full log one command away.

    ``chat_prefix`` says how commands are typed where it is read (see :func:`command_hint`).
    """
    status = state or summary["status"]
    files = summary.get("files") or []
    icon, said = state_icon(status), state_label(status)
    tool_errors = summary.get("tool_errors") or []
    if tool_errors and not files and status == "succeeded":  # the agent's word, next to what changed
        icon, said = "⚠️", f"succeeded, but {_calls(len(tool_errors))} failed and no file changed"
    where = f"{summary['project']} · " if summary.get("project") else ""
    head = (
        f"{icon} {summary['task_id']} {said} · {where}{summary['agent']} · "
        f"{summary['category']} · {format_duration(summary.get('duration_s'))}"
    )
    lines = [head, clip(summary["task"], 160)]
    lines += [f"• {line}" for line in summary["digest"]]
    if tool_errors and not files:
        lines.append(clip("Failed: " + "; ".join(tool_errors[:2]), 200))
    if files:
        shown = ", ".join(f"{f['path']} +{f['added']} −{f['removed']}" for f in files[:4])
        more = f" (+{len(files) - 4} more)" if len(files) > 4 else ""
        lines.append(clip(f"Files: {shown}{more}", 300))
    if summary.get("branch"):
        count = len(files)
        lines.append(f"Branch: {summary['branch']} · {count} file{'' if count == 1 else 's'} vs {summary['base']}")
    tokens = summary["tokens"]
    cost = format_cost(summary.get("cost_usd"))
    if summary.get("cost_note"):
        cost += f" ({summary['cost_note']})"
    lines.append(f"Tokens: {token_count(tokens['input'])} in / {token_count(tokens['output'])} out · {cost}")
    if summary.get("refused"):
        lines += _refused_lines(summary["refused"])
    elif summary.get("permission_denials"):  # the CLI's own list, when no request went through Orchestra
        lines.append(clip("Denied: " + ", ".join(summary["permission_denials"][:3]), 200))
    task_id = summary["task_id"]
    if status == "needs_review" and summary.get("branch"):
        merge = command_hint(chat_prefix, f"merge {task_id}", f"merge {task_id}")
        lines.append(f"Review: {merge} | {command_hint(chat_prefix, f'discard {task_id}', f'discard {task_id}')}")
    elif status == "needs_review":
        approve = command_hint(chat_prefix, f"approve {task_id}", f"approve {task_id}")
        lines.append(f"Review: {approve} | {command_hint(chat_prefix, f'reject {task_id}', f'reject {task_id}')}")
    lines.append(f"Log: {command_hint(chat_prefix, f'logs {task_id}', f'log {task_id}')}")
    text = "\n".join(lines)
    return clip(text, PHONE_LIMIT, flat=False)


# format_cost and format_duration live in core.text; named here too for callers not yet moved there.
__all__ = [
    "PHONE_LIMIT",
    "build_summary",
    "command_hint",
    "digest_lines",
    "files_changed",
    "format_cost",
    "format_duration",
    "git_baseline",
    "git_root",
    "render_phone",
]
