"""The checks ``orchestra doctor`` runs here: tmux, each agent's CLI and keys, the data directory, the store,
the task worktrees."""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

from core.engine import engine_running
from core.service.hosts import HostActions
from core.service.worktrees import WorktreeHousekeeping

if TYPE_CHECKING:
    from core.config import Config


# Kinds whose adapter was built from documentation and others' recordings, never run here.
UNTRIED_KINDS = frozenset({"cursor"})
UNTRIED = "not run against the real CLI here: built from its docs and recorded streams (README Agents)"


class Doctor(WorktreeHousekeeping, HostActions):
    """Read-only checks; each is (what, ok, detail), and only what routing really uses can fail."""

    def doctor(self) -> list[tuple[str, bool, str]]:
        """Checks for ``orchestra doctor``: (what, ok, detail)."""
        from core.config import agent_installed
        from core.tmux import TmuxManager

        checks: list[tuple[str, bool, str]] = []
        tmux_ok = TmuxManager.available()
        version = _version(["tmux", "-V"]) if tmux_ok else "not found (apt-get install tmux)"
        checks.append(("tmux", tmux_ok, version))
        routed = _routed_agents(self.config)
        for name, agent in self.config.agents.items():
            settings = self.config.agent_settings(name)
            # Only an agent that routing sends work to fails the check; another one only warns.
            uses = routed.get(name)
            why = f"routing uses it for {_first(uses)}" if uses else "warning only: routing does not use it"
            untried = f" · {UNTRIED}" if agent.kind in UNTRIED_KINDS else ""
            if not agent_installed(agent.command):
                checks.append((f"agent {name}", not uses, f"{settings.command} not found on PATH · {why}{untried}"))
                continue
            from core.agents import adapter_for

            argv = settings.splice(adapter_for(settings.kind).version_argv(settings))
            asks = "asks before each tool call" if settings.hook else _unasked(agent.kind, agent.hook, agent.sandbox)
            checks.append((f"agent {name}", True, f"{settings.command} · {_version(argv)} · {asks}{untried}"))
            if agent.sandbox == "bwrap":
                from core.sandbox import sandbox_problem

                problem = sandbox_problem()
                detail = f"{problem} · {why}" if problem else "bwrap runs here (sandbox: bwrap)"
                checks.append((f"agent {name} sandbox", problem is None or not uses, detail))
            missing = [src for src in agent.env_from.values() if src not in os.environ]
            if missing:
                checks.append((f"agent {name} env", not uses, "not set: " + ", ".join(missing) + f" · {why}"))
        writable = os.access(self.home, os.W_OK)
        checks.append(("data dir", writable, f"{self.home} ({'writable' if writable else 'not writable'})"))
        mode = self.home.stat().st_mode & 0o777
        checks.append(("data dir permissions", mode & 0o077 == 0, f"{mode:o} (want 700: other users cannot read)"))
        checks.append(("store", True, f"{self.store.path} · migrations {', '.join(self.store.applied_migrations())}"))
        checks.append(("engine", True, "running" if engine_running(self.home) else "not running (starts on demand)"))
        return checks + self.worktree_checks() + self.host_checks()


def _unasked(kind: str, hook: bool, sandbox: str) -> str:
    """How an agent with no permission hook is bound (README Permissions)."""
    contained = "in its bwrap sandbox" if sandbox == "bwrap" else "contain it with sandbox: bwrap"
    if kind == "aider":
        return f"no tool calls to ask about, never runs suggested commands ({contained})"
    if kind == "cursor":
        return f"no pre-tool hook: the policy's allow/deny go into its cli-config.json, nothing is asked ({contained})"
    if not hook:
        return f"hook: false: its CLI's unattended mode decides ({contained})"
    return f"no pre-tool hook: nothing is asked ({contained})"


def _routed_agents(config: Config) -> dict[str, list[str]]:
    """The agents routing can send a task to, each with what it gets (categories, rules, the rest)."""
    routing = config.routing
    routed: dict[str, list[str]] = {}
    for category, agent in routing.categories.items():
        routed.setdefault(agent, []).append(category)
    for rule in routing.rules:
        if rule.agent:
            routed.setdefault(rule.agent, []).append(f"rule {rule.name}")
    routed.setdefault(routing.default_agent, []).append("everything else (the default agent)")
    return routed


def _first(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"version unknown ({exc})"
    out = (proc.stdout or proc.stderr).strip().splitlines()
    return out[0] if out else f"exit {proc.returncode}"


__all__ = ["Doctor"]
