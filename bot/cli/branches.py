"""The CLI's end of a task's branch: ``orchestra diff|merge|pr|discard t42`` (``core.service.branches``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from bot.cli.output import as_json
from core.branches import MergeConflict
from core.errors import InvalidInput

if TYPE_CHECKING:
    import argparse

    from bot.app import App


def diff(app: App, args: argparse.Namespace) -> int:
    got = app.service.branch_diff(args.id)
    tb, d = got.branch, got.diff
    if args.json:
        print(as_json({"task": tb.task.id, "branch": tb.branch, "base": tb.base, "files": d.files,
                       "stat": d.stat, "patch": str(got.patch_path), "clipped": d.clipped}))  # fmt: skip
        return 0
    if args.patch:
        sys.stdout.buffer.write(d.patch)
        return 0
    print(f"{tb.task.id} · {tb.branch} vs {tb.base} · {d.files} file{'' if d.files == 1 else 's'}")
    if d.stat:
        print(d.stat)
    print(f"patch: {got.patch_path}  (or: orchestra diff {tb.task.id} --patch)")
    return 0


def merge(app: App, args: argparse.Namespace) -> int:
    try:
        tb, merged = app.service.merge_branch(args.id)
    except MergeConflict as exc:
        if args.json:
            print(as_json({"merged": False, "conflict": exc.files, "error": str(exc)}))
        print(f"orchestra: {exc}", file=sys.stderr)
        return 1
    how = "already in it" if merged.already else "fast-forward" if merged.fast_forward else "merge commit"
    if args.json:
        done = {"merged": True, "task": tb.task.id, "branch": tb.branch, "base": tb.base, "commit": merged.commit}
        print(as_json(done | {"fast_forward": merged.fast_forward, "files": merged.files}))
        return 0
    print(f"merged {tb.branch} into {tb.base} ({how}, {merged.commit[:12]}); its worktree and branch are removed")
    return 0


def pr(app: App, args: argparse.Namespace) -> int:
    tb, pull = app.service.pull_request(args.id)
    if args.json:
        print(as_json({"task": tb.task.id, "url": pull.url, "number": pull.number, "existed": pull.existed}))
        return 0
    said = "was already open" if pull.existed else "opened"
    print(f"pull request #{pull.number} {said}: {pull.url}")
    return 0


def discard(app: App, args: argparse.Namespace) -> int:
    tb = app.service.task_branch(args.id, action="discard")
    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidInput(f"discard deletes {tb.branch} and its worktree: pass --yes to confirm")
        answer = input(f"Delete {tb.task.id}'s worktree and branch {tb.branch} (not merged into {tb.base})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("kept; nothing was removed")
            return 1
    app.service.discard_branch(tb.task.id)
    print(f"discarded {tb.branch} and its worktree")
    return 0
