"""The ``orchestra`` command line: every subcommand, its options, and the function that runs it.

Each subcommand names its function with ``set_defaults(func=...)``; those called without an
opened app (the config alone) also set ``without_app``. The command modules are cheap to import:
what a command needs is imported inside its function.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from core.audit import ACTIONS


def _command(module: str, name: str) -> Callable[..., int]:
    """The command function ``bot.cli.<module>.<name>``, imported only when it runs: each command
    pays for its own imports, and ``orchestra status`` for no other command's."""

    def run(*args: object) -> int:
        result: int = getattr(importlib.import_module(f"bot.cli.{module}"), name)(*args)
        return result

    run.__qualname__ = run.__name__ = f"{module}.{name}"
    return run


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"orchestra: {message} (see `orchestra --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="orchestra", description="Delegate coding tasks to AI agent CLIs running in tmux.")
    parser.add_argument("--config", type=Path, help="path to bots.yaml (default: ./bots.yaml, then $ORCHESTRA_HOME)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _task_commands(sub)
    _permission_commands(sub)
    _cost_commands(sub)
    _agent_commands(sub)
    _admin_commands(sub)
    return parser


def _task_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("delegate", help="route a task to an agent and run it in tmux")
    p.add_argument("--task", "-t", help="what to do, in plain words ('-' reads stdin); a numbered list is a plan")
    p.add_argument(
        "--plan",
        metavar="FILE",
        help="run this plan (YAML: steps with title, text, category, after); auto: ask plans.planner for one",
    )
    p.add_argument("--single", action="store_true", help="one task, even when the text reads as a plan")
    p.add_argument("--agent", "-a", help="run on this agent, whatever the routing says")
    p.add_argument("--cwd", help="working directory for the agent (default: here)")
    p.add_argument("--project", "-p", help="run in this project of bots.yaml (as `#name` at the start of the task)")
    p.add_argument("--host", help="run on this host of bots.yaml over SSH (as `@host:NAME` in the task); local: here")
    p.add_argument("--wait", "-w", action="store_true", help="stay until the task ends and print its summary")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("tasks", "delegate"))

    p = sub.add_parser("status", help="running, queued and recent tasks")
    p.add_argument("--json", action="store_true")
    p.add_argument("--recent", type=_count, default=10, help="how many finished tasks to list")
    p.set_defaults(func=_command("tasks", "status"))
    for name, text, func in (
        ("show", "a task's details and summary", _command("tasks", "show")),
        ("peek", "the live pane of a task (or the end of its output)", _command("tasks", "peek")),
        ("attach", "attach your terminal to the task's tmux window", _command("tasks", "attach")),
        ("cancel", "stop a task (graceful, then kill)", _command("tasks", "cancel")),
        ("approve", "approve a task waiting for approval or review", _command("tasks", "approve")),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("id")
        if name in ("show", "cancel", "approve"):
            p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)
    p = sub.add_parser("logs", help="a task's full output log")
    p.add_argument("id")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the task ends")
    p.set_defaults(func=_command("tasks", "logs"))
    p = sub.add_parser("retry", help="run a finished task again, optionally with feedback")
    p.add_argument("id")
    p.add_argument("--feedback", help="appended to the task text for the new attempt")
    p.add_argument("--wait", "-w", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("tasks", "retry"))
    p = sub.add_parser("reject", help="reject a task waiting for approval or review")
    p.add_argument("id")
    p.add_argument("--reason", "-r", default="")
    p.add_argument("--retry", action="store_true", help="after a review, start a new attempt with the reason")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("tasks", "reject"))
    p = sub.add_parser("route", help="show where a task would go, without running it")
    p.add_argument("text")
    p.add_argument("--agent", "-a")
    p.add_argument("--project", "-p")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("tasks", "route"))
    _branch_commands(sub)
    p = sub.add_parser("schedule", help="the schedules: list (next run, last task), add, remove")
    p.add_argument("action", choices=["list", "add", "remove"])
    p.add_argument("name", nargs="?", help="remove: the schedule (s3)")
    p.add_argument("--cron", help="add: minute hour day month weekday, e.g. '0 7 * * mon-fri'")
    p.add_argument("--task", help="add: the task text")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("schedules", "schedule"))
    p = sub.add_parser("projects", help="the projects of bots.yaml: folder, base branch, what runs in each")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("projects", "projects"))
    p = sub.add_parser("worktrees", help="task worktrees: disk use, spares, stale branches; --prune removes old ones")
    p.add_argument("--prune", action="store_true", help="prune now by `worktrees:` in bots.yaml (the bot: hourly)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("worktrees", "worktrees"))
    p = sub.add_parser("hosts", help="the hosts tasks run on over SSH: state, load, running tasks; setup NAME")
    p.add_argument("action", nargs="?", choices=["setup"], help="setup: copy the runner there and check its tools")
    p.add_argument("name", nargs="?", help="the host to set up")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("hosts", "hosts"))


