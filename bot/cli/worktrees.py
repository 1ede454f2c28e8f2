"""The CLI's ``orchestra worktrees``: each repository's task worktrees, their disk use, spares and
stale branches; ``--prune`` prunes them now, as the bot does every hour."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.cli.output import as_json
from core.text import disk_size

if TYPE_CHECKING:
    import argparse

    from bot.app import App
    from core.housekeeping import RepoUsage


def worktrees(app: App, args: argparse.Namespace) -> int:
    pruned = app.service.prune_worktrees() if args.prune else []
    rows = app.service.worktree_usage()
    if args.json:
        print(as_json({"pruned": pruned, "repositories": [_row_json(row) for row in rows]}, ensure_ascii=False))
        return 0
    for line in pruned:
        print(line)
    if not rows:
        print("no task worktrees" + ("" if pruned else " (a project's tasks get one: README Projects)"))
        return 0
    for row in rows:
        state = "" if row.present else " · MISSING (`orchestra worktrees --prune` removes its folders)"
        print(f"{row.repo or '?'} · {row.folder}{state}")
        width = max([len(c.name) for c in [*row.worktrees, *row.spares]] or [0])
        for tree in row.worktrees:
            print(f"  {tree.name:<{width}}  {disk_size(tree.bytes):>9}  {tree.branch or '(no branch)'}")
        for spare in row.spares:
            print(f"  {spare.name:<{width}}  {disk_size(spare.bytes):>9}  spare")
        for branch in row.stale_branches:
            print(f"  stale branch {branch} (no worktree; its task finished long ago, or there is none)")
    trees, spares = sum(len(r.worktrees) for r in rows), sum(len(r.spares) for r in rows)
    print(f"{trees} worktree(s), {spares} spare(s), {disk_size(sum(r.bytes for r in rows))}")
    return 0


def _row_json(row: RepoUsage) -> dict[str, Any]:
    def checkout(c: Any) -> dict[str, Any]:
        return {"name": c.name, "path": str(c.path), "branch": c.branch, "bytes": c.bytes}

    return {
        "repo": str(row.repo) if row.repo else None,
        "folder": str(row.folder),
        "present": row.present,
        "bytes": row.bytes,
        "worktrees": [checkout(c) for c in row.worktrees],
        "spares": [checkout(c) for c in row.spares],
        "stale_branches": row.stale_branches,
    }
