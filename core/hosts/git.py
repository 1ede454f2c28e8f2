"""A task's git worktree on a host: its base pushed there over SSH, its branch fetched back the same way.

The host keeps a bare repository per local one (``<data_dir>/repos/<name>-<hash>.git``) and the
task worktrees cut from it (``<data_dir>/worktrees/<name>-<hash>/<owner>``), as the local data
directory does. The base commit goes there with ``git push`` over the host's master connection
(the host needs no access to the project's remote, nor any credential), and after the run what
the agent left uncommitted is committed there and the branch is fetched back into the local
repository, so Diff, Merge and Open PR work on it as on a local task's branch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import WorktreeError
from core.hosts.ssh import quote
from core.worktrees import slug

if TYPE_CHECKING:
    from core.hosts.ssh import SshHost

log = logging.getLogger(__name__)
_BRANCH_PREFIX = "orchestra/"
_IDENTITY = "-c user.name=Orchestra -c user.email=orchestra@localhost"


@dataclass(frozen=True)
class RemoteTree:
    """A task's worktree on a host, the branch checked out in it and the base it was cut from."""

    host: str
    path: str
    branch: str
    base: str
    commit: str

    @property
    def ref(self) -> str:
        """What the task row keeps as its worktree: ``host:path`` (no local folder has that name)."""
        return f"{self.host}:{self.path}"


def _name(root: Path) -> str:
    digest = hashlib.sha1(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{root.name}-{digest}"


def _git(root: Path, *args: str, host: SshHost | None = None, what: str) -> str:
    env = dict(os.environ)
    if host is not None:  # git's ssh: the host's own options and its master connection
        env["GIT_SSH_COMMAND"] = shlex.join(["ssh", *host.options(), "-o", "ControlMaster=no"])
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=300, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WorktreeError(f"{what}: {exc}") from None
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        raise WorktreeError(f"{what}: {said[-1].strip()}" if said else what)
    return done.stdout.strip()


def repo_url(host: SshHost, root: Path) -> str:
    """The bare repository on the host that mirrors ``root``, as an ``ssh://`` URL for git."""
    return f"ssh://{host.config.ssh}:{host.config.port}{host.data_dir()}/repos/{_name(root)}.git"


def prepare(host: SshHost, root: Path, owner: str, text: str, base: str | None, branch: str | None) -> RemoteTree:
    """The worktree of ``owner`` on the host: made on a new branch from ``base`` (None: the local checkout's
    current branch), or continued when the branch is there already (a retry passes its ``branch``)."""
    data = host.data_dir()
    bare = f"{data}/repos/{_name(root)}.git"
    path = f"{data}/worktrees/{_name(root)}/{owner}"
    name = base or _git(root, "rev-parse", "--abbrev-ref", "HEAD", what=f"{root} has no current branch")
    commit = _git(root, "rev-parse", "--verify", "-q", f"{name}^{{commit}}", what=f"{name!r} names no commit")
    wanted = branch or f"{_BRANCH_PREFIX}{owner}-{slug(text)}"
    found = host.run(
        f"umask 077 && {{ test -d {quote([bare])} || git init -q --bare {quote([bare])}; }} && "
        f"git -C {quote([bare])} rev-parse --verify -q {quote(['refs/heads/' + wanted])} || true"
    )
    if not found.stdout.strip():
        _git(root, "push", "-q", repo_url(host, root), f"{commit}:refs/heads/{wanted}", host=host,
             what=f"could not push {name} to {host.name}")  # fmt: skip
    host.run(
        f"test -d {quote([path])} || {{ mkdir -p {quote([path.rsplit('/', 1)[0]])} && "
        f"git -C {quote([bare])} worktree add -q {quote([path, wanted])}; }}"
    )
    return RemoteTree(host.name, path, wanted, name, commit)


def bring_back(host: SshHost, root: Path, tree_path: str, branch: str, task_id: str, text: str) -> None:
    """After the run: commit what it left uncommitted there, then fetch its branch into ``root`` here.

    Never raises: a failure is logged (the run is recorded either way, the branch stays on the host).
    """
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    subject = f"{task_id}: {first}" if len(first) <= 66 else f"{task_id}: {first[:65]}…"
    git = f"git -C {quote([tree_path])}"
    try:
        host.run(
            f"{git} add -A && {{ {git} diff --cached --quiet || "
            f"{git} {_IDENTITY} commit -q --no-verify -m {quote([subject])}; }}"
        )
        _git(root, "fetch", "-q", repo_url(host, root), f"refs/heads/{branch}:refs/heads/{branch}", host=host,
             what=f"could not fetch {branch} from {host.name}")  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - logged: the run is recorded whatever git says
        log.warning("could not bring %s's branch %s back from %s: %s", task_id, branch, host.name, exc)
