"""The processes below the runner: finding them through ``/proc``, and why the pane hung up.

Standard library only, like the runner.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def hang_up_reason(wait_s: float = 1.0) -> str:
    """Why the pane hung up: the tmux server stopped (its pid, from ``$TMUX``, exits), or only our window."""
    try:
        server_pid = int(os.environ.get("TMUX", "").split(",")[1])
    except (IndexError, ValueError):
        return "its tmux window was closed"
    deadline = time.time() + wait_s  # the server signals its panes before it exits
    while _running(server_pid):
        if time.time() >= deadline:
            return "its tmux window was closed"
        time.sleep(0.02)
    return "its tmux server stopped"


def _running(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie does not (a daemonised tmux server is not always reaped at once)."""
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                return fh.read().rsplit(b") ", 1)[1][:1] not in (b"Z", b"X")
        except FileNotFoundError:
            return False
        except (OSError, IndexError):
            pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (from ``/proc``), parents before their children."""
    children = _children if os.path.exists(f"/proc/{root}/task/{root}/children") else _children_by_scan()
    found: list[int] = []
    todo = [root]
    while todo and len(found) < 100_000:
        kids = children(todo.pop())
        found += kids
        todo += kids
    return found


def is_bwrap(pid: int) -> bool:
    """Whether the process is bubblewrap (``sandbox: bwrap``). The outer one dies of a SIGTERM at once,
    which would end the run's reading of the output while the agent inside still uses its grace (a
    trap, a CLI saving its session): a SIGTERM spares them; they end when the agent does (its exit
    status is theirs), or at the SIGKILL."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as fh:
            return fh.read().strip() == b"bwrap"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids: list[int] = []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                kids += [int(k) for k in fh.read().split()]
        except (OSError, ValueError):
            continue
    return kids


def _children_by_scan() -> Callable[[int], list[int]]:
    """For kernels without ``/proc/PID/task/TID/children``: one pass over every ``/proc/PID/stat``."""
    by_parent: dict[int, list[int]] = {}
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        by_parent.setdefault(ppid, []).append(int(name))
    return lambda pid: by_parent.get(pid, [])
