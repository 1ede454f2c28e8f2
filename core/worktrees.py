"""A git worktree and branch per task: made (or reused) before the launch, inspected and removed after.

Each task of a repository gets ``<data dir>/worktrees/<repo>-<hash>/<task id>``, on a new branch
``orchestra/<task id>-<slug>`` cut from the base *commit* (so a dirty main checkout does not
matter and is never touched). A retry or follow-up passes the first task's id and branch and
continues in the same worktree. ``git worktree add`` checks out every file (about 250 ms for
10,000 files), so a spare, detached worktree made earlier (:func:`add_spare`) is moved into
place and switched to the new branch instead when there is one: a few milliseconds.

Everything that changes a repository's worktrees holds its lock file, so two tasks starting at
once on one repository never race; a failure raises :class:`WorktreeError` (one line) and
leaves no half-made worktree or branch behind. Standard library only; every git call is an argv.
Housekeeping (pruning old worktrees, their disk use) is :mod:`core.housekeeping`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import WorktreeError
from core.summary import files_changed

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)
_BRANCH_PREFIX = "orchestra/"
_META = "orchestra.json"  # in the worktree's private git dir: it goes when the worktree goes
_SPARE = ".spare-"
_IDENTITY = {"GIT_AUTHOR_NAME": "Orchestra", "GIT_AUTHOR_EMAIL": "orchestra@localhost"}


@dataclass(frozen=True)
class Worktree:
    """One task's checkout: where it is, its branch, and what it was cut from."""

    repo: Path  # the main checkout's top level
    path: Path
    branch: str
    base: str  # the base branch's name (a commit id when the repository's HEAD was detached)
    base_commit: str
    reused: bool = False

    def cwd_for(self, cwd: str) -> str:
        """The directory in this worktree that stands for ``cwd`` of the main checkout."""
        try:
            inside = Path(cwd).resolve().relative_to(self.repo)
        except ValueError:
            return str(self.path)
        return str(self.path / inside)

    def baseline(self, state_paths: list[str] | None = None) -> dict[str, Any]:
        """The git baseline (``core.summary``) of a run in it: changes count against the base commit,
        whatever earlier runs in it did; the branch and the base are named for the completion."""
        baseline = {"root": str(self.path), "base": self.base_commit, "untracked": [], "branch": self.branch}
        return baseline | {"base_name": self.base} | ({"state_paths": state_paths} if state_paths else {})


def slug(text: str, limit: int = 40) -> str:
    """Lowercase ASCII words of ``text`` joined by ``-``, at most ``limit`` characters (``task`` if none)."""
    out = ""
    for word in re.findall(r"[a-z0-9]+", text.lower().encode("ascii", "ignore").decode()):
        if len(out) + len(word) + (1 if out else 0) > limit:
            break
        out = f"{out}-{word}" if out else word
    return out or "task"


