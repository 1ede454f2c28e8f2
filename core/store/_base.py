"""What every part of the store shares: the connection, and rows read back as dicts."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import sqlite_utils


class _Base:
    """The state the per-domain mixins of ``Store`` work on; ``Store.__init__`` sets it."""

    _conn: sqlite3.Connection
    db: sqlite_utils.Database
    _column_cache: dict[str, list[str]]

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction around the block, so a crash keeps all of it or none; inside one already, a no-op.

        ``BEGIN IMMEDIATE`` takes the write lock at once (other writers wait on the busy timeout), so
        keep slow work (subprocesses, the network) outside the block.
        """
        if self._conn.in_transaction:
            yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:  # SQLite may have rolled back itself (disk full, I/O error)
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _row_dict(self, row: tuple[Any, ...], table: str = "tasks") -> dict[str, Any]:
        names = self._columns(table)
        return dict(zip(names, row, strict=False))

    def _columns(self, table: str) -> list[str]:
        names = self._column_cache.get(table)
        if names is None:
            names = [r[1] for r in self._conn.execute(f"PRAGMA table_info({table})").fetchall()]
            self._column_cache[table] = names
        return names
