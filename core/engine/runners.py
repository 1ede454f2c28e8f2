"""A task's runner as the engine sees it: alive or gone, signalled, cancelled, its agent killed.

Safe from any process (the engine, a CLI, the bot): each works from the pid the runner reported
in its ``started`` event and from the files in the task directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from core.protocol import CANCEL_FILE, RESULT_FILE, EventKind, task_dir

if TYPE_CHECKING:
    from core.store import Store
    from core.tmux import TmuxManager

_HAS_PROC = Path("/proc/self/cmdline").exists()


def request_cancel(store: Store, tmux: TmuxManager, home: Path, task_id: str) -> bool:
    """Leave a cancel mark for the runner and signal it if it is up; False if it is gone.

    The mark covers a cancel that lands before the runner has installed its signal handlers:
    the runner checks it once it is ready, and the engine re-signals when ``started`` arrives.
    """
    directory = task_dir(home, task_id)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CANCEL_FILE).touch()
    if store.task_field(task_id, "runner_pid"):
        return signal_runner(store, tmux, task_id)
    return task_id in tmux.windows() or (directory / RESULT_FILE).exists()


def _remote(store: Store, task_id: str) -> bool:
    """Whether the task runs on another host: its pids are that host's, never to be signalled here."""
    host = store.task_field(task_id, "host")
    return bool(host) and host != "local"


def signal_runner(store: Store, tmux: TmuxManager, task_id: str, sig: int = signal.SIGTERM) -> bool:
    """Send a signal to the task's runner; the runner stops the agent gracefully, then kills it."""
    pid = store.task_field(task_id, "runner_pid")
    if not pid or _remote(store, task_id):
        return False
    try:
        os.kill(int(pid), sig)
    except ProcessLookupError:
        return False
    return True


def runner_alive(store: Store, home: Path, task_id: str) -> bool | None:
    """Whether the task's runner still runs; None when it has not reported its pid yet (or runs on a host)."""
    pid = store.task_field(task_id, "runner_pid")
    if not pid or _remote(store, task_id):
        return None
    if _HAS_PROC:  # the pid's command line names the task dir, so a reused pid is not mistaken for it
        try:
            return str(task_dir(home, task_id)).encode() in Path(f"/proc/{int(pid)}/cmdline").read_bytes()
        except FileNotFoundError:
            return False
        except OSError:
            pass
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def kill_agent(store: Store, task_id: str) -> None:
    """Kill the process group of a task's agent (the runner starts it in its own session); here only."""
    if _remote(store, task_id):
        return
    for event in store.events(task_id, kinds=[EventKind.STARTED], limit=1):
        pid = event["data"].get("pid")
        if isinstance(pid, int) and pid > 1:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
