"""The schema: numbered migrations, applied in order at open, each exactly once (see ``Store``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from core.store.migrations_late import (
    WEB_MIGRATION,
    _m015_plans,
    _m017_schedules,
    _m018_says,
    _m019_files,
    _m020_hosts,
    _m_web_sessions,
)

if TYPE_CHECKING:  # the store passes its ``db``, made only when a migration runs
    from collections.abc import Callable

    import sqlite_utils

# The columns of ``tasks``: migration 001 creates them; the task methods accept no other name.
_TASK_COLUMNS = {
    "num": int,
    "id": str,
    "text": str,
    "agent": str,
    "category": str,
    "rule": str,
    "route_reason": str,
    "state": str,
    "cwd": str,
    "requester": str,
    "source": str,
    "created_at": float,
    "queued_at": float,
    "started_at": float,
    "finished_at": float,
    "updated_at": float,
    "timeout_s": float,
    "cost_cap_usd": float,
    "estimate_usd": float,
    "estimate_basis": int,
    "require_review": int,
    "parent_id": str,
    "session_id": str,
    "window_id": str,
    "runner_pid": int,
    "exit_code": int,
    "final_text": str,
    "error": str,
    "summary_json": str,
    "cost_usd": float,
    "cost_source": str,
    "live_cost_usd": float,
    "input_tokens": int,
    "output_tokens": int,
    "cache_read_tokens": int,
    "cache_write_tokens": int,
    "last_seq": int,
    "last_event_at": float,
}
# Columns later migrations add that the task methods may set too.
_LATER_TASK_COLUMNS = {
    "worktree": str,
    "branch": str,
    "landed": str,
    "landed_by": str,
    "landed_at": float,
    "pr_url": str,
    "plan_id": str,
    "plan_step": int,
    "step_title": str,
    "step_after": str,
    "host": str,
}


def _m001_initial(db: sqlite_utils.Database) -> None:
    db.table("tasks").create(_TASK_COLUMNS, pk="num", not_null={"id", "text", "state"}, defaults={"last_seq": 0})
    db.table("tasks").create_index(["id"], unique=True)
    db.table("tasks").create_index(["state", "num"])
    db.table("events").create(
        {"task_id": str, "seq": int, "ts": float, "kind": str, "text": str, "data_json": str},
        pk=("task_id", "seq"),
    )
    db.table("costs").create(
        {
            "task_id": str,
            "ts": float,
            "agent": str,
            "category": str,
            "model": str,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_write_tokens": int,
            "cost_usd": float,
            "source": str,
        },
        pk="task_id",
    )
    db.table("costs").create_index(["agent", "category"])
    db.table("routing_decisions").create(
        {
            "task_id": str,
            "ts": float,
            "category": str,
            "agent": str,
            "rule": str,
            "reason": str,
            "override": str,
            "corrected_category": str,
            "corrected_agent": str,
        },
        pk="task_id",
    )
    db.table("approvals").create(
        {"id": int, "task_id": str, "gate": str, "decision": str, "actor": str, "reason": str, "ts": float},
        pk="id",
    )
    db.table("approvals").create_index(["task_id"])
    db.table("audit").create(
        {"id": int, "ts": float, "actor": str, "source": str, "action": str, "task_id": str, "detail": str},
        pk="id",
    )
    db.table("outbox").create(
        {
            "id": int,
            "dedupe_key": str,
            "channel": str,
            "kind": str,
            "task_id": str,
            "text": str,
            "payload_json": str,
            "created_at": float,
            "attempts": int,
            "next_attempt_at": float,
            "sent_at": float,
            "last_error": str,
        },
        pk="id",
        defaults={"attempts": 0},
    )
    db.table("outbox").create_index(["dedupe_key"], unique=True)
    db.table("outbox").create_index(["channel", "sent_at"])


def _m002_costs_and_digests(db: sqlite_utils.Database) -> None:
    """Indexes for spend per period and for the digest; digests and alerts sent, each once."""
    db.table("costs").create_index(["ts", "agent", "cost_usd"])
    db.table("tasks").create_index(["finished_at"])
    db.table("digests").create(
        {"period": str, "sent_at": float, "since": float, "until": float, "tasks": int}, pk="period"
    )
    db.table("digests").create_index(["sent_at"])
    db.table("alerts").create({"key": str, "kind": str, "ts": float, "text": str}, pk="key")


def _m003_chat_outbox(db: sqlite_utils.Database) -> None:
    """Chat delivery: the chat, the message id once sent, buttons, what an edit changes, give-ups;
    and the chat updates already handled, so one that is delivered again is not acted on twice."""
    outbox = db.table("outbox")
    for name, kind in (
        ("chat_id", str),
        ("message_id", str),
        ("markup_json", str),
        ("edit_of", int),
        ("edit_message_id", str),
        ("failed_at", float),
    ):
        outbox.add_column(name, kind)
    outbox.create_index(["channel", "chat_id", "message_id"])
    outbox.create_index(["task_id", "kind"])
    outbox.create_index(["edit_of"])
    db.table("inbound_seen").create({"key": str, "ts": float}, pk="key")
    db.table("inbound_seen").create_index(["ts"])


def _m004_audit_where(db: sqlite_utils.Database) -> None:
    """The audit's "from where" beyond the platform (the chat and user id), and lookups by task and time."""
    db.table("audit").add_column("chat", str)
    db.table("audit").create_index(["task_id"])
    db.table("audit").create_index(["ts"])


