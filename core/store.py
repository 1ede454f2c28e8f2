"""The store: every table and every SQL statement of Orchestra lives in this module.

SQLite through sqlite-utils, WAL mode, a busy timeout so the bot process, the CLI and the
engine can write at once. Schema changes are numbered migrations applied at open, in order,
each exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import sqlite_utils

from core.models import ACTIVE_STATES, Notification, Task, TaskState

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


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("001_initial", _m001_initial),
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

    def audit(self, ts: float, actor: str, source: str, action: str, task_id: str | None, detail: str) -> None:
        self.db.table("audit").insert(
            {"ts": ts, "actor": actor, "source": source, "action": action, "task_id": task_id, "detail": detail}
        )

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(self.db.table("audit").rows_where(order_by="id desc", limit=limit))

    # -- outbox ---------------------------------------------------------------------------
    def enqueue(self, channel: str, kind: str, text: str, *, task_id: str | None, dedupe_key: str, ts: float) -> bool:
        """Queue a message for a channel; the same ``dedupe_key`` is queued once only. True if new."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO outbox (dedupe_key, channel, kind, task_id, text, payload_json, created_at, "
            "attempts, next_attempt_at) VALUES (?, ?, ?, ?, ?, '{}', ?, 0, ?)",
            (dedupe_key, channel, kind, task_id, text, ts, ts),
        )
        return cursor.rowcount == 1

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
