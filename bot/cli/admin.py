"""The CLI's admin commands: audit, doctor, health, config check, demo, and the engine and bot processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.output import as_json
from bot.cli.tasks import delegate_and_wait

if TYPE_CHECKING:
    import argparse

    from bot.app import App


def audit(app: App, args: argparse.Namespace) -> int:
    from core.audit import audit_line
    from core.audit import search as audit_search

    rows = audit_search(app.store, app.clock.now(), args.filter, action=args.action, since=args.since, limit=args.limit)
    if args.json:
        print(as_json(rows, ensure_ascii=False))
        return 0
    if not rows:
        print("nothing in the audit log matches")
    for row in reversed(rows):
        print(audit_line(row))
    return 0


def doctor(app: App, args: argparse.Namespace) -> int:
    from bot.doctor import operations_checks

    print(f"config: {app.config_path} (valid)")
    failed = 0
    for what, ok, detail in [*app.service.doctor(), *operations_checks(app)]:
        mark = "NO " if not ok else "-- " if "warning only" in detail else "ok "  # --: worth knowing, not failing
        print(f"  {mark} {what:<24} {detail}")
        failed += 0 if ok else 1
    return 1 if failed else 0


def demo(app: App, args: argparse.Namespace) -> int:
    """A real task end to end on the stand-in agent, in a fresh scratch git repository."""
    if "standin" not in app.config.agents:
        print("orchestra: the demo needs the `standin` agent in bots.yaml", file=sys.stderr)
        return 1
    repo = Path(tempfile.mkdtemp(prefix="orchestra-demo-"))
    if shutil.which("git"):
        for cmd in (["init", "-q"], ["config", "user.email", "demo@orchestra.local"], ["config", "user.name", "demo"]):
            subprocess.run(["git", "-C", str(repo), *cmd], check=True)
        (repo / "README.md").write_text("# demo project\n")
        subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
        subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], check=True)
    print(f"demo: scratch repository {repo}")
    decision = app.service.route(args.task)
    print(f"demo: routing says {decision.agent} ({decision.category}); running it on the stand-in agent")
    return delegate_and_wait(app, False, lambda: app.service.delegate(args.task, agent="standin", cwd=str(repo)))


def engine(app: App, args: argparse.Namespace) -> int:
    import asyncio

    from bot.app import run_engine

    return asyncio.run(run_engine(app, console=False, idle_exit_s=app.config.limits.engine_idle_exit_s))


def bot(app: App, args: argparse.Namespace) -> int:
    import asyncio

    from bot.app import run_engine

    if not app.engine.acquire(role="bot"):
        from core.engine import lock_holder, signal_engine

        holder = lock_holder(app.home)
        if holder is not None and holder[1] == "bot":  # never stop a running bot: one line, and leave it be
            print(f"orchestra: a bot is already running for {app.home} (pid {holder[0]})", file=sys.stderr)
            return 1
        # An on-demand engine (or a CLI waiting as one) holds the lock: ask it to hand over, then take it.
        signal_engine(app.home)
        deadline = time.monotonic() + 10
        while not app.engine.acquire(role="bot"):
            if time.monotonic() > deadline:
                print("orchestra: another bot or engine is running for this data directory", file=sys.stderr)
                return 1
            time.sleep(0.1)
    app.engine.release()
    return asyncio.run(run_engine(app, console=True, idle_exit_s=None))


def health(args: argparse.Namespace) -> int:
    """Cheap on purpose (no store, no agent CLIs): a container runtime calls it every few seconds."""
    from core.config import load_config
    from core.engine import engine_running

    config, _ = load_config(args.config)
    if engine_running(config.home()):
        print("healthy: the engine runs")
        return 0
    print("unhealthy: no bot or engine holds the engine lock", file=sys.stderr)
    return 1


def config_check(args: argparse.Namespace) -> int:
    from core.config import load_config
    from core.text import format_cost

    config, path = load_config(args.config)
    sandboxed = [name for name, agent in config.agents.items() if agent.sandbox == "bwrap" and agent.enabled]
    if sandboxed:
        from core.errors import ConfigError
        from core.sandbox import sandbox_problem

        if problem := sandbox_problem():
            raise ConfigError(f"{path}: agents.{sandboxed[0]}.sandbox is bwrap, but {problem}")
    print(f"{path}: valid")
    print(f"  data dir: {config.home()}  ·  tmux: -L {config.tmux.socket_name}, session {config.tmux.session}")
    print(
        f"  limits: {config.limits.max_concurrent} at once, timeout {config.limits.task_timeout_s:g}s, "
        f"per-task cap {format_cost(config.budgets.per_task_usd) if config.budgets.per_task_usd else 'none'}"
    )
    for name, agent in config.agents.items():
        env = ", ".join(f"{k}←${v}" for k, v in agent.env_from.items())
        print(
            f"  agent {name}: {agent.kind} · {agent.command} {' '.join(agent.args)} · max {agent.max_concurrent}"
            + (f" · env {env}" if env else "")
            + (" · sandbox bwrap" if agent.sandbox == "bwrap" else "")
            + ("" if agent.enabled else " · disabled")
        )
    print(
        f"  routing: default {config.routing.default_agent}, {len(config.routing.rules)} rules of yours"
        f"{' + the default rules' if config.routing.use_default_rules else ''}"
    )
    for category, target in config.routing.categories.items():
        print(f"    {category} → {target}")
    return 0
