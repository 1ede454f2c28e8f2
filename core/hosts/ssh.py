"""One host's SSH link: a multiplexed OpenSSH connection (``ControlMaster``) and commands run over it.

Every command is an argv list for the local ``ssh`` and one remote command line built with
``shlex.quote`` from words, never from task text: what a task says never reaches a shell, here
or there. One master connection per host carries every task's commands (``ControlPath`` in the
data directory); a command finds the master up or starts it first, so a dropped link comes back
on the next use. Orchestra adds no trust of its own: the user's keys, agent and known_hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import HostDown, HostUnavailable

if TYPE_CHECKING:
    from core.config.hosts import HostConfig

_PERSIST_S = 600  # an idle master stays this long (a running task's follower keeps it busy)
_TRUSTED_S = 2.0  # how long a master seen up is trusted without asking it again
_SOCKET_MAX = 100  # sun_path holds 108 bytes; OpenSSH adds a temporary suffix while it binds


@dataclass(frozen=True)
class HostFacts:
    """What a probe of the host found: its home, its PATH, its load and its cores."""

    home: str
    path: str
    load: float
    cores: int


def quote(words: list[str]) -> str:
    """One remote command line from words, each quoted for a POSIX shell."""
    return " ".join(shlex.quote(word) for word in words)


class SshHost:
    """Runs commands on one host over its master connection; the probe's facts are kept once read."""

    def __init__(self, name: str, config: HostConfig, home: Path) -> None:
        self.name = name
        self.config = config
        self.home = home
        self._facts: HostFacts | None = None
        self._up_at: float | None = None  # when the master was last seen up (monotonic)
        self._lock = threading.RLock()
        self._connecting = False

    # -- argv ---------------------------------------------------------------------------------
    @property
    def control_path(self) -> str:
        path = str(self.home / "ssh" / self.name)
        if len(path) > _SOCKET_MAX:  # a deep data directory: a short path keyed by it instead
            digest = hashlib.sha256(path.encode()).hexdigest()[:16]
            path = os.path.join(tempfile.gettempdir(), f"orchestra-ssh-{os.getuid()}", digest)
        return path

    def options(self) -> list[str]:
        """The ssh options of every command: the master's path, no prompts, bounded waits."""
        config = self.config
        opts = {
            "ControlPath": self.control_path,
            "BatchMode": "yes",
            "ConnectTimeout": str(max(1, round(config.connect_timeout_s))),
            "ServerAliveInterval": "5",
            "ServerAliveCountMax": "3",
            **config.ssh_options,
        }
        if config.known_hosts_file:
            opts["UserKnownHostsFile"] = os.path.expanduser(config.known_hosts_file)
        argv = ["-p", str(config.port)]
        if config.identity_file:
            argv += ["-i", os.path.expanduser(config.identity_file)]
            opts.setdefault("IdentitiesOnly", "yes")
        for key, value in opts.items():
            argv += ["-o", f"{key}={value}"]
        return argv

    def argv(self, command: str, *, tty: bool = False) -> list[str]:
        """The local argv that runs ``command`` (a quoted line) on the host over the master."""
        return ["ssh", *self.options(), "-o", "ControlMaster=no", "-t" if tty else "-T", "--", self.config.ssh, command]

    # -- the master -----------------------------------------------------------------------------
    def master_up(self) -> bool:
        """Whether the master connection runs (a local check on its socket: no network).

        A master seen up in the last ``_TRUSTED_S`` is trusted without asking again (the check is a
        process of its own: it would be a tenth of a dispatch); a command that finds the link broken
        forgets it (``run``), and the next use checks and reconnects.
        """
        if not os.path.exists(self.control_path):
            self._up_at = None
            return False
        if self._up_at is not None and time.monotonic() - self._up_at < _TRUSTED_S:
            return True
        check = ["ssh", *self.options(), "-O", "check", "--", self.config.ssh]
        up = subprocess.run(check, capture_output=True, timeout=5, check=False).returncode == 0
        self._up_at = time.monotonic() if up else None
        return up

    def connect(self) -> None:
        """Start the master connection unless it runs; ``HostUnavailable`` in one line when it cannot."""
        if self._connecting or self.master_up():  # _connecting: the new master's own first commands
            return
        Path(self.control_path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # One master per host: threads of this process and other processes (the CLI, the engine) take
        # turns, and the one that finds it up once it has the lock uses it.
        with self._lock, _locked(self.control_path + ".lock"):
            self._up_at = None
            if self.master_up():
                return
            self._start_master()
            self._facts = None  # a new connection: the host may have changed
            self._up_at = time.monotonic()
            self._connecting = True
            try:
                self._forward()
            finally:
                self._connecting = False

    def _start_master(self) -> None:
        """``ssh -M -N -f``: the master authenticates, forks away and serves every later command."""
        with contextlib.suppress(OSError):  # a master that died leaves its socket: ours binds anew
            os.unlink(self.control_path)
        argv = ["ssh", *self.options(), "-o", "ControlMaster=yes", "-o", f"ControlPersist={_PERSIST_S}"]
        argv += ["-N", "-f", "--", self.config.ssh]
        # The master forks away and keeps its stderr: a file, not a pipe, or we would wait on it.
        with tempfile.TemporaryFile() as err:
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    timeout=self.config.connect_timeout_s + 10,
                    check=False,
                )
            except FileNotFoundError:
                raise HostUnavailable(
                    f"host {self.name}: ssh is not installed here (apt-get install openssh-client)"
                ) from None
            except subprocess.TimeoutExpired:
                raise HostDown(f"host {self.name} is down: no connection within the timeout") from None
            err.seek(0)
            why = err.read().decode(errors="replace").strip().splitlines()
        if done.returncode != 0:
            reason = why[-1] if why else f"ssh exited {done.returncode}"
            raise HostDown(f"host {self.name} is down: {reason}")

    def _forward(self) -> None:
        """Forward ``<data_dir>/run/engine.sock`` on the host to the local engine's socket, over the master:
        runners there tell the engine each event at once, and permission hooks ask it, as they do here."""
        remote = f"{self.data_dir()}/run/engine.sock"
        self.run(f"umask 077 && mkdir -p {quote([remote.rsplit('/', 1)[0]])} && rm -f {quote([remote])}")
        local = str(self.home / "run" / "engine.sock")
        forward = ["ssh", *self.options(), "-O", "forward", "-R", f"{remote}:{local}", "--", self.config.ssh]
        subprocess.run(forward, capture_output=True, timeout=10, check=False)  # without it: events come by file

    def forget(self) -> None:
        """The link was seen broken (a follower's stream ended): check the master on the next use."""
        self._up_at = None

    def disconnect(self) -> None:
        """Stop the master connection (running tasks go on there; their followers reconnect)."""
        self._up_at = None
        if os.path.exists(self.control_path):
            subprocess.run(
                ["ssh", *self.options(), "-O", "exit", "--", self.config.ssh],
                capture_output=True,
                timeout=10,
                check=False,
            )

    def master_pid(self) -> int | None:
        """The master connection's pid, from ``ssh -O check`` (None when it is not up)."""
        check = ["ssh", *self.options(), "-O", "check", "--", self.config.ssh]
        done = subprocess.run(check, capture_output=True, text=True, timeout=5, check=False)
        text = done.stderr + done.stdout
        if done.returncode != 0 or "pid=" not in text:
            return None
        return int(text.split("pid=", 1)[1].split(")", 1)[0])

    # -- commands -------------------------------------------------------------------------------
    def run(
        self, words: list[str] | str, *, input: bytes | None = None, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a command on the host (words, quoted here; or a line built with ``quote``).

        ``HostUnavailable`` when the host cannot be reached, or (``check``) the command fails.
        """
        self.connect()
        line = words if isinstance(words, str) else quote(words)
        try:
            done = subprocess.run(self.argv(line), input=input, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise HostUnavailable(f"host {self.name}: a command did not finish within {timeout:g} s") from None
        if done.returncode == 255:  # ssh's own failure: the link, not the command
            self._up_at = None
            why = done.stderr.decode(errors="replace").strip().splitlines()
            raise HostDown(f"host {self.name} is down: {why[-1] if why else 'the connection failed'}")
        if check and done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip().splitlines()
            raise HostUnavailable(
                f"host {self.name}: {line.split(' ', 1)[0]} failed: {why[-1] if why else done.returncode}"
            )
        return done

    def facts(self, *, fresh: bool = False) -> HostFacts:
        """The host's home, PATH, load and cores (one round trip; kept until ``fresh``)."""
        if self._facts is not None and not fresh:
            return self._facts
        probe = (
            'printf "%s\\n%s\\n" "$HOME" "$PATH"; cat /proc/loadavg 2>/dev/null || echo 0; nproc 2>/dev/null || echo 1'
        )
        out = self.run(probe, timeout=self.config.connect_timeout_s + 10).stdout.decode(errors="replace").splitlines()
        home, path, load, cores = [*out, "", "", "0", "1"][:4]
        self._facts = HostFacts(home, path, _float(load.split(" ", 1)[0]), int(cores) if cores.isdigit() else 1)
        return self._facts

    def data_dir(self) -> str:
        """The absolute data directory on the host (``~`` is its home, as the probe found it)."""
        path = self.config.data_dir
        if path == "~" or path.startswith("~/"):
            path = self.facts().home.rstrip("/") + path[1:]
        return path.rstrip("/") or "/"

    def tmux_words(self) -> list[str]:
        """The host's private tmux server, for task windows."""
        return ["tmux", "-L", self.config.tmux_socket]


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """An exclusive lock on ``path`` (made mode 600), held by this process until the block ends."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
