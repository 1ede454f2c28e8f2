"""Chat updates received: the journal that survives a crash, and one-shot claims."""

from __future__ import annotations

import json
from typing import Any

from core.store._base import _Base

INBOUND_ATTEMPTS = 5
"""How many times a chat update is tried (a start, a crash, a start...) before it is marked failed."""


class InboundMixin(_Base):
    """The ``inbound`` and ``inbound_seen`` tables."""

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
