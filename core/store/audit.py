"""Who decided what: routing decisions, approvals and the audit log."""

from __future__ import annotations

from typing import Any

from core.store._base import _Base


class AuditMixin(_Base):
    """The ``routing_decisions``, ``approvals`` and ``audit`` tables."""

    def record_route(self, row: dict[str, Any]) -> None:
        self.db.table("routing_decisions").insert(row, replace=True)

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
