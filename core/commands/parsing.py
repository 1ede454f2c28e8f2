"""How chat text reads as a command: the syntax per transport, the command table, task ids, reply words, roles."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from core.models import parse_task_id

if TYPE_CHECKING:
    from core.messages import Inbound, Outbound


@dataclass(frozen=True)
class Syntax:
    """How people write commands on one transport, for the texts that name a command.

    ``prefix`` goes before a command word (Telegram's ``/status``, Slack's ``/orchestra status``);
    ``tasks`` says what free text does there. Each transport passes its own to
    :class:`core.commands.Commands`.
    """

    prefix: str = "/"
    tasks: str = "Plain text is a task."

    def command(self, name: str, args: str = "") -> str:
        return f"{self.prefix}{name} {args}" if args else f"{self.prefix}{name}"


@dataclass(frozen=True)
class CommandSpec:
    """One chat command as ``/help`` and each platform's command menu list it."""

    name: str
    args: str
    help: str


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("start", "", "what this bot does"),
    CommandSpec("help", "", "commands and buttons"),
    CommandSpec("delegate", "TEXT", "run a task (plain text works too; start with #project or @agent to pick one)"),
    CommandSpec("status", "", "running, queued and recent tasks"),
    CommandSpec("peek", "ID", "the live pane of a task as text"),
    CommandSpec("screen", "ID", "the pane as an image, with its colours"),
    CommandSpec("log", "ID", "the full output log as a file"),
    CommandSpec("cancel", "ID", "stop a task"),
    CommandSpec("retry", "ID", "run a finished task again"),
    CommandSpec("approve", "ID", "approve a task waiting for approval or review"),
    CommandSpec("reject", "ID REASON", "reject a task, saying why"),
    CommandSpec("at", "HH:MM TEXT", "run TEXT once at the next HH:MM (in the digest's time zone)"),
    CommandSpec("every", "DAYS HH:MM TEXT", "run TEXT on those days at HH:MM: day, weekday, weekend, mon,wed, …"),
    CommandSpec("schedules", "", "the schedules: bots.yaml's and those made here, with their next run"),
    CommandSpec("unschedule", "NAME", "remove a schedule made here (s3)"),
    CommandSpec("plan", "TEXT", "ask the planner agent to split TEXT into steps (a numbered list is a plan already)"),
    CommandSpec("diff", "ID", "what a task's branch changed against its base: the stat, and the patch as a file"),
    CommandSpec("merge", "ID", "merge a task's branch into its base branch (a conflict changes nothing)"),
    CommandSpec("pr", "ID", "push a task's branch and open a pull request; the link comes back here"),
    CommandSpec("discard", "ID", "delete a task's worktree and branch (asks first)"),
    CommandSpec("say", "ID TEXT", "tell a running agent something (a reply to its card does the same)"),
    CommandSpec("stop", "ID", "end a running agent's current step and keep its session (reply to go on)"),
    CommandSpec("answer", "ID TEXT", "answer an agent's question in your own words (p12, or its task)"),
    CommandSpec("pending", "", "what agents asked to run and wait for an answer on"),
    CommandSpec("allow", "ID [--task]", "let the agent run what it asked (--task: the same for the rest of the task)"),
    CommandSpec("deny", "ID [REASON]", "refuse what the agent asked; the reason is what it is told"),
    CommandSpec(
        "permissions",
        "[allow|ask|deny|remove RULE]",
        "rules set at run time; admins add one: /permissions allow Bash(npm ci *)",
    ),
    CommandSpec("cost", "", "spend today, this week and this month against the budgets"),
    CommandSpec("budget", "[day|month|task AMOUNT]", "the budgets; admins change one: /budget day 25, off or reset"),
    CommandSpec("digest", "", "the morning digest, now: what ran, what waits for you, what it cost"),
    CommandSpec("agents", "", "the agents and whether their CLI is installed"),
    CommandSpec("projects", "", "the projects, their folders and what runs or waits in each"),
    CommandSpec("project", "[NAME|none]", "this chat's default project (tasks without #name go there)"),
    CommandSpec("web", "", "a one-time link to the live web dashboard (in a private chat)"),
    CommandSpec("kill", "", "cancel everything that is running or queued (asks first)"),
    CommandSpec("audit", "[FILTER]", "who did what: a task id, an action (approve, cancel, …) or a user"),
)

