"""The hosts of bots.yaml by name, and which one a task goes to (``@host:NAME``, --host, or its route)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.config.hosts import LOCAL_HOST
from core.errors import HostUnavailable
from core.hosts.ssh import SshHost

if TYPE_CHECKING:
    from pathlib import Path

    from core.config import Config
    from core.models import Task

_MENTION = re.compile(r"(?:^|(?<=\s))@host:([a-z][a-z0-9_-]{0,31})(?=\s|$)")


def split_host(text: str) -> tuple[str | None, str]:
    """``(host, text without it)`` for a task naming ``@host:NAME`` anywhere; ``(None, text)`` otherwise."""
    found = _MENTION.search(text)
    if found is None:
        return None, text
    rest = (text[: found.start()] + text[found.end() :]).strip()
    return found.group(1), re.sub(r"[ \t]{2,}", " ", rest)


@dataclass(frozen=True)
class HostChoice:
    """Where a task runs (None: here) and the one line to add to its route when a host was skipped."""

    host: str | None
    note: str = ""


class Hosts:
    """Each host's ``SshHost``, made on first use and kept, so its probe is read once per process."""

    def __init__(self, config: Config, home: Path) -> None:
        self.config = config
        self.home = home
        self._hosts: dict[str, SshHost] = {}

    def names(self) -> list[str]:
        return list(self.config.hosts)

    def get(self, name: str) -> SshHost:
        """The host ``name``; ``HostUnavailable`` in one line when bots.yaml has none of that name."""
        if name not in self.config.hosts:
            known = ", ".join(sorted(self.config.hosts)) or "none configured"
            raise HostUnavailable(f"unknown host {name!r} (hosts: {known}; `local` is this machine)")
        if name not in self._hosts:
            self._hosts[name] = SshHost(name, self.config.hosts[name], self.home)
        return self._hosts[name]

    def of(self, task: Task) -> SshHost:
        assert task.host is not None and task.remote
        return self.get(task.host)

    def choose(self, agent: str, category: str, *, explicit: str | None = None) -> HostChoice:
        """The host for a task of ``agent`` and ``category``.

        One named by the person (``@host:NAME``, --host) must exist, have the agent and be up, else
        ``HostUnavailable`` and nothing is stored. A routed one (the agent's ``host``, then
        ``routing.hosts``) that is down or lacks the agent is skipped like a missing CLI: the task
        runs here, and the note says why in one line.
        """
        if explicit is not None:
            if explicit == LOCAL_HOST:
                return HostChoice(None)
            host = self.get(explicit)
            if host.config.agents and agent not in host.config.agents:
                raise HostUnavailable(f"host {explicit} has no {agent} (its agents: {', '.join(host.config.agents)})")
            host.connect()
            return HostChoice(explicit)
        agent_config = self.config.agents.get(agent)
        routed = (agent_config.host if agent_config else None) or self.config.routing.hosts.get(category)
        if routed is None or routed == LOCAL_HOST:
            return HostChoice(None)
        host = self.get(routed)
        if host.config.agents and agent not in host.config.agents:
            return HostChoice(None, f"host {routed} skipped: {agent} is not installed there; ran here")
        try:
            host.connect()
        except HostUnavailable as exc:
            return HostChoice(None, f"{exc}; skipped, ran here")
        return HostChoice(routed)