def worktrees_dir(home: Path, repo: Path) -> Path:
    """Where a repository's task worktrees live: its name and a hash of its path (two ``api`` repos differ)."""
    digest = hashlib.sha1(str(repo).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return home / "worktrees" / f"{repo.name}-{digest}"


def prepare(
    repo: Path, task_id: str, text: str, base: str | None, home: Path, *, branch: str | None = None
) -> Worktree:
    """The worktree of ``task_id``: made on a new branch from ``base`` (None: the repository's current
    branch), or reused as it is when it exists (a retry passes the first task's id and ``branch``).

    :class:`WorktreeError` when ``repo`` is missing or not a git repository, ``base`` names no
    commit, or git fails; nothing is left behind then.
    """
    if not repo.is_dir():
        raise WorktreeError(f"the repository {repo} does not exist")
    root = Path(_git(repo, "rev-parse", "--show-toplevel", what=f"{repo} is not a git repository")).resolve()
    folder = worktrees_dir(home, root)
    path = folder / task_id
    with _locked(folder):
        if path.exists():
            return _reused(root, path)
        name = base or _current_branch(root)
        commit = _git(root, "rev-parse", "--verify", "-q", f"{name}^{{commit}}", what=f"{name!r} names no commit")
        wanted = branch or f"{_BRANCH_PREFIX}{task_id}-{slug(text)}"
        existed = _ok(root, "show-ref", "--verify", "-q", f"refs/heads/{wanted}")
        try:
            if existed:  # the task's branch outlived its worktree: continue it
                _git(root, "worktree", "add", "-q", str(path), wanted, what="git worktree add failed")
            elif (spare := _take_spare(root, folder, path)) is not None:
                _onto(spare, wanted, commit)
            else:
                _git(root, "worktree", "add", "-q", "-b", wanted, str(path), commit, what="git worktree add failed")
            tree = Worktree(root, path, wanted, name, commit)
            _meta_path(path).write_text(json.dumps({"base": name, "base_commit": commit}), encoding="utf-8")
        except BaseException:
            _undo(root, path, None if existed else wanted)
            raise
    return tree


def add_spare(repo: Path, home: Path, base: str | None = None, *, unless_one: bool = False) -> Path | None:
    """Make one spare worktree (detached at ``base``, default the current branch) for a later
    :func:`prepare` to take; with ``unless_one``, only when the repository has none (None then).
    Costs a full checkout: call it off the dispatch path."""
    root = Path(_git(repo, "rev-parse", "--show-toplevel", what=f"{repo} is not a git repository")).resolve()
    folder = worktrees_dir(home, root)
    name = base or _current_branch(root)
    path = folder / f"{_SPARE}{secrets.token_hex(4)}"
    with _locked(folder):
        if unless_one and any(folder.glob(f"{_SPARE}*")):
            return None
        try:
            _git(root, "worktree", "add", "-q", "--detach", str(path), name, what="git worktree add failed")
        except BaseException:
            _undo(root, path, None)
            raise
    return path


def spares(repo: Path, home: Path) -> list[Path]:
    """The spare worktrees ready for ``repo``."""
    folder = worktrees_dir(home, repo.resolve())
    return sorted(folder.glob(f"{_SPARE}*")) if folder.is_dir() else []


def changed_files(tree: Worktree) -> list[dict[str, Any]]:
    """Files the task changed against the base commit: its commits, its uncommitted edits, its new files."""
    return files_changed(tree.baseline())


def diff_stat(tree: Worktree) -> str:
    """``3 files vs main`` (what the completion shows next to the branch)."""
    count = len(changed_files(tree))
    return f"{count} file{'' if count == 1 else 's'} vs {tree.base}"


def commit_pending(tree: Worktree, message: str, *, skip: list[str] | None = None) -> str | None:
    """Commit what the agent left uncommitted (its own commits are kept), but the paths in ``skip``
    (the CLI's own state files); the new commit id, or None when nothing was pending. The author is
    the repository's user, else ``Orchestra``."""
    excluded = [f":(exclude){p}" for p in skip or []]
    _git(tree.path, "add", "-A", "--", ".", *excluded, what="git add failed")
    if _ok(tree.path, "diff", "--cached", "--quiet"):
        return None
    env = {} if _ok(tree.path, "config", "user.email") else _IDENTITY
    committer = {k.replace("AUTHOR", "COMMITTER"): v for k, v in env.items()}
    _git(tree.path, "commit", "-q", "--no-verify", "-m", message, what="git commit failed", env={**env, **committer})
    return _git(tree.path, "rev-parse", "HEAD", what="git rev-parse failed")


def commit_run(baseline: dict[str, Any] | None, task_id: str, text: str) -> str | None:
    """After a run: in a task's worktree (its ``baseline`` names a branch), commit what the run left
    uncommitted with a message from the task (``t42: add the login page``). None when there was
    nothing to commit or no worktree; a git failure is logged, never raised (the run is recorded)."""
    if not baseline or not baseline.get("branch") or not Path(baseline["root"]).is_dir():
        return None
    tree = Worktree(Path(baseline["root"]), Path(baseline["root"]), str(baseline["branch"]), "", "")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    subject = f"{task_id}: {first}" if len(first) <= 66 else f"{task_id}: {first[:65]}…"
    message = f"{subject}\n\n{text[:4000]}" if text.strip() != first else subject
    try:
        return commit_pending(tree, message, skip=[str(p) for p in baseline.get("state_paths", [])])
    except WorktreeError as exc:
        log.warning("could not commit what %s left in %s: %s", task_id, tree.path, exc)
        return None


def remove(tree: Worktree, delete_branch: bool) -> None:
    """Remove the worktree (uncommitted changes too) and, with ``delete_branch``, its branch. Idempotent."""
    with _locked(tree.path.parent):
        _undo(tree.repo, tree.path, tree.branch if delete_branch else None)


def load(repo: Path, path: Path) -> Worktree | None:
    """The worktree at ``path`` as :func:`prepare` made it, or None when it is gone."""
    if not path.is_dir():
        return None
    try:
        return _reused(Path(repo).resolve(), path)
    except WorktreeError:
        return None


def _reused(root: Path, path: Path) -> Worktree:
    try:
        meta = json.loads(_meta_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise WorktreeError(f"{path} is not a worktree Orchestra made; remove it to start afresh") from None
    branch = _git(path, "symbolic-ref", "--short", "-q", "HEAD", what=f"{path} is on no branch")
    return Worktree(root, path, branch, str(meta["base"]), str(meta["base_commit"]), reused=True)


def _take_spare(root: Path, folder: Path, path: Path) -> Path | None:
    """Move a spare worktree to ``path`` (the caller holds the lock); None when there is none.
    Nobody works in a spare, so it is not checked for changes (that would read every file)."""
    for spare in sorted(folder.glob(f"{_SPARE}*")):
        if _ok(root, "worktree", "move", str(spare), str(path)):
            return path
        _undo(root, spare, None)  # broken: not to be handed to a task
    return None


def _onto(path: Path, branch: str, commit: str) -> None:
    """Put the worktree at ``path`` (clean, detached) on a new ``branch`` at ``commit``. At its own
    commit that is two ref writes, the index untouched; elsewhere a checkout of the difference."""
    if _git(path, "rev-parse", "HEAD", what="git rev-parse failed") == commit:
        _git(path, "branch", branch, commit, what="git branch failed")
        _git(path, "symbolic-ref", "HEAD", f"refs/heads/{branch}", what="git symbolic-ref failed")
    else:
        _git(path, "switch", "-q", "--no-guess", "-c", branch, commit, what="git switch failed")


def _current_branch(root: Path) -> str:
    """The repository's current branch, or its HEAD commit when detached (or ``HEAD`` when unborn)."""
    name = _run(root, "symbolic-ref", "--short", "-q", "HEAD")
    if name.returncode == 0 and name.stdout.strip():
        return name.stdout.strip()
    return _git(root, "rev-parse", "--verify", "-q", "HEAD", what=f"{root} has no commit to branch from")


def _meta_path(path: Path) -> Path:
    """The worktree's private git dir (named by its ``.git`` file), where the metadata lives."""
    pointer = (path / ".git").read_text(encoding="utf-8").strip()
    if not pointer.startswith("gitdir:"):
        raise WorktreeError(f"{path} is not a linked worktree")
    return Path(pointer.removeprefix("gitdir:").strip()) / _META


def _undo(root: Path, path: Path, branch: str | None) -> None:
    """Remove ``path`` as a worktree and as a directory, and ``branch``; whatever of it exists."""
    _run(root, "worktree", "remove", "--force", "--force", str(path))
    shutil.rmtree(path, ignore_errors=True)
    _run(root, "worktree", "prune")
    if branch:
        _run(root, "branch", "-q", "-D", branch)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the repository's worktree lock (``flock``: released even when the holder dies)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _ok(cwd: Path, *args: str) -> bool:
    return _run(cwd, *args).returncode == 0


def _git(cwd: Path, *args: str, what: str, env: dict[str, str] | None = None) -> str:
    """git's stdout, stripped; :class:`WorktreeError` ``what: git's last line`` when it fails."""
    try:
        done = _run(cwd, *args, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WorktreeError(f"{what}: {exc}") from None
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        raise WorktreeError(f"{what}: {said[-1].strip()}" if said else what)
    return done.stdout.strip()


# For core.branches, which works on the same repositories under the same lock.
IDENTITY = _IDENTITY
locked = _locked
current_branch = _current_branch
run_git = _run
git = _git

__all__ = [
    "IDENTITY",
    "Worktree",
    "add_spare",
    "changed_files",
    "commit_pending",
    "commit_run",
    "current_branch",
    "diff_stat",
    "git",
    "load",
    "locked",
    "prepare",
    "remove",
    "run_git",
    "slug",
    "spares",
    "worktrees_dir",
]