def _branch_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("diff", help="what a task's branch changed against its base (the stat; --patch: the patch)")
    p.add_argument("id")
    p.add_argument("--patch", action="store_true", help="print the whole patch instead of the stat")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("branches", "diff"))
    p = sub.add_parser("merge", help="merge a task's branch into its base branch; a conflict changes nothing")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("branches", "merge"))
    p = sub.add_parser("pr", help="push a task's branch to the project's remote and open a pull request")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("branches", "pr"))
    p = sub.add_parser("discard", help="delete a task's worktree and branch (asks first)")
    p.add_argument("id")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.set_defaults(func=_command("branches", "discard"))


def _permission_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("pending", help="what agents asked to run and wait for a person's answer on")
    p.add_argument("task", nargs="?", help="only this task's requests")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("permissions", "pending"))
    p = sub.add_parser("allow", help="let an agent run what it asked: a request (p12) or a task's oldest (t7)")
    p.add_argument("id")
    p.add_argument("--task", action="store_true", help="and the same rule for the rest of the task")
    p.set_defaults(func=_command("permissions", "allow"))
    p = sub.add_parser("deny", help="refuse what an agent asked: a request (p12) or a task's oldest (t7)")
    p.add_argument("id")
    p.add_argument("--reason", "-r", default="", help="what the agent is told")
    p.set_defaults(func=_command("permissions", "deny"))
    p = sub.add_parser("answer", help="answer an agent's question: a question (p12) or a task's oldest (t7)")
    p.add_argument("id")
    p.add_argument("text", help="the answer (an option's number picks that option)")
    p.set_defaults(func=_command("permissions", "answer"))
    p = sub.add_parser("say", help="tell a running task's agent something (or keep it for a follow-up)")
    p.add_argument("id")
    p.add_argument("text")
    p.set_defaults(func=_command("permissions", "say"))
    p = sub.add_parser("stop", help="end a running task's current step, keeping its session")
    p.add_argument("id")
    p.set_defaults(func=_command("permissions", "stop"))


def _cost_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("cost", help="what the agents cost: today, week, month, budgets, breakdowns, savings")
    p.add_argument("--json", action="store_true")
    p.add_argument("--days", type=_days, help="break down the last N days (default: this month)")
    p.add_argument("--all", action="store_true", help="break down all time")
    p.add_argument("--by", choices=["agent", "category", "day", "week", "month"], help="show only this breakdown")
    p.set_defaults(func=_command("costs", "cost"))
    p = sub.add_parser("budget", help="the budgets in force; `budget day 25` (or off, reset) changes one now")
    p.add_argument("which", nargs="?", choices=["day", "month", "task"], help="the budget to change")
    p.add_argument("value", nargs="?", help="dollars (25, 2.50), off (no budget) or reset (bots.yaml's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("costs", "budget"))
    p = sub.add_parser("digest", help="the morning digest, now (shown only: it does not count as sent)")
    p.add_argument("--png", type=Path, metavar="FILE", help="also write its chart of daily cost by agent")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("costs", "digest"))