def _m005_inbound_journal(db: sqlite_utils.Database) -> None:
    """Chat updates kept from receipt (before the platform learns they were read) until handled, so
    a bot killed in between handles them on its next start; and the update each task came from, so
    handling one again cannot create its task twice. ``inbound_seen`` stays for one-shot button claims."""
    db.table("inbound").create(
        {
            "key": str,
            "platform": str,
            "payload": str,
            "received_at": float,
            "state": str,
            "attempts": int,
            "done_at": float,
            "error": str,
        },
        pk="key",
        not_null={"state"},
        defaults={"state": "pending", "attempts": 0},
    )
    db.table("inbound").create_index(["state", "received_at"])
    db.execute(
        "INSERT OR IGNORE INTO inbound (key, platform, received_at, state, done_at) "
        "SELECT key, substr(key, 1, instr(key, ':') - 1), ts, 'done', ts FROM inbound_seen"
    )
    db.table("inbound_seen").add_column("owner", str)
    db.table("tasks").add_column("source_ref", str)
    db.table("tasks").create_index(["source_ref"], unique=True)


def _m006_costs_by_agent(db: sqlite_utils.Database) -> None:
    """All-time dollars and tokens per agent from an index alone: a metrics scrape over 100,000 runs
    reads it in ~20 ms instead of ~60 ms for the table."""
    db.table("costs").create_index(
        ["agent", "cost_usd", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"]
    )


def _m007_budget_overrides(db: sqlite_utils.Database) -> None:
    """Budgets an admin set from a chat or the CLI, over those in bots.yaml (a NULL value: no budget)."""
    db.table("budget_overrides").create(
        {"name": str, "value": float, "set_by": str, "set_at": float}, pk="name", not_null={"set_by", "set_at"}
    )


def _m008_task_secret_refs(db: sqlite_utils.Database) -> None:
    """Where a task's text held a known secret: (offset, variable name) pairs, never the value, so the
    engine can give the agent the text as it was sent while the store keeps it redacted."""
    db.table("tasks").add_column("secret_refs", str)


def _m009_one_button_shape(db: sqlite_utils.Database) -> None:
    """Undelivered rows keep their buttons in ``markup_json`` and their file as ``payload.attachment``,
    the one shape delivery reads: rows queued before kept ``payload.buttons`` (action names, digest
    entries or label rows) and ``payload.chart_png``. The console printed text only (its commands and
    chart are in its text), so its rows keep their text and lose the rest."""
    rows = db.execute(
        "SELECT id, channel, task_id, payload_json, markup_json FROM outbox WHERE sent_at IS NULL "
        "AND failed_at IS NULL AND (payload_json LIKE '%\"buttons\"%' OR payload_json LIKE '%\"chart_png\"%')"
    ).fetchall()
    for row_id, channel, task_id, payload_json, markup in rows:
        payload = json.loads(payload_json or "{}")
        buttons, chart = payload.pop("buttons", None), payload.pop("chart_png", None)
        printed = channel == "console"  # history: how the console stored its rows before this migration
        if markup is None and not printed:
            markup = _old_buttons(buttons, task_id or "")
        if chart and "attachment" not in payload and not printed:
            payload["attachment"] = {"kind": "photo", "filename": "chart.png", "path": str(chart)}
        db.execute(
            "UPDATE outbox SET payload_json = ?, markup_json = ? WHERE id = ?",
            (json.dumps(payload, ensure_ascii=False), markup, row_id),
        )


_OLD_LABELS = {"approve": "✅ Approve", "reject": "✖ Reject", "cancel": "⏹ Cancel", "peek": "👀 Peek",
               "screen": "🖼 Screen", "log": "📄 Log", "retry": "🔁 Retry"}  # fmt: skip


def _old_buttons(value: Any, task_id: str) -> str | None:
    """``markup_json`` for the three shapes ``payload.buttons`` once had (None when it held none)."""
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, str) for v in value):
        rows = [[[_OLD_LABELS.get(a, a), a, task_id] for a in value]]
    elif all(isinstance(v, dict) for v in value):
        rows = []
        for entry in value[:8]:
            tid, state = str(entry.get("task_id", "")), str(entry.get("state", ""))
            if state in ("awaiting_approval", "needs_review"):
                rows.append([[f"✅ Approve {tid}", "approve", tid], [f"✖ Reject {tid}", "reject", tid]])
            else:
                rows.append([[f"👀 Peek {tid}", "peek", tid]])
    elif all(isinstance(row, list) and all(isinstance(b, list) and len(b) == 3 for b in row) for row in value):
        rows = [[[str(part) for part in b] for b in row] for row in value]
    else:
        return None
    return json.dumps(rows, ensure_ascii=False)


