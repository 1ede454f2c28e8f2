"""``orchestra schedule list``: the schedules of bots.yaml, their next run and their last task."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bot.cli.output import as_json
from core.errors import InvalidInput

if TYPE_CHECKING:
    import argparse

    from bot.app import App


def schedule(app: App, args: argparse.Namespace) -> int:
    from bot.scheduler import Scheduler, SchedulerDeps

    if args.action == "add":
        if not args.cron or not args.task:
            raise InvalidInput("schedule add needs --cron '0 7 * * mon-fri' and --task TEXT")
        print(f"{app.service.add_schedule(args.cron, args.task)} added")
        return 0
    if args.action == "remove":
        if not args.name:
            raise InvalidInput("schedule remove needs the schedule's name (s3)")
        app.service.remove_schedule(args.name)
        print(f"{args.name} removed")
        return 0
    jobs = Scheduler(SchedulerDeps(app.config, app.store, app.clock, app.home, list))
    now, rows = time.time(), list[dict[str, Any]]()
    for s in app.service.all_schedules():
        upcoming = jobs.schedule_fires(s, now, now + 400 * 86400)[:1]
        last = app.store.last_task_by_requester(f"schedule:{s.name}")
        rows.append({
            "name": s.name, "cron": s.cron, "task": s.task, "enabled": s.enabled,
            "next": upcoming[0].astimezone(app.zone).isoformat(timespec="minutes") if upcoming and s.enabled else None,
            "last_task": last.id if last else None, "last_state": last.state.value if last else None,
        })  # fmt: skip
    if args.json:
        print(as_json(rows, ensure_ascii=False))
        return 0
    if not rows:
        print("no schedules in bots.yaml (see the README: Schedules)")
    for row in rows:
        nxt = f"next {row['next']}" if row["next"] else "disabled"
        ran = f" · last {row['last_task']} {row['last_state']}" if row["last_task"] else ""
        print(f"  {row['name']} · {row['cron']} · {nxt}{ran} · {str(row['task'])[:60]}")
    return 0
