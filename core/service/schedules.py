"""Schedules at run time: ``/every weekday 07:00 TEXT``, ``/at 07:00 TEXT`` (once), ``/schedules``,
``/unschedule s3``, ``orchestra schedule add|remove``. They are kept in the store next to bots.yaml's
and run by the bot's scheduler the same way (``bot.scheduler``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from core.errors import InvalidInput
from core.service.base import LOCAL, Actor, ServiceBase

_DAYS = {"mon": "mon", "tue": "tue", "wed": "wed", "thu": "thu", "fri": "fri", "sat": "sat", "sun": "sun"}
_EVERY = {"day": "*", "weekday": "mon-fri", "weekend": "sat,sun", **{d: d for d in _DAYS}}
_TIME = re.compile(r"([01]?\d|2[0-3])[:.h]([0-5]\d)\Z")


def every_cron(when: str, clock_time: str) -> str:
    """``weekday``, ``day``, ``mon,wed`` (or ``monday``) at ``07:00`` as a cron expression."""
    hour, minute = _hhmm(clock_time)
    days = []
    for given in when.lower().split(","):
        word = given.strip()
        word = word.removesuffix("s") if word in ("days", "weekdays", "weekends") else word
        key = word[:3] if word[:3] in _DAYS and word not in _EVERY and word.rstrip("s").endswith("day") else word
        if key not in _EVERY:
            days_are = "write day, weekday, weekend or mon…sun (mon,wed works)"
            raise InvalidInput(f"{given.strip()!r} is not a day: {days_are}")
        days.append(_EVERY[key])
    return f"{minute} {hour} * * {','.join(days) if '*' not in days else '*'}"


def _hhmm(text: str) -> tuple[int, int]:
    match = _TIME.match(text.strip())
    if match is None:
        raise InvalidInput(f"{text!r} is not a time of day: write HH:MM, e.g. 07:00")
    return int(match.group(1)), int(match.group(2))


class ScheduleActions(ServiceBase):
    def add_every(self, when: str, clock_time: str, task: str, *, actor: Actor = LOCAL) -> tuple[str, str]:
        """A recurring schedule; (its name, its cron)."""
        return self.add_schedule(every_cron(when, clock_time), task, actor=actor), every_cron(when, clock_time)

    def add_at(self, clock_time: str, task: str, *, actor: Actor = LOCAL) -> tuple[str, datetime]:
        """A run once, at the next ``clock_time`` in the digest's zone; (its name, when)."""
        hour, minute = _hhmm(clock_time)
        tz = self.config.digest.zone()
        now = datetime.fromtimestamp(self.clock.now(), tz)
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if at <= now:
            at += timedelta(days=1)
        cron = f"{at.minute} {at.hour} {at.day} {at.month} *"
        return self.add_schedule(cron, task, once=True, actor=actor), at

    def add_schedule(self, cron: str, task: str, *, once: bool = False, actor: Actor = LOCAL) -> str:
        from core.config.schedules import ScheduleConfig

        if not task.strip():
            raise InvalidInput("say what to do after the time")
        limit = self.config.limits.max_task_chars
        if len(task) > limit:
            raise InvalidInput(f"the task text has {len(task):,} characters; the limit is {limit:,}")
        try:
            ScheduleConfig(name="new", cron=cron, task=task)
        except ValueError as exc:
            raise InvalidInput(str(exc).splitlines()[-1]) from None
        with self.store.atomic():
            name = self.store.add_schedule(cron, task.strip(), once=once, created_by=actor.name, ts=self.clock.now())
            self.audit(actor, "schedule", None, f"{name} {cron}: {self.quote(task, 200)}")
        return name

    def remove_schedule(self, name: str, *, actor: Actor = LOCAL) -> None:
        if any(s.name == name for s in self.config.schedules):
            raise InvalidInput(f"{name} is in bots.yaml: remove it there")
        with self.store.atomic():
            if not self.store.remove_schedule(name):
                raise InvalidInput(f"there is no schedule {name!r} (/schedules lists them)")
            self.audit(actor, "schedule", None, f"removed {name}")

    def all_schedules(self) -> list:  # type: ignore[type-arg]
        """bots.yaml's schedules, then those made at run time (as ``ScheduleConfig``, ``once`` ones flagged)."""
        from core.config.schedules import ScheduleConfig

        stored = [
            ScheduleConfig(name=row["name"], cron=row["cron"], task=row["task"], once=bool(row["once"]))
            for row in self.store.stored_schedules()
        ]
        return [*self.config.schedules, *stored]


__all__ = ["ScheduleActions", "every_cron"]
