"""Housekeeping of task worktrees: old ones pruned, spares trimmed, disk use and stale branches listed.

A finished task's worktree goes ``keep.days`` after it finished, or when more than ``keep.count``
finished ones are there (the newest stay); its branch stays while it has commits beyond its base
(a merge or a pull request re-adds a worktree from it with :func:`core.worktrees.prepare`), and
goes when it has none. A worktree that an active task or a review holds, or one with uncommitted
changes (someone works there: runs commit what they leave), is never touched. Every change holds
the repository's worktree lock, as :mod:`core.worktrees` does; every git call is an argv.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import WorktreeError
from core.models import TaskState
from core.protocol import task_dir
from core.worktrees import _SPARE, _locked, _meta_path, _ok, _run, _undo, worktrees_dir

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from core.models import Task

_OWNER = re.compile(r"orchestra/(t\d+)(?:-|\Z)")  # the task whose worktree made the branch
DAY_S = 86400.0


@dataclass(frozen=True)
class Keep:
    """What :func:`prune` keeps. ``owners(name)``: the tasks that ran in the worktree of that name (a
    retry runs in its first task's, which names it); a finished one's worktree stays ``days`` after the
    last of them finished, and at most ``count`` finished ones stay per repository, the newest."""

    owners: Callable[[str], Sequence[Task]]
    now: float
    days: float = 7.0
    count: int = 20


@dataclass(frozen=True)
class Checkout:
    """One worktree in a repository's folder: ``name`` is its task's id (a spare: ``.spare-XXXX``)."""

    name: str
    path: Path
    branch: str | None  # None: a spare (detached), or git cannot read it
    bytes: int


@dataclass(frozen=True)
class RepoUsage:
    """A repository's folder of worktrees, as ``orchestra worktrees`` and doctor show it."""

    folder: Path
    repo: Path | None  # the main checkout; None when nothing in the folder says where it is
    present: bool  # the main checkout still exists
    worktrees: list[Checkout]
    spares: list[Checkout]
    stale_branches: list[str]  # orchestra/* branches with no worktree whose task finished long ago, or has none

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in [*self.worktrees, *self.spares])


def repository(path: Path) -> Path | None:
    """The top level of the git repository ``path`` is in, resolved; None when it is in none (or gone)."""
    if not path.is_dir():
        return None
    done = _run(path, "rev-parse", "--show-toplevel")
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 and done.stdout.strip() else None


def dirty_checkout(path: Path) -> str | None:
    """``api has 2 uncommitted changes`` for a git checkout with changes to tracked files, else None."""
    done = _run(path, "status", "--porcelain", "--untracked-files=no")
    changed = len(done.stdout.splitlines()) if done.returncode == 0 else 0
    return f"{path} has {changed} uncommitted change{'' if changed == 1 else 's'}" if changed else None


def repositories(home: Path) -> list[tuple[Path, Path | None]]:
    """Each repository folder under ``<home>/worktrees`` and the main checkout its worktrees point to."""
    root = home / "worktrees"
    if not root.is_dir():
        return []
    return [(folder, _repo_of(folder)) for folder in sorted(root.iterdir()) if folder.is_dir()]


