"""``orchestra agents`` and ``/agents``: each configured agent, whether it can run, and what it has cost.

One query for both surfaces. Versions come from each CLI's ``--version``, all probed at once
under one time bound (a CLI that hangs costs the bound, never more), and remembered per binary
(path, size, mtime) in the data dir, so the next listing asks no CLI that did not change.
Secrets are named, never read out: a need is a variable's name and whether it is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from core.models import TaskState
from core.service.queries import Queries

if TYPE_CHECKING:
    from pathlib import Path

    from core.config import AgentConfig

VERSIONS_FILE = "agent-versions.json"
VERSION_BOUND_S = 4.0  # all probes together; the chat passes less


@dataclass(frozen=True)
class Need:
    """A variable the agent gets from ours (``env_from``): its name there, ours, and whether ours is set."""

    var: str
    source: str
    set: bool


@dataclass(frozen=True)
class Endpoint:
    """Where the agent's model calls go: ``how`` is ``env`` (a literal URL), ``env_from`` (our
    variable ``source``) or ``default`` (the CLI's own)."""

    var: str
    how: str
    value: str = ""  # the URL (its user and password cut out) for ``env``
    source: str = ""
    set: bool = True


@dataclass(frozen=True)
class AgentInfo:
    """One agent as ``orchestra agents`` shows it."""

    name: str
    kind: str
    command: str
    path: str | None  # the executable found; None: not installed
    version: str | None  # its ``--version``, first line; None: not installed or not known in time
    needs: tuple[Need, ...]
    endpoint: Endpoint | None  # None: a kind with no endpoint setting (``command``)
    enabled: bool
    categories: tuple[str, ...]
    default: bool
    tasks: int  # runs recorded so far
    cost_usd: float  # their known cost together
    unknown_cost: int  # runs whose cost is unknown (not in the average)
    running: int
    max_concurrent: int
    install: str | None  # for a missing CLI: the command that installs it at the tested version
    description: str = ""

    @property
    def installed(self) -> bool:
        return self.path is not None

    @property
    def missing(self) -> list[str]:
        """Our variables it needs that are not set."""
        missing = [need.source for need in self.needs if not need.set]
        if self.endpoint is not None and not self.endpoint.set:
            missing.append(self.endpoint.source)
        return missing

    @property
    def ready(self) -> bool:
        """Installed, enabled, and every variable it needs is set."""
        return self.installed and self.enabled and not self.missing

    @property
    def per_task_usd(self) -> float | None:
        known = self.tasks - self.unknown_cost
        return self.cost_usd / known if known > 0 else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(installed=self.installed, ready=self.ready, missing=self.missing, per_task_usd=self.per_task_usd)
        return data


class AgentsQuery(Queries):
    """The agents of bots.yaml, each with its CLI, version, needs, routes and cost so far."""

    def agents(self, *, versions: bool = True, bound_s: float = VERSION_BOUND_S) -> list[AgentInfo]:
        """Every configured agent, enabled or not, installed or not, in bots.yaml's order.

        ``versions``: probe each installed CLI's ``--version`` (cached per binary), all of them
        together within ``bound_s`` seconds; a probe not done by then leaves the version unknown.
        """
        from core.config import command_argv

        config = self.config
        running: dict[str, int] = {}
        for task in self.store.active_tasks():
            if task.state == TaskState.RUNNING:
                running[task.agent] = running.get(task.agent, 0) + 1
        spend = {agent: (usd, runs, unknown) for agent, usd, runs, unknown, _ in self.store.usage_by_agent()}
        paths = {name: shutil.which(command_argv(agent.command)[0] or "") for name, agent in config.agents.items()}
        found = {name: path for name, path in paths.items() if path}
        probed = self._versions(found, bound_s) if versions else {}
        infos = []
        for name, agent in config.agents.items():
            usd, runs, unknown = spend.get(name, (0.0, 0, 0))
            infos.append(
                AgentInfo(
                    name=name,
                    kind=agent.kind,
                    command=agent.command,
                    path=paths[name],
                    version=probed.get(name),
                    needs=tuple(
                        Need(var, source, bool(os.environ.get(source, "").strip()))
                        for var, source in agent.env_from.items()
                    ),
                    endpoint=endpoint_of(agent),
                    enabled=agent.enabled,
                    categories=tuple(sorted(c for c, a in config.routing.categories.items() if a == name)),
                    default=name == config.routing.default_agent,
                    tasks=runs,
                    cost_usd=usd,
                    unknown_cost=unknown,
                    running=running.get(name, 0),
                    max_concurrent=agent.max_concurrent,
                    install=None if paths[name] else install_hint(agent),
                    description=agent.description,
                )
            )
        return infos

    def _versions(self, found: dict[str, str], bound_s: float) -> dict[str, str]:
        """Each installed agent's version, from the cache or its CLI (all probes at once)."""
        from core.agents import adapter_for

        argvs: dict[str, list[str]] = {}
        for name in found:
            settings = self.config.agent_settings(name)
            try:
                argvs[name] = settings.splice(adapter_for(settings.kind).version_argv(settings))
            except KeyError:  # a kind with no adapter here (yet)
                continue
        return probe_versions(argvs, self.home / VERSIONS_FILE, bound_s)


def endpoint_of(agent: AgentConfig) -> Endpoint | None:
    """Where this agent's model calls go, as its entry says (a kind with no recipe: None)."""
    from core.agents.catalog import recipe_for

    recipe = recipe_for(agent.kind)
    if recipe is None:
        return None
    var = recipe.base_url_env
    if var in agent.env:
        return Endpoint(var, "env", value=_shown_url(agent.env[var]))
    if var in agent.env_from:
        source = agent.env_from[var]
        return Endpoint(var, "env_from", source=source, set=bool(os.environ.get(source, "").strip()))
    return Endpoint(var, "default")


def install_hint(agent: AgentConfig) -> str | None:
    """The command that installs a missing agent's CLI at the tested version, when Orchestra has one."""
    from core.agents.catalog import recipe_for
    from core.config import command_argv

    recipe = recipe_for(agent.kind)
    if recipe is None or os.path.basename(command_argv(agent.command)[0]) != recipe.binary:
        return None  # a program of the user's own: only they know where it comes from
    return recipe.install_command()


def _shown_url(url: str) -> str:
    """A URL fit to show: no user, password, query or fragment (where a key could hide)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(not a URL)"
    if not parts.scheme or not parts.hostname:
        return "(not a URL)"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path}"


def probe_versions(argvs: dict[str, list[str]], cache_file: Path, bound_s: float) -> dict[str, str]:
    """Run each argv (``<cli> --version``) at once, within ``bound_s`` all together; cached per binary.

    The cache key is the whole argv and the binary's real path, size and mtime: an upgrade changes
    them, so its new version is asked for. A probe not finished in time gives no version.
    """
    from concurrent.futures import ThreadPoolExecutor, wait

    cache = _read_cache(cache_file)
    found: dict[str, str] = {}
    todo: dict[str, tuple[str, list[str]]] = {}
    for name, argv in argvs.items():
        key = _cache_key(argv)
        if key is None:
            continue
        if key in cache:
            found[name] = cache[key]
        else:
            todo[name] = (key, argv)
    if not todo:
        return found
    pool = ThreadPoolExecutor(max_workers=min(len(todo), 8), thread_name_prefix="version")
    futures = {name: pool.submit(_version_line, argv, bound_s) for name, (_, argv) in todo.items()}
    wait(futures.values(), timeout=bound_s)
    pool.shutdown(wait=False, cancel_futures=True)
    for name, future in futures.items():
        if future.done() and (line := future.result()) is not None:
            found[name] = cache[todo[name][0]] = line
    _write_cache(cache_file, cache)
    return found


def _version_line(argv: list[str], timeout_s: float) -> str | None:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if proc.returncode != 0:
        return None
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0].strip()[:120] if lines else None


def _cache_key(argv: list[str]) -> str | None:
    path = shutil.which(argv[0]) if argv else None
    if path is None:
        return None
    try:
        real = os.path.realpath(path)
        info = os.stat(real)
    except OSError:
        return None
    return json.dumps([real, info.st_size, info.st_mtime_ns, argv[1:]])


def _read_cache(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_cache(path: Path, cache: dict[str, str]) -> None:
    """Best effort, atomically: a cache that cannot be written only costs the next probe."""
    try:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dict(list(cache.items())[-200:])))
        os.replace(tmp, path)
    except OSError:
        pass


__all__ = ["AgentInfo", "AgentsQuery", "Endpoint", "Need", "endpoint_of", "install_hint", "probe_versions"]
