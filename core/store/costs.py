"""What runs cost: one row per run, spend per period, and budgets set at run time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.store._base import _Base

if TYPE_CHECKING:  # usage rows are built only by the cost queries that return them
    from collections.abc import Sequence

    from core.agents.base import Usage

_COST_GROUPS = ("agent", "category", "model")


class CostsMixin(_Base):
    """The ``costs`` and ``budget_overrides`` tables."""

    # -- costs ----------------------------------------------------------------------------
    def record_cost(self, row: dict[str, Any]) -> None:
        self.db.table("costs").insert(row, replace=True)

    def cost_history(self, agent: str, category: str, limit: int = 200) -> list[float]:
        rows = self._conn.execute(
            "SELECT cost_usd FROM costs WHERE agent = ? AND category = ? AND cost_usd IS NOT NULL "
            "ORDER BY ts DESC LIMIT ?",
            (agent, category, limit),
        ).fetchall()
        return [float(r[0]) for r in rows]

    def estimate_totals(self, start: float, end: float) -> tuple[float, float, int]:
        """Estimated and actual cost of the tasks that finished in ``[start, end)`` with both known."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(estimate_usd), 0), COALESCE(SUM(cost_usd), 0), COUNT(*) FROM tasks "
            "WHERE finished_at >= ? AND finished_at < ? AND estimate_usd IS NOT NULL AND cost_usd IS NOT NULL "
            "AND cost_usd > 0",
            (start, end),
        ).fetchone()
        return float(row[0]), float(row[1]), int(row[2])

    def duration_history(self, agent: str, category: str, limit: int = 200) -> list[float]:
        """How long this agent's successful runs on this category took, newest first (seconds)."""
        rows = self._conn.execute(
            "SELECT finished_at - started_at FROM tasks WHERE agent = ? AND category = ? AND state IN "
            "('succeeded', 'approved', 'needs_review') AND started_at IS NOT NULL AND finished_at IS NOT NULL "
            "ORDER BY finished_at DESC LIMIT ?",
            (agent, category, limit),
        ).fetchall()
        return [float(r[0]) for r in rows]

    def task_model(self, task_id: str) -> str | None:
        """The model a task's last run reported using, if it reported one."""
        row = self._conn.execute(
            "SELECT model FROM costs WHERE task_id = ? AND model IS NOT NULL AND model != '' ORDER BY ts DESC LIMIT 1",
            (task_id,),
        ).fetchone()
        return None if row is None else str(row[0])

    def median_cost(self, agent: str, category: str) -> tuple[float | None, int]:
        import statistics  # with fractions and decimal, ~9 ms: only an estimate needs it

        history = self.cost_history(agent, category)

        return (statistics.median(history), len(history)) if history else (None, 0)

    def cost_totals(self, since: float = 0.0) -> dict[str, Any]:
        """Spend since ``since`` by agent and by category, plus the total and task count."""
        total = self._conn.execute(
            "SELECT COALESCE(SUM(cost_usd), 0), COUNT(*), SUM(cost_usd IS NULL) FROM costs WHERE ts >= ?", (since,)
        ).fetchone()
        by_agent = self._conn.execute(
            "SELECT agent, COALESCE(SUM(cost_usd), 0), COUNT(*) FROM costs WHERE ts >= ? GROUP BY agent "
            "ORDER BY 2 DESC",
            (since,),
        ).fetchall()
        by_category = self._conn.execute(
            "SELECT category, COALESCE(SUM(cost_usd), 0), COUNT(*) FROM costs WHERE ts >= ? GROUP BY category "
            "ORDER BY 2 DESC",
            (since,),
        ).fetchall()
        return {
            "total_usd": float(total[0]),
            "tasks": int(total[1]),
            "unknown": int(total[2] or 0),
            "by_agent": [(a, float(c), int(n)) for a, c, n in by_agent],
            "by_category": [(a, float(c), int(n)) for a, c, n in by_category],
        }

    # -- spend per period (timestamps are epoch seconds; ranges are [start, end)) ---------
    def cost_sum(self, start: float, end: float) -> tuple[float, int, int]:
        """Recorded spend in the range: (dollars, tasks, tasks whose cost is unknown)."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(cost_usd), 0), COUNT(*), COUNT(*) - COUNT(cost_usd) FROM costs "
            "WHERE ts >= ? AND ts < ?",
            (start, end),
        ).fetchone()
        return float(row[0]), int(row[1]), int(row[2])

    def cost_by(self, column: str, start: float, end: float) -> list[tuple[str, float, int]]:
        """Spend in the range grouped by ``agent``, ``category`` or ``model``, largest first."""
        if column not in _COST_GROUPS:
            raise ValueError(f"cannot group costs by {column!r}")
        rows = self._conn.execute(
            f"SELECT COALESCE({column}, ''), COALESCE(SUM(cost_usd), 0), COUNT(*) FROM costs "
            "WHERE ts >= ? AND ts < ? GROUP BY 1 ORDER BY 2 DESC, 1",
            (start, end),
        ).fetchall()
        return [(str(name), float(usd), int(n)) for name, usd, n in rows]

    def cost_buckets(self, bounds: Sequence[float], *, by: str | None = None) -> list[tuple[int, str, float, int]]:
        """Spend in consecutive buckets ``[bounds[i], bounds[i+1])``: (i, name, dollars, tasks).

        ``by`` splits each bucket by agent or category (``name`` is '' without it). Buckets with no
        cost row are absent. The boundaries come from the caller, so days and months follow the
        configured time zone and its daylight-saving changes.
        """
        if len(bounds) < 2:
            return []
        if by is not None and by not in _COST_GROUPS:
            raise ValueError(f"cannot group costs by {by!r}")
        name = f"COALESCE(c.{by}, '')" if by else "''"
        values = ", ".join("(?, ?, ?)" for _ in range(len(bounds) - 1))
        params = [v for i in range(len(bounds) - 1) for v in (i, bounds[i], bounds[i + 1])]
        rows = self._conn.execute(
            f"WITH buckets(i, lo, hi) AS (VALUES {values}) "
            f"SELECT b.i, {name}, COALESCE(SUM(c.cost_usd), 0), COUNT(*) FROM buckets b "
            "JOIN costs c ON c.ts >= b.lo AND c.ts < b.hi GROUP BY 1, 2 ORDER BY 1, 3 DESC",
            params,
        ).fetchall()
        return [(int(i), str(n), float(usd), int(count)) for i, n, usd, count in rows]

    def cost_usage_by_model(self, start: float, end: float) -> list[tuple[str, Usage, float, int]]:
        """Tokens and known cost per model, over rows that have both (the basis of savings)."""
        from core.agents.base import Usage

        rows = self._conn.execute(
            "SELECT COALESCE(model, ''), SUM(COALESCE(input_tokens, 0)), SUM(COALESCE(output_tokens, 0)), "
            "SUM(COALESCE(cache_read_tokens, 0)), SUM(COALESCE(cache_write_tokens, 0)), SUM(cost_usd), COUNT(*) "
            "FROM costs WHERE ts >= ? AND ts < ? AND cost_usd IS NOT NULL "
            "AND COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0) > 0 GROUP BY 1 ORDER BY 6 DESC",
            (start, end),
        ).fetchall()
        return [
            (str(model), Usage(int(i), int(o), int(cr), int(cw)), float(usd), int(n))
            for model, i, o, cr, cw, usd, n in rows
        ]

    def usage_by_agent(self) -> list[tuple[str, float, int, int, Usage]]:
        """All-time totals per agent from the costs table, one row per recorded run.

        (agent, dollars, runs, runs whose cost is unknown, tokens). Sums over rows that are never
        rewritten, so they only grow: fit for Prometheus counters that survive a restart.
        """
        from core.agents.base import Usage

        rows = self._conn.execute(  # grouped on the bare column, so the covering index of migration 006 serves it
            "SELECT agent, TOTAL(cost_usd), COUNT(*), COUNT(*) - COUNT(cost_usd), SUM(input_tokens), "
            "SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens) FROM costs "
            "GROUP BY agent ORDER BY agent"
        ).fetchall()
        return [
            (agent or "", float(usd), int(runs), int(unknown), Usage(*(int(n or 0) for n in tokens)))
            for agent, usd, runs, unknown, *tokens in rows
        ]

    # -- budgets set at run time ----------------------------------------------------------
    def budget_overrides(self) -> dict[str, tuple[float | None, str, float]]:
        """Budget name (``per_day_usd``...) → (value or None for no budget, who set it, when)."""
        rows = self._conn.execute("SELECT name, value, set_by, set_at FROM budget_overrides").fetchall()
        return {str(name): (value, str(by), float(at)) for name, value, by, at in rows}

    def set_budget_override(self, name: str, value: float | None, set_by: str, ts: float) -> None:
        self._conn.execute(
            "INSERT INTO budget_overrides (name, value, set_by, set_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, set_by = excluded.set_by, "
            "set_at = excluded.set_at",
            (name, value, set_by, ts),
        )

    def clear_budget_override(self, name: str) -> bool:
        return self._conn.execute("DELETE FROM budget_overrides WHERE name = ?", (name,)).rowcount == 1
