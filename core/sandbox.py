"""The sandbox an agent may run in (``sandbox: bwrap``): its argv wrapped in bubblewrap.

Inside, the whole file system is read-only and the network is the host's (the agent needs its
model's API). Writable: the task's working directory, a private ``/tmp``, the agent's own config
dir under the data dir and the files its CLI keeps in the user's home (``~/.claude`` for Claude
Code...). Hidden (an empty tmpfs, or ``/dev/null`` for a file): the rest of the data dir (the
store, other tasks, the engine's socket, logs), the user's runtime dir (D-Bus, agent sockets),
the tmux sockets, and the user's secret stores and other CLIs' logins (``SECRET_STORES``). New
namespaces (pid: the agent sees no other process, so no ``/proc/PID/environ`` of the bot) and no
capabilities (bwrap keeps them when run by root, and with them ``umount`` would undo the hiding).

A mounted path wins over the paths above it (mounts are ordered by depth), so a working directory
inside ``$HOME`` stays writable and a data dir inside the working directory stays hidden.

Built in the engine without a subprocess: a few ``lstat`` calls decide which stores exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from core.agents.common import HOME_VARS

BWRAP = "bwrap"
TASK_FD = "fd:"  # an argv word ``fd:<marker>``: the launcher opens the task file on fd 3 for bwrap to copy
# The user's secret stores, and other CLIs' logins (an agent's own CLI's are writable instead).
SECRET_STORES = (
    ".ssh", ".gnupg", ".aws", ".azure", ".config/gcloud", ".kube", ".docker", ".config/gh", ".password-store",
    ".netrc", ".git-credentials", ".pgpass", ".npmrc", ".pypirc", ".env", ".aider.conf.yml",
    ".claude", ".claude.json", ".codex", ".gemini", ".qwen", ".factory", ".local/share/opencode", ".config/opencode",
    ".copilot",
)  # fmt: skip
# What each CLI keeps in the user's home when no variable of the agent's env moves it (``HOME_VARS``);
# a folder (``/``) is made if missing, as the CLI would make it.
CLI_HOME_STATE: dict[str, tuple[str, ...]] = {
    "claude": (".claude/", ".claude.json"),
    "droid": (".factory/",),
    "opencode": (".local/share/opencode/", ".local/state/opencode/", ".cache/opencode/", ".config/opencode/"),
    "aider": (".aider/",),
    "copilot": (".cache/copilot/",),  # it unpacks its own runtime there (~235 MB) on first start
}
_MOVED_BY = {"claude": "CLAUDE_CONFIG_DIR"}  # the variable that moves a CLI's home state elsewhere
_SOCKETS = ("/run/docker.sock", "/var/run/docker.sock")  # reachable even on a read-only file system
# Namespaces, no capabilities; no --die-with-parent: it turns the runner's SIGTERM into an
# immediate SIGKILL of everything inside (the grace lost); the runner reaps the tree itself.
_BASE = ("--unshare-all", "--share-net", "--new-session", "--cap-drop", "ALL", "--ro-bind", "/", "/")


@dataclass(frozen=True)
class SandboxPaths:
    """Where one task's agent runs and what of the data dir it may reach (absolute paths)."""

    cwd: str
    data_dir: str
    task_dir: str
    socket: str
    config_dirs: tuple[str, ...] = ()  # writable: the agent's own config dir and the homes its env names
    hook: bool = False  # the agent runs a permission hook: its task dir and the socket's folder are bound (read-only)
    git_dirs: tuple[str, ...] = ()  # writable: what git in a linked worktree writes (see :func:`worktree_git_dirs`)


def worktree_git_dirs(cwd: str) -> tuple[str, ...]:
    """For a ``cwd`` in a linked git worktree (a task's own), what git there must write: the
    worktree's private git dir (HEAD, index) and the repository's objects, refs and logs. The
    repository's config and hooks stay read-only: code git would run later is not the agent's to
    change. Empty outside a linked worktree."""
    top = cwd
    while True:
        pointer = os.path.join(top, ".git")
        if os.path.isfile(pointer):
            break
        if os.path.isdir(pointer) or os.path.dirname(top) == top:
            return ()
        top = os.path.dirname(top)
    try:
        with open(pointer, encoding="utf-8") as handle:
            line = handle.read().strip()
    except OSError:
        return ()
    if not line.startswith("gitdir:"):
        return ()
    private = os.path.realpath(os.path.join(top, line.removeprefix("gitdir:").strip()))
    try:
        with open(os.path.join(private, "commondir"), encoding="utf-8") as handle:
            common = os.path.realpath(os.path.join(private, handle.read().strip()))
    except OSError:
        return ()
    return (private, *(os.path.join(common, name) for name in ("objects", "refs", "logs")))


