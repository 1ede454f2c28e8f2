"""Voice notes waiting to become tasks: the ``transcripts`` table (``core.voice``, ``core.commands.files``)."""

from __future__ import annotations

from dataclasses import dataclass

from core.store._base import _Base

PENDING, EDITING, RUN, DROPPED = "pending", "editing", "run", "dropped"
_COLUMNS = (
    "id, platform, chat_id, user_id, user_name, text, state, created_at, decided_at, decided_by, task_id, ref,"
    " message_id, topic, about_task"
)


@dataclass(frozen=True)
class Transcript:
    """A voice note's text as the endpoint heard it, shown with Run / Edit until one is tapped."""

    id: int
    platform: str
    chat_id: str
    user_id: str
    user_name: str
    text: str
    state: str
    created_at: float
    decided_at: float | None
    decided_by: str | None
    task_id: str | None
    ref: str | None
    message_id: str | None
    topic: str
    about_task: str | None = None  # the task whose card the note replied to

    @property
    def name(self) -> str:
        """How people and buttons name it: ``v3``."""
        return f"v{self.id}"


class TranscriptsMixin(_Base):
    def add_transcript(
        self, *, platform: str, chat_id: str, user_id: str, user_name: str, text: str, ts: float, ref: str | None,
        message_id: str | None, topic: str = "", about: str | None = None,
    ) -> Transcript:  # fmt: skip
        """Keep a transcript; once per ``ref`` (a redelivered voice note finds the first)."""
        if ref is not None and (known := self.transcript_by_ref(ref)) is not None:
            return known
        cursor = self._conn.execute(
            "INSERT INTO transcripts (platform, chat_id, user_id, user_name, text, created_at, ref, message_id, topic,"
            " about_task) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (platform, chat_id, user_id, user_name, text, ts, ref, message_id, topic, about),
        )
        found = self.transcript(int(cursor.lastrowid or 0))
        assert found is not None
        return found

    def transcript(self, transcript_id: int) -> Transcript | None:
        rows = self._transcripts_where("id = ?", transcript_id)
        return rows[0] if rows else None

    def transcript_by_ref(self, ref: str) -> Transcript | None:
        rows = self._transcripts_where("ref = ?", ref)
        return rows[0] if rows else None

    def editing_transcript(self, platform: str, chat_id: str, user_id: str) -> Transcript | None:
        """The transcript this person asked to correct in this chat (the newest), if one waits."""
        rows = self._transcripts_where(
            "platform = ? AND chat_id = ? AND user_id = ? AND state = ? ORDER BY id DESC LIMIT 1",
            platform, chat_id, user_id, EDITING,
        )  # fmt: skip
        return rows[0] if rows else None

    def move_transcript(self, transcript_id: int, frm: tuple[str, ...], to: str, **fields: object) -> bool:
        """Compare-and-set its state from one of ``frm``; False when it was not in one (a second tap)."""
        allowed = {"decided_at", "decided_by", "task_id", "text"}
        if not set(fields) <= allowed:
            raise KeyError(sorted(set(fields) - allowed))
        sets = "".join(f", {name} = ?" for name in fields)
        marks = ", ".join("?" for _ in frm)
        cursor = self._conn.execute(
            f"UPDATE transcripts SET state = ?{sets} WHERE id = ? AND state IN ({marks})",
            (to, *fields.values(), transcript_id, *frm),
        )
        return cursor.rowcount == 1

    def _transcripts_where(self, where: str, *args: object) -> list[Transcript]:
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM transcripts WHERE {where}", args).fetchall()
        return [Transcript(*row) for row in rows]


__all__ = ["DROPPED", "EDITING", "PENDING", "RUN", "Transcript", "TranscriptsMixin"]
