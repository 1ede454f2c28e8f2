"""Schedules made at run time (chat, CLI), kept next to bots.yaml's: the ``schedules`` table."""

from __future__ import annotations

from typing import Any

from core.store._base import _Base


class SchedulesMixin(_Base):
    def add_schedule(self, cron: str, task: str, *, once: bool, created_by: str, ts: float) -> str:
        with self.atomic():
            num = int(self._conn.execute("SELECT COALESCE(MAX(num), 0) + 1 FROM schedules").fetchone()[0])
            self._conn.execute(
                "INSERT INTO schedules (num, name, cron, task, once, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (num, f"s{num}", cron, task, int(once), created_by, ts),
            )
        return f"s{num}"

    def stored_schedules(self) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT name, cron, task, once, created_by, created_at FROM schedules ORDER BY num"
        ).fetchall()
        keys = ("name", "cron", "task", "once", "created_by", "created_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def remove_schedule(self, name: str) -> bool:
        return self._conn.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount == 1


__all__ = ["SchedulesMixin"]
