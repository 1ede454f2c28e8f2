"""What happens to a task's branch at the end: its diff against the base, a merge into the base, or
deletion. Real git, argv only; the main checkout is touched by a fast-forward at most.

A merge is computed without a working tree: ``git merge-tree --write-tree`` says whether the
branch merges cleanly and gives the merged tree (a conflict names the files and changes nothing),
``git commit-tree`` makes the merge commit, and the base branch moves to it by compare-and-swap
(``git update-ref NEW OLD``). When the base is checked out somewhere (usually the main checkout),
that checkout moves with ``git merge --ff-only`` instead, which git refuses, changing nothing,
when it would overwrite a local edit; a checkout with uncommitted changes to tracked files is
refused before anything is done. So there is never a half-made merge to clean up.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from core import worktrees
from core.errors import WorktreeError

_PATCH_LIMIT = 8 * 1024 * 1024  # what a chat takes as a document without complaint; the stat says the rest


class MergeConflict(WorktreeError):
    """The branch does not merge cleanly into the base; ``files`` are the conflicted paths."""

    def __init__(self, message: str, files: list[str]) -> None:
        super().__init__(message)
        self.files = files


@dataclass(frozen=True)
class Diff:
    """A branch's change against the base: ``stat`` for the message, ``patch`` for the file."""

    stat: str
    patch: bytes
    files: int
    clipped: bool


@dataclass(frozen=True)
class Merged:
    """The base branch after a merge: its new commit, and how it got there."""

    base: str
    commit: str
    fast_forward: bool
    files: int
    already: bool = False  # the branch was in the base already: nothing moved


def branch_exists(repo: Path, branch: str) -> bool:
    return _run(repo, "show-ref", "--verify", "-q", f"refs/heads/{branch}").returncode == 0


def diff(repo: Path, branch: str, base: str) -> Diff:
    """What ``branch`` changed since it left ``base`` (``base...branch``), as a stat and a patch."""
    _need_branch(repo, branch)
    _need_branch(repo, base)
    span = f"refs/heads/{base}...refs/heads/{branch}"
    stat = _git(repo, "diff", "--stat=72", span, what="git diff failed")
    names = _git(repo, "diff", "--name-only", span, what="git diff failed")
    patch = _run_bytes(repo, "diff", "--binary", span)
    clipped = len(patch) > _PATCH_LIMIT
    return Diff(stat, patch[:_PATCH_LIMIT], len([n for n in names.splitlines() if n]), clipped)


def merge(repo: Path, branch: str, base: str, message: str, *, home: Path) -> Merged:
    """Merge ``branch`` into the ``base`` branch: fast-forward when it can, else a merge commit.

    :class:`MergeConflict` names the conflicted files; :class:`WorktreeError` when the checkout
    that has ``base`` checked out has uncommitted changes or git refuses. Either way nothing moved.
    Holds the repository's worktree lock, so it never interleaves with a task's worktree being made.
    """
    repo = Path(_git(repo, "rev-parse", "--show-toplevel", what=f"{repo} is not a git repository")).resolve()
    _need_branch(repo, branch)
    _need_branch(repo, base)
    with worktrees.locked(worktrees.worktrees_dir(home, repo)):
        old = _git(repo, "rev-parse", f"refs/heads/{base}", what="git rev-parse failed")
        tip = _git(repo, "rev-parse", f"refs/heads/{branch}", what="git rev-parse failed")
        files = len(_git(repo, "diff", "--name-only", f"{old}...{tip}", what="git diff failed").splitlines())
        if _ancestor(repo, tip, old):
            return Merged(base, old, fast_forward=True, files=0, already=True)
        checkout = _checked_out(repo, base)
        if checkout is not None:
            dirty = _run(checkout, "status", "--porcelain", "--untracked-files=no").stdout
            if dirty.strip():
                first = dirty.splitlines()[0][3:]
                raise WorktreeError(
                    f"{checkout} has uncommitted changes ({first}…); commit or stash them, then merge again"
                )
        fast = _ancestor(repo, old, tip)
        new = tip if fast else _merge_commit(repo, old, tip, base, branch, message)
        if checkout is not None:
            _git(checkout, "merge", "-q", "--ff-only", new, what=f"git could not update {checkout}")
        else:
            _git(repo, "update-ref", "-m", f"orchestra: merge {branch}", f"refs/heads/{base}", new, old,
                 what=f"{base} moved meanwhile; merge again")  # fmt: skip
    return Merged(base, new, fast_forward=fast, files=files)


def delete_branch(repo: Path, branch: str) -> None:
    """Delete ``branch`` (idempotent); its worktree must be gone first."""
    _run(repo, "branch", "-q", "-D", branch)


def _merge_commit(repo: Path, old: str, tip: str, base: str, branch: str, message: str) -> str:
    done = _run(repo, "merge-tree", "--write-tree", "--name-only", "--no-messages", old, tip)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode == 1:
        files = sorted(dict.fromkeys(lines[1:]))
        shown = ", ".join(files[:6]) + (f" and {len(files) - 6} more" if len(files) > 6 else "")
        raise MergeConflict(f"{branch} conflicts with {base} in {shown}; nothing was merged", files)
    if done.returncode != 0 or not lines:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        raise WorktreeError(f"git merge-tree failed: {said[-1] if said else done.returncode}")
    env = {} if _run(repo, "config", "user.email").returncode == 0 else worktrees.IDENTITY
    env |= {k.replace("AUTHOR", "COMMITTER"): v for k, v in env.items()}
    return _git(
        repo, "commit-tree", lines[0], "-p", old, "-p", tip, "-m", message, what="git commit-tree failed", env=env
    )


def _checked_out(repo: Path, base: str) -> Path | None:
    """The worktree (main or linked) that has ``base`` checked out, if any."""
    listing = _git(repo, "worktree", "list", "--porcelain", what="git worktree list failed")
    path: str | None = None
    for line in listing.splitlines():
        if line.startswith("worktree "):
            path = line.removeprefix("worktree ")
        elif line == f"branch refs/heads/{base}" and path:
            return Path(path)
    return None


def _ancestor(repo: Path, older: str, newer: str) -> bool:
    return _run(repo, "merge-base", "--is-ancestor", older, newer).returncode == 0


def _need_branch(repo: Path, branch: str) -> None:
    if not branch_exists(repo, branch):
        raise WorktreeError(f"{repo} has no branch {branch}")


def _run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return worktrees.run_git(cwd, *args, env=env)


def _run_bytes(cwd: Path, *args: str) -> bytes:
    argv = ["git", "-C", str(cwd), *args]
    done = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=120, check=False)
    if done.returncode != 0:
        raise WorktreeError(f"git {args[0]} failed: {done.stderr.decode(errors='replace').strip()[-200:]}")
    return done.stdout


def _git(cwd: Path, *args: str, what: str, env: dict[str, str] | None = None) -> str:
    return worktrees.git(cwd, *args, what=what, env=env)


__all__ = ["Diff", "MergeConflict", "Merged", "branch_exists", "delete_branch", "diff", "merge"]