def sandboxed(
    argv: list[str], paths: SandboxPaths, *, kind: str, env: Mapping[str, str], task_file_marker: str = ""
) -> list[str]:
    """``argv`` wrapped in bubblewrap (an argv, never a shell line); the agent's config dirs are made.

    ``env`` is the agent's whole environment (its ``HOME``, ``XDG_RUNTIME_DIR``, config-home
    variables). A ``task_file_marker`` in ``argv`` becomes ``task.md`` in the task dir inside the
    sandbox, a read-only copy bwrap takes from the descriptor the launcher opens (``TASK_FD``).
    """
    home = env.get("HOME") or os.path.expanduser("~")
    real = os.path.realpath
    mounts: list[tuple[str, tuple[str, ...]]] = []

    def hide(path: str) -> None:
        if os.path.lexists(path):
            is_dir = os.path.isdir(path)
            mounts.append((real(path), ("--tmpfs",) if is_dir else ("--ro-bind", "/dev/null")))

    def bind(path: str, flag: str = "--bind") -> None:
        if os.path.lexists(path):
            mounts.append((real(path), (flag, real(path))))

    given = () if _MOVED_BY.get(kind, "") in env else CLI_HOME_STATE.get(kind, ())
    state = [os.path.join(home, name.rstrip("/")) for name in given]
    for directory in (*paths.config_dirs, *(path for path, name in zip(state, given, strict=True) if name[-1] == "/")):
        os.makedirs(directory, mode=0o700, exist_ok=True)  # a bind needs its source
    hide(paths.data_dir)
    for name in SECRET_STORES:
        if os.path.join(home, name) not in state:
            hide(os.path.join(home, name))
    for name in (env.get("XDG_RUNTIME_DIR", ""), os.environ.get("TMUX_TMPDIR", ""), *_SOCKETS):
        if name:
            hide(name)
    bind(paths.cwd)
    for directory in paths.git_dirs:
        bind(directory)
    for directory in (*paths.config_dirs, *state):
        bind(directory)
    for var in sorted(HOME_VARS):
        if env.get(var):
            bind(os.path.expanduser(env[var]))
    for program in _programs(argv, env):  # the agent's program and Orchestra's hook, under the private /tmp
        mounts.append((program, ("--ro-bind", program)))
    if paths.hook:
        os.makedirs(paths.task_dir, mode=0o700, exist_ok=True)  # the engine writes spec.json there next
        bind(paths.task_dir, "--ro-bind")
        # The socket's folder, not the socket: a restarted engine makes a new one there, which the
        # hook must still reach (a bound file would stay the old, dead socket). connect() needs no write.
        bind(os.path.dirname(paths.socket), "--ro-bind")
    inner = argv
    if task_file_marker and any(task_file_marker in arg for arg in argv):
        task_md = os.path.join(real(paths.task_dir), "task.md")
        mounts.append((task_md, ("--ro-bind-data", TASK_FD + task_file_marker)))
        inner = [arg.replace(task_file_marker, task_md) for arg in argv]
    words = [BWRAP, *_BASE, "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path, flags in sorted(mounts, key=lambda m: m[0].rstrip("/").count("/")):  # stable: later wins at one depth
        words += [*flags, path]
    # Last, once the binds inside them exist: a hidden folder is read-only too (a write fails, as it would have).
    bound = {path for path, flags in mounts if flags != ("--tmpfs",)}
    for path, flags in mounts:
        if flags == ("--tmpfs",) and path not in bound:  # a folder both hidden and bound is bound
            words += ["--remount-ro", path]
    return [*words, "--chdir", real(paths.cwd), "--", *inner]


def _programs(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """The folders under ``/tmp`` the agent needs to start at all: where its program (and what that
    links to) and Orchestra's own files (the hook) live, when they live there; read-only inside."""
    import sys

    found = shutil.which(argv[0], path=env.get("PATH")) if argv else None
    places = [os.path.realpath(p) for p in (found, sys.executable, __file__) if p]
    if found:
        places.append(os.path.abspath(found))  # a symlink's own folder (node_modules/.bin)
    tops = []
    for place in places:
        parts = place.split("/")
        if len(parts) > 3 and parts[1] == "tmp":  # /tmp/<top>/...: the private /tmp would hide it
            top = "/".join(parts[:3])
            if top not in tops:
                tops.append(top)
    return tops


def sandbox_problem() -> str | None:
    """Why ``sandbox: bwrap`` cannot work here (one sentence), or None; runs bwrap once (doctor, config check)."""
    path = shutil.which(BWRAP)
    if path is None:
        return "bubblewrap is not installed (apt-get install bubblewrap, or dnf install bubblewrap)"
    argv = [path, *_BASE, "--dev", "/dev", "--proc", "/proc", "--", "true"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not run: {exc}"
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return f"bwrap cannot make a sandbox here ({why}): unprivileged user namespaces may be off"
    return None
