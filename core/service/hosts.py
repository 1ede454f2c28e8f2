"""Hosts as the Service shows them: each one's state, load and running tasks; setup; doctor's checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import HostUnavailable
from core.models import TaskState
from core.service.base import ServiceBase

if TYPE_CHECKING:
    from core.hosts.ssh import HostFacts


@dataclass(frozen=True)
class HostState:
    """One host as ``orchestra hosts`` shows it; ``detail`` says why it is down."""

    name: str
    destination: str
    up: bool
    detail: str = ""
    load: float | None = None
    cores: int | None = None
    max_concurrent: int = 0
    agents: tuple[str, ...] = ()
    running: tuple[str, ...] = field(default_factory=tuple)
    windows: int = 0


class HostActions(ServiceBase):
    """Reads and sets up the hosts of bots.yaml; every call reaches a host over its master connection."""

    def host_states(self) -> list[HostState]:
        """Every host: up or down (with the one line why), its load, and the tasks running there."""
        from core.hosts import remote

        running: dict[str, list[str]] = {}
        for task in self.store.list_tasks(states=[TaskState.RUNNING], limit=1_000_000):
            if task.remote and task.host:
                running.setdefault(task.host, []).append(task.id)
        states = []
        for name, config in self.config.hosts.items():
            here = tuple(running.get(name, ()))
            destination = f"{config.ssh}:{config.port}"
            host = self.hosts.get(name)
            facts: HostFacts | None
            try:
                facts = host.facts(fresh=True)
                windows = len(remote.windows(host))
            except HostUnavailable as exc:
                facts, windows, down = None, 0, str(exc)
            else:
                down = ""
            load, cores = (facts.load, facts.cores) if facts else (None, None)
            states.append(
                HostState(
                    name,
                    destination,
                    not down,
                    down,
                    load,
                    cores,
                    config.max_concurrent,
                    tuple(config.agents),
                    here,
                    windows,
                )
            )
        return states

    def setup_host(self, name: str) -> list[tuple[bool, str]]:
        """``orchestra hosts setup NAME``: connect, copy the runner, check Python, tmux, git and each agent's CLI.

        One (ok, line) per step; a host that cannot be reached is ``HostUnavailable`` (one line).
        """
        from core.config import command_argv
        from core.hosts import remote

        host = self.hosts.get(name)
        host.connect()
        lines = [(True, f"connected to {host.config.ssh} port {host.config.port} (one shared connection)")]
        lines.append((True, remote.install_runner(host)))
        commands = {}
        for agent in host.config.agents:
            word = remote.localize(command_argv(self.config.agents[agent].command)[0], host, self.home)
            commands[agent] = word
        lines += remote.check_tools(host, commands)
        return lines

    def host_checks(self) -> list[tuple[str, bool, str]]:
        """``orchestra doctor``'s line per host: reachable, runner installed, tmux there."""
        from core.hosts import remote

        checks = []
        for name in self.config.hosts:
            host = self.hosts.get(name)
            try:
                host.connect()
                root = remote.runner_root(host)
                found = host.run(f"test -f {root}/core/runner.py && command -v tmux", check=False)
            except HostUnavailable as exc:
                checks.append((f"host {name}", False, str(exc)))
                continue
            ok = found.returncode == 0
            detail = f"up · runner in {root}" if ok else f"up, but not set up: run `orchestra hosts setup {name}`"
            checks.append((f"host {name}", ok, detail))
        return checks
