"""Housekeeping of task worktrees: what ``orchestra worktrees`` lists, what the bot prunes every hour.

The store says which tasks ran in each worktree and when they finished; :mod:`core.housekeeping`
does the git work by ``worktrees:`` in bots.yaml. The repositories are every project's and every
one that has a folder of worktrees in the data dir (a task of no project, a project since removed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core import housekeeping, worktrees
from core.errors import WorktreeError
from core.service.base import ServiceBase
from core.text import disk_size

if TYPE_CHECKING:
    from collections.abc import Sequence

    from core.models import Task

Owners = dict[str, list["Task"]]


class WorktreeHousekeeping(ServiceBase):
    """Lists and prunes the worktrees of every repository; reads the store, changes only git and files."""

    def worktree_owners(self) -> Owners:
        """Each worktree's tasks by its name (its first task's id), oldest first; a folder no task
        recorded (its start failed half-way) by the task of that id. Read it on the store's thread."""
        owners: Owners = {}
        for task in self.store.worktree_tasks():
            name = Path(task.worktree).name if task.worktree else (task.id if task.branch else "")
            owners.setdefault(name, []).append(task)
        for folder, _repo in housekeeping.repositories(self.home):
            for child in folder.iterdir():
                if child.name not in owners and (found := self.store.find_task(child.name)) is not None:
                    owners[child.name] = [found]
        return owners

    def prune_worktrees(self, now: float | None = None, owners: Owners | None = None) -> list[str]:
        """Prune every repository's worktrees, branches and spares by ``worktrees:`` in bots.yaml; one
        line per thing removed, or kept with its reason. ``owners`` (:meth:`worktree_owners`) lets
        the bot read the store on its loop and do the git work in a thread."""
        keep = self._keep(now, owners)
        spares = self.config.worktrees.spares
        lines: list[str] = []
        for repo, base in self._repositories().items():
            try:
                lines += housekeeping.prune(repo, self.home, keep, base=base)
                lines += housekeeping.prune_spares(repo, self.home, keep=spares)
            except (OSError, WorktreeError) as exc:
                lines.append(f"{repo}: could not prune: {exc}")
        return lines

    def worktree_usage(self, now: float | None = None) -> list[housekeeping.RepoUsage]:
        """Every repository's worktrees with their disk use, its spares and its stale branches."""
        repos = [p for p in self._repositories() if p.is_dir()]
        return housekeeping.usage(self.home, self._keep(now, None), repos=repos)

    def worktree_checks(self) -> list[tuple[str, bool, str]]:
        """Doctor's lines: the worktrees, their disk use, spares and stale branches; a warning for a
        project whose folder is missing, a notice for one whose main checkout is dirty. Never failing:
        tasks are cut from the base commit, so a dirty checkout does not stop them."""
        rows = self.worktree_usage()
        trees, spares = sum(len(r.worktrees) for r in rows), sum(len(r.spares) for r in rows)
        stale = sum(len(r.stale_branches) for r in rows)
        detail = (
            f"{trees} worktree{'' if trees == 1 else 's'} · {disk_size(sum(r.bytes for r in rows))} · "
            f"{spares} spare{'' if spares == 1 else 's'} · {stale} stale branch{'' if stale == 1 else 'es'}"
        )
        checks = [("worktrees", True, detail + (" (`orchestra worktrees` lists them)" if trees or stale else ""))]
        for name, project in self.config.projects.items():
            path = project.directory()
            if not path.is_dir():
                checks.append((f"project {name}", True, f"warning: {path} does not exist (projects.{name}.path)"))
            elif (dirty := housekeeping.dirty_checkout(path)) is not None:
                notice = f"notice: the main checkout {dirty}: tasks still start (cut from the base commit)"
                checks.append((f"project {name}", True, f"{notice}, a merge into it will refuse"))
        for row in rows:
            if not row.present and row.worktrees:
                where = row.repo or row.folder
                left = f"{len(row.worktrees)} worktree folder(s) left in {row.folder}"
                checks.append(("worktrees", True, f"warning: {where} is gone; {left} (`orchestra worktrees --prune`)"))
        return checks

    def _keep(self, now: float | None, owners: Owners | None) -> housekeeping.Keep:
        settings = self.config.worktrees
        known = self.worktree_owners() if owners is None else owners

        def tasks(name: str) -> Sequence[Task]:
            return known.get(name, [])

        at = self.clock.now() if now is None else now
        return housekeeping.Keep(tasks, at, days=settings.keep_days, count=settings.keep_count)

    def _repositories(self) -> dict[Path, str | None]:
        """Each repository to prune (a project's as it is configured) and its base (None: its current branch)."""
        repos: dict[Path, str | None] = {}
        folders = set()
        for project in self.config.projects.values():
            path = project.directory()
            root = housekeeping.repository(path) or path.resolve()
            repos.setdefault(root, project.base)
            folders.add(worktrees.worktrees_dir(self.home, root))
        for folder, main in housekeeping.repositories(self.home):
            if main is not None and folder not in folders:
                repos.setdefault(main, None)
        return repos


__all__ = ["WorktreeHousekeeping"]
