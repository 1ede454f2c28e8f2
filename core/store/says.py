"""What people said to running tasks: the ``says`` table (``core.service.talk``, ``core.engine.says``)."""

from __future__ import annotations

from dataclasses import dataclass

from core.store._base import _Base

LIVE, QUEUED = "live", "queued"  # delivered to the running agent / kept for a follow-up
WAITING, DELIVERED, FOLLOWED, DROPPED = "waiting", "delivered", "followed", "dropped"
_COLUMNS = "id, task_id, text, said_by, via, said_at, how, state, follow_id, ref"


@dataclass(frozen=True)
class Said:
    id: int
    task_id: str
    text: str
    said_by: str
    via: str
    said_at: float
    how: str
    state: str
    follow_id: str | None
    ref: str | None


class SaysMixin(_Base):
    def add_say(
        self, task_id: str, text: str, *, by: str, via: str, ts: float, how: str, ref: str | None
    ) -> tuple[Said, bool]:
        """Keep what was said: (it, made now). Once per ``ref``: a redelivered chat update finds the first."""
        if ref is not None and (known := self._say_where("ref = ?", ref)):
            return known[0], False
        cursor = self._conn.execute(
            "INSERT INTO says (task_id, text, said_by, via, said_at, how, ref) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (task_id, text, by, via, ts, how, ref),
        )
        return self._say_where("id = ?", cursor.lastrowid)[0], True

    def waiting_says(self, task_id: str | None = None) -> list[Said]:
        """Says not yet delivered, followed up or dropped, oldest first (of one task, or of all)."""
        if task_id is None:
            return self._say_where("state = ?", WAITING)
        return self._say_where("state = ? AND task_id = ?", WAITING, task_id)

    def say_by_ref(self, ref: str) -> Said | None:
        """What a chat update said, if it was kept already (a redelivered update)."""
        found = self._say_where("ref = ?", ref)
        return found[0] if found else None

    def task_says(self, task_id: str) -> list[Said]:
        return self._say_where("task_id = ?", task_id)

    def settle_say(self, say_id: int, state: str, follow_id: str | None = None) -> bool:
        cursor = self._conn.execute(
            "UPDATE says SET state = ?, follow_id = ? WHERE id = ? AND state = ?", (state, follow_id, say_id, WAITING)
        )
        return cursor.rowcount == 1

    def keep_say(self, say_id: int) -> None:
        """A message meant for a running agent that could not be passed on: kept for the follow-up instead."""
        self._conn.execute("UPDATE says SET how = ? WHERE id = ? AND state = ?", (QUEUED, say_id, WAITING))

    def _say_where(self, where: str, *args: object) -> list[Said]:
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM says WHERE {where} ORDER BY id", args).fetchall()
        return [Said(*row) for row in rows]


__all__ = ["DELIVERED", "DROPPED", "FOLLOWED", "LIVE", "QUEUED", "WAITING", "Said", "SaysMixin"]
