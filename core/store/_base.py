"""What every part of the store shares: the connection, and rows read back as dicts."""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlite_utils


class _Base:
    """The state the per-domain mixins of ``Store`` work on; ``Store.__init__`` sets it."""

    _conn: sqlite3.Connection
    db: sqlite_utils.Database
    _column_cache: dict[str, list[str]]

    def _row_dict(self, row: tuple[Any, ...], table: str = "tasks") -> dict[str, Any]:
        names = self._columns(table)
        return dict(zip(names, row, strict=False))

    def _columns(self, table: str) -> list[str]:
        names = self._column_cache.get(table)
        if names is None:
            names = [r[1] for r in self._conn.execute(f"PRAGMA table_info({table})").fetchall()]
            self._column_cache[table] = names
        return names