def _agent_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("agents", help="the agents: installed or not, version, keys, cost so far; add one, test one")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("agents", "agents"))
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    a = actions.add_parser("add", help="write a working entry for a CLI into bots.yaml (comments kept, no category)")
    a.add_argument("kind", help="claude, codex, gemini, qwen, opencode, droid, aider or copilot")
    a.add_argument("--name", help="the agent's name (default: the kind)")
    a.add_argument("--key-env", metavar="VAR", help="our variable holding its API key (default: the one it reads)")
    a.add_argument("--base-url", metavar="URL", help="its model endpoint (written under env; no secret in it)")
    a.add_argument("--base-url-env", metavar="VAR", help="our variable holding its endpoint (CLIs that read one)")
    a.add_argument("--model", metavar="M", help="the model to ask for (default: Orchestra's choice for the kind)")
    a.add_argument("--command", dest="command_path", metavar="PATH", help="the CLI's path (default: its name)")
    a.set_defaults(func=_command("agents", "add"), without_app=True)
    t = actions.add_parser("test", help='run one tiny real task ("Reply with OK") and print its reply and cost')
    t.add_argument("name")
    t.add_argument("--cwd", help="run it in this folder (default: a scratch folder, deleted afterwards)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=_command("agents", "try_agent"))


def _admin_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "audit", help="who did what, when, from where: e.g. `audit t42`, `audit --action cancel --since 1d`"
    )
    p.add_argument("filter", nargs="?", default="", help="a task id, an action, or part of a user or chat")
    p.add_argument("--action", choices=ACTIONS)
    p.add_argument("--since", metavar="AGE", help="only the last 30m, 12h, 1d, 2w, ...")
    p.add_argument("--limit", type=_count, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("admin", "audit"))
    sub.add_parser(
        "doctor", help="check tmux, agent CLIs, config, the data directory, the bot, metrics, chats and outboxes"
    ).set_defaults(func=_command("admin", "doctor"))
    sub.add_parser(
        "health", help="exit 0 when a bot or engine runs for the data directory (container health check)"
    ).set_defaults(func=_command("admin", "health"), without_app=True)
    p = sub.add_parser("demo", help="run one real task end to end on the stand-in agent, in a scratch git repo")
    p.add_argument("--task", default="Create User model")
    p.set_defaults(func=_command("admin", "demo"))
    p = sub.add_parser("permissions", help="the tool-call policy in force for an agent; --check one call")
    p.add_argument("agent", nargs="?", help="the agent (default: routing.default_agent)")
    p.add_argument("--category", help="as for a task of this category (its own lists come first)")
    p.add_argument("--check", metavar="CALL", help="judge one call, e.g. 'Bash(git push origin main)'")
    p.add_argument("--add", nargs=2, metavar=("LIST", "RULE"), help="add a run-time rule: allow|ask|deny RULE")
    p.add_argument("--remove", metavar="RULE", help="take a run-time rule out")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("policy", "permissions"))
    p = sub.add_parser("config", help="validate bots.yaml and explain it")
    p.add_argument("action", choices=["check"])
    p.set_defaults(func=_command("admin", "config_check"), without_app=True)
    sub.add_parser("engine", help="run the engine in the foreground (started on demand in tmux)").set_defaults(
        func=_command("admin", "engine")
    )
    sub.add_parser("bot", help="run the bot process: engine plus the configured chat transports").set_defaults(
        func=_command("admin", "bot")
    )
    p = sub.add_parser("web", help="a one-time sign-in link to the web dashboard (served by `orchestra bot`)")
    p.add_argument("--revoke-all", action="store_true", help="sign every browser out and void unused links")
    p.set_defaults(func=_command("web", "web"))


def _count(text: str) -> int:
    """An argparse type: a whole number from 0 to a million (SQLite takes no bigger)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text} is out of range (0 to 1,000,000)")
    return value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not 0 < value <= 100_000:  # also NaN
        raise argparse.ArgumentTypeError(f"{text} is out of range (more than 0, at most 100,000 days)")
    return value
