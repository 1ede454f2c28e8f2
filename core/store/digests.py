"""Digests and alerts sent: each recorded once under its key, so none goes out twice."""

from __future__ import annotations

from typing import Any

from core.store._base import _Base


class DigestsMixin(_Base):
    """The ``digests`` and ``alerts`` tables."""

    # -- digests and alerts: each recorded once under its key -----------------------------
    def record_digest(self, period: str, sent_at: float, since: float, until: float, tasks: int) -> bool:
        """Record the digest of ``period`` as sent; False if it already was."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO digests (period, sent_at, since, until, tasks) VALUES (?, ?, ?, ?, ?)",
            (period, sent_at, since, until, tasks),
        )
        return cursor.rowcount == 1

    def digest_sent(self, period: str) -> bool:
        return self._conn.execute("SELECT 1 FROM digests WHERE period = ?", (period,)).fetchone() is not None

    def last_digest(self) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT period, sent_at, since, until, tasks FROM digests ORDER BY sent_at DESC LIMIT 1"
        ).fetchone()
        return None if row is None else dict(zip(("period", "sent_at", "since", "until", "tasks"), row, strict=True))

    def record_alert(self, key: str, kind: str, ts: float, text: str) -> bool:
        """Record an alert under its unique key; False if it was recorded before (it is not sent again)."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO alerts (key, kind, ts, text) VALUES (?, ?, ?, ?)", (key, kind, ts, text)
        )
        return cursor.rowcount == 1

    def alert_recorded(self, key: str) -> bool:
        return self._conn.execute("SELECT 1 FROM alerts WHERE key = ?", (key,)).fetchone() is not None

    def alerts(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT key, kind, ts, text FROM alerts"
        params: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = ?"
            params.append(kind)
        rows = self._conn.execute(sql + " ORDER BY ts, key", params).fetchall()
        return [dict(zip(("key", "kind", "ts", "text"), row, strict=True)) for row in rows]
