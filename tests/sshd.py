"""A real OpenSSH server on 127.0.0.1 for the hosts tests and benchmark: its own host key, a throwaway client key.

Started as ``/usr/sbin/sshd -D -f <tmp>/sshd_config -p <free port>``; it accepts only the client key
made here (``AuthorizedKeysFile`` is a file in the same folder) and only from 127.0.0.1. The
client trusts exactly its host key through a known_hosts file of its own.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


@dataclass
class Sshd:
    """A running sshd and what a client needs to reach it."""

    port: int
    user: str
    key: Path
    known_hosts: Path
    process: subprocess.Popen[bytes]

    def host_config(self, data_dir: Path, **more: object) -> dict[str, object]:
        """A ``hosts:`` entry of bots.yaml that reaches this server."""
        return {
            "ssh": f"{self.user}@127.0.0.1",
            "port": self.port,
            "identity_file": str(self.key),
            "known_hosts_file": str(self.known_hosts),
            "data_dir": str(data_dir),
            **more,
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def sshd_available() -> bool:
    return os.path.exists(SSHD) and shutil.which("ssh") is not None and shutil.which("ssh-keygen") is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def throwaway_user(home: Path) -> str | None:
    """As root: a new user whose login shell is ``/bin/sh`` and whose home is ``home`` (so no shell start-up
    file of ours slows or changes its sessions); None when users cannot be made here (then: ourselves)."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        return None
    name = f"orch{os.getpid() % 100000}{int(time.time() * 1000) % 1000}"
    home.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        ["useradd", "-M", "-p", "*", "-d", str(home), "-s", "/bin/sh", name], capture_output=True, check=False
    )
    if made.returncode != 0:
        return None
    shutil.chown(home, name, name)
    return name


def remove_user(name: str | None) -> None:
    if name:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True, check=False)
        subprocess.run(["userdel", name], capture_output=True, check=False)


def start_sshd(folder: Path, user: str | None = None) -> Sshd:
    """Start sshd with everything in ``folder``; it answers on the returned port within a few seconds.

    ``user`` logs in with the client key (default: the user running this); its authorized_keys is
    readable by it, the private keys only by us.
    """
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    host_key, client_key = folder / "host_key", folder / "client_key"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = folder / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    authorized.chmod(0o644)
    port = _free_port()
    known = folder / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {Path(f'{host_key}.pub').read_text().split(' ')[0]} "
                     f"{Path(f'{host_key}.pub').read_text().split(' ')[1]}\n")  # fmt: skip
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized}",
                f"PidFile {folder / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "AllowStreamLocalForwarding yes",
                "StreamLocalBindUnlink yes",
                "MaxSessions 100",
                "MaxStartups 100",
                "LogLevel ERROR",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    try:
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
    except OSError as exc:
        raise RuntimeError(f"sshd needs /run/sshd, which cannot be made here ({exc.strerror})") from None
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config), "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "sshd.log", "wb"),  # noqa: SIM115 - the server's for its life
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {(folder / 'sshd.log').read_text()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.05)
    return Sshd(port=port, user=user or getpass.getuser(), key=client_key, known_hosts=known, process=process)
