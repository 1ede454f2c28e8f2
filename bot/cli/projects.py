"""The CLI's ``orchestra projects``: each project of bots.yaml, its folder and base branch, and what runs in it."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bot.cli.output import as_json

if TYPE_CHECKING:
    import argparse

    from bot.app import App


def projects(app: App, args: argparse.Namespace) -> int:
    rows = app.service.projects()
    if args.json:
        print(as_json([dataclasses.asdict(row) for row in rows], ensure_ascii=False))
        return 0
    if not rows:
        print("no projects in bots.yaml: tasks run in `workspace` (chat) or the current directory (CLI)")
        return 0
    width = max(len(row.name) for row in rows) + 1
    for row in rows:
        git = f"branch {row.base or '?'}" if row.git else "not a git repository"
        state = git if row.exists else "MISSING"
        active = f"{row.running} running, {row.queued} queued" if row.running or row.queued else "idle"
        mark = " (default)" if row.default else ""
        print(f"  #{row.name:<{width}} {row.path} · {state} · {active}{mark}")
    return 0