def prune(repo: Path, home: Path, keep: Keep, *, base: str | None = None) -> list[str]:
    """Remove what ``keep`` no longer keeps of ``repo``'s task worktrees, and ``orchestra/*`` branches
    with nothing beyond ``base`` (None: the current branch) and no worktree; one line per thing removed,
    or kept although old (a review waits, uncommitted changes). Records of worktrees whose folder
    vanished go too (``git worktree prune``). A repository that is gone: its folder's worktrees are
    removed as plain files, in one line."""
    root = repository(repo)
    if root is None and repo.is_dir():
        return []  # not a git repository: no task of it had a worktree
    if root is None:
        return _prune_orphaned(worktrees_dir(home, repo.resolve()), repo, keep)
    folder = worktrees_dir(home, root)
    lines: list[str] = []
    with _locked(folder) if folder.is_dir() else contextlib.nullcontext():  # none: nothing made a worktree here
        said = _run(root, "worktree", "prune", "--dry-run", "-v")  # git says it on stderr
        vanished = sum(line.startswith("Removing ") for line in (said.stdout + said.stderr).splitlines())
        if vanished and _ok(root, "worktree", "prune"):
            lines.append(f"{root}: forgot {vanished} worktree(s) whose folder was gone (git worktree prune)")
        doomed, held = _sorted_out([p.name for p in _task_dirs(folder)], keep)
        lines += [f"kept {name}'s worktree: {why}" for name, why in held.items()]
        for name, why in doomed.items():
            path = folder / name
            dirty = _uncommitted(path, home, keep.owners(name))
            if dirty is not None:
                lines.append(f"kept {name}'s worktree {path} ({why}): {dirty}; commit or remove them")
                continue
            lines.append(_retire(root, path, why))
        lines += _prune_branches(root, keep, base)
    return lines


def prune_spares(repo: Path, home: Path, keep: int = 1) -> list[str]:
    """Remove ``repo``'s spare worktrees beyond ``keep`` (the newest stay); one line per removal."""
    folder = worktrees_dir(home, (repository(repo) or repo).resolve())
    if not folder.is_dir():
        return []
    root = repository(repo)
    lines = []
    with _locked(folder):
        ready = sorted(folder.glob(f"{_SPARE}*"), key=_mtime, reverse=True)
        for spare in ready[keep:]:
            if root is None:
                shutil.rmtree(spare, ignore_errors=True)
            else:
                _undo(root, spare, None)
            lines.append(f"removed the spare worktree {spare} (worktrees.spares: {keep})")
    return lines


def usage(home: Path, keep: Keep | None = None, *, repos: Iterable[Path] = ()) -> list[RepoUsage]:
    """Every repository folder under ``home`` (and each of ``repos``, folder or not): its worktrees with
    their disk use, its spares, and its stale branches (by ``keep``; without it, every ``orchestra/*``
    branch with no worktree). Disk use is the blocks of each file, ``.git`` left out."""
    found = {folder: root for folder, root in repositories(home)}
    for path in repos:
        if (root := repository(path)) is not None and found.get(folder := worktrees_dir(home, root)) is None:
            found[folder] = root  # a folder whose worktrees are all gone says nothing of its repository
    rows = []
    for folder, root in sorted(found.items()):
        present = root is not None and root.is_dir()
        trees = [_checkout(path, present) for path in _task_dirs(folder)]
        ready = [_checkout(path, False) for path in sorted(folder.glob(f"{_SPARE}*"))] if folder.is_dir() else []
        stale = _stale_branches(root, keep) if present and root is not None else []
        if trees or ready or stale:
            rows.append(RepoUsage(folder, root, present, trees, ready, stale))
    return rows


