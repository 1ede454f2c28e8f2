"""bots.yaml ``limits``, ``budgets`` and ``policy``: how much runs, what it may cost, what waits for a person."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from core.config.fields import Seconds, StrictModel


class LimitsConfig(StrictModel):
    """Bounds on every task and on the engine."""

    max_concurrent: int = Field(
        default=4, ge=1, description="Tasks running at once, all agents together; the rest wait in a FIFO queue."
    )
    task_timeout_s: Seconds = Field(
        default=3600, gt=0, description="A task still running after this is stopped and ends timed_out."
    )
    cancel_grace_s: Seconds = Field(
        default=5, ge=0, description="On cancel: SIGTERM, then SIGKILL after this many seconds."
    )
    max_task_chars: int = Field(default=200_000, ge=1, description="Longer task text is refused with one line.")
    log_max_bytes: int = Field(
        default=50_000_000, ge=0, description="Raw output kept per task; the rest is dropped (the run goes on)."
    )
    events_max_bytes: int = Field(
        default=20_000_000,
        ge=0,
        description="Events kept per task (events.jsonl and the store); past it output events are dropped and counted.",
    )
    engine_idle_exit_s: Seconds = Field(
        default=300, ge=0, description="The on-demand background engine exits after this long with nothing to do."
    )
    isolation: Literal["worktree", "none"] = Field(
        default="none",
        description="worktree: a task in a git repository runs in its own worktree on a new branch"
        " orchestra/<id>-<slug>, cut from the current branch; none: in the directory itself.",
    )


class BudgetsConfig(StrictModel):
    """What tasks may cost: a hard cap per task, and day and month budgets with alerts."""

    per_task_usd: float | None = Field(
        default=None,
        gt=0,
        description="Hard cap: the runner stops the agent when its live cost crosses it (over_budget); null: none.",
    )
    default_estimate_usd: float = Field(
        default=0.5, ge=0, description="The estimate shown until an agent has history on a category."
    )
    per_day_usd: float | None = Field(
        default=None,
        gt=0,
        description="Once a day's spend (running tasks included) reaches it, see when_exceeded; null: no budget.",
    )
    per_month_usd: float | None = Field(
        default=None, gt=0, description="The same for the calendar month; null: no budget."
    )
    when_exceeded: Literal["approve", "refuse"] = Field(
        default="approve",
        description="With a budget spent: approve (new tasks wait for `orchestra approve`) or refuse them.",
    )
    alert_thresholds: list[int] = Field(
        default_factory=lambda: [50, 80, 100],
        description="Percent of a day or month budget; each alerts once per period.",
    )
    reference_model: str | None = Field(
        default=None,
        description="Savings are priced against this model; null: the priciest model your tasks used.",
    )
    check_every_s: Seconds = Field(
        default=60, gt=0, description="How often the bot process checks the budgets for alerts."
    )

    @field_validator("alert_thresholds")
    @classmethod
    def _percentages(cls, thresholds: list[int]) -> list[int]:
        for value in thresholds:
            if not 1 <= value <= 1000:
                raise ValueError(f"{value} is not a percentage between 1 and 1000")
        return sorted(set(thresholds))


class PolicyConfig(StrictModel):
    """Which tasks wait for a person: before they start (approval) or after they end (review)."""

    approval_for: list[str] = Field(
        default_factory=list, description="Categories that need `approve` before they start."
    )
    review_for: list[str] = Field(
        default_factory=list,
        description="Categories that end in needs_review (approve, or reject with a reason).",
    )
    approve_above_usd: float | None = Field(
        default=None, ge=0, description="Tasks estimated above this need approval first; null: no threshold."
    )
