"""Permission requests: the tool calls a person was asked about or the policy refused, and their answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.store._base import _Base

PENDING, ALLOWED, DENIED, TIMED_OUT, CANCELLED = "pending", "allowed", "denied", "timed_out", "cancelled"
OPEN_STATES = (PENDING,)
_COLUMNS = (
    "id, key, task_id, agent, tool, subject, detail, cli_tool, rule, why, state, grant_rule, reason,"
    " decided_by, via, created_at, deadline, decided_at"
)


@dataclass(frozen=True)
class PermissionRequest:
    """One row of ``permissions``; ``ref`` is how people name it (``p12``)."""

    id: int
    key: str
    task_id: str
    agent: str
    tool: str
    subject: str
    detail: str
    cli_tool: str
    rule: str
    why: str
    state: str
    grant_rule: str | None
    reason: str | None
    decided_by: str | None
    via: str | None
    created_at: float
    deadline: float
    decided_at: float | None

    @property
    def ref(self) -> str:
        return f"p{self.id}"

    @property
    def pending(self) -> bool:
        return self.state == PENDING

    @property
    def allowed(self) -> bool:
        return self.state == ALLOWED

    def shown(self) -> str:
        return f"{self.tool}({self.subject})" if self.subject else self.tool


class PermissionsMixin(_Base):
    """The ``permissions`` table. Every decision is a compare-and-set from ``pending``: the first wins."""

    def open_permission(
        self,
        *,
        key: str,
        task_id: str,
        agent: str,
        call: dict[str, str],
        rule: str,
        why: str,
        now: float,
        deadline: float,
        state: str = PENDING,
        reason: str | None = None,
        decided_by: str | None = None,
        via: str | None = None,
    ) -> tuple[PermissionRequest, bool]:
        """The request under ``key``, made now unless the hook asked before: (request, made now)."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO permissions (key, task_id, agent, tool, subject, detail, cli_tool, rule, why,"
            " state, reason, decided_by, via, created_at, deadline, decided_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key, task_id, agent, call.get("tool", ""), call.get("subject", ""), call.get("detail", ""),
                call.get("cli_tool", ""), rule, why, state, reason, decided_by, via, now, deadline,
                None if state == PENDING else now,
            ),
        )  # fmt: skip
        made = cursor.rowcount == 1
        request = self.permission_by_key(key)
        assert request is not None
        return request, made

    def permission_by_key(self, key: str) -> PermissionRequest | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM permissions WHERE key = ?", (key,)).fetchone()
        return PermissionRequest(*row) if row else None

    def permission(self, request_id: int) -> PermissionRequest | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM permissions WHERE id = ?", (request_id,)).fetchone()
        return PermissionRequest(*row) if row else None

    def decide_permission(
        self,
        request_id: int,
        state: str,
        *,
        by: str,
        via: str,
        now: float,
        reason: str | None = None,
        grant: str | None = None,
    ) -> bool:
        """Answer a pending request; False when it was answered already (the first answer wins)."""
        cursor = self._conn.execute(
            "UPDATE permissions SET state = ?, decided_by = ?, via = ?, decided_at = ?, reason = ?, grant_rule = ?"
            " WHERE id = ? AND state = ?",
            (state, by, via, now, reason, grant, request_id, PENDING),
        )
        return cursor.rowcount == 1

    def open_permissions(self, task_id: str | None = None) -> list[PermissionRequest]:
        """Requests still waiting for a person, oldest first (of one task, or of all)."""
        where, args = ("state = ?", [PENDING]) if task_id is None else ("state = ? AND task_id = ?", [PENDING, task_id])
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM permissions WHERE {where} ORDER BY id", args).fetchall()
        return [PermissionRequest(*row) for row in rows]

    def task_permissions(self, task_id: str) -> list[PermissionRequest]:
        """Every request and refusal of a task, oldest first."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM permissions WHERE task_id = ? ORDER BY id", (task_id,)
        ).fetchall()
        return [PermissionRequest(*row) for row in rows]

    def task_grants(self, task_id: str) -> list[str]:
        """The rules "Allow for this task" added to a task, in the order they were given."""
        rows = self._conn.execute(
            "SELECT grant_rule FROM permissions WHERE task_id = ? AND grant_rule IS NOT NULL ORDER BY id", (task_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def waiting_since(self, task_ids: list[str]) -> dict[str, float]:
        """For each task with an open request: since when it has been waiting for a person."""
        if not task_ids:
            return {}
        marks = ", ".join("?" for _ in task_ids)
        rows = self._conn.execute(
            f"SELECT task_id, MIN(created_at) FROM permissions WHERE state = ? AND task_id IN ({marks})"
            " GROUP BY task_id",
            [PENDING, *task_ids],
        ).fetchall()
        return {row[0]: float(row[1]) for row in rows}

    def last_permission_answer(self, task_id: str) -> float | None:
        """When a request of the task was last answered (the watchdog counts silence from it)."""
        row = self._conn.execute(
            "SELECT MAX(decided_at) FROM permissions WHERE task_id = ? AND decided_at IS NOT NULL", (task_id,)
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None


class PermissionRulesMixin(_Base):
    """The ``permission_rules`` table: one kind (allow, ask, deny) per rule; a rule set again moves."""

    def set_permission_rule(self, kind: str, rule: str, set_by: str, ts: float) -> None:
        self._conn.execute(
            "INSERT INTO permission_rules (rule, kind, set_by, set_at) VALUES (?, ?, ?, ?) ON CONFLICT (rule)"
            " DO UPDATE SET kind = excluded.kind, set_by = excluded.set_by, set_at = excluded.set_at",
            (rule, kind, set_by, ts),
        )

    def remove_permission_rule(self, rule: str) -> bool:
        return self._conn.execute("DELETE FROM permission_rules WHERE rule = ?", (rule,)).rowcount == 1

    def permission_rules(self) -> dict[str, list[str]]:
        """The run-time lists, oldest rule first: ``{"allow": [...], "ask": [...], "deny": [...]}``."""
        lists: dict[str, list[str]] = {"allow": [], "ask": [], "deny": []}
        for rule, kind in self._conn.execute("SELECT rule, kind FROM permission_rules ORDER BY set_at, rule"):
            lists.setdefault(kind, []).append(rule)
        return lists


def permission_row(request: PermissionRequest) -> dict[str, Any]:
    """A request as JSON for ``--json`` output."""
    return {
        "ref": request.ref, "task": request.task_id, "agent": request.agent, "tool": request.tool,
        "subject": request.subject, "state": request.state, "why": request.why, "rule": request.rule,
        "decided_by": request.decided_by, "via": request.via, "reason": request.reason,
        "created_at": request.created_at, "deadline": request.deadline, "decided_at": request.decided_at,
    }  # fmt: skip
