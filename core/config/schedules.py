"""bots.yaml ``schedules``: tasks that start on their own at cron times, in the digest's time zone."""

from __future__ import annotations

from pydantic import Field, field_validator

from core.config.fields import StrictModel


class ScheduleConfig(StrictModel):
    """One recurring task: ``cron`` (five fields, in ``digest.timezone``) starts ``task`` as if sent then."""

    name: str = Field(description="Its name: in the audit, `orchestra schedule list`, and who the task is from.")
    cron: str = Field(description="minute hour day-of-month month day-of-week, e.g. '0 7 * * mon-fri'.")
    task: str = Field(min_length=1, description="The task text, as it would be sent (#project and @agent work).")
    project: str | None = Field(default=None, description="Its project (else the task's #name, else the default).")
    agent: str | None = Field(default=None, description="Its agent, whatever the routing says.")
    enabled: bool = Field(default=True)
    once: bool = Field(default=False, description="Run once, then the schedule is gone (/at).")
    catch_up_s: float = Field(
        default=3600,
        ge=0,
        description="A run missed while the bot was down starts at start-up if at most this old; older: skipped.",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        if len(cron.split()) != 5:
            raise ValueError(f"{cron!r} is not five cron fields (minute hour day month weekday)")
        try:
            CronTrigger.from_crontab(cron)
        except ValueError as exc:
            raise ValueError(f"{cron!r} is not a cron expression: {exc}") from None
        return cron


__all__ = ["ScheduleConfig"]
