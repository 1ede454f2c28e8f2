"""``orchestra agents``: list the agents (installed or not, version, needs, cost so far), ``agents add
KIND`` (a working entry into bots.yaml, comments kept) and ``agents test NAME`` (one tiny real task)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.cli.output import as_json
from core.errors import AgentUnavailable, ConfigError

if TYPE_CHECKING:
    import argparse

    from bot.app import App
    from core.models import Task
    from core.service import AgentInfo

TEST_TASK = "Reply with OK and nothing else."


def agents(app: App, args: argparse.Namespace) -> int:
    infos = app.service.agents()
    if args.json:
        print(as_json([info.to_dict() for info in infos], ensure_ascii=False))
        return 0
    print(f"agents in {app.config_path}:")
    for info in infos:
        for line in describe(info):
            print(line)
    return 0


def describe(info: AgentInfo) -> list[str]:
    """An agent for the terminal: its headline, then what it needs and what it has cost."""
    from core.text import format_cost

    state = "ready" if info.ready else "disabled" if not info.enabled else "not ready"
    head = f"  {info.name:<12} {info.kind:<9} {state}"
    if info.installed:
        head += f" · {info.version or 'version unknown'} · {info.path}"
    else:
        head += f" · {info.command} not found on PATH"
    lines = [head]
    if info.install:
        lines.append(f"      install: {info.install}")
    for need in info.needs:
        what = "set" if need.set else "NOT SET"
        lines.append(f"      key: {need.var} from ${need.source} ({what})")
    if info.endpoint is not None and info.endpoint.how != "default":
        where = info.endpoint.value or f"${info.endpoint.source} ({'set' if info.endpoint.set else 'NOT SET'})"
        lines.append(f"      endpoint: {info.endpoint.var} = {where}")
    routes = ["default agent"] if info.default else []
    if info.categories:
        routes.append("categories " + ", ".join(info.categories))
    lines.append(f"      routed: {', '.join(routes) if routes else 'only when named (@' + info.name + ')'}")
    per_task = f", {format_cost(info.per_task_usd)} per task" if info.per_task_usd is not None else ""
    unknown = f" ({info.unknown_cost} of unknown cost)" if info.unknown_cost else ""
    lines.append(
        f"      {info.tasks} tasks, {format_cost(info.cost_usd)}{per_task}{unknown} · "
        f"{info.running}/{info.max_concurrent} running"
    )
    return lines


def add(args: argparse.Namespace) -> int:
    """Write a working entry for a CLI of ``args.kind`` into bots.yaml (names of variables, no value)."""
    import os
    import shutil

    from core.agents.catalog import recipe_for
    from core.config.add_agent import add_agent, agent_entry

    name = args.name or args.kind
    entry = agent_entry(
        args.kind,
        key_env=args.key_env,
        base_url=args.base_url,
        base_url_env=args.base_url_env,
        model=args.model,
        command=args.command_path,
    )
    note = f"added by `orchestra agents add {args.kind}`: it gets work when named (@{name}) or given a category"
    path = add_agent(args.config, name, entry, note=note)
    print(f"added agent {name} ({args.kind}) to {path}")
    recipe = recipe_for(args.kind)
    if shutil.which(entry["command"]) is None and recipe is not None:
        print(f"  its CLI is not installed: {recipe.install_command()}")
    unset = [source for source in entry["env_from"].values() if not os.environ.get(source, "").strip()]
    if unset:
        print(f"  set {', '.join(unset)} in the environment Orchestra runs in (its value never goes in bots.yaml)")
    print(f"  no category is routed to it: `@{name} ...` in chat, `orchestra delegate --agent {name}`,")
    print(f"  or routing.categories in bots.yaml. Try it now: orchestra agents test {name}")
    return 0


def try_agent(app: App, args: argparse.Namespace) -> int:
    """One tiny real task on the agent, in a scratch folder: its reply, tokens, cost and time."""
    import shutil
    import tempfile
    from pathlib import Path

    from bot.cli.tasks import run_and_wait
    from core.models import TaskState

    info = next((i for i in app.service.agents(versions=False) if i.name == args.name), None)
    check_runnable(info, args.name, str(app.config_path))
    assert info is not None
    scratch = None if args.cwd else Path(tempfile.mkdtemp(prefix="orchestra-agent-test-"))
    where = str(scratch or Path(args.cwd).resolve())
    if not args.json:
        print(f"{info.name}: {TEST_TASK!r} in {where}", flush=True)
    try:
        final = run_and_wait(
            app,
            lambda: app.service.delegate(TEST_TASK, agent=info.name, cwd=where),
            args.json,
            announce=lambda _d: None,
        )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        from core.service import task_json

        print(as_json(task_json(final), ensure_ascii=False))
    else:
        for line in trial_report(final):
            print(line)
    return 0 if final.state == TaskState.SUCCEEDED else 1


def check_runnable(info: AgentInfo | None, name: str, where: str) -> None:
    """One line naming what to do when the agent cannot run a task now."""
    if info is None:
        raise AgentUnavailable(name, message=f"no agent {name!r} in {where} (`orchestra agents` lists them)")
    if not info.enabled:
        raise ConfigError(f"agents.{name} is disabled in {where} (enabled: false)")
    if not info.installed:
        how = f": {info.install}" if info.install else f" (install it, or set agents.{name}.command to its path)"
        raise AgentUnavailable(name, message=f"{name}: {info.command} is not installed{how}")
    if info.missing:
        raise ConfigError(f"{name}: set {', '.join(info.missing)} first (agents.{name} reads it from our environment)")


def trial_report(task: Task) -> list[str]:
    """What ``agents test`` prints when the task is over."""
    from core.models import TaskState
    from core.text import clip, format_cost, format_duration

    tokens = f"{task.input_tokens:,} in"
    if task.cache_read_tokens:
        tokens += f" ({task.cache_read_tokens:,} cached)"
    tokens += f" · {task.output_tokens:,} out"
    how = {"cli": "as the CLI reported it", "priced": "tokens × list prices"}.get(task.cost_source, "")
    cost = format_cost(task.cost_usd) + (f" ({how})" if how and task.cost_usd is not None else "")
    lines = [
        f"  reply: {clip(task.final_text.strip(), 300) or '(none)'}",
        f"  tokens: {tokens}",
        f"  cost: {cost} · time {format_duration(task.duration_s)}",
    ]
    if task.state == TaskState.SUCCEEDED:
        lines.append(f"{task.agent} works ({task.id}).")
    else:
        reason = clip(task.error.strip(), 300) if task.error else task.state.value
        lines.append(f"{task.agent} failed ({task.id}, {task.state.value}): {reason}")
    return lines


__all__ = ["TEST_TASK", "add", "agents", "check_runnable", "describe", "trial_report", "try_agent"]
