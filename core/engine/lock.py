"""The engine lock: which one process is the engine, asking it to stop, and poking it over its socket.

Exactly one process at a time is the engine: the one holding ``engine.lock`` in the data
directory (the bot process, ``orchestra engine``, or a CLI that waits for its task). The file says
who holds it, ``PID ROLE``; the kernel drops the lock when that process dies.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
from typing import TYPE_CHECKING, Any

from core.protocol import encode

if TYPE_CHECKING:
    from pathlib import Path

_LOCK_FILE = "engine.lock"


class EngineLock:
    """The data directory's engine lock, taken and given back by one process."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._fd: int | None = None

    def acquire(self, role: str = "engine") -> bool:
        """Take the lock; False if another live process holds it.

        ``role`` is what :func:`lock_holder` reports: ``bot``, ``engine`` (on demand) or ``cli``
        (a CLI waiting for its task).
        """
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {role}\n".encode())
        self._fd = fd
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the lock back; nothing when it is not held."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def engine_running(home: Path) -> bool:
    """True when some process holds the engine lock."""
    path = home / _LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def lock_holder(home: Path) -> tuple[int, str] | None:
    """``(pid, role)`` of the process holding the engine lock, None when none does.

    The role is what it wrote when it took the lock; ``""`` for a file without one (an older version).
    """
    if not engine_running(home):
        return None
    try:
        words = (home / _LOCK_FILE).read_text().split()
        return int(words[0]) if words else 0, words[1] if len(words) > 1 else ""
    except (OSError, ValueError):
        return 0, ""


def signal_engine(home: Path, sig: int = signal.SIGTERM) -> bool:
    """Ask the process holding the engine lock to stop (used to hand over to the bot process)."""
    try:
        words = (home / _LOCK_FILE).read_text().split()
        pid = int(words[0]) if words else 0
    except (OSError, ValueError):
        return False
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def poke(socket_path: Path, record: dict[str, Any]) -> bool:
    """Send one line (``core.protocol``'s ``kick_message``, ``cancel_message``, ``answered_message``) to a
    running engine; False when none is listening."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(socket_path))
            sock.sendall(encode(record))
        return True
    except OSError:
        return False
