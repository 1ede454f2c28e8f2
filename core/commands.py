"""The chat command layer: neutral messages in, service calls, neutral answers out.

Every chat transport (Telegram now, Slack next) hands :class:`Commands` an :class:`Inbound` that
already passed the :class:`core.access.Gate` and renders the :class:`Outbound` list it gets back. All chat
behaviour lives here (commands, buttons, what a stale tap says, which buttons a message carries),
so a transport only translates. Answers are plain text; the transport escapes them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core.audit import audit_line
from core.audit import search as audit_search
from core.clock import Clock
from core.config import ROLE_RANK, agent_installed
from core.costs import render_cost_report
from core.digest import render_chart_png
from core.errors import InvalidTransition, OrchestraError, UnknownTask
from core.messages import (
    CARD_KINDS,
    Attachment,
    Button,
    Inbound,
    Keyboard,
    Outbound,
    OutKind,
    button_still_valid,
    buttons_from_payload,
)
from core.models import Task, TaskState, parse_task_id
from core.progress import ICONS, clip, hhmm, render_card
from core.service import Actor, Service
from core.store import Store
from core.summary import format_cost, format_duration

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Syntax:
    """How people write commands on one transport, for the texts that name a command.

    ``prefix`` goes before a command word (Telegram's ``/status``, Slack's ``/orchestra status``);
    ``tasks`` says what free text does there. Each transport passes its own to :class:`Commands`.
    """

    prefix: str = "/"
    tasks: str = "Plain text is a task."

    def command(self, name: str, args: str = "") -> str:
        return f"{self.prefix}{name} {args}" if args else f"{self.prefix}{name}"


@dataclass(frozen=True)
class CommandSpec:
    name: str
    args: str
    help: str


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("start", "", "what this bot does"),
    CommandSpec("help", "", "commands and buttons"),
    CommandSpec("delegate", "TEXT", "run a task (plain text works too; start with @agent to pick the agent)"),
    CommandSpec("status", "", "running, queued and recent tasks"),
    CommandSpec("peek", "ID", "the live pane of a task as text"),
    CommandSpec("screen", "ID", "the pane as an image, with its colours"),
    CommandSpec("log", "ID", "the full output log as a file"),
    CommandSpec("cancel", "ID", "stop a task"),
    CommandSpec("retry", "ID", "run a finished task again"),
    CommandSpec("approve", "ID", "approve a task waiting for approval or review"),
    CommandSpec("reject", "ID REASON", "reject a task, saying why"),
    CommandSpec("cost", "", "spend today, this week and this month against the budgets"),
    CommandSpec("budget", "[day|month|task AMOUNT]", "the budgets; admins change one: /budget day 25, off or reset"),
    CommandSpec("digest", "", "the morning digest, now: what ran, what waits for you, what it cost"),
    CommandSpec("agents", "", "the agents and whether their CLI is installed"),
    CommandSpec("kill", "", "cancel everything that is running or queued (asks first)"),
    CommandSpec("audit", "[FILTER]", "who did what: a task id, an action (approve, cancel, …) or a user"),
)

_COMMAND = re.compile(r"/([A-Za-z_]+)(?:\s+(.*))?\Z", re.DOTALL)
_STATE_CHANGING = ("approve", "reject", "cancel", "retry")
_TAP_ACTIONS = (*_STATE_CHANGING, "peek", "log", "screen")
# The least role each command or tap needs; anything else is for viewers too.
_NEEDS: dict[str, str] = {
    **dict.fromkeys(("delegate", "cancel", "retry", "approve", "reject", "audit"), "operator"),
    **dict.fromkeys(("kill", "keep", "budget set"), "admin"),
}


# Replies that decide an approval (anything else sent in reply to an approval request is not a task).
_YES = frozenset({"yes", "y", "ok", "okay", "approve", "approved", "go", "go ahead", "lgtm", "sure", "👍", "✅"})
_NO = frozenset({"no", "n", "reject", "rejected", "nope", "stop", "don't", "👎", "❌", "✖"})
_NO_BECAUSE = frozenset({"no", "reject", "rejected", "nope"})  # these may be followed by the reason
# Commands whose task id, when missing in a reply to a task's message, is that task.
_ABOUT_A_TASK = frozenset({"peek", "screen", "log", "cancel", "retry", "approve", "reject"})


class CommandHandler(Protocol):
    """What a transport awaits for each inbound message: :class:`Commands`, or the bot's pool that
    runs them in worker threads (bot/command_pool.py)."""

    async def handle_async(self, inbound: Inbound) -> list[Outbound]: ...


def toast(text: str) -> Outbound:
    return Outbound(text=text[:190], kind=OutKind.TOAST)


class Commands:
    """Turns one inbound chat message or button tap into service calls and the answers to send.

    ``changed(task_id)`` is called after a command changed a task, so the acknowledgement cards
    showing it can be brought up to date (see :class:`core.progress.Progress`).
    """

    def __init__(
        self,
        service: Service,
        clock: Clock,
        *,
        changed: Callable[[str], None] | None = None,
        peek_lines: int = 40,
        syntax: Syntax | None = None,
    ) -> None:
        self.service = service
        self.clock = clock
        self.syntax = syntax or Syntax()
        self.changed = changed or (lambda _task_id: None)
        self.peek_lines = peek_lines
        self._commands: dict[str, Callable[[Inbound, str], list[Outbound]]] = {
            "start": self._start,
            "help": self._help,
            "delegate": self._delegate,
            "status": self._status,
            "peek": self._peek,
            "screen": self._screen,
            "log": self._log,
            "cancel": self._cancel,
            "retry": self._retry,
            "approve": self._approve,
            "reject": self._reject,
            "cost": self._cost,
            "budget": self._budget,
            "digest": self._digest,
            "agents": self._agents,
            "kill": self._kill,
            "audit": self._audit_command,
        }

    @property
    def store(self) -> Store:
        return self.service.store

    async def handle_async(self, inbound: Inbound) -> list[Outbound]:
        """:meth:`handle`, in the caller's thread (the bot runs it in a pool instead: see CommandHandler)."""
        return self.handle(inbound)

    def handle(self, inbound: Inbound) -> list[Outbound]:
        """Answer one message or tap; user errors become one line, never an exception."""
        try:
            if inbound.tap is not None:
                refusal = self._authorize(
                    inbound, inbound.tap.action, f"tap {inbound.tap.action} {inbound.tap.task_id}"
                )
                return refusal or self._tap(inbound)
            text = inbound.text.strip()
            if not text:
                return [self._note(inbound, f"Send a task as text, or {self.syntax.command('help')} for the commands.")]
            if not text.startswith("/"):
                about = self._replied_task(inbound)
                if about is not None:
                    return self._reply_to_task(inbound, about, text)
                return self._authorize(inbound, "delegate", clip(text, 200)) or self._delegate(inbound, text)
            match = _COMMAND.match(text)
            command = self._commands.get(match.group(1).lower()) if match else None
            if match is None or command is None:
                word = text.split(maxsplit=1)[0]
                return [
                    self._note(inbound, f"Unknown command {word}. {self.syntax.command('help')} lists the commands.")
                ]
            name = match.group(1).lower()
            args = (match.group(2) or "").strip()
            if name in _ABOUT_A_TASK and _task_id(args) is None and (about := self._replied_task(inbound)):
                args = f"{about.id} {args}".strip()  # "/approve" in reply to a task's message: that task
            action = "budget set" if name == "budget" and args else name  # reading budgets is for everyone
            return self._authorize(inbound, action, clip(text, 200)) or command(inbound, args)
        except UnknownTask as exc:
            return [
                self._answer(
                    inbound, f"⚠️ There is no task {exc.task_id!r}. {self.syntax.command('status')} lists them."
                )
            ]
        except OrchestraError as exc:
            return [self._answer(inbound, f"⚠️ {exc}")]
        except Exception:
            log.exception("command failed: %r", inbound.text[:100])
            return [self._answer(inbound, "⚠️ Something went wrong on our side; the bot's log has the details.")]

    def _authorize(self, inbound: Inbound, action: str, what: str) -> list[Outbound] | None:
        """Audit the command or tap; refuse it (one line, audited) when the user's role is too low."""
        role = self.service.config.roles.role_of(inbound.chat.platform, inbound.user_id)
        needed = _NEEDS.get(action, "viewer")
        actor = self._actor(inbound)
        if ROLE_RANK[role] < ROLE_RANK[needed]:
            self.service.audit(actor, "refused", inbound.tap.task_id if inbound.tap else None, f"role {role}: {what}")
            verb = (
                f"the {action} button" if inbound.tap is not None else self.syntax.command(action.replace(" set", ""))
            )
            article = "an" if role[:1] in "aeiou" else "a"
            who = f"{inbound.chat.platform}:{inbound.user_id}"
            fix = f"bots.yaml's roles.{needed}s lists who has it (you are {who})."
            return [self._answer(inbound, f"⛔ {verb} needs the {needed} role; you are {article} {role}. {fix}")]
        self.service.audit(
            actor, "tap" if inbound.tap else "command", inbound.tap.task_id if inbound.tap else None, what
        )
        return None

    # -- commands ----------------------------------------------------------------------------
    def _start(self, inbound: Inbound, _args: str) -> list[Outbound]:
        intro = (
            "👋 Orchestra routes coding tasks to AI agents running in tmux and reports back.\n"
            "Send a task in plain words, e.g. “Create User model”.\n\n"
        )
        return [self._note(inbound, intro + self._help_text())]

    def _help(self, inbound: Inbound, _args: str) -> list[Outbound]:
        return [self._note(inbound, self._help_text())]

    def _help_text(self) -> str:
        syntax = self.syntax
        lines = [
            f"{syntax.command(c.name, c.args)} — {c.help.replace(f'/{c.name} ', syntax.command(c.name) + ' ')}"
            for c in COMMANDS
        ]
        enabled = {name: a for name, a in self.service.config.agents.items() if a.enabled}
        runnable = [name for name, a in enabled.items() if agent_installed(a.command)]
        missing = [name for name in enabled if name not in runnable]
        choose = f"Start it with an agent to choose it: {', '.join('@' + n for n in runnable)}." if runnable else ""
        lines += [
            "",
            f"{syntax.tasks} {choose or 'No agent CLI is installed here (/agents).'}"
            + (f" Not installed here: {', '.join(missing)} (/agents)." if missing and runnable else ""),
            (
                "Buttons: Cancel / Peek on a new task; Approve / Reject / Peek on an approval request; "
                "Log / Retry on a finished task (plus Approve / Reject when it needs review)."
            ),
            "IDs look like t3; “3” works too.",
        ]
        return "\n".join(lines)

    def _delegate(self, inbound: Inbound, text: str) -> list[Outbound]:
        if not text.strip():
            return [
                self._note(
                    inbound, f"Usage: {self.syntax.command('delegate', 'TEXT')} — or just send the task as a message."
                )
            ]
        delegation = self.service.delegate(text, actor=self._actor(inbound))
        return [self._card(inbound, delegation.task, why=delegation.approval_reason)]

    def _status(self, inbound: Inbound, _args: str) -> list[Outbound]:
        active, recent = self.service.status(recent=5)
        if not active and not recent:
            return [self._note(inbound, "No tasks yet. Send one, e.g. “Create User model”.")]
        now = self.clock.now()
        lines = [f"Active ({len(active)}):" if active else "Nothing running."]
        lines += [self._task_line(t, now) for t in active]
        if recent:
            lines += ["", "Recent:"] + [self._task_line(t, now) for t in recent]
        return [self._note(inbound, "\n".join(lines))]

    def _peek(self, inbound: Inbound, args: str) -> list[Outbound]:
        task = self._task_or_latest(args)
        return [self._peek_answer(inbound, task)]

    def _screen(self, inbound: Inbound, args: str) -> list[Outbound]:
        return [self._screen_answer(inbound, self._task_or_latest(args))]

    def _log(self, inbound: Inbound, args: str) -> list[Outbound]:
        return [self._log_answer(inbound, self._task_or_latest(args))]

    def _cancel(self, inbound: Inbound, args: str) -> list[Outbound]:
        task = self.service.cancel(self._required_id(args, "cancel"), actor=self._actor(inbound))
        self.changed(task.id)
        if task.state == TaskState.RUNNING:
            return [self._about(task.id, inbound, f"⏹ Stopping {task.id}… its summary follows when it has stopped.")]
        return [self._about(task.id, inbound, f"⏹ {task.id} {task.state.value.replace('_', ' ')}.")]

    def _retry(self, inbound: Inbound, args: str) -> list[Outbound]:
        task_id, _, feedback = args.partition(" ")
        delegation = self.service.retry(
            self._required_id(task_id, "retry"), feedback=feedback.strip() or None, actor=self._actor(inbound)
        )
        return [self._card(inbound, delegation.task, why=delegation.approval_reason)]

    def _approve(self, inbound: Inbound, args: str) -> list[Outbound]:
        task = self.service.approve(self._required_id(args, "approve"), actor=self._actor(inbound))
        self.changed(task.id)
        return [self._about(task.id, inbound, f"✅ {task.id} approved by {inbound.user_name}; now {task.state.value}.")]

    def _reject(self, inbound: Inbound, args: str) -> list[Outbound]:
        task_id, _, reason = args.partition(" ")
        task = self.service.reject(
            self._required_id(task_id, "reject", "ID REASON"), reason=reason.strip(), actor=self._actor(inbound)
        )
        self.changed(task.id)
        why = f": {reason.strip()}" if reason.strip() else ""
        return [self._about(task.id, inbound, f"✖ {task.id} rejected by {inbound.user_name}{why}")]

    def _cost(self, inbound: Inbound, _args: str) -> list[Outbound]:
        report = self.service.cost_report(days=7)
        return [self._note(inbound, "💰 " + render_cost_report(report, sections=("agent",)))]

    def _budget(self, inbound: Inbound, args: str) -> list[Outbound]:
        """Show the budgets; with ``day 25`` (or ``off``, ``reset``) change one (admins: see ``_NEEDS``)."""
        if args:
            word, _, value = args.partition(" ")
            if not value.strip():
                usage = self.syntax.command("budget", "day|month|task AMOUNT")
                return [self._note(inbound, f"Usage: {usage} — or off, or reset to bots.yaml's.")]
            line = self.service.set_budget(word, value, actor=self._actor(inbound))
            head = f"💰 Per-{line.word} budget is now {line.shown()} (set by {inbound.user_name})."
            return [self._reply(inbound, head + "\n\n" + self.service.budget_report())]
        budget = self.syntax.command("budget")
        hint = f"\nAdmins change them: {budget} day 25 · {budget} month off · {budget} day reset"
        return [self._note(inbound, self.service.budget_report() + hint)]

    def _digest(self, inbound: Inbound, _args: str) -> list[Outbound]:
        """The digest on demand, with Approve / Reject for what waits and the 14-day chart."""
        digest = self.service.digest()
        waiting = [{"task_id": t.task_id, "state": t.state} for t in digest.waiting]
        buttons = buttons_from_payload(waiting, None)
        chart = self.service.home / "digests" / f"on-demand-{inbound.chat.platform}-{inbound.chat.chat_id}.png"
        chart.parent.mkdir(parents=True, exist_ok=True)
        chart.write_bytes(render_chart_png(digest.chart))
        return [
            Outbound(
                digest.text,
                buttons=buttons,
                reply_to=inbound.message_id,
                attachment=Attachment("photo", "digest.png", path=str(chart)),
            )
        ]

    def _agents(self, inbound: Inbound, _args: str) -> list[Outbound]:
        config = self.service.config
        active = self.service.status(recent=0)[0]
        lines = ["🤖 Agents"]
        for name, agent in config.agents.items():
            running = sum(1 for t in active if t.agent == name and t.state == TaskState.RUNNING)
            installed = "installed" if agent_installed(agent.command) else "CLI not found"
            routes = sorted(c for c, a in config.routing.categories.items() if a == name)
            extra = [
                agent.kind,
                installed if agent.enabled else "disabled",
                f"{running}/{agent.max_concurrent} running",
            ]
            if name == config.routing.default_agent:
                extra.append("default")
            if routes:
                extra.append("for " + ", ".join(routes))
            description = f" — {agent.description}" if agent.description else ""
            lines.append(f"• @{name}: {' · '.join(extra)}{description}")
        return [self._note(inbound, "\n".join(lines))]

    def _kill(self, inbound: Inbound, _args: str) -> list[Outbound]:
        active = self.service.status(recent=0)[0]
        if not active:
            return [self._note(inbound, "Nothing is running or queued.")]
        ids = ", ".join(t.id for t in active[:20]) + (" …" if len(active) > 20 else "")
        buttons = ((Button(f"⏹ Yes, cancel all {len(active)}", "kill"), Button("Keep them", "keep")),)
        return [self._reply(inbound, f"⚠️ Cancel every active task ({len(active)}): {ids}?", buttons=buttons)]

    def _audit_command(self, inbound: Inbound, args: str) -> list[Outbound]:
        rows = audit_search(self.store, self.clock.now(), args, limit=15)
        if not rows:
            return [
                self._note(
                    inbound, f"Nothing in the audit log matches {args!r}." if args else "The audit log is empty."
                )
            ]
        lines = [clip(audit_line(row), 200) for row in reversed(rows)]
        return [self._note(inbound, "🧾 Audit" + (f" · {args}" if args else "") + "\n" + "\n".join(lines))]

    # -- buttons -----------------------------------------------------------------------------
    def _tap(self, inbound: Inbound) -> list[Outbound]:
        tap = inbound.tap
        assert tap is not None
        if tap.action in ("kill", "keep"):
            return self._kill_tap(inbound)
        if tap.action not in _TAP_ACTIONS:
            return [toast("This button no longer works."), self._edit_buttons(tap.message_id, ())]
        task = self.service.store.find_task(tap.task_id)
        if task is None:
            return [toast(f"There is no task {tap.task_id!r}."), self._edit_buttons(tap.message_id, ())]
        actor = self._actor(inbound)
        answers: list[Outbound] = []
        try:
            if tap.action == "approve":
                done = self.service.approve(task.id, actor=actor)
                answers.append(toast(f"✅ {task.id} approved; now {done.state.value}"))
            elif tap.action == "reject":
                self.service.reject(task.id, reason="", actor=actor)
                answers.append(toast(f"✖ {task.id} rejected"))
            elif tap.action == "cancel":
                self.service.cancel(task.id, actor=actor)
                answers.append(toast(f"⏹ Stopping {task.id}"))
            elif tap.action == "retry":
                answers += self._retry_tap(inbound, task)
            elif tap.action == "peek":
                answers += [toast(""), self._peek_answer(inbound, task)]
            elif tap.action == "screen":
                answers += [toast(""), self._screen_answer(inbound, task)]
            elif tap.action == "log":
                answers += [toast(""), self._log_answer(inbound, task)]
        except InvalidTransition as exc:
            answers.append(toast(str(exc)))  # a second tap or a stale button: say what happened
        if tap.action in _STATE_CHANGING:
            self.changed(task.id)
            answers += self._refresh_tapped(inbound, task, tap.action)
        return answers

    def _retry_tap(self, inbound: Inbound, task: Task) -> list[Outbound]:
        assert inbound.tap is not None
        if not task.state.finished:
            state = task.state.value.replace("_", " ")
            return [toast(f"{task.id} is {state}; wait for it to finish or cancel it first")]
        # One retry per button: a double tap must not start the task twice.
        key = f"{inbound.chat.platform}:{inbound.chat.chat_id}:{inbound.tap.message_id}:retry"
        if not self.store.claim_once(key, inbound.event_id, self.clock.now()):
            return [toast(f"{task.id} was already retried from this message")]
        delegation = self.service.retry(task.id, actor=self._actor(inbound))
        return [toast(f"🔁 Retrying as {delegation.task.id}"), self._card(inbound, delegation.task)]

    def _kill_tap(self, inbound: Inbound) -> list[Outbound]:
        tap = inbound.tap
        assert tap is not None
        key = f"{inbound.chat.platform}:{inbound.chat.chat_id}:{tap.message_id}:kill"
        if not self.store.claim_once(key, inbound.event_id, self.clock.now()):
            return [toast("Already answered."), self._edit_buttons(tap.message_id, ())]
        if tap.action == "keep":
            return [
                toast("Nothing cancelled."),
                self._edit(tap.message_id, "Kill switch dismissed; nothing cancelled."),
            ]
        cancelled = self.service.cancel_all(actor=self._actor(inbound))
        for task_id in cancelled:
            self.changed(task_id)
        when = hhmm(self.clock.now())
        what = ", ".join(cancelled) if cancelled else "nothing was active any more"
        text = f"⏹ Kill switch by {inbound.user_name} at {when}: {what}."
        return [toast(f"Cancelled {len(cancelled)} task(s)"), self._edit(tap.message_id, text)]

    # -- replies to a task's message ---------------------------------------------------------------
    def _replied_task(self, inbound: Inbound) -> Task | None:
        """The task a message of ours was about, when the person replied to it."""
        if inbound.replied_to is None:
            return None
        chat = (inbound.chat.platform, inbound.chat.chat_id)
        found = self.store.outbox_message(*chat, inbound.replied_to)
        if found is not None and found[2]:
            return self.store.find_task(found[2])
        in_thread = self.store.thread_task(*chat, inbound.replied_to)
        if in_thread is not None:
            return self.store.find_task(in_thread)
        # Not recorded as sent yet (the reply raced the delivery): its buttons name the task.
        named = {b.task_id for row in inbound.replied_keyboard for b in row if b.task_id}
        return self.store.find_task(named.pop()) if len(named) == 1 else None

    def _reply_to_task(self, inbound: Inbound, task: Task, text: str) -> list[Outbound]:
        """A reply acts on the task it answers, never starts an unrelated one: yes/no decide an
        approval; to a finished task it is a follow-up in the same agent session (``/retry ID TEXT``)."""
        word = text.lower().strip(" .!")
        first, _, reason = text.partition(" ")
        if first.lower().strip(" .,:!") not in _NO_BECAUSE or not reason.strip():
            reason = ""
        if task.state in (TaskState.AWAITING_APPROVAL, TaskState.NEEDS_REVIEW):
            if word in _YES:
                return self._authorize(inbound, "approve", f"reply {text!r} to {task.id}") or self._approve(
                    inbound, task.id
                )
            if word in _NO or reason:
                return self._authorize(inbound, "reject", f"reply {clip(text, 150)!r} to {task.id}") or self._reject(
                    inbound, f"{task.id} {reason.strip()}".strip()
                )
            return [self._answer(inbound, f"{task.id} waits for approval: reply yes or no, or tap a button.")]
        if task.state.finished:
            what = f"follow-up of {task.id}: {clip(text, 180)}"
            return self._authorize(inbound, "retry", what) or self._retry(inbound, f"{task.id} {text}")
        state = task.state.value.replace("_", " ")
        return [
            self._answer(
                inbound,
                f"{task.id} is still {state}: reply again once it has finished, "
                f"or {self.syntax.command('cancel', task.id)}.",
            )
        ]

    def _refresh_tapped(self, inbound: Inbound, task: Task, action: str) -> list[Outbound]:
        """Drop the tapped message's buttons that no longer mean anything for the task (stale ones go)."""
        tap = inbound.tap
        assert tap is not None
        found = self.store.outbox_message(inbound.chat.platform, inbound.chat.chat_id, tap.message_id)
        if found is not None and found[1] in CARD_KINDS:
            return []  # cards are re-rendered whole through ``changed``
        state = self.store.get_task(task.id).state
        keyboard = tuple(
            row
            for row in (
                tuple(
                    b
                    for b in row
                    if b.task_id != task.id or (button_still_valid(b, state) and not (action == "retry" == b.action))
                )
                for row in tap.keyboard
            )
            if row
        )
        if keyboard == tap.keyboard:
            return []
        return [self._edit_buttons(tap.message_id, keyboard)]

    # -- answers -----------------------------------------------------------------------------
    def _card(self, inbound: Inbound, task: Task, *, why: str = "") -> Outbound:
        text, buttons = render_card(self.store, task, self.clock.now(), why=why)
        kind = OutKind.APPROVAL if task.state == TaskState.AWAITING_APPROVAL else OutKind.ACK
        return Outbound(text, kind=kind, buttons=buttons, task_id=task.id, reply_to=inbound.message_id)

    def _peek_answer(self, inbound: Inbound, task: Task) -> Outbound:
        shown = self.service.peek(task.id, lines=self.peek_lines)
        live = task.state == TaskState.RUNNING
        buttons: Keyboard = (
            ((Button("🔄 Peek again", "peek", task.id), Button("🖼 Screen", "screen", task.id)),)
            if live
            else ((Button("📄 Log", "log", task.id),),)
        )
        head = f"👀 {task.id} · {task.agent} · {task.state.value.replace('_', ' ')}"
        return Outbound(head, code=shown or "(empty)", buttons=buttons, task_id=task.id, reply_to=inbound.message_id)

    def _screen_answer(self, inbound: Inbound, task: Task) -> Outbound:
        tmux = self.service.tmux
        if task.state != TaskState.RUNNING or task.id not in tmux.windows():
            state = task.state.value.replace("_", " ")
            return self._reply(
                inbound,
                f"🖼 {task.id} is {state}; it has no live window. {self.syntax.command('log', task.id)} has its output.",
            )
        captured = tmux.server.cmd("capture-pane", "-e", "-p", "-t", f"{tmux.session}:={task.id}")
        screen = "\n".join(captured.stdout).rstrip()
        elapsed = format_duration(self.clock.now() - task.started_at) if task.started_at else "starting"
        return Outbound(
            f"🖼 {task.id} · {task.agent} · running {elapsed}",
            attachment=Attachment("photo", f"{task.id}-screen.png", data=screen, render="ansi"),
            task_id=task.id,
            reply_to=inbound.message_id,
        )

    def _log_answer(self, inbound: Inbound, task: Task) -> Outbound:
        path = self.service.log_path(task.id)
        size = path.stat().st_size if path.exists() else 0
        if size == 0:
            return self._reply(inbound, f"📄 {task.id} has no output yet ({task.state.value.replace('_', ' ')}).")
        return Outbound(
            f"📄 {task.id} output log · {_size(size)} · {task.state.value.replace('_', ' ')}",
            attachment=Attachment("document", f"{task.id}-output.log", path=str(path)),
            task_id=task.id,
            reply_to=inbound.message_id,
        )

    def _task_line(self, task: Task, now: float) -> str:
        if task.state == TaskState.RUNNING and task.started_at:
            when = f"{format_duration(now - task.started_at)}"
            cost = format_cost(task.live_cost_usd) if task.live_cost_usd is not None else ""
        else:
            when = format_duration(task.duration_s) if task.finished_at and task.started_at else ""
            cost = format_cost(task.cost_usd) if task.state.finished and task.started_at else ""
        parts = [
            f"{ICONS.get(task.state, '•')} {task.id} {task.state.value.replace('_', ' ')}",
            task.agent,
            when,
            cost,
        ]
        return " · ".join(p for p in parts if p) + f" — {clip(task.text, 50)}"

    # -- helpers -----------------------------------------------------------------------------
    def _actor(self, inbound: Inbound) -> Actor:
        where = f"chat {inbound.chat.chat_id} user {inbound.user_id}"
        return Actor(
            name=inbound.user_name, source=inbound.chat.platform, where=where, ref=inbound.event_id,
            chat=inbound.chat.chat_id,
        )  # fmt: skip

    def _reply(self, inbound: Inbound, text: str, *, buttons: Keyboard = ()) -> Outbound:
        return Outbound(text, buttons=buttons, reply_to=inbound.message_id)

    def _note(self, inbound: Inbound, text: str) -> Outbound:
        """An answer only the asker needs (help, status, a usage error)."""
        return Outbound(text, reply_to=inbound.message_id, personal=True)

    def _about(self, task_id: str, inbound: Inbound, text: str) -> Outbound:
        """An answer about a task: where the platform threads, it goes in the task's thread."""
        return Outbound(text, task_id=task_id, reply_to=inbound.message_id)

    def _answer(self, inbound: Inbound, text: str) -> Outbound:
        return toast(text) if inbound.tap is not None else self._note(inbound, text)

    def _edit(self, message_id: str, text: str, buttons: Keyboard = ()) -> Outbound:
        return Outbound(text, kind=OutKind.EDIT, buttons=buttons, edit_message_id=message_id)

    def _edit_buttons(self, message_id: str, buttons: Keyboard) -> Outbound:
        return Outbound("", kind=OutKind.EDIT, buttons=buttons, edit_message_id=message_id)

    def _required_id(self, args: str, command: str, usage: str = "ID") -> str:
        task_id = _task_id(args)
        if task_id is None:
            raise OrchestraError(
                f"Usage: {self.syntax.command(command, usage)} (e.g. {self.syntax.command(command, 't3')})"
            )
        return task_id

    def _task_or_latest(self, args: str) -> Task:
        """The task named in ``args``; without one, the newest running task, else the newest task."""
        task_id = _task_id(args)
        if task_id is not None:
            return self.service.get(task_id)
        active, recent = self.service.status(recent=1)
        running = [t for t in active if t.state == TaskState.RUNNING]
        for candidate in (running[-1:], active[-1:], recent[:1]):
            if candidate:
                return candidate[0]
        raise OrchestraError("No tasks yet.")


def _task_id(args: str) -> str | None:
    word = args.strip().split(maxsplit=1)[0] if args.strip() else ""
    return parse_task_id(word)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


__all__ = ["COMMANDS", "CommandSpec", "Commands", "Syntax", "toast"]
