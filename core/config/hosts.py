"""bots.yaml ``hosts``: the machines a task can run on over SSH, and which categories and agents go there."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from core.config.fields import Seconds, StrictModel

# user@host or host: letters, digits and the few characters a DNS name, an IPv4/IPv6 address or a
# user name holds. Never an option (a leading '-') and never anything a shell would read.
_DESTINATION = r"(?:[A-Za-z0-9._][A-Za-z0-9._-]{0,63}@)?(?:[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]+\])"
LOCAL_HOST = "local"


class HostConfig(StrictModel):
    """One machine reachable with the user's own ``ssh``: its tasks run in its own tmux server.

    No secret is in here: the key is a file path (or the user's ssh-agent), the trust is the user's.
    """

    ssh: str = Field(description="The SSH destination, `user@host` or `host` (as you would type after `ssh`).")
    port: int = Field(default=22, ge=1, le=65535, description="The SSH port.")
    identity_file: str | None = Field(
        default=None, description="A private key file by path; null: the keys of your ssh-agent and ~/.ssh/config."
    )
    data_dir: str = Field(
        default="~/.local/share/orchestra-remote",
        description="Where the runner, task files and working trees live on the host (`~` is the remote home).",
    )
    max_concurrent: int = Field(default=2, ge=1, description="Tasks running on this host at once.")
    agents: list[str] = Field(default_factory=list, description="The agents installed on the host (by name).")
    tmux_socket: str = Field(
        default="orchestra", description="The host's own tmux server for task windows: `tmux -L <this>` there."
    )
    python: str = Field(default="python3", description="The Python (3.11 or later) that runs the runner there.")
    connect_timeout_s: Seconds = Field(default=5, gt=0, description="How long a connection may take to come up.")
    known_hosts_file: str | None = Field(
        default=None, description="A known_hosts file to trust instead of ~/.ssh/known_hosts (null: yours)."
    )
    ssh_options: dict[str, str] = Field(
        default_factory=dict,
        description="Extra `-o Name=value` options for ssh (e.g. ProxyJump); never a secret.",
    )

    @field_validator("ssh")
    @classmethod
    def _destination(cls, value: str) -> str:
        if not re.fullmatch(_DESTINATION, value):
            raise ValueError(f"{value!r} is not an SSH destination (user@host or host)")
        return value

    @field_validator("tmux_socket")
    @classmethod
    def _socket(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise ValueError(f"{value!r} is not a tmux socket name (letters, digits, '-' or '_')")
        return value

    @field_validator("ssh_options")
    @classmethod
    def _options(cls, value: dict[str, str]) -> dict[str, str]:
        for name, option in value.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name) or "\n" in option:
                raise ValueError(f"{name!r} is not an ssh option name")
        return value
