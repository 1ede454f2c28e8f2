"""The bot process's clock-driven jobs: the digest, budget alerts, the stale-task watchdog, worktree housekeeping.

APScheduler 3.x's ``AsyncIOScheduler`` runs them in the bot's event loop; every message goes to
the store's outbox, once per channel. Each job is keyed in the store, so a regular run, a
catch-up after a restart and a second process never send the same thing twice:

- the digest of a day (key: its local date) is sent once. One missed while the process was down
  is sent at start if it is still within ``digest.grace_s`` of its time; an older one is skipped
  with a warning, and the next digest covers everything since the last one sent, so no task is
  left out of the digests;
- each budget threshold alerts once per period (``core.costs.check_budget_alerts``);
- each running task that goes silent for ``watchdog.silent_after_s`` alerts once (not while its
  agent waits for a person's permission; silence counts from the last answer);
- every hour, and at start, task worktrees are pruned by ``worktrees:`` (the service's
  ``prune_worktrees``: the store is read on the loop, the git work done in a thread).

The composition root calls ``start(SchedulerDeps(...))`` inside the running loop and
``shutdown()`` on the way down.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.clock import Clock
from core.config import Config
from core.costs import BudgetAlert, CostTracker, check_budget_alerts
from core.digest import Digest, build_digest, render_chart_png
from core.notify import Notifier
from core.store import Store
from core.text import clip, format_duration, money

if TYPE_CHECKING:
    from core.config.schedules import ScheduleConfig
    from core.service.worktrees import WorktreeHousekeeping

log = logging.getLogger(__name__)
HOUSEKEEPING_EVERY_S = 3600.0


@dataclass(frozen=True)
class SchedulerDeps:
    """What the jobs need; ``channels`` names the chat channels live now (the engine's list);
    ``housekeeping`` (the service) prunes the task worktrees, none when it is None."""

    config: Config
    store: Store
    clock: Clock
    home: Path
    channels: Callable[[], list[str]]
    housekeeping: WorktreeHousekeeping | None = None
    start_task: Callable[[ScheduleConfig, str], str] | None = None  # (schedule, its run's key) -> task id
    schedules: Callable[[], list[ScheduleConfig]] | None = None  # bots.yaml's and the store's; None: bots.yaml's
    forget: Callable[[str], object] | None = None  # remove a run-once schedule after its run started


class DigestTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler 3 ships no type hints
    """Every day at a local time of day, in the configured zone, across daylight-saving changes.

    APScheduler 3.11's CronTrigger can return the same instant again inside the hour repeated when
    the clocks go back (agronholm/apscheduler#1021), and the scheduler would then loop on it; this
    trigger moves on to the next day instead.
    """

    def __init__(self, hour: int, minute: int, timezone: tzinfo) -> None:
        super().__init__(hour=hour, minute=minute, timezone=timezone)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        fire: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        if fire is not None and previous_fire_time is not None and fire.timestamp() <= previous_fire_time.timestamp():
            later = datetime.fromtimestamp(max(now.timestamp(), previous_fire_time.timestamp()) + 3600, self.timezone)
            fire = super().get_next_fire_time(None, later)
        return fire


def digest_trigger(config: Config) -> DigestTrigger:
    hour, minute = config.digest.hour_minute()
    return DigestTrigger(hour, minute, config.digest.zone())


class Scheduler:
    """The jobs and their APScheduler; each job method can also be called directly (tests, CLI)."""

    def __init__(self, deps: SchedulerDeps) -> None:
        self.deps = deps
        self.config = deps.config
        self.trigger = digest_trigger(deps.config)
        self._aps: Any = None
        self._warned: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Add the jobs and start them in the running event loop; a missed digest is sent first."""
        loop = asyncio.get_running_loop()
        aps = AsyncIOScheduler(event_loop=loop, timezone=self.config.digest.zone())
        now = datetime.now(UTC)
        # misfire_grace_time=None everywhere: a run that starts late (the loop is busy while the chat
        # bridges connect) still runs, once; the digest's lateness is judged against digest.grace_s.
        late_ok = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
        if self.config.digest.enabled:
            aps.add_job(self._job(self.send_due_digest), self.trigger, id="digest", **late_ok)
            aps.add_job(self._job(self.send_due_digest), id="digest-catch-up", next_run_time=now, **late_ok)
        every = IntervalTrigger(seconds=self.config.budgets.check_every_s)
        aps.add_job(self._job(self.check_budgets), every, id="budgets", next_run_time=now, **late_ok)
        if self.config.watchdog.silent_after_s is not None:
            every = IntervalTrigger(seconds=self.config.watchdog.check_every_s)
            aps.add_job(self._job(self.check_watchdog), every, id="watchdog", next_run_time=now, **late_ok)
        if self.deps.start_task is not None:
            for schedule in (s for s in self.config.schedules if s.enabled):
                cron = CronTrigger.from_crontab(schedule.cron, timezone=self.config.digest.zone())
                run = self._job(functools.partial(self.run_schedule, schedule.name))
                aps.add_job(run, cron, id=f"schedule:{schedule.name}", **late_ok)
            aps.add_job(self._job(self.catch_up_schedules), id="schedules-catch-up", next_run_time=now, **late_ok)
            minute = IntervalTrigger(seconds=30)  # the store's schedules (made from chat), looked at twice a minute
            aps.add_job(self._job(self.run_stored_schedules), minute, id="schedules-stored", **late_ok)
        if self.deps.housekeeping is not None:
            every = IntervalTrigger(seconds=HOUSEKEEPING_EVERY_S)
            aps.add_job(self._job(self.prune_worktrees), every, id="worktrees", next_run_time=now, **late_ok)
        aps.start()
        self._aps = aps
        log.info("scheduler started; next digest %s", self.next_digest_at())

    def shutdown(self) -> None:
        """Stop the jobs (a job already running is not waited for); safe to call twice."""
        if self._aps is not None:
            with contextlib.suppress(Exception):
                self._aps.shutdown(wait=False)
            self._aps = None

    @property
    def running(self) -> bool:
        return self._aps is not None

    def next_digest_at(self) -> datetime | None:
        if self._aps is not None:
            job = self._aps.get_job("digest")
            fire: datetime | None = None if job is None else job.next_run_time
            return fire
        return self.trigger.get_next_fire_time(None, datetime.fromtimestamp(self.deps.clock.now(), UTC))

    def _job(self, func: Callable[[], Any]) -> Callable[[], Any]:
        async def run() -> None:
            try:
                result = func()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # a failing job must not stop the others or the next run
                log.exception("scheduled job %s failed", getattr(func, "__name__", func))

        return run

    # -- schedules --------------------------------------------------------------------------------
    def schedule_fires(self, schedule: ScheduleConfig, since: float, until: float) -> list[datetime]:
        """The schedule's run times in ``(since, until]`` (at most 1,000)."""
        cron = CronTrigger.from_crontab(schedule.cron, timezone=self.config.digest.zone())
        fires: list[datetime] = []
        fire = cron.get_next_fire_time(None, datetime.fromtimestamp(since + 1e-3, UTC))
        while fire is not None and fire.timestamp() <= until and len(fires) < 1000:
            fires.append(fire)
            fire = cron.get_next_fire_time(fire, fire + timedelta(seconds=1))
        return fires

    def _schedules(self) -> list[ScheduleConfig]:
        return self.deps.schedules() if self.deps.schedules is not None else list(self.config.schedules)

    def run_stored_schedules(self) -> list[str]:
        """The due runs of the schedules made at run time (bots.yaml's have their own cron jobs)."""
        names = {s.name for s in self.config.schedules}
        started = [self.run_schedule(s.name) for s in self._schedules() if s.name not in names]
        return [t for t in started if t]

    def run_schedule(self, name: str) -> str | None:
        """Start the schedule's run due now (its latest run time, looking back a minute and a bit):
        the run's key makes it one task however often this is called. The task id, or None."""
        schedule = next((s for s in self._schedules() if s.name == name and s.enabled), None)
        now = self.deps.clock.now()
        fires = self.schedule_fires(schedule, now - 90, now) if schedule is not None else []
        return self._start_run(schedule, fires[-1]) if schedule is not None and fires else None

    def catch_up_schedules(self) -> list[str]:
        """At start: for each schedule, the latest run missed while the bot was down starts once if it
        is at most ``catch_up_s`` old; older missed runs are skipped, and said in the log."""
        now, started = self.deps.clock.now(), []
        for schedule in (s for s in self._schedules() if s.enabled):
            recent = self.schedule_fires(schedule, now - max(schedule.catch_up_s, 1.0), now)
            if recent and (task_id := self._start_run(schedule, recent[-1])) is not None:
                started.append(task_id)
            older = self.schedule_fires(schedule, now - 7 * 86400, now - max(schedule.catch_up_s, 1.0))
            if older and not recent and older[-1].isoformat() not in self._warned:
                self._warned.add(older[-1].isoformat())
                missed = older[-1].isoformat()
                why = "was missed while the bot was down and is older than catch_up_s"
                log.warning("schedule %s: the run due %s %s (%ss); skipped", schedule.name, missed, why,
                            schedule.catch_up_s)  # fmt: skip
        return started

    def _start_run(self, schedule: ScheduleConfig, fire: datetime) -> str | None:
        assert self.deps.start_task is not None
        key = f"schedule:{schedule.name}:{fire.astimezone(UTC).strftime('%Y-%m-%dT%H:%MZ')}"
        try:
            started = self.deps.start_task(schedule, key)
            if schedule.once and self.deps.forget is not None:
                self.deps.forget(schedule.name)  # /at: once, then gone
            return started
        except Exception as exc:  # noqa: BLE001  a refused task (budget, a missing folder) is said, not raised
            log.warning("schedule %s: could not start its run: %s", schedule.name, exc)
            return None

    # -- the digest -----------------------------------------------------------------------------
    def last_due(self, now: float) -> datetime | None:
        """The latest scheduled digest time at or before ``now`` (looking back two days)."""
        fire = self.trigger.get_next_fire_time(None, datetime.fromtimestamp(now - 2 * 86400, UTC))
        last = None
        for _ in range(8):  # a daily trigger fires at most three times in two days and a bit
            if fire is None or fire.timestamp() > now:
                break
            last = fire
            fire = self.trigger.get_next_fire_time(fire, fire)
        return last

    async def send_due_digest(self) -> bool:
        """Send the digest due now unless it was sent; at start this is the catch-up. True if sent."""
        now = self.deps.clock.now()
        due = self.last_due(now)
        if due is None:
            return False
        period = due.astimezone(self.config.digest.zone()).date().isoformat()
        if self.deps.store.digest_sent(period):
            return False
        late = now - due.timestamp()
        if late > self.config.digest.grace_s:
            if self.deps.store.last_digest() is None:  # none was ever sent: nothing was missed
                log.info("no digest sent yet: the first goes out at %s", self.next_digest_at())
                return False
            if period not in self._warned:
                self._warned.add(period)
                log.warning(
                    "the digest of %s was missed by %s (more than digest.grace_s); skipped — the next one "
                    "covers everything since the last digest sent",
                    period,
                    format_duration(late),
                )
            return False
        return await self.send_digest(period)

    async def send_digest(self, period: str) -> bool:
        """Build the digest now, draw its chart off the loop, and queue it once for ``period``."""
        store, now = self.deps.store, self.deps.clock.now()
        digest = build_digest(store, self.config, self.deps.clock)
        chart = await self._chart(digest, period) if self.config.digest.chart else None
        if store.digest_sent(period):
            return False  # sent by another run while the chart was drawn
        channels = self._digest_channels()
        waiting = [(t.task_id, t.state) for t in digest.waiting]
        Notifier(self.config, store, self.deps.clock, channels=channels).digest(period, digest.text, waiting, chart)
        store.record_digest(period, now, digest.since, digest.until, len(digest.finished))
        log.info("digest of %s queued for %s", period, ", ".join(channels) or "no channel")
        return True

    async def _chart(self, digest: Digest, period: str) -> Path | None:
        path = self.deps.home / "digests" / f"{period}.png"
        try:
            png = await asyncio.to_thread(render_chart_png, digest.chart)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)
        except Exception:  # the digest still goes out, without its chart
            log.exception("could not draw the digest chart")
            return None
        return path

    def _digest_channels(self) -> list[str]:
        live = self.deps.channels()
        wanted = self.config.digest.channels
        if not wanted:
            return live
        missing = [c for c in wanted if c not in live]
        for channel in missing:
            if f"channel:{channel}" not in self._warned:
                self._warned.add(f"channel:{channel}")
                log.warning("digest.channels names %s, which is not configured; the digest skips it", channel)
        return [c for c in wanted if c in live]

    # -- budgets and the watchdog ---------------------------------------------------------------
    def check_budgets(self) -> list[BudgetAlert]:
        """Alert on budget thresholds newly crossed (each once per period)."""
        tracker = CostTracker(self.deps.store, self.config, self.deps.clock)
        return check_budget_alerts(tracker, self.deps.channels())

    def check_watchdog(self) -> list[str]:
        """Alert once for each running task silent for ``watchdog.silent_after_s``; the ids alerted."""
        silent_after = self.config.watchdog.silent_after_s
        if silent_after is None:
            return []
        store, now = self.deps.store, self.deps.clock.now()
        alerted = []
        silent = store.silent_tasks(now - silent_after)
        asking = store.waiting_since([task.id for task in silent])  # a person is being asked: not silent
        for task in silent:
            key = f"watchdog:{task.id}"
            if task.id in asking or store.alert_recorded(key):
                continue
            answered = store.last_permission_answer(task.id)  # the agent waited for that: count from the answer
            quiet = now - max(task.last_event_at or task.started_at or task.created_at, answered or 0.0)
            if quiet < silent_after:
                continue
            live = f"{money(task.live_cost_usd)} so far" if task.live_cost_usd is not None else "no cost yet"
            text = (
                f"⏳ {task.id} has been silent for {format_duration(quiet)} · {task.agent} · {task.category} · {live}\n"
                f"{clip(task.text, 200)}"
            )
            Notifier(self.config, store, self.deps.clock, channels=self.deps.channels()).watchdog(task, text)
            store.record_alert(key, "watchdog", now, text)
            alerted.append(task.id)
        return alerted

    # -- worktrees ------------------------------------------------------------------------------
    async def prune_worktrees(self) -> list[str]:
        """Prune every repository's task worktrees (``worktrees:`` in bots.yaml); each line is logged."""
        service = self.deps.housekeeping
        if service is None:
            return []
        owners = service.worktree_owners()  # the store, on its own thread
        lines = await asyncio.to_thread(service.prune_worktrees, None, owners)
        for line in lines:
            log.info("worktrees: %s", line)
        return lines


def preload_prices() -> None:
    """Import the price table (~150 ms) so costs and digests never pay it; the bot calls it off the
    loop once its chats are up, since during their start it would hold the GIL they need."""
    from core import pricing

    with contextlib.suppress(Exception):
        pricing.preload()


def start(deps: SchedulerDeps) -> Scheduler:
    """Start the jobs in the running event loop; call ``shutdown()`` on the result to stop them."""
    scheduler = Scheduler(deps)
    scheduler.start()
    return scheduler


__all__ = ["HOUSEKEEPING_EVERY_S", "DigestTrigger", "Scheduler", "SchedulerDeps", "digest_trigger", "start"]
