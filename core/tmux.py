"""Orchestra's own tmux server: one window per task, named by the task id.

The server is private (``tmux -L <socket_name>``), never the user's default one. A task window
runs its command as an argv vector (tmux execs it directly, no shell), so no task text can ever
be read by a shell. Nothing here polls panes; ``capture`` is for peeks on request.

tmux runs with a few plain variables only: a process that starts the server hands it none of its
secrets, so a window's processes (and ``tmux show-environment``) hold none either.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import TmuxError

if TYPE_CHECKING:  # libtmux takes ~80 ms to import: only ``server`` loads it; commands run through ``_tmux``
    import libtmux

_HOME_WINDOW = "orchestra"
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # task ids and "_engine": nothing tmux would expand
_WINDOW_ID = re.compile(r"^@[0-9]+$")
# argv[1] is the directory, the rest the command: never a shell, never a tmux format.
_CHDIR_EXEC = (
    "import os, sys\n"
    "try:\n    os.chdir(sys.argv[1])\n"
    "except OSError as exc:\n    sys.exit(f'cannot enter {sys.argv[1]}: {exc.strerror}')\n"
    "os.execvp(sys.argv[2], sys.argv[2:])"
)
_MISSING = "tmux is not installed (not on PATH; apt-get install tmux)"
# All tmux is given of our environment: the server it may start keeps it as its global environment,
# which every window inherits, so no secret of ours (tokens, agents' keys) may be in it.
_SERVER_ENV = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TMPDIR", "TZ", "TMUX_TMPDIR"}
)


@dataclass(frozen=True)
class WindowInfo:
    name: str
    window_id: str
    pane_pid: int
    dead: bool


class TmuxManager:
    """Starts, lists, peeks at and kills task windows on a private tmux server."""

    def __init__(self, socket_name: str, session: str, *, config_file: str | None = None) -> None:
        self.socket_name = socket_name
        self.session = session
        self.config_file = config_file
        self._session_ready = False

    @cached_property
    def server(self) -> libtmux.Server:
        """libtmux's handle on the private server (it starts nothing: tmux runs on the first command)."""
        import libtmux

        return libtmux.Server(socket_name=self.socket_name, config_file=self.config_file)

    @staticmethod
    def available() -> bool:
        return shutil.which("tmux") is not None

    def _run(self, *args: str) -> list[str]:
        proc = self._tmux(*args)
        if proc.returncode != 0:
            raise TmuxError(f"tmux {args[0]} failed: {proc.stderr.strip() or proc.returncode}")
        return proc.stdout.splitlines()

    def _tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = ["tmux", "-L", self.socket_name]
        if self.config_file:
            cmd += ["-f", self.config_file]
        env = _server_env(os.environ)
        try:
            return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=10, check=False)
        except FileNotFoundError:
            raise TmuxError(_MISSING) from None
        except subprocess.TimeoutExpired:
            raise TmuxError(f"tmux {args[0]} did not answer within 10 s") from None

    def ensure_session(self) -> None:
        """Start the server and the session if they are not there.

        Once seen, the session is trusted without asking tmux again: ``start_window`` retries
        through here if it turns out to be gone.
        """
        if self._session_ready:
            return
        if not self._has_session():
            try:
                self._run(
                    "new-session",
                    "-d",
                    "-s",
                    self.session,
                    "-n",
                    _HOME_WINDOW,
                    "-x",
                    "200",
                    "-y",
                    "50",
                    "sh",
                    "-c",
                    "echo 'Orchestra task windows: Ctrl-b w to list them.'; exec tail -f /dev/null",
                )
            except TmuxError:
                if not self._has_session():  # another process may have won the race
                    raise
        self._session_ready = True

    def start_window(
        self, name: str, argv: list[str], *, cwd: str | None = None, env: dict[str, str] | None = None
    ) -> str:
        """Open a detached window running ``argv`` directly; return its window id (``@12``).

        tmux expands formats (``#(cmd)`` runs ``cmd``) in ``-c`` and ``-n``, so no path of a user
        reaches it: the window starts in ``/`` and ``argv`` changes to ``cwd`` itself (the task
        launcher reads its directory from its own file; given ``cwd``, a small exec wrapper does
        it). ``argv`` and ``-e`` values are passed as they are, so they must hold no secret (both are
        on tmux's command line); ``name`` must be a plain name.
        """
        _check_name(name)
        self.ensure_session()
        if cwd is not None:
            argv = [sys.executable, "-S", "-c", _CHDIR_EXEC, cwd, *argv]
        args = ["new-window", "-d", "-P", "-F", "#{window_id}", "-t", f"{self.session}:", "-n", name, "-c", "/"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        args += ["--", *argv]
        try:
            out = self._run(*args)
        except TmuxError:
            self._session_ready = False
            self.ensure_session()
            out = self._run(*args)
        return out[0].strip()

    def windows(self) -> dict[str, WindowInfo]:
        """Every task window by name, from one ``list-windows`` call; empty when the server is down."""
        if not self._has_session():
            return {}
        try:
            lines = self._run(
                "list-windows",
                "-t",
                f"{self.session}:",
                "-F",
                "#{window_name}\t#{window_id}\t#{pane_pid}\t#{pane_dead}",
            )
        except TmuxError:
            return {}
        found = {}
        for line in lines:
            name, window_id, pid, dead = [*line.split("\t"), "", "", "0", "0"][:4]
            if name != _HOME_WINDOW:
                found[name] = WindowInfo(name, window_id, int(pid or 0), dead == "1")
        return found

    def _has_session(self) -> bool:
        """Whether the session runs (False when the server does not); ``=`` asks for the exact name."""
        return self._tmux("has-session", "-t", f"={self.session}").returncode == 0

    def capture(self, window: str, lines: int = 40) -> str:
        """The visible text of a window's pane (for peeks; never called in a loop)."""
        out = self._run("capture-pane", "-p", "-J", "-t", self._target(window), "-S", f"-{lines}")
        return "\n".join(out).rstrip()

    def screen(self, window: str) -> str:
        """The visible screen of a window's pane with its colour escapes (for ``/screen``)."""
        return "\n".join(self._run("capture-pane", "-e", "-p", "-t", self._target(window))).rstrip()

    def kill(self, window: str) -> None:
        self._run("kill-window", "-t", self._target(window))

    def attach_argv(self, window: str) -> list[str]:
        cmd = ["tmux", "-L", self.socket_name]
        if self.config_file:
            cmd += ["-f", self.config_file]
        return [*cmd, "attach-session", "-t", self._target(window)]

    def _target(self, window: str) -> str:
        if _WINDOW_ID.match(window):
            return window
        _check_name(window)
        return f"{self.session}:={window}"


def _server_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment tmux commands run with, and so the one Orchestra's tmux server starts with:
    names known to hold no secret (``PATH``, ``HOME``, the locale, the terminal, ``TMUX_TMPDIR``...)."""
    return {k: v for k, v in environ.items() if k in _SERVER_ENV or k.startswith("LC_")}


def _check_name(name: str) -> None:
    if not _PLAIN_NAME.match(name):
        raise TmuxError(f"{name!r} is not a window name (letters, digits, '-' or '_')")


def runner_argv(task_dir: Path) -> list[str]:
    """The argv that starts a task's window: ``python -S`` running ``core.launch`` (then the runner)."""
    root = str(Path(__file__).resolve().parent.parent)
    boot = "import sys; sys.path.insert(0, sys.argv[1]); from core.launch import main; sys.exit(main(sys.argv[2:]))"
    return [sys.executable, "-S", "-c", boot, root, os.path.abspath(task_dir)]  # the window starts in /
