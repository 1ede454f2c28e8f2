"""The store: every table and every SQL statement of Orchestra lives in this package.

SQLite through sqlite-utils, WAL mode, a busy timeout so the bot process, the CLI and the
engine can write at once. Schema changes are numbered migrations applied at open, in order,
each exactly once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from core.redact import Redactor
from core.store._base import RedactingConnection
from core.store.audit import AuditMixin
from core.store.costs import CostsMixin
from core.store.digests import DigestsMixin
from core.store.inbound import INBOUND_ATTEMPTS, InboundMixin
from core.store.migrations import MIGRATIONS
from core.store.outbox import OutboxMixin
from core.store.tasks import TasksMixin

__all__ = ["INBOUND_ATTEMPTS", "MIGRATIONS", "Store"]


class Store(TasksMixin, CostsMixin, DigestsMixin, AuditMixin, OutboxMixin, InboundMixin):
    """Owns the SQLite database file. Safe to open from several processes at once.

    ``redactor`` holds the secrets the config knows of: no value of theirs is ever written, in
    any table (every text the store binds into a statement goes through it).
    """

    def __init__(self, path: Path | str, *, redactor: Redactor | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.redactor = redactor or Redactor()
        conn = sqlite3.connect(
            str(self.path), timeout=30, isolation_level=None, check_same_thread=False, factory=RedactingConnection
        )
        conn.redactor = self.redactor
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        self.db = sqlite_utils.Database(conn)
        self._conn = conn
        self._column_cache: dict[str, list[str]] = {}
        self._migrate()

    def close(self) -> None:
        self._conn.close()

    # -- schema -------------------------------------------------------------------------
    def _migrate(self) -> None:
        self._conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
        for name, apply in MIGRATIONS:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                done = self._conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone()
                if not done:
                    apply(self.db)
                    self._conn.execute(
                        "INSERT INTO _migrations (name, applied_at) VALUES (?, strftime('%s','now'))", (name,)
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self._conn.execute("SELECT name FROM _migrations ORDER BY name")]
