"""Plans in the store: the ``plans`` table, and a plan's steps (the tasks that carry its id)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import UnknownTask
from core.store._base import _Base

if TYPE_CHECKING:
    from core.models import Task

PLAN_STATES = ("awaiting_approval", "running", "paused", "succeeded", "failed", "cancelled")
PLAN_FINISHED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Plan:
    """One row of ``plans``: the request, its state, where it came from and what it was estimated at."""

    id: str
    text: str
    state: str
    origin: str  # written, file, template NAME, planner
    created_at: float
    requester: str = ""
    source: str = "cli"
    project: str | None = None
    cwd: str = ""
    finished_at: float | None = None
    estimate_usd: float | None = None
    estimate_s: float | None = None
    estimate_note: str = ""
    paused: str = ""  # why it waits for a person (a step failed twice, a conflict)
    skipped: tuple[int, ...] = ()
    actual_usd: float | None = None
    actual_s: float | None = None
    repo: str | None = None  # with a branch: each step is cut from it and merged back into it when done
    branch: str | None = None
    base: str | None = None
    landed: str | None = None
    landed_by: str | None = None
    landed_at: float | None = None
    pr_url: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in PLAN_FINISHED


class PlansMixin(_Base):
    """Plans and their steps; a step is a task with ``plan_id`` and ``plan_step`` set."""

    def create_plan(self, fields: dict[str, Any]) -> Plan:
        with self.atomic():
            num = int(self._conn.execute("SELECT COALESCE(MAX(num), 0) + 1 FROM plans").fetchone()[0])
            record = {**fields, "num": num, "id": f"p{num}"}
            columns, marks = ", ".join(record), ", ".join("?" for _ in record)
            self._conn.execute(f"INSERT INTO plans ({columns}) VALUES ({marks})", list(record.values()))
        return self.get_plan(f"p{num}")

    def next_plan_number(self) -> int:
        """The number the next plan gets (its branch is named before it is stored)."""
        return int(self._conn.execute("SELECT COALESCE(MAX(num), 0) + 1 FROM plans").fetchone()[0])

    def get_plan(self, plan_id: str) -> Plan:
        row = self._conn.execute("SELECT * FROM plans WHERE id = ?", (plan_id,)).fetchone()
        if row is None:
            raise UnknownTask(plan_id)
        return _plan(self._row_dict(row, "plans"))

    def find_plan(self, plan_id: str) -> Plan | None:
        try:
            return self.get_plan(plan_id)
        except UnknownTask:
            return None

    def plan_by_source(self, ref: str) -> Plan | None:
        row = self._conn.execute("SELECT * FROM plans WHERE source_ref = ?", (ref,)).fetchone()
        return _plan(self._row_dict(row, "plans")) if row else None

    def plans(self, *, states: tuple[str, ...] | None = None, limit: int = 50) -> list[Plan]:
        if states:
            marks = ", ".join("?" for _ in states)
            rows = self._conn.execute(
                f"SELECT * FROM plans WHERE state IN ({marks}) ORDER BY num DESC LIMIT ?", [*states, limit]
            ).fetchall()
        else:
            rows = self._conn.execute("SELECT * FROM plans ORDER BY num DESC LIMIT ?", (limit,)).fetchall()
        return [_plan(self._row_dict(row, "plans")) for row in rows]

    def plan_tasks(self, plan_id: str) -> list[Task]:
        """Every task of the plan, step by step, each step's attempts oldest first."""
        from core.store.tasks import _task_from_row

        rows = self._conn.execute(
            "SELECT * FROM tasks WHERE plan_id = ? ORDER BY plan_step, num", (plan_id,)
        ).fetchall()
        return [_task_from_row(self._row_dict(row)) for row in rows]

    def update_plan(self, plan_id: str, **fields: Any) -> None:
        if "skipped" in fields:
            fields["skipped"] = json.dumps(sorted(fields["skipped"]))
        sets = ", ".join(f"{name} = ?" for name in fields)
        self._conn.execute(f"UPDATE plans SET {sets} WHERE id = ?", [*fields.values(), plan_id])

    def transition_plan(self, plan_id: str, from_states: tuple[str, ...], to_state: str, **fields: Any) -> bool:
        """Move a plan to ``to_state`` only from one of ``from_states`` (compare-and-set, once)."""
        sets = ", ".join(["state = ?", *(f"{name} = ?" for name in fields)])
        marks = ", ".join("?" for _ in from_states)
        cursor = self._conn.execute(
            f"UPDATE plans SET {sets} WHERE id = ? AND state IN ({marks})",
            [to_state, *fields.values(), plan_id, *from_states],
        )
        return cursor.rowcount == 1


def _plan(row: dict[str, Any]) -> Plan:
    return Plan(
        id=row["id"], text=row["text"], state=row["state"], origin=row["origin"], created_at=row["created_at"],
        requester=row.get("requester") or "", source=row.get("source") or "cli", project=row.get("project"),
        cwd=row.get("cwd") or "", finished_at=row.get("finished_at"), estimate_usd=row.get("estimate_usd"),
        estimate_s=row.get("estimate_s"), estimate_note=row.get("estimate_note") or "",
        paused=row.get("paused") or "", skipped=tuple(json.loads(row.get("skipped") or "[]")),
        actual_usd=row.get("actual_usd"), actual_s=row.get("actual_s"), repo=row.get("repo"),
        branch=row.get("branch"), base=row.get("base"), landed=row.get("landed"), landed_by=row.get("landed_by"),
        landed_at=row.get("landed_at"), pr_url=row.get("pr_url"),
    )  # fmt: skip


__all__ = ["PLAN_FINISHED", "PLAN_STATES", "Plan", "PlansMixin"]
