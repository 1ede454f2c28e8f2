"""Questions to the audit log ("who approved t42", "what did I cancel yesterday"), for chat and CLI."""

from __future__ import annotations

import re
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any

from core.errors import OrchestraError
from core.text import stamp

if TYPE_CHECKING:
    from core.store import Store

ACTIONS = (
    "delegate", "cancel", "retry", "approve", "reject", "allow", "deny", "kill", "budget", "permissions", "project",
    "merge", "pr", "discard", "schedule", "trigger", "command", "tap", "refused", "web",
)  # fmt: skip
_SINCE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])\Z")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str) -> float:
    """``30m``, ``12h``, ``1d``, ``2w`` as seconds; a bad value is one clear sentence."""
    match = _SINCE.match(text.strip().lower())
    if match is None:
        raise OrchestraError(f"--since {text!r}: write a number and a unit, like 30m, 12h, 1d or 2w")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def search(
    store: Store, now: float, text: str = "", *, action: str | None = None, since: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Audit rows, newest first. ``text``: a task id (``t42`` or ``42``), an action, or part of who/where/what."""
    text = text.strip()
    if text.isdigit():
        text = f"t{text}"
    if action is None and text.lower() in ACTIONS:
        action, text = text.lower(), ""
    cutoff = now - parse_since(since) if since else None
    return store.audit_search(text, action=action, since=cutoff, limit=limit)


def audit_line(row: dict[str, Any], tz: tzinfo = UTC) -> str:
    """One row as ``2026-11-25 22:40:09 @alice (telegram chat 111 user 111) approve t42 — start``.

    The time is in ``tz``: callers pass the configured zone (``config.digest.zone()``).
    """
    task = f" {row['task_id']}" if row.get("task_id") else ""
    detail = f" — {row['detail']}" if row.get("detail") else ""
    where = f"{row['source']} {row['chat']}" if row.get("chat") else row["source"]
    return f"{stamp(row['ts'], tz)} {row['actor']} ({where}) {row['action']}{task}{detail}"


__all__ = ["ACTIONS", "audit_line", "parse_since", "search"]