_COMMAND = re.compile(r"/([A-Za-z_]+)(?:\s+(.*))?\Z", re.DOTALL)
STATE_CHANGING = ("approve", "reject", "cancel", "retry")
TAP_ACTIONS = (*STATE_CHANGING, "peek", "log", "screen")
# The least role each command or tap needs; anything else is for viewers too.
_NEEDS: dict[str, str] = {
    **dict.fromkeys(
        (
            "at",
            "every",
            "unschedule",
            "plan",
            "delegate",
            "cancel",
            "retry",
            "approve",
            "reject",
            "audit",
            "allow",
            "deny",
            "say",
            "stop",
            "answer",
        ),
        "operator",
    ),
    **dict.fromkeys((*(f"answer_{n}" for n in range(8)), "answer_skip"), "operator"),
    **dict.fromkeys(("perm_allow", "perm_task", "perm_deny"), "operator"),
    **dict.fromkeys(("merge", "pr", "discard", "discard_yes", "discard_no"), "operator"),
    **dict.fromkeys(("voice_run", "voice_edit"), "operator"),
    **dict.fromkeys(("plan_approve", "plan_edit", "plan_cancel", "plan_retry", "plan_skip"), "operator"),
    **dict.fromkeys(("kill", "keep", "budget set", "permissions set"), "admin"),
    "project set": "operator",
}

# Replies that decide an approval (anything else sent in reply to an approval request is not a task).
YES = frozenset({"yes", "y", "ok", "okay", "approve", "approved", "go", "go ahead", "lgtm", "sure", "👍", "✅"})
NO = frozenset({"no", "n", "reject", "rejected", "nope", "stop", "don't", "👎", "❌", "✖"})
NO_BECAUSE = frozenset({"no", "reject", "rejected", "nope"})  # these may be followed by the reason
_BUTTON_NAMES = {"perm_allow": "Allow", "perm_task": "Allow for this task", "perm_deny": "Deny"}
# Commands whose task id, when missing in a reply to a task's message, is that task.
ABOUT_A_TASK = frozenset(
    {"peek", "screen", "log", "cancel", "retry", "approve", "reject", "diff", "merge", "pr", "discard", "say", "stop"}
)


class CommandHandler(Protocol):
    """What a transport awaits for each inbound message: :class:`core.commands.Commands`, or the bot's
    pool that runs them in worker threads (bot/command_pool.py)."""

    async def handle_async(self, inbound: Inbound) -> list[Outbound]: ...


def parse_command(text: str) -> tuple[str, str] | None:
    """``/name args`` as (the lower-case name, the stripped args); None when ``text`` is not one."""
    match = _COMMAND.match(text)
    if match is None:
        return None
    return match.group(1).lower(), (match.group(2) or "").strip()


def needed_role(action: str) -> str:
    """The least role a command or tap needs (``budget set`` for a change of budget)."""
    return _NEEDS.get(action, "viewer")


def button_name(action: str) -> str:
    """What a refusal calls the button a tap came from (its action, unless that is not the button's word)."""
    return _BUTTON_NAMES.get(action, action)


def task_id_in(args: str) -> str | None:
    """The task id the args start with (``t3`` or ``3``), if they start with one."""
    word = args.strip().split(maxsplit=1)[0] if args.strip() else ""
    return parse_task_id(word)


__all__ = [
    "ABOUT_A_TASK", "COMMANDS", "NO", "NO_BECAUSE", "STATE_CHANGING", "TAP_ACTIONS", "YES",
    "CommandHandler", "CommandSpec", "Syntax", "button_name", "needed_role", "parse_command", "task_id_in",
]  # fmt: skip
