"""The web dashboard's links and sessions in the store: digests of tokens only, each link used once."""

from __future__ import annotations

from dataclasses import dataclass

from core.store._base import _Base


@dataclass(frozen=True)
class WebSession:
    """A signed-in browser: who (``telegram:111``, ``cli:local``), its CSRF token, until when."""

    user: str
    name: str
    csrf: str
    via: str  # link | miniapp
    expires_at: float


class WebMixin(_Base):
    """The ``web_links`` and ``web_sessions`` tables (migration ``WEB_MIGRATION``)."""

    def add_web_link(self, digest: str, user: str, name: str, now: float, expires_at: float) -> None:
        self._conn.execute(
            "INSERT INTO web_links (digest, user, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            (digest, user, name, now, expires_at),
        )

    def use_web_link(self, digest: str, now: float) -> tuple[str, str] | None:
        """Spend the link: its (user, name) the first time, before it expires; None after, and for any other."""
        with self.atomic():
            row = self._conn.execute(
                "SELECT user, name FROM web_links WHERE digest = ? AND used_at IS NULL AND expires_at > ?",
                (digest, now),
            ).fetchone()
            if row is None:
                return None
            self._conn.execute("UPDATE web_links SET used_at = ? WHERE digest = ?", (now, digest))
        return str(row[0]), str(row[1])

    def add_web_session(self, digest: str, session: WebSession, now: float) -> None:
        with self.atomic():
            self._conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (now,))
            self._conn.execute("DELETE FROM web_links WHERE expires_at <= ?", (now,))
            self._conn.execute(
                "INSERT INTO web_sessions (digest, user, name, csrf, via, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (digest, session.user, session.name, session.csrf, session.via, now, session.expires_at),
            )

    def web_session(self, digest: str, now: float) -> WebSession | None:
        row = self._conn.execute(
            "SELECT user, name, csrf, via, expires_at FROM web_sessions WHERE digest = ? AND expires_at > ?",
            (digest, now),
        ).fetchone()
        return None if row is None else WebSession(str(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4]))

    def end_web_session(self, digest: str) -> None:
        self._conn.execute("DELETE FROM web_sessions WHERE digest = ?", (digest,))

    def revoke_web_sessions(self) -> int:
        """End every session and unused link; how many sessions there were."""
        with self.atomic():
            ended = self._conn.execute("DELETE FROM web_sessions").rowcount
            self._conn.execute("DELETE FROM web_links")
        return int(ended)


__all__ = ["WebMixin", "WebSession"]
