"""The store: every table and every SQL statement of Orchestra lives in this module.

SQLite through sqlite-utils, WAL mode, a busy timeout so the bot process, the CLI and the
engine can write at once. Schema changes are numbered migrations applied at open, in order,
each exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from core.agents.base import Usage
from core.messages import (
    CARD_KINDS,
    Attachment,
    Keyboard,
    OutboxCopy,
    OutboxItem,
    buttons_from_payload,
    keyboard_from_json,
    keyboard_to_json,
)
from core.models import ACTIVE_STATES, Notification, Task, TaskState

INBOUND_ATTEMPTS = 5
"""How many times a chat update is tried (a start, a crash, a start...) before it is marked failed."""

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

_COST_GROUPS = ("agent", "category", "model")


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


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("001_initial", _m001_initial),
    ("002_costs_and_digests", _m002_costs_and_digests),
    ("003_chat_outbox", _m003_chat_outbox),
    ("004_audit_where", _m004_audit_where),
    ("005_inbound_journal", _m005_inbound_journal),
    ("006_costs_by_agent", _m006_costs_by_agent),
    ("007_budget_overrides", _m007_budget_overrides),
]


class Store:
    """Owns the SQLite database file. Safe to open from several processes at once."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        self.db = sqlite_utils.Database(conn)
        self._conn = conn
        self._column_cache: dict[str, list[str]] = {}
        self._migrate()

    def close(self) -> None:
        self._conn.close()

    # -- schema -------------------------------------------------------------------------
    def _migrate(self) -> None:
        self._conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
        for name, apply in MIGRATIONS:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                done = self._conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone()
                if not done:
                    apply(self.db)
                    self._conn.execute(
                        "INSERT INTO _migrations (name, applied_at) VALUES (?, strftime('%s','now'))", (name,)
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self._conn.execute("SELECT name FROM _migrations ORDER BY name")]

    # -- tasks --------------------------------------------------------------------------
    def create_task(self, fields: dict[str, Any]) -> Task:
        """Insert a task and give it the next short id (t1, t2, ...)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            row = self._conn.execute("SELECT COALESCE(MAX(num), 0) + 1 FROM tasks").fetchone()
            num = int(row[0])
            record = {**fields, "num": num, "id": f"t{num}", "updated_at": fields.get("created_at")}
            columns = ", ".join(record)
            marks = ", ".join("?" for _ in record)
            self._conn.execute(f"INSERT INTO tasks ({columns}) VALUES ({marks})", list(record.values()))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return self.get_task(f"t{num}")

    def task_by_source(self, source_ref: str) -> Task | None:
        """The task a chat update created, if it created one (``source_ref`` is the update's id)."""
        row = self._conn.execute("SELECT id FROM tasks WHERE source_ref = ?", (source_ref,)).fetchone()
        return None if row is None else self.get_task(str(row[0]))

    def get_task(self, task_id: str) -> Task:
        """Return the task; ``KeyError`` when the id is unknown."""
        row = self._conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise KeyError(task_id)
        return _task_from_row(self._row_dict(row))

    def find_task(self, task_id: str) -> Task | None:
        try:
            return self.get_task(task_id)
        except KeyError:
            return None

    def task_field(self, task_id: str, name: str) -> Any:
        if name not in _TASK_COLUMNS:
            raise KeyError(name)
        row = self._conn.execute(f"SELECT {name} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else row[0]

    def update_task(self, task_id: str, **fields: Any) -> None:
        """Set columns on a task unconditionally (for data, not for state changes)."""
        if not fields:
            return
        for name in fields:
            if name not in _TASK_COLUMNS:
                raise KeyError(name)
        sets = ", ".join(f"{name} = ?" for name in fields)
        self._conn.execute(f"UPDATE tasks SET {sets} WHERE id = ?", [*fields.values(), task_id])

    def transition(self, task_id: str, from_states: Iterable[str], to_state: str, **fields: Any) -> bool:
        """Move a task to ``to_state`` only if it is in one of ``from_states``.

        Returns False, changing nothing, when another process got there first: this compare-and-set
        is what makes every state change happen exactly once.
        """
        allowed = list(from_states)
        for name in fields:
            if name not in _TASK_COLUMNS:
                raise KeyError(name)
        sets = ", ".join(["state = ?", *(f"{name} = ?" for name in fields)])
        marks = ", ".join("?" for _ in allowed)
        cursor = self._conn.execute(
            f"UPDATE tasks SET {sets} WHERE id = ? AND state IN ({marks})",
            [to_state, *fields.values(), task_id, *allowed],
        )
        return cursor.rowcount == 1

    def list_tasks(
        self, *, states: Iterable[str] | None = None, limit: int = 50, newest_first: bool = True
    ) -> list[Task]:
        order = "DESC" if newest_first else "ASC"
        if states is not None:
            wanted = list(states)
            marks = ", ".join("?" for _ in wanted)
            rows = self._conn.execute(
                f"SELECT * FROM tasks WHERE state IN ({marks}) ORDER BY num {order} LIMIT ?", [*wanted, limit]
            )
        else:
            rows = self._conn.execute(f"SELECT * FROM tasks ORDER BY num {order} LIMIT ?", (limit,))
        return [_task_from_row(self._row_dict(row)) for row in rows.fetchall()]

    def queued_tasks(self) -> list[Task]:
        """Queued tasks, oldest first (the FIFO order of the dispatcher)."""
        return self.list_tasks(states=[TaskState.QUEUED], limit=1_000_000, newest_first=False)

    def active_tasks(self) -> list[Task]:
        return self.list_tasks(states=ACTIVE_STATES, limit=1_000_000, newest_first=False)

    def count_by_state(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall()
        return {str(state): int(count) for state, count in rows}

    # -- events -------------------------------------------------------------------------
    def add_event(self, task_id: str, seq: int, ts: float, kind: str, text: str, data: dict[str, Any]) -> bool:
        """Record a runner event; a repeat of the same (task, seq) is ignored. True if new."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO events (task_id, seq, ts, kind, text, data_json) VALUES (?, ?, ?, ?, ?, ?)",
            (task_id, seq, ts, kind, text, json.dumps(data, ensure_ascii=False)),
        )
        if cursor.rowcount == 1:
            self._conn.execute(
                "UPDATE tasks SET last_seq = MAX(COALESCE(last_seq, 0), ?), last_event_at = ? WHERE id = ?",
                (seq, ts, task_id),
            )
            return True
        return False

    def events(self, task_id: str, *, kinds: Iterable[str] | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        sql = "SELECT seq, ts, kind, text, data_json FROM events WHERE task_id = ?"
        params: list[Any] = [task_id]
        if kinds is not None:
            wanted = list(kinds)
            sql += f" AND kind IN ({', '.join('?' for _ in wanted)})"
            params += wanted
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        return [
            {"seq": seq, "ts": ts, "kind": kind, "text": text, "data": json.loads(data or "{}")}
            for seq, ts, kind, text, data in self._conn.execute(sql, params).fetchall()
        ]

    # -- costs, routing, approvals, audit -------------------------------------------------
    def record_cost(self, row: dict[str, Any]) -> None:
        self.db.table("costs").insert(row, replace=True)

    def cost_history(self, agent: str, category: str, limit: int = 200) -> list[float]:
        rows = self._conn.execute(
            "SELECT cost_usd FROM costs WHERE agent = ? AND category = ? AND cost_usd IS NOT NULL "
            "ORDER BY ts DESC LIMIT ?",
            (agent, category, limit),
        ).fetchall()
        return [float(r[0]) for r in rows]

    def median_cost(self, agent: str, category: str) -> tuple[float | None, int]:
        history = self.cost_history(agent, category)
        return (statistics.median(history), len(history)) if history else (None, 0)

    def cost_totals(self, since: float = 0.0) -> dict[str, Any]:
        """Spend since ``since`` by agent and by category, plus the total and task count."""
        total = self._conn.execute(
            "SELECT COALESCE(SUM(cost_usd), 0), COUNT(*), SUM(cost_usd IS NULL) FROM costs WHERE ts >= ?", (since,)
        ).fetchone()
        by_agent = self._conn.execute(
            "SELECT agent, COALESCE(SUM(cost_usd), 0), COUNT(*) FROM costs WHERE ts >= ? GROUP BY agent "
            "ORDER BY 2 DESC",
            (since,),
        ).fetchall()
        by_category = self._conn.execute(
            "SELECT category, COALESCE(SUM(cost_usd), 0), COUNT(*) FROM costs WHERE ts >= ? GROUP BY category "
            "ORDER BY 2 DESC",
            (since,),
        ).fetchall()
        return {
            "total_usd": float(total[0]),
            "tasks": int(total[1]),
            "unknown": int(total[2] or 0),
            "by_agent": [(a, float(c), int(n)) for a, c, n in by_agent],
            "by_category": [(a, float(c), int(n)) for a, c, n in by_category],
        }

    # -- spend per period (timestamps are epoch seconds; ranges are [start, end)) ---------
    def cost_sum(self, start: float, end: float) -> tuple[float, int, int]:
        """Recorded spend in the range: (dollars, tasks, tasks whose cost is unknown)."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(cost_usd), 0), COUNT(*), COUNT(*) - COUNT(cost_usd) FROM costs "
            "WHERE ts >= ? AND ts < ?",
            (start, end),
        ).fetchone()
        return float(row[0]), int(row[1]), int(row[2])

    def cost_by(self, column: str, start: float, end: float) -> list[tuple[str, float, int]]:
        """Spend in the range grouped by ``agent``, ``category`` or ``model``, largest first."""
        if column not in _COST_GROUPS:
            raise ValueError(f"cannot group costs by {column!r}")
        rows = self._conn.execute(
            f"SELECT COALESCE({column}, ''), COALESCE(SUM(cost_usd), 0), COUNT(*) FROM costs "
            "WHERE ts >= ? AND ts < ? GROUP BY 1 ORDER BY 2 DESC, 1",
            (start, end),
        ).fetchall()
        return [(str(name), float(usd), int(n)) for name, usd, n in rows]

    def cost_buckets(self, bounds: Sequence[float], *, by: str | None = None) -> list[tuple[int, str, float, int]]:
        """Spend in consecutive buckets ``[bounds[i], bounds[i+1])``: (i, name, dollars, tasks).

        ``by`` splits each bucket by agent or category (``name`` is '' without it). Buckets with no
        cost row are absent. The boundaries come from the caller, so days and months follow the
        configured time zone and its daylight-saving changes.
        """
        if len(bounds) < 2:
            return []
        if by is not None and by not in _COST_GROUPS:
            raise ValueError(f"cannot group costs by {by!r}")
        name = f"COALESCE(c.{by}, '')" if by else "''"
        values = ", ".join("(?, ?, ?)" for _ in range(len(bounds) - 1))
        params = [v for i in range(len(bounds) - 1) for v in (i, bounds[i], bounds[i + 1])]
        rows = self._conn.execute(
            f"WITH buckets(i, lo, hi) AS (VALUES {values}) "
            f"SELECT b.i, {name}, COALESCE(SUM(c.cost_usd), 0), COUNT(*) FROM buckets b "
            "JOIN costs c ON c.ts >= b.lo AND c.ts < b.hi GROUP BY 1, 2 ORDER BY 1, 3 DESC",
            params,
        ).fetchall()
        return [(int(i), str(n), float(usd), int(count)) for i, n, usd, count in rows]

    def cost_usage_by_model(self, start: float, end: float) -> list[tuple[str, Usage, float, int]]:
        """Tokens and known cost per model, over rows that have both (the basis of savings)."""
        rows = self._conn.execute(
            "SELECT COALESCE(model, ''), SUM(COALESCE(input_tokens, 0)), SUM(COALESCE(output_tokens, 0)), "
            "SUM(COALESCE(cache_read_tokens, 0)), SUM(COALESCE(cache_write_tokens, 0)), SUM(cost_usd), COUNT(*) "
            "FROM costs WHERE ts >= ? AND ts < ? AND cost_usd IS NOT NULL "
            "AND COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0) > 0 GROUP BY 1 ORDER BY 6 DESC",
            (start, end),
        ).fetchall()
        return [
            (str(model), Usage(int(i), int(o), int(cr), int(cw)), float(usd), int(n))
            for model, i, o, cr, cw, usd, n in rows
        ]

    def running_cost(self) -> tuple[float, int]:
        """Live cost so far of the running tasks, and how many there are."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(live_cost_usd), 0), COUNT(*) FROM tasks WHERE state = ?", (TaskState.RUNNING,)
        ).fetchone()
        return float(row[0]), int(row[1])

    def finished_between(self, start: float, end: float, *, limit: int) -> tuple[list[Task], dict[str, int]]:
        """Tasks that ended in the range, most recent first (at most ``limit``), and counts by state."""
        rows = self._conn.execute(
            "SELECT * FROM tasks WHERE finished_at >= ? AND finished_at < ? ORDER BY finished_at DESC LIMIT ?",
            (start, end, limit),
        ).fetchall()
        counts = self._conn.execute(
            "SELECT state, COUNT(*) FROM tasks WHERE finished_at >= ? AND finished_at < ? GROUP BY state",
            (start, end),
        ).fetchall()
        return [_task_from_row(self._row_dict(row)) for row in rows], {str(s): int(n) for s, n in counts}

    def silent_tasks(self, before: float) -> list[Task]:
        """Running tasks whose last event (or start) is older than ``before``, oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM tasks WHERE state = ? AND COALESCE(last_event_at, started_at, updated_at, created_at) < ? "
            "ORDER BY num",
            (TaskState.RUNNING, before),
        ).fetchall()
        return [_task_from_row(self._row_dict(row)) for row in rows]

    # -- digests and alerts: each recorded once under its key -----------------------------
    def record_digest(self, period: str, sent_at: float, since: float, until: float, tasks: int) -> bool:
        """Record the digest of ``period`` as sent; False if it already was."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO digests (period, sent_at, since, until, tasks) VALUES (?, ?, ?, ?, ?)",
            (period, sent_at, since, until, tasks),
        )
        return cursor.rowcount == 1

    def digest_sent(self, period: str) -> bool:
        return self._conn.execute("SELECT 1 FROM digests WHERE period = ?", (period,)).fetchone() is not None

    def last_digest(self) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT period, sent_at, since, until, tasks FROM digests ORDER BY sent_at DESC LIMIT 1"
        ).fetchone()
        return None if row is None else dict(zip(("period", "sent_at", "since", "until", "tasks"), row, strict=True))

    def record_alert(self, key: str, kind: str, ts: float, text: str) -> bool:
        """Record an alert under its unique key; False if it was recorded before (it is not sent again)."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO alerts (key, kind, ts, text) VALUES (?, ?, ?, ?)", (key, kind, ts, text)
        )
        return cursor.rowcount == 1

    def alert_recorded(self, key: str) -> bool:
        return self._conn.execute("SELECT 1 FROM alerts WHERE key = ?", (key,)).fetchone() is not None

    def alerts(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT key, kind, ts, text FROM alerts"
        params: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = ?"
            params.append(kind)
        rows = self._conn.execute(sql + " ORDER BY ts, key", params).fetchall()
        return [dict(zip(("key", "kind", "ts", "text"), row, strict=True)) for row in rows]

    def record_route(self, row: dict[str, Any]) -> None:
        self.db.table("routing_decisions").insert(row, replace=True)

    def route_of(self, task_id: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT * FROM routing_decisions WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else self._row_dict(row, table="routing_decisions")

    def record_approval(self, task_id: str, gate: str, decision: str, actor: str, reason: str, ts: float) -> None:
        self.db.table("approvals").insert(
            {"task_id": task_id, "gate": gate, "decision": decision, "actor": actor, "reason": reason, "ts": ts}
        )

    def approvals(self, task_id: str) -> list[dict[str, Any]]:
        return list(self.db.table("approvals").rows_where("task_id = ?", [task_id], order_by="id"))

    def audit(
        self, ts: float, actor: str, source: str, action: str, task_id: str | None, detail: str, chat: str = ""
    ) -> None:
        row = {"ts": ts, "actor": actor, "source": source, "action": action, "task_id": task_id, "detail": detail}
        self.db.table("audit").insert({**row, "chat": chat or None})

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(self.db.table("audit").rows_where(order_by="id desc", limit=limit))

    def audit_search(
        self, text: str = "", *, action: str | None = None, since: float | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest first. ``text`` is a task id (exact) or a piece of the actor, source or detail."""
        where: list[str] = ["1 = 1"]
        args: list[Any] = []
        if text:
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(
                "(task_id = ? OR actor LIKE ? ESCAPE '\\' OR source LIKE ? ESCAPE '\\' OR chat LIKE ? ESCAPE '\\'"
                " OR detail LIKE ? ESCAPE '\\')"
            )
            args += [text, like, like, like, like]
        if action:
            where.append("action = ?")
            args.append(action)
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        return list(self.db.table("audit").rows_where(" AND ".join(where), args, order_by="id desc", limit=limit))

    # -- outbox ---------------------------------------------------------------------------
    def enqueue(
        self,
        channel: str,
        kind: str,
        text: str,
        *,
        task_id: str | None,
        dedupe_key: str,
        ts: float,
        payload: dict[str, Any] | None = None,
    ) -> bool:
        """Queue a message for a channel; the same ``dedupe_key`` is queued once only. True if new.

        ``payload`` carries what a chat transport needs beyond the text (buttons, a chart file).
        """
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO outbox (dedupe_key, channel, kind, task_id, text, payload_json, created_at, "
            "attempts, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (dedupe_key, channel, kind, task_id, text, json.dumps(payload or {}, ensure_ascii=False), ts, ts),
        )
        return cursor.rowcount == 1

    def payload(self, notification_id: int) -> dict[str, Any]:
        """The extra data queued with a message ({} when there is none)."""
        row = self._conn.execute("SELECT payload_json FROM outbox WHERE id = ?", (notification_id,)).fetchone()
        data: dict[str, Any] = json.loads(row[0]) if row and row[0] else {}
        return data

    def pending(self, channel: str, *, task_id: str | None = None, now: float | None = None) -> list[Notification]:
        sql = (
            "SELECT id, channel, kind, text, task_id, dedupe_key, created_at FROM outbox "
            "WHERE channel = ? AND sent_at IS NULL"
        )
        params: list[Any] = [channel]
        if task_id is not None:
            sql += " AND task_id = ?"
            params.append(task_id)
        if now is not None:
            sql += " AND next_attempt_at <= ?"
            params.append(now)
        sql += " ORDER BY id"
        return [Notification(*row) for row in self._conn.execute(sql, params).fetchall()]

    def mark_sent(self, notification_id: int, ts: float) -> bool:
        """Claim a message as delivered; False if another consumer already did."""
        cursor = self._conn.execute(
            "UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ? AND sent_at IS NULL",
            (ts, notification_id),
        )
        return cursor.rowcount == 1

    def mark_failed_attempt(self, notification_id: int, error: str, retry_at: float) -> None:
        self._conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
            (error[:500], retry_at, notification_id),
        )

    # -- chat outbox: one row per message to one chat, edits, fan-out ----------------------
    def enqueue_chat(
        self,
        channel: str,
        kind: str,
        text: str,
        *,
        chat_id: str | None,
        dedupe_key: str,
        ts: float,
        task_id: str | None = None,
        buttons: Keyboard = (),
        payload: dict[str, Any] | None = None,
        edit_of: int | None = None,
        edit_message_id: str | None = None,
    ) -> bool:
        """Queue a chat message (or an edit of one); the same ``dedupe_key`` is queued once. True if new.

        ``chat_id`` None asks the channel's delivery to fan the row out to every chat it notifies.
        An edit names its message directly (``edit_message_id``) or as the outbox row that sent it
        (``edit_of``), which may not have been delivered yet.
        """
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO outbox (dedupe_key, channel, kind, task_id, text, payload_json, created_at, "
            "attempts, next_attempt_at, chat_id, markup_json, edit_of, edit_message_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
            (
                dedupe_key,
                channel,
                kind,
                task_id,
                text,
                json.dumps(payload or {}, ensure_ascii=False),
                ts,
                ts,
                chat_id,
                keyboard_to_json(buttons) if buttons else None,
                edit_of,
                edit_message_id,
            ),
        )
        return cursor.rowcount == 1

    def enqueue_progress(
        self, card_id: int, text: str, *, buttons: Keyboard, ts: float, final: bool = False, state: str = ""
    ) -> bool:
        """Queue an edit of a card (an acknowledgement) and drop older edits of it not yet sent.

        Only the newest state of a card matters, so a backlog of progress edits collapses into one.
        A ``final`` edit is queued once per ``state``. False when the card is unknown.
        """
        card = self._conn.execute("SELECT channel, chat_id, task_id FROM outbox WHERE id = ?", (card_id,)).fetchone()
        if card is None:
            return False
        channel, chat_id, task_id = card
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            count = self._conn.execute("SELECT COUNT(*) FROM outbox WHERE edit_of = ?", (card_id,)).fetchone()[0]
            suffix = f"final-{state}" if final else str(count + 1)  # each final state is written once
            added = self.enqueue_chat(
                channel,
                "progress",
                text,
                chat_id=chat_id,
                dedupe_key=f"{channel}:{chat_id}:card:{card_id}:{suffix}",
                ts=ts,
                task_id=task_id,
                buttons=buttons,
                edit_of=card_id,
            )
            if added:
                newest = self._conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                self._conn.execute(
                    "UPDATE outbox SET sent_at = ?, last_error = 'superseded' WHERE edit_of = ? AND kind = 'progress' "
                    "AND sent_at IS NULL AND failed_at IS NULL AND id < ?",
                    (ts, card_id, newest),
                )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return True

    def outbox_queue(self, channel: str, *, limit: int = 200) -> list[OutboxItem]:
        """Undelivered rows of a channel in the order they were queued, due or not, given-up ones left out."""
        rows = self._conn.execute(
            _OUTBOX_ITEM_SQL + " WHERE o.channel = ? AND o.sent_at IS NULL AND o.failed_at IS NULL "
            "ORDER BY o.id LIMIT ?",
            (channel, limit),
        ).fetchall()
        return [_outbox_item(row) for row in rows]

    def outbox_backlog(self, channel: str) -> dict[str, Any]:
        """A channel's delivery at a glance (what metrics and ``orchestra doctor`` show).

        ``pending``: rows not delivered and not given up, due or not; ``oldest_at``: the
        ``created_at`` of the oldest of them (None when there is none); ``given_up``: rows the
        platform refused for good (kept forever, so it only grows); ``delivered_at``: when the
        platform last accepted a message and gave it an id, among the channel's last 500 rows
        marked sent (None when none has one: the console, or a run of superseded edits).
        """
        pending, oldest, given_up = self._conn.execute(
            "SELECT COUNT(*) - COUNT(failed_at), MIN(CASE WHEN failed_at IS NULL THEN created_at END), "
            "COUNT(failed_at) FROM outbox WHERE channel = ? AND sent_at IS NULL",
            (channel,),
        ).fetchone()
        delivered = self._conn.execute(  # bounded: a channel without message ids is not scanned to its start
            "SELECT MAX(sent_at) FROM (SELECT sent_at, message_id FROM outbox WHERE channel = ? "
            "AND sent_at IS NOT NULL ORDER BY sent_at DESC LIMIT 500) WHERE message_id IS NOT NULL",
            (channel,),
        ).fetchone()
        return {
            "pending": int(pending or 0),
            "oldest_at": None if oldest is None else float(oldest),
            "given_up": int(given_up or 0),
            "delivered_at": None if delivered[0] is None else float(delivered[0]),
        }

    def usage_by_agent(self) -> list[tuple[str, float, int, int, Usage]]:
        """All-time totals per agent from the costs table, one row per recorded run.

        (agent, dollars, runs, runs whose cost is unknown, tokens). Sums over rows that are never
        rewritten, so they only grow: fit for Prometheus counters that survive a restart.
        """
        rows = self._conn.execute(  # grouped on the bare column, so the covering index of migration 006 serves it
            "SELECT agent, TOTAL(cost_usd), COUNT(*), COUNT(*) - COUNT(cost_usd), SUM(input_tokens), "
            "SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens) FROM costs "
            "GROUP BY agent ORDER BY agent"
        ).fetchall()
        return [
            (agent or "", float(usd), int(runs), int(unknown), Usage(*(int(n or 0) for n in tokens)))
            for agent, usd, runs, unknown, *tokens in rows
        ]

    def outbox_item(self, item_id: int) -> OutboxItem | None:
        row = self._conn.execute(_OUTBOX_ITEM_SQL + " WHERE o.id = ?", (item_id,)).fetchone()
        return None if row is None else _outbox_item(row)

    def mark_delivered(self, item_id: int, ts: float, message_id: str | None) -> bool:
        """Record a chat message as delivered with the id the platform gave it; False if it already was."""
        cursor = self._conn.execute(
            "UPDATE outbox SET sent_at = ?, message_id = COALESCE(?, message_id), attempts = attempts + 1 "
            "WHERE id = ? AND sent_at IS NULL",
            (ts, message_id, item_id),
        )
        return cursor.rowcount == 1

    def mark_given_up(self, item_id: int, error: str, ts: float) -> None:
        """The platform refused the message for good (blocked bot, unknown chat): it stays, marked failed."""
        self._conn.execute(
            "UPDATE outbox SET failed_at = ?, last_error = ?, attempts = attempts + 1 WHERE id = ? AND sent_at IS NULL",
            (ts, error[:500], item_id),
        )

    def fan_out(self, item_id: int, copies: list[OutboxCopy], ts: float) -> None:
        """Replace a row meant for every chat by the given per-chat rows, atomically.

        The parent row is marked delivered in the same transaction, so a crash leaves either the
        parent (fanned out again later, its copies deduplicated) or the copies, never both.
        """
        parent = self.outbox_item(item_id)
        if parent is None:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for copy in copies:
                self.enqueue_chat(
                    parent.channel,
                    parent.kind,
                    copy.text,
                    chat_id=copy.chat_id,
                    dedupe_key=copy.dedupe_key,
                    ts=ts,
                    task_id=parent.task_id,
                    buttons=copy.buttons,
                    payload=copy.payload,
                )
            self._conn.execute(
                "UPDATE outbox SET sent_at = ?, last_error = ? WHERE id = ? AND sent_at IS NULL",
                (ts, f"fanned out to {len(copies)} chat(s)", item_id),
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def outbox_cards(self, task_id: str) -> list[int]:
        """Outbox ids of the cards (acknowledgements, approval requests) showing this task, in any chat."""
        marks = ", ".join("?" for _ in CARD_KINDS)
        rows = self._conn.execute(
            f"SELECT id FROM outbox WHERE task_id = ? AND kind IN ({marks}) AND chat_id IS NOT NULL "
            "AND failed_at IS NULL ORDER BY id",
            (task_id, *CARD_KINDS),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def card_thread(self, channel: str, chat_id: str, task_id: str) -> str | None:
        """The thread of this task's first card in a chat: the message it answered, or else the card itself."""
        marks = ", ".join("?" for _ in CARD_KINDS)
        row = self._conn.execute(
            f"SELECT payload_json, message_id FROM outbox WHERE channel = ? AND chat_id = ? AND task_id = ? "
            f"AND kind IN ({marks}) AND failed_at IS NULL ORDER BY id LIMIT 1",
            (channel, chat_id, task_id, *CARD_KINDS),
        ).fetchone()
        if row is None:
            return None
        reply_to = (json.loads(row[0]) if row[0] else {}).get("reply_to")
        return str(reply_to) if reply_to else (None if row[1] is None else str(row[1]))

    def task_chats(self, channel: str, task_id: str) -> list[str]:
        """Chats of a channel where this task was acknowledged: its completion goes there too."""
        marks = ", ".join("?" for _ in CARD_KINDS)
        rows = self._conn.execute(
            f"SELECT DISTINCT chat_id FROM outbox WHERE channel = ? AND task_id = ? AND kind IN ({marks}) "
            "AND chat_id IS NOT NULL ORDER BY id",
            (channel, task_id, *CARD_KINDS),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def outbox_message(self, channel: str, chat_id: str, message_id: str) -> tuple[int, str, str | None] | None:
        """(outbox id, kind, task id) of the message we sent with this platform id, if it was ours."""
        row = self._conn.execute(
            "SELECT id, kind, task_id FROM outbox WHERE channel = ? AND chat_id = ? AND message_id = ? "
            "AND edit_of IS NULL AND edit_message_id IS NULL ORDER BY id LIMIT 1",
            (channel, chat_id, message_id),
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), row[2])

    # -- budgets set at run time ----------------------------------------------------------
    def budget_overrides(self) -> dict[str, tuple[float | None, str, float]]:
        """Budget name (``per_day_usd``...) → (value or None for no budget, who set it, when)."""
        rows = self._conn.execute("SELECT name, value, set_by, set_at FROM budget_overrides").fetchall()
        return {str(name): (value, str(by), float(at)) for name, value, by, at in rows}

    def set_budget_override(self, name: str, value: float | None, set_by: str, ts: float) -> None:
        self._conn.execute(
            "INSERT INTO budget_overrides (name, value, set_by, set_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, set_by = excluded.set_by, "
            "set_at = excluded.set_at",
            (name, value, set_by, ts),
        )

    def clear_budget_override(self, name: str) -> bool:
        return self._conn.execute("DELETE FROM budget_overrides WHERE name = ?", (name,)).rowcount == 1

    # -- inbound journal ------------------------------------------------------------------
    def journal_inbound(self, key: str, platform: str, payload: dict[str, Any], ts: float) -> bool:
        """Keep a chat update as pending before the platform is told it arrived; False if already known."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO inbound (key, platform, payload, received_at, state, attempts) "
            "VALUES (?, ?, ?, ?, 'pending', 0)",
            (key, platform, json.dumps(payload, ensure_ascii=False, default=str), ts),
        )
        return cursor.rowcount == 1

    def begin_inbound(self, key: str, platform: str, ts: float, *, max_attempts: int = INBOUND_ATTEMPTS) -> bool:
        """Start handling an update: True while it is pending and under ``max_attempts`` tries.

        An update that was never journalled is journalled now. One that was handled already (sent
        again by the platform, or replayed) gives False; so does one that failed ``max_attempts``
        times, which is marked failed rather than tried at every start for ever.
        """
        self._conn.execute(
            "INSERT OR IGNORE INTO inbound (key, platform, received_at, state, attempts) "
            "VALUES (?, ?, ?, 'pending', 0)",
            (key, platform, ts),
        )
        cursor = self._conn.execute(
            "UPDATE inbound SET attempts = attempts + 1 WHERE key = ? AND state = 'pending' AND attempts < ?",
            (key, max_attempts),
        )
        if cursor.rowcount == 1:
            return True
        self._conn.execute(
            "UPDATE inbound SET state = 'failed', done_at = ?, payload = NULL, error = ? "
            "WHERE key = ? AND state = 'pending'",
            (ts, f"gave up after {max_attempts} attempts", key),
        )
        return False

    def finish_inbound(self, key: str, ts: float, *, error: str | None = None) -> None:
        """An update was handled (or failed for good): never handled again; its payload is dropped."""
        self._conn.execute(
            "UPDATE inbound SET state = ?, done_at = ?, error = ?, payload = NULL WHERE key = ?",
            ("failed" if error else "done", ts, error, key),
        )

    def pending_inbound(self, platform: str) -> list[tuple[str, dict[str, Any]]]:
        """Journalled updates not handled yet, oldest first: (key, payload)."""
        rows = self._conn.execute(
            "SELECT key, payload FROM inbound WHERE platform = ? AND state = 'pending' AND payload IS NOT NULL "
            "ORDER BY received_at, rowid",
            (platform,),
        ).fetchall()
        return [(str(key), json.loads(payload)) for key, payload in rows]

    def inbound_counts(self) -> dict[str, int]:
        """Journal rows by state (pending, done, failed)."""
        rows = self._conn.execute("SELECT state, count(*) FROM inbound GROUP BY state").fetchall()
        return {str(state): int(n) for state, n in rows}

    def claim_once(self, key: str, owner: str, ts: float) -> bool:
        """Claim a one-shot action (one retry per button); True for the first owner, again for the same one.

        The same owner (the update that claimed it) gets True again, so an update handled a second
        time after a crash carries on where it stopped; any other update (or one without an id) gets False.
        """
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO inbound_seen (key, ts, owner) VALUES (?, ?, ?)", (key, ts, owner)
        )
        if cursor.rowcount == 1 or not owner:
            return cursor.rowcount == 1
        row = self._conn.execute("SELECT owner FROM inbound_seen WHERE key = ?", (key,)).fetchone()
        return row is not None and row[0] == owner

    def prune_inbound(self, before: float) -> int:
        """Forget handled updates and one-shot claims older than ``before``; pending ones stay."""
        gone = self._conn.execute("DELETE FROM inbound WHERE state != 'pending' AND received_at < ?", (before,))
        claims = self._conn.execute("DELETE FROM inbound_seen WHERE ts < ?", (before,))
        return int(gone.rowcount) + int(claims.rowcount)

    # -- helpers --------------------------------------------------------------------------
    def _row_dict(self, row: tuple[Any, ...], table: str = "tasks") -> dict[str, Any]:
        names = self._columns(table)
        return dict(zip(names, row, strict=False))

    def _columns(self, table: str) -> list[str]:
        names = self._column_cache.get(table)
        if names is None:
            names = [r[1] for r in self._conn.execute(f"PRAGMA table_info({table})").fetchall()]
            self._column_cache[table] = names
        return names


def _task_from_row(row: dict[str, Any]) -> Task:
    summary = json.loads(row["summary_json"]) if row.get("summary_json") else {}
    return Task(
        id=row["id"],
        text=row["text"],
        agent=row["agent"] or "",
        category=row["category"] or "",
        state=TaskState(row["state"]),
        cwd=row["cwd"] or "",
        created_at=row["created_at"] or 0.0,
        rule=row["rule"] or "",
        route_reason=row["route_reason"] or "",
        requester=row["requester"] or "",
        source=row["source"] or "cli",
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        cost_usd=row["cost_usd"],
        cost_source=row["cost_source"] or "unknown",
        live_cost_usd=row["live_cost_usd"],
        input_tokens=row["input_tokens"] or 0,
        output_tokens=row["output_tokens"] or 0,
        cache_read_tokens=row["cache_read_tokens"] or 0,
        cache_write_tokens=row["cache_write_tokens"] or 0,
        final_text=row["final_text"] or "",
        error=row["error"] or "",
        session_id=row["session_id"],
        parent_id=row["parent_id"],
        estimate_usd=row["estimate_usd"],
        estimate_basis=row["estimate_basis"] or 0,
        require_review=bool(row["require_review"]),
        cost_cap_usd=row["cost_cap_usd"],
        timeout_s=row["timeout_s"],
        exit_code=row["exit_code"],
        last_event_at=row["last_event_at"],
        summary=summary,
    )


_OUTBOX_ITEM_SQL = (
    "SELECT o.id, o.channel, o.kind, o.chat_id, o.text, o.dedupe_key, o.task_id, o.markup_json, o.payload_json, "
    "o.edit_of, COALESCE(o.edit_message_id, t.message_id), "
    "CASE WHEN o.edit_of IS NULL THEN NULL WHEN t.failed_at IS NOT NULL THEN 'failed' "
    "WHEN t.sent_at IS NOT NULL THEN 'sent' ELSE 'pending' END, o.attempts, o.next_attempt_at "
    "FROM outbox o LEFT JOIN outbox t ON t.id = o.edit_of"
)


def _outbox_item(row: tuple[Any, ...]) -> OutboxItem:
    (item_id, channel, kind, chat_id, text, key, task_id, markup, payload_json, edit_of, edit_id, target, attempts,
     next_at) = row  # fmt: skip
    payload: dict[str, Any] = json.loads(payload_json) if payload_json else {}
    buttons = keyboard_from_json(markup) or buttons_from_payload(payload.get("buttons"), task_id)
    attachment = payload.get("attachment")
    if attachment is None and payload.get("chart_png"):
        attachment = {"kind": "photo", "filename": "chart.png", "path": str(payload["chart_png"])}
    return OutboxItem(
        id=int(item_id),
        channel=str(channel),
        kind=str(kind),
        chat_id=None if chat_id is None else str(chat_id),
        text=str(text or ""),
        dedupe_key=str(key),
        task_id=task_id,
        buttons=buttons,
        code=str(payload.get("code") or ""),
        reply_to=payload.get("reply_to"),
        edit_of=edit_of,
        edit_message_id=None if edit_id is None else str(edit_id),
        target_state=target,
        attachment=Attachment.from_dict(attachment) if isinstance(attachment, dict) else None,
        attempts=int(attempts or 0),
        next_attempt_at=float(next_at or 0.0),
    )
