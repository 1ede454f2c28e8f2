"""Spend and budgets: the cost report, the budgets in force, and an admin's change to one at run time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import InvalidInput
from core.service.base import LOCAL, Actor, ServiceBase

if TYPE_CHECKING:
    from core.costs import BudgetLine, CostReport

MAX_BUDGET_USD = 1_000_000.0


class Budgets(ServiceBase):
    """What was spent against which budget; ``set_budget`` is audited like every change."""

    def budgets(self) -> list[BudgetLine]:
        """Each budget an admin can change: in force now, where it comes from, what bots.yaml says."""
        from core.costs import BUDGET_NAMES, BudgetLine

        overrides = self.store.budget_overrides()
        lines = []
        for word, name in BUDGET_NAMES.items():
            configured = getattr(self.config.budgets, name)
            value, set_by, set_at = overrides.get(name, (configured, "", 0.0))
            lines.append(BudgetLine(word, name, value, configured, set_by, set_at))
        return lines

    def set_budget(self, word: str, value: str, *, actor: Actor = LOCAL) -> BudgetLine:
        """Change a budget at run time: a dollar amount, ``off`` (no budget) or ``reset`` (bots.yaml's)."""
        from core.costs import BUDGET_NAMES

        name = BUDGET_NAMES.get(word.lower())
        if name is None:
            raise InvalidInput(f"unknown budget {word!r}: use task, day or month")
        before = next(b for b in self.budgets() if b.name == name)
        text = value.strip().lower().removeprefix("$")
        if text == "reset":
            self.store.clear_budget_override(name)
        else:
            amount = None if text in ("off", "none") else _amount(text)
            self.store.set_budget_override(name, amount, actor.name, self.clock.now())
        after = next(b for b in self.budgets() if b.name == name)
        self.audit(actor, "budget", None, f"{word} {before.shown()} → {after.shown()}")
        return after

    def budget_report(self) -> str:
        """The budgets in force and what was spent against each (`/budget`)."""
        from core.costs import CostTracker, render_budgets

        tracker = CostTracker(self.store, self.config, self.clock)
        return render_budgets(self.budgets(), tracker.budgets(), tracker.tz)

    def cost_report(self, *, days: float | None = None, all_time: bool = False) -> CostReport:
        """Spend today, this week and month against the budgets, breakdowns and savings (`/cost`)."""
        from core.costs import CostTracker, cost_report

        return cost_report(CostTracker(self.store, self.config, self.clock), days=days, all_time=all_time)


def _amount(text: str) -> float:
    try:
        amount = float(text.replace(",", ""))
    except ValueError:
        raise InvalidInput(f"{text!r} is not an amount: give dollars (25 or 2.50), off or reset") from None
    if not 0.01 <= amount <= MAX_BUDGET_USD:  # also NaN
        raise InvalidInput(f"a budget is at least $0.01 and at most ${MAX_BUDGET_USD:,.0f}")
    return round(amount, 2)


__all__ = ["MAX_BUDGET_USD", "Budgets"]