def _m010_permission_requests(db: sqlite_utils.Database) -> None:
    """Tool calls the policy asked a person about or refused, their answers, and a task's grants."""
    db.execute(
        """CREATE TABLE permissions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL UNIQUE,      -- the hook's, stable across its retries
            task_id TEXT NOT NULL,
            agent TEXT NOT NULL,
            tool TEXT NOT NULL,            -- neutral: Bash, Edit, Read, WebFetch, ... or the CLI's name
            subject TEXT NOT NULL,         -- the command, path or URL, as the agent gave it
            detail TEXT NOT NULL,          -- an edit's text or diff, clipped
            cli_tool TEXT NOT NULL,
            rule TEXT NOT NULL,            -- what "Allow for this task" grants
            why TEXT NOT NULL,             -- why the policy asked (or refused)
            state TEXT NOT NULL,           -- pending, allowed, denied, timed_out, cancelled
            grant_rule TEXT,               -- set when it was allowed for the rest of the task
            reason TEXT,                   -- a denial's reason, as the model reads it
            decided_by TEXT,               -- who: a user, "policy", "timeout", "grant"
            via TEXT,                      -- from where: telegram, slack, cli, engine
            created_at REAL NOT NULL,
            deadline REAL NOT NULL,
            decided_at REAL
        )"""
    )
    db.execute("CREATE INDEX permissions_task ON permissions (task_id, state)")
    db.execute("CREATE INDEX permissions_state ON permissions (state)")


def _m011_permission_rules(db: sqlite_utils.Database) -> None:
    """Rules an admin added at run time (``/permissions allow RULE``), over bots.yaml's lists."""
    db.execute(
        "CREATE TABLE permission_rules (rule TEXT PRIMARY KEY, kind TEXT NOT NULL, set_by TEXT NOT NULL,"
        " set_at REAL NOT NULL)"
    )


def _m012_task_worktrees(db: sqlite_utils.Database) -> None:
    """Where an isolated task ran: its worktree and branch (``core.worktrees``); null when it ran in ``cwd``."""
    db.table("tasks").add_column("worktree", str)
    db.table("tasks").add_column("branch", str)


def _m013_task_projects(db: sqlite_utils.Database) -> None:
    """The project a task runs in (``#api``, ``--project``, a chat's default), and each chat's default
    set by ``/project NAME`` (a chat is ``platform:chat_id``, ``/topic`` for a Telegram forum topic)."""
    db.table("tasks").add_column("project", str)
    db.execute(
        "CREATE TABLE chat_projects (chat TEXT PRIMARY KEY, project TEXT NOT NULL, set_by TEXT NOT NULL,"
        " set_at REAL NOT NULL)"
    )


def _m014_task_landing(db: sqlite_utils.Database) -> None:
    """What became of a task's branch (``merged`` or ``discarded``), who did it and when, and the pull
    request opened for it: every task of a retry chain shares the branch, so each row says it."""
    for name, kind in (("landed", str), ("landed_by", str), ("landed_at", float), ("pr_url", str)):
        db.table("tasks").add_column(name, kind)


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("001_initial", _m001_initial),
    ("002_costs_and_digests", _m002_costs_and_digests),
    ("003_chat_outbox", _m003_chat_outbox),
    ("004_audit_where", _m004_audit_where),
    ("005_inbound_journal", _m005_inbound_journal),
    ("006_costs_by_agent", _m006_costs_by_agent),
    ("007_budget_overrides", _m007_budget_overrides),
    ("008_task_secret_refs", _m008_task_secret_refs),
    ("009_one_button_shape", _m009_one_button_shape),
    ("010_permission_requests", _m010_permission_requests),
    ("011_permission_rules", _m011_permission_rules),
    ("012_task_worktrees", _m012_task_worktrees),
    ("013_task_projects", _m013_task_projects),
    ("014_task_landing", _m014_task_landing),
    ("015_plans", _m015_plans),
    (WEB_MIGRATION, _m_web_sessions),
    ("017_schedules", _m017_schedules),
    ("018_says", _m018_says),
    ("019_files", _m019_files),
    ("020_hosts", _m020_hosts),
]
