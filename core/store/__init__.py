"""The store: every table and every SQL statement of Orchestra lives in this package.

SQLite through sqlite-utils, WAL mode, a busy timeout so the bot process, the CLI and the
engine can write at once. Schema changes are numbered migrations applied at open, in order,
each exactly once.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from core.errors import StoreError
from core.redact import Redactor
from core.store._base import RedactingConnection
from core.store.audit import AuditMixin
from core.store.costs import CostsMixin
from core.store.digests import DigestsMixin
from core.store.inbound import INBOUND_ATTEMPTS, InboundMixin
from core.store.migrations import MIGRATIONS
from core.store.outbox import OutboxMixin
from core.store.permissions import PermissionRulesMixin, PermissionsMixin
from core.store.plans import PlansMixin
from core.store.projects import ProjectsMixin
from core.store.says import SaysMixin
from core.store.schedules import SchedulesMixin
from core.store.tasks import TasksMixin
from core.store.transcripts import TranscriptsMixin
from core.store.web import WebMixin

__all__ = ["BUSY_TIMEOUT_S", "INBOUND_ATTEMPTS", "MIGRATIONS", "Store", "store_error"]

# How long a write waits for another process's write lock before it gives up.
BUSY_TIMEOUT_S = 30.0


def store_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """The one line a user sees for a failed SQLite call on the store at ``path``."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        message = f"the store is busy (locked by another process for over {BUSY_TIMEOUT_S:g} s): {path}; try again"
    elif "full" in text or ("disk I/O error" in text and _disk_full(path.parent)):
        message = f"the disk is full: cannot write the store {path}"
    elif "not a database" in text or "malformed" in text:
        message = f"{path} is not a readable Orchestra store (corrupt?); move it aside and a new one is made"
    elif "readonly" in text or "read-only" in text or ("unable to open" in text and not _writable(path.parent)):
        message = f"the data directory {path.parent} is read-only: the store cannot be written"
    elif "unable to open" in text:
        message = f"cannot open the store {path}"
    else:
        message = f"the store {path}: {text}"
    return StoreError(message)


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK)


def _disk_full(folder: Path) -> bool:
    """SQLite reports a full disk as an I/O error when it cannot even make its shared-memory file."""
    try:
        return shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False


class Store(
    TasksMixin,
    CostsMixin,
    DigestsMixin,
    AuditMixin,
    OutboxMixin,
    InboundMixin,
    PermissionsMixin,
    PermissionRulesMixin,
    ProjectsMixin,
    PlansMixin,
    SchedulesMixin,
    SaysMixin,
    TranscriptsMixin,
    WebMixin,
):
    """Owns the SQLite database file. Safe to open from several processes at once.

    ``redactor`` holds the secrets the config knows of: no value of theirs is ever written, in
    any table (every text the store binds into a statement goes through it).
    """

    def __init__(self, path: Path | str, *, redactor: Redactor | None = None) -> None:
        """Open (creating it if needed) and migrate; ``StoreError`` (one line) when that cannot be done."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.redactor = redactor or Redactor()
        conn = sqlite3.connect(
            str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False,
            factory=RedactingConnection,
        )  # fmt: skip
        conn.redactor = self.redactor
        self._conn = conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA recursive_triggers = on")  # what sqlite-utils sets, whether or not it is used
            self._db = None
            self._column_cache: dict[str, list[str]] = {}
            self._migrate()
        except sqlite3.Error as exc:
            conn.close()
            raise store_error(exc, self.path) from None

    def close(self) -> None:
        self._conn.close()

    # -- schema -------------------------------------------------------------------------
    def _migrate(self) -> None:
        # Read first: an up-to-date store opens without the write lock, so a reader is not kept
        # waiting by another process's long write.
        if self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = '_migrations'").fetchone() is not None:
            applied = {row[0] for row in self._conn.execute("SELECT name FROM _migrations")}
            if all(name in applied for name, _ in MIGRATIONS):
                return
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
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self._conn.execute("SELECT name FROM _migrations ORDER BY name")]
