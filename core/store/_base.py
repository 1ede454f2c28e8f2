"""What every part of the store shares: the connection, and rows read back as dicts."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from typing import TYPE_CHECKING, Any

from core.redact import Redactor

if TYPE_CHECKING:  # sqlite-utils (and numpy with it) costs ~140 ms to import: only writes that use it load it
    from collections.abc import Iterator

    import sqlite_utils


class RedactingConnection(sqlite3.Connection):
    """A connection that redacts every text and blob bound into a statement: the store's one gate."""

    redactor: Redactor = Redactor()

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if parameters and self.redactor:
            parameters = self._clean(parameters)
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:
        return super().executemany(sql, (self._clean(parameters) for parameters in seq_of_parameters))

    def _clean(self, parameters: Any) -> Any:
        if isinstance(parameters, dict):
            return {key: self.redactor.value(value) for key, value in parameters.items()}
        return [self.redactor.value(value) for value in parameters]


class _Base:
    """The state the per-domain mixins of ``Store`` work on; ``Store.__init__`` sets it."""

    _conn: sqlite3.Connection
    redactor: Redactor
    _db: sqlite_utils.Database | None
    _column_cache: dict[str, list[str]]

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the store's connection, made on first use (a migration or an insert helper)."""
        if self._db is None:
            _import_sqlite_utils()
            import sqlite_utils

            # It sets PRAGMA recursive_triggers itself; ``Store`` did so already at open.
            self._db = sqlite_utils.Database(self._conn)
        return self._db

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
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:  # SQLite may have rolled back itself (disk full, I/O error)
                self._conn.execute("ROLLBACK")
            raise

    def _row_dict(self, row: tuple[Any, ...], table: str = "tasks") -> dict[str, Any]:
        names = self._columns(table)
        return dict(zip(names, row, strict=False))

    def _columns(self, table: str) -> list[str]:
        names = self._column_cache.get(table)
        if names is None:
            names = [r[1] for r in self._conn.execute(f"PRAGMA table_info({table})").fetchall()]
            self._column_cache[table] = names
        return names


def _import_sqlite_utils() -> None:
    """Import sqlite-utils without numpy: it loads numpy (~100 ms), when installed, only to map numpy
    types to columns, and the store never binds a numpy value. numpy already loaded is left as it is."""
    if "sqlite_utils" in sys.modules or "numpy" in sys.modules:
        return
    sys.modules["numpy"] = None  # type: ignore[assignment]  # makes `import numpy` raise ImportError
    try:
        import sqlite_utils  # noqa: F401
    finally:
        del sys.modules["numpy"]  # whoever imports numpy later gets it as usual
