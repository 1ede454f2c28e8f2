"""Tasks and the events their runners report."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from core.errors import UnknownTask
from core.models import ACTIVE_STATES, Task, TaskState, parse_task_id
from core.redact import Redactor
from core.store._base import _Base
from core.store.migrations import _LATER_TASK_COLUMNS, _TASK_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

_COLUMNS = {**_TASK_COLUMNS, **_LATER_TASK_COLUMNS}


class TasksMixin(_Base):
    """The ``tasks`` and ``events`` tables."""

    # -- tasks --------------------------------------------------------------------------
    def create_task(self, fields: dict[str, Any]) -> Task:
        """Insert a task and give it the next short id (t1, t2, ...)."""
        with self.atomic():
            row = self._conn.execute("SELECT COALESCE(MAX(num), 0) + 1 FROM tasks").fetchone()
            num = int(row[0])
            record = {**fields, "num": num, "id": f"t{num}", "updated_at": fields.get("created_at")}
            if "text" in record:
                record["text"], refs = self.redactor.redact_refs(str(record["text"]))
                record["secret_refs"] = json.dumps(refs) if refs else None
            columns = ", ".join(record)
            marks = ", ".join("?" for _ in record)
            self._conn.execute(f"INSERT INTO tasks ({columns}) VALUES ({marks})", list(record.values()))
        return self.get_task(f"t{num}")

    def task_text(self, task_id: str, environ: Mapping[str, str] | None = None) -> str:
        """The task's text as it was sent: the known secrets it held put back from ``environ``
        (ours by default). For the agent only; everything else shows the stored, redacted text.
        :class:`UnknownTask` when the id is unknown."""
        row = self._conn.execute("SELECT text, secret_refs FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise UnknownTask(task_id)
        refs = [(int(at), str(name)) for at, name in json.loads(row[1] or "[]")]
        return Redactor.restore(str(row[0]), refs, os.environ if environ is None else environ)

    def last_task_by_requester(self, requester: str) -> Task | None:
        row = self._conn.execute(
            "SELECT id FROM tasks WHERE requester = ? ORDER BY num DESC LIMIT 1", (requester,)
        ).fetchone()
        return None if row is None else self.get_task(str(row[0]))

    def task_by_source(self, source_ref: str) -> Task | None:
        """The task a chat update created, if it created one (``source_ref`` is the update's id)."""
        row = self._conn.execute("SELECT id FROM tasks WHERE source_ref = ?", (source_ref,)).fetchone()
        return None if row is None else self.get_task(str(row[0]))

    def get_task(self, task_id: str) -> Task:
        """Return the task; :class:`UnknownTask` when the id is unknown."""
        row = self._conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise UnknownTask(task_id)
        return _task_from_row(self._row_dict(row))

    def find_task(self, task_id: str) -> Task | None:
        """The task a person named (``t12``, ``T12``, ``#12``, ``12``), or ``None``."""
        canonical = parse_task_id(task_id)
        if canonical is None:
            return None
        try:
            return self.get_task(canonical)
        except UnknownTask:
            return None

    def task_field(self, task_id: str, name: str) -> Any:
        if name not in _COLUMNS:
            raise KeyError(name)
        row = self._conn.execute(f"SELECT {name} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else row[0]

    def update_task(self, task_id: str, **fields: Any) -> None:
        """Set columns on a task unconditionally (for data, not for state changes)."""
        if not fields:
            return
        for name in fields:
            if name not in _COLUMNS:
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
            if name not in _COLUMNS:
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

    def branch_tasks(self, worktree: str, branch: str) -> list[Task]:
        """The tasks that ran on ``branch`` in ``worktree`` (a retry chain shares both), oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM tasks WHERE worktree = ? AND branch = ? ORDER BY num", (worktree, branch)
        ).fetchall()
        return [_task_from_row(self._row_dict(row)) for row in rows]

    def next_attempt(
        self, step: Task, *, agent: str, extra: str, why: str, requester: str, source: str, now: float
    ) -> Task:
        """A queued new attempt of a plan's step: the step's first text (plus ``extra``), on ``agent``,
        its place in the plan, its limits and estimate kept; a retry of ``step``."""
        row = self._conn.execute(
            "SELECT id FROM tasks WHERE plan_id = ? AND plan_step = ? ORDER BY num LIMIT 1",
            (step.plan_id, step.plan_step),
        ).fetchone()
        first = str(row[0]) if row else step.id
        return self.create_task(
            {
                "text": self.task_text(first) + extra, "agent": agent, "category": step.category, "rule": "plan",
                "route_reason": why, "state": TaskState.QUEUED, "cwd": step.cwd, "project": step.project,
                "requester": requester, "source": source, "created_at": now, "queued_at": now,
                "timeout_s": step.timeout_s, "cost_cap_usd": step.cost_cap_usd, "estimate_usd": step.estimate_usd,
                "parent_id": step.id, "plan_id": step.plan_id, "plan_step": step.plan_step,
                "step_title": step.step_title, "step_after": json.dumps(list(step.step_after)), "host": step.host,
            }
        )  # fmt: skip

    def follow_up(self, task: Task, text: str, *, requester: str, source: str, now: float) -> Task:
        """A queued follow-up of ``task`` in its agent session (its worktree and branch too): what
        was said to it while it ran, after its text."""
        return self.create_task(
            {
                "text": text, "agent": task.agent, "category": task.category, "rule": "follow-up",
                "route_reason": f"what was said to {task.id} while it ran", "state": TaskState.QUEUED, "cwd": task.cwd,
                "project": task.project, "requester": requester, "source": source, "created_at": now,
                "queued_at": now, "timeout_s": task.timeout_s, "cost_cap_usd": task.cost_cap_usd,
                "parent_id": task.id, "session_id": task.session_id, "host": task.host,
            }
        )  # fmt: skip

    def mark_branch(self, worktree: str, branch: str, **fields: Any) -> int:
        """Set ``landed``/``pr_url``/... on every task of a branch; how many rows changed."""
        for name in fields:
            if name not in _COLUMNS:
                raise KeyError(name)
        sets = ", ".join(f"{name} = ?" for name in fields)
        cursor = self._conn.execute(
            f"UPDATE tasks SET {sets} WHERE worktree = ? AND branch = ?", [*fields.values(), worktree, branch]
        )
        return cursor.rowcount

    def queued_tasks(self) -> list[Task]:
        """Queued tasks, oldest first (the FIFO order of the dispatcher)."""
        return self.list_tasks(states=[TaskState.QUEUED], limit=1_000_000, newest_first=False)

    def worktree_tasks(self) -> list[Task]:
        """Tasks that ran in a worktree (or on a branch), oldest first: housekeeping's owners."""
        rows = self._conn.execute("SELECT * FROM tasks WHERE worktree IS NOT NULL OR branch IS NOT NULL ORDER BY num")
        return [_task_from_row(self._row_dict(row)) for row in rows.fetchall()]

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

    # -- running and finished tasks, for spend, digests and watchdogs --------------------
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

    def session_runs(self, agent: str, session_id: str) -> list[Task]:
        """Finished tasks of ``agent`` that ran in the CLI session ``session_id``, latest first."""
        rows = self._conn.execute(
            "SELECT * FROM tasks WHERE agent = ? AND session_id = ? AND finished_at IS NOT NULL "
            "ORDER BY finished_at DESC, num DESC",
            (agent, session_id),
        ).fetchall()
        return [_task_from_row(self._row_dict(row)) for row in rows]

    def silent_tasks(self, before: float) -> list[Task]:
        """Running tasks whose last event (or start) is older than ``before``, oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM tasks WHERE state = ? AND COALESCE(last_event_at, started_at, updated_at, created_at) < ? "
            "ORDER BY num",
            (TaskState.RUNNING, before),
        ).fetchall()
        return [_task_from_row(self._row_dict(row)) for row in rows]


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
        worktree=row.get("worktree"),
        branch=row.get("branch"),
        project=row.get("project"),
        landed=row.get("landed"),
        landed_by=row.get("landed_by"),
        landed_at=row.get("landed_at"),
        pr_url=row.get("pr_url"),
        plan_id=row.get("plan_id"),
        plan_step=row.get("plan_step"),
        step_title=row.get("step_title"),
        step_after=tuple(json.loads(row["step_after"])) if row.get("step_after") else (),
        host=row.get("host"),
    )