def disk_use(path: Path) -> int:
    """Bytes the files under ``path`` take on disk (their blocks), ``.git`` entries left out."""
    total, todo = 0, [str(path)]
    while todo:
        try:
            entries = os.scandir(todo.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                if entry.name == ".git":
                    continue
                try:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
                except OSError:
                    continue
    return total


def _sorted_out(names: list[str], keep: Keep) -> tuple[dict[str, str], dict[str, str]]:
    """(the worktrees to remove, each with why; those kept although old, each with why)."""
    doomed: dict[str, str] = {}
    held: dict[str, str] = {}
    finished: list[tuple[float, str]] = []
    for name in names:
        tasks = keep.owners(name)
        if not tasks:
            doomed[name] = "no task ran in it"
        elif (why := _hold(tasks)) is None:
            finished.append((_last_finished(tasks), name))
        elif all(t.state.finished for t in tasks) and keep.now - _last_finished(tasks) > keep.days * DAY_S:
            held[name] = why  # old, but a person has still to look at it
    finished.sort(reverse=True)
    for rank, (at, name) in enumerate(finished):
        if keep.now - at > keep.days * DAY_S:
            doomed[name] = f"finished {_days(keep.now - at)} ago"
        elif rank >= keep.count:
            doomed[name] = f"beyond the {keep.count} newest finished"
    return {name: doomed[name] for name in names if name in doomed}, held  # in the folder's order


def _hold(tasks: Sequence[Task]) -> str | None:
    """Why a worktree stays whatever its age: a task in it is active, or waits for a person's review."""
    for task in tasks:
        if not task.state.finished:
            return f"{task.id} is {task.state.value}"
        if task.state == TaskState.NEEDS_REVIEW:
            return f"{task.id} waits for review (needs_review)"
    return None


def _last_finished(tasks: Sequence[Task]) -> float:
    return max(t.finished_at or t.started_at or t.created_at for t in tasks)


def _days(seconds: float) -> str:
    days = seconds / DAY_S
    return f"{days:.1f} days" if days < 10 else f"{days:.0f} days"


def _uncommitted(path: Path, home: Path, tasks: Sequence[Task]) -> str | None:
    """What is uncommitted in the worktree (``2 files uncommitted: a.py, b.py``), or None when clean.
    The agent CLI's own state files (each run's ``state_paths``) do not count: a run never commits them."""
    done = _run(path, "status", "--porcelain", "-z")
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        return f"git cannot read it ({said[-1].strip() if said else 'git status failed'})"
    ignored = {p for task in tasks for p in _state_paths(home, task.id)}
    names, fields = [], done.stdout.split("\0")
    skip = False
    for entry in fields:
        if skip or not entry:
            skip = False
            continue
        skip = entry[0] in "RC"  # a rename or copy: its old name follows
        name = entry[3:]
        if not any(name.startswith(p) if p.endswith("/") else name == p for p in ignored):
            names.append(name)
    if not names:
        return None
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{len(names)} file{'' if len(names) == 1 else 's'} uncommitted: {shown}"


def _state_paths(home: Path, task_id: str) -> list[str]:
    try:
        baseline = json.loads((task_dir(home, task_id) / "baseline.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(p) for p in baseline.get("state_paths", [])] if isinstance(baseline, dict) else []


def _retire(root: Path, path: Path, why: str) -> str:
    """Remove a clean worktree and, when it has nothing beyond its base, its branch; the line saying so."""
    try:
        meta = json.loads(_meta_path(path).read_text(encoding="utf-8"))
        bases = [str(meta["base"]), str(meta["base_commit"])]
    except (OSError, ValueError, KeyError, WorktreeError):
        bases = []
    branch = _run(path, "symbolic-ref", "--short", "-q", "HEAD").stdout.strip() or None
    _undo(root, path, None)
    said = f"removed {path.name}'s worktree ({why})"
    if branch is None:
        return said
    ahead, base = _ahead(root, branch, bases)
    if ahead == 0:
        _run(root, "branch", "-q", "-D", branch)
        return f"{said} and its branch {branch} (nothing beyond {base})"
    if ahead is None:
        return f"{said}; kept its branch {branch} (its base is unknown)"
    return f"{said}; kept its branch {branch}: {ahead} commit{'' if ahead == 1 else 's'} beyond {base}"


def _ahead(root: Path, branch: str, bases: list[str]) -> tuple[int | None, str]:
    """How many commits ``branch`` has that the first of ``bases`` that names a commit has not."""
    for base in bases:
        done = _run(root, "rev-list", "--count", f"{base}..{branch}", "--")
        if done.returncode == 0 and done.stdout.strip().isdigit():
            return int(done.stdout.strip()), base
    return None, ""


def _prune_branches(root: Path, keep: Keep, base: str | None) -> list[str]:
    """Delete stale ``orchestra/*`` branches with nothing beyond ``base``; the rest stay (work to merge)."""
    target = base or _run(root, "symbolic-ref", "--short", "-q", "HEAD").stdout.strip() or "HEAD"
    lines = []
    for branch in _stale_branches(root, keep):
        ahead, _ = _ahead(root, branch, [target])
        if ahead == 0 and _ok(root, "branch", "-q", "-D", branch):
            lines.append(f"deleted the branch {branch}: no worktree, nothing beyond {target}")
    return lines


def _stale_branches(root: Path, keep: Keep | None) -> list[str]:
    """``orchestra/*`` branches no worktree has checked out whose task finished more than
    ``keep.days`` ago (and waits for no one), or that no task owns."""
    refs = _run(root, "for-each-ref", "--format=%(refname:short)", "refs/heads/orchestra/").stdout.split()
    out = set()
    for block in _run(root, "worktree", "list", "--porcelain").stdout.split("\n\n"):
        lines = block.splitlines()
        if not any(line.startswith("prunable") for line in lines):  # a worktree whose folder is gone holds none
            out |= {line.removeprefix("branch refs/heads/") for line in lines if line.startswith("branch ")}
    stale = []
    for branch in refs:
        if branch in out:
            continue
        owner = _OWNER.match(branch)
        tasks = keep.owners(owner.group(1)) if keep is not None and owner else []
        if tasks and keep is not None and (_hold(tasks) or keep.now - _last_finished(tasks) <= keep.days * DAY_S):
            continue
        stale.append(branch)
    return stale


def _prune_orphaned(folder: Path, repo: Path, keep: Keep) -> list[str]:
    """The repository is gone: its worktrees are plain folders now, removed as :func:`prune` would."""
    if not folder.is_dir():
        return [f"{repo}: the repository does not exist; no worktrees of it to prune"]
    with _locked(folder):
        doomed, _held = _sorted_out([p.name for p in _task_dirs(folder)], keep)
        for name in doomed:
            shutil.rmtree(folder / name, ignore_errors=True)
        for spare in folder.glob(f"{_SPARE}*"):
            shutil.rmtree(spare, ignore_errors=True)
        left = len(_task_dirs(folder))
    if not left:
        shutil.rmtree(folder, ignore_errors=True)
    gone = f"removed {len(doomed)} worktree folder(s) as plain files ({', '.join(doomed)})" if doomed else "none gone"
    return [f"{repo}: the repository does not exist; {gone}; {left} kept"]


def _task_dirs(folder: Path) -> list[Path]:
    """The task worktrees in a repository's folder (spares, the lock and other dot files left out)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir()]
    return sorted(found, key=lambda p: (len(p.name), p.name))  # t9 before t10


def _checkout(path: Path, readable: bool) -> Checkout:
    branch = (_run(path, "symbolic-ref", "--short", "-q", "HEAD").stdout.strip() or None) if readable else None
    return Checkout(path.name, path, branch, disk_use(path))


def _repo_of(folder: Path) -> Path | None:
    """The main checkout a folder's worktrees belong to, read from a worktree's ``.git`` pointer
    (``gitdir: <repo>/.git/worktrees/<name>``); it may be gone."""
    for child in sorted(folder.iterdir()):
        try:
            pointer = (child / ".git").read_text(encoding="utf-8").strip()
        except OSError:
            continue
        gitdir = Path(pointer.removeprefix("gitdir:").strip())
        if pointer.startswith("gitdir:") and gitdir.parent.name == "worktrees":
            common = gitdir.parent.parent
            return common.parent if common.name == ".git" else common
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


__all__ = [
    "DAY_S",
    "Checkout",
    "Keep",
    "RepoUsage",
    "dirty_checkout",
    "disk_use",
    "prune",
    "prune_spares",
    "repositories",
    "repository",
    "usage",
]
