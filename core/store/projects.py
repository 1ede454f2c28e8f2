"""Projects in the store: each chat's default project (``/project NAME``) and the tasks active in each project."""

from __future__ import annotations

from core.models import ACTIVE_STATES
from core.store._base import _Base


class ProjectsMixin(_Base):
    """The ``chat_projects`` table (one default per chat or forum topic) and counts over ``tasks.project``."""

    def chat_project(self, chat: str) -> str | None:
        """The project ``/project NAME`` set for this chat (see ``core.config.projects.chat_key``)."""
        row = self._conn.execute("SELECT project FROM chat_projects WHERE chat = ?", (chat,)).fetchone()
        return str(row[0]) if row else None

    def set_chat_project(self, chat: str, project: str, set_by: str, ts: float) -> None:
        self._conn.execute(
            "INSERT INTO chat_projects (chat, project, set_by, set_at) VALUES (?, ?, ?, ?) ON CONFLICT (chat)"
            " DO UPDATE SET project = excluded.project, set_by = excluded.set_by, set_at = excluded.set_at",
            (chat, project, set_by, ts),
        )

    def clear_chat_project(self, chat: str) -> bool:
        return self._conn.execute("DELETE FROM chat_projects WHERE chat = ?", (chat,)).rowcount == 1

    def active_by_project(self) -> dict[str | None, dict[str, int]]:
        """Project (None: none) -> state -> how many of its tasks are active (queued, running, waiting)."""
        marks = ", ".join("?" for _ in ACTIVE_STATES)
        rows = self._conn.execute(
            f"SELECT project, state, COUNT(*) FROM tasks WHERE state IN ({marks}) GROUP BY project, state",
            [str(state) for state in ACTIVE_STATES],
        ).fetchall()
        counts: dict[str | None, dict[str, int]] = {}
        for project, state, n in rows:
            counts.setdefault(project, {})[str(state)] = int(n)
        return counts


__all__ = ["ProjectsMixin"]
