"""The chat command layer's entry: one message or tap in, authorized and audited, dispatched, answers out.

Every chat transport (Telegram, Slack) hands :class:`Commands` an :class:`Inbound` that already
passed the :class:`core.access.Gate` and renders the :class:`Outbound` list it gets back. All chat
behaviour lives in this package (commands, buttons, replies to a task's message, what a stale tap
says, which buttons a message carries), so a transport only translates. Answers are plain text;
the transport escapes them. Everything goes through the :class:`core.service.Service`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from core.commands.branches import BranchChat
from core.commands.parsing import (
    ABOUT_A_TASK,
    NO,
    NO_BECAUSE,
    YES,
    Syntax,
    button_name,
    needed_role,
    parse_command,
    task_id_in,
)
from core.commands.projects import ProjectChat
from core.commands.taps import Taps
from core.config import ROLE_RANK
from core.errors import OrchestraError, UnknownTask
from core.messages import Button, Inbound, Outbound
from core.models import Task, TaskState
from core.text import state_label

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.clock import Clock
    from core.service import Service
    from core.store.plans import Plan

log = logging.getLogger(__name__)


class Commands(Taps, ProjectChat, BranchChat):
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
        super().__init__(service, clock, changed=changed, peek_lines=peek_lines, syntax=syntax)
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
            "pending": self._pending,
            "allow": self._allow,
            "deny": self._deny,
            "permissions": self._permissions,
            "project": self._project,
            "projects": self._projects,
            "plan": self._plan,
            "at": self._at,
            "every": self._every,
            "schedules": self._schedules,
            "unschedule": self._unschedule,
            "diff": self._diff,
            "merge": self._merge,
            "pr": self._pr,
            "discard": self._discard,
            "web": self._web,
            "say": self._say,
            "stop": self._stop,
            "answer": self._answer_command,
        }

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
            if inbound.files:
                return self._with_files(inbound)
            text = inbound.text.strip()
            if not text:
                return [self._note(inbound, f"Send a task as text, or {self.syntax.command('help')} for the commands.")]
            if not text.startswith("/"):
                if (corrected := self._corrected(inbound)) is not None:
                    return self._run_corrected(inbound, corrected, text)
                request = self._replied_request(inbound)
                if request is not None:
                    return self._reply_to_request(inbound, request, text)
                plan = self._replied_plan(inbound)
                if plan is not None:
                    return self._authorize(inbound, "delegate", f"reply to {plan.id}") or self._reply_to_plan(
                        inbound, plan.id, text
                    )
                about = self._replied_task(inbound)
                if about is not None:
                    return self._reply_to_task(inbound, about, text)
                what = self.service.quote(text, 200)
                return self._authorize(inbound, "delegate", what) or self._delegate(inbound, text)
            parsed = parse_command(text)
            command = self._commands.get(parsed[0]) if parsed else None
            if parsed is None or command is None:
                word = text.split(maxsplit=1)[0]
                return [
                    self._note(inbound, f"Unknown command {word}. {self.syntax.command('help')} lists the commands.")
                ]
            name, args = parsed
            if name in ABOUT_A_TASK and task_id_in(args) is None and (about := self._replied_task(inbound)):
                args = f"{about.id} {args}".strip()  # "/approve" in reply to a task's message: that task
            changes = name in ("budget", "permissions", "project") and args  # reading budgets and rules is for everyone
            action = f"{name} set" if changes else name
            return self._authorize(inbound, action, self.service.quote(text, 200)) or command(inbound, args)
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
        needed = needed_role(action)
        actor = self._actor(inbound)
        if ROLE_RANK[role] < ROLE_RANK[needed]:
            self.service.audit(actor, "refused", inbound.tap.task_id if inbound.tap else None, f"role {role}: {what}")
            command = self.syntax.command(action.replace(" set", ""))
            verb = f"the {button_name(action)} button" if inbound.tap is not None else command
            article = "an" if role[:1] in "aeiou" else "a"
            who = f"{inbound.chat.platform}:{inbound.user_id}"
            fix = f"bots.yaml's roles.{needed}s lists who has it (you are {who})."
            return [self._answer(inbound, f"⛔ {verb} needs the {needed} role; you are {article} {role}. {fix}")]
        self.service.audit(
            actor, "tap" if inbound.tap else "command", inbound.tap.task_id if inbound.tap else None, what
        )
        return None

    # -- commands that change something ---------------------------------------------------------
    def _delegate(self, inbound: Inbound, text: str) -> list[Outbound]:
        if not text.strip():
            return [
                self._note(
                    inbound, f"Usage: {self.syntax.command('delegate', 'TEXT')} — or just send the task as a message."
                )
            ]
        spec = self.service.plan_for(text)
        if spec is not None:  # a numbered list, a template: a plan, its card sent to every chat
            from core.service.plans import describe

            made = self.service.delegate_plan(spec, text, actor=self._actor(inbound))
            held = f"\n🔐 {made.approval_reason}" if made.needs_approval else ""
            return [self._reply(inbound, f"🗺 {made.plan.id}: {len(made.steps)} steps\n{describe(made)}{held}")]
        delegation = self.service.delegate(text, actor=self._actor(inbound))
        return [self._card(inbound, delegation.task, why=delegation.approval_reason)]

    def _at(self, inbound: Inbound, args: str) -> list[Outbound]:
        clock_time, _, text = args.strip().partition(" ")
        if not text.strip():
            return [self._note(inbound, f"Usage: {self.syntax.command('at', '07:00 TEXT')}")]
        name, when = self.service.add_at(clock_time, text, actor=self._actor(inbound))
        return [self._reply(inbound, f"⏰ {name}: once at {when:%a %d %b %H:%M}: {text.strip()[:200]}")]

    def _every(self, inbound: Inbound, args: str) -> list[Outbound]:
        parts = args.strip().split(maxsplit=2)
        if len(parts) < 3:
            return [self._note(inbound, f"Usage: {self.syntax.command('every', 'weekday 07:00 TEXT')}")]
        name, cron = self.service.add_every(parts[0], parts[1], parts[2], actor=self._actor(inbound))
        return [self._reply(inbound, f"⏰ {name}: every {parts[0]} at {parts[1]} ({cron}): {parts[2][:200]}")]

    def _schedules(self, inbound: Inbound, _args: str) -> list[Outbound]:
        rows = self.service.all_schedules()
        if not rows:
            usage = self.syntax.command("every", "weekday 07:00 TEXT")
            return [self._note(inbound, f"⏰ No schedules. {usage} makes one.")]
        lines = [f"⏰ Schedules ({len(rows)}):"]
        lines += [f"{s.name} · {s.cron}{' · once' if s.once else ''} · {s.task[:80]}" for s in rows]
        return [self._note(inbound, "\n".join(lines))]

    def _unschedule(self, inbound: Inbound, args: str) -> list[Outbound]:
        name = args.strip().split(maxsplit=1)[0] if args.strip() else ""
        if not name:
            return [self._note(inbound, f"Usage: {self.syntax.command('unschedule', 's3')}")]
        self.service.remove_schedule(name, actor=self._actor(inbound))
        return [self._reply(inbound, f"⏰ {name} removed by {inbound.user_name}.")]

    def _plan(self, inbound: Inbound, args: str) -> list[Outbound]:
        if not args.strip():
            return [self._note(inbound, f"Usage: {self.syntax.command('plan', 'TEXT')}")]
        plan = self.service.delegate_planned(args, actor=self._actor(inbound))
        planner = self.service.config.plans.planner
        return [self._reply(inbound, f"🗺 {plan.id}: asked {planner} for a plan; its card follows.")]

    def _cancel(self, inbound: Inbound, args: str) -> list[Outbound]:
        task = self.service.cancel(self._required_id(args, "cancel"), actor=self._actor(inbound))
        self.changed(task.id)
        if task.state == TaskState.RUNNING:
            return [self._about(task.id, inbound, f"⏹ Stopping {task.id}… its summary follows when it has stopped.")]
        return [self._about(task.id, inbound, f"⏹ {task.id} {state_label(task.state)}.")]

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

    def _budget(self, inbound: Inbound, args: str) -> list[Outbound]:
        """Show the budgets; with ``day 25`` (or ``off``, ``reset``) change one (admins: see ``needed_role``)."""
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

    def _web(self, inbound: Inbound, _args: str) -> list[Outbound]:
        """A one-time dashboard link for this user; only in a private chat, where nobody else can open it first."""
        if not inbound.chat.private:
            return [
                self._note(
                    inbound,
                    "🖥 Ask for the dashboard link in a private chat with the bot: it signs in whoever opens it first.",
                )
            ]
        user = f"{inbound.chat.platform}:{inbound.user_id}"
        link = self.service.web_link(user, actor=self._actor(inbound))
        minutes = self.service.config.web.link_s / 60
        return [self._note(inbound, f"🖥 Your dashboard, signed in as you (works once, for {minutes:g} min): {link}")]

    def _kill(self, inbound: Inbound, _args: str) -> list[Outbound]:
        active = self.service.status(recent=0)[0]
        if not active:
            return [self._note(inbound, "Nothing is running or queued.")]
        ids = ", ".join(t.id for t in active[:20]) + (" …" if len(active) > 20 else "")
        buttons = ((Button(f"⏹ Yes, cancel all {len(active)}", "kill"), Button("Keep them", "keep")),)
        return [self._reply(inbound, f"⚠️ Cancel every active task ({len(active)}): {ids}?", buttons=buttons)]

    # -- replies to a task's message ---------------------------------------------------------------
    def _replied_plan(self, inbound: Inbound) -> Plan | None:
        if inbound.replied_to is None:
            return None
        return self.service.replied_plan(inbound.chat.platform, inbound.chat.chat_id, inbound.replied_to)

    def _reply_to_plan(self, inbound: Inbound, plan_id: str, text: str) -> list[Outbound]:
        """A reply to a plan's message: to one held for approval, yes approves and a numbered list
        replaces it (Edit); to any other, one line saying what works."""
        plan = self.service.get_plan(plan_id)
        if plan.state == "awaiting_approval" and text.lower().strip(" .!") in YES:
            self.service.approve_plan(plan.id, actor=self._actor(inbound))
            return [self._reply(inbound, f"✅ {plan.id} approved by {inbound.user_name}; its first steps start")]
        if plan.state == "awaiting_approval":
            from core.service.plans import describe

            made = self.service.edit_plan(plan.id, text, actor=self._actor(inbound))
            held = f"\n🔐 {made.approval_reason}" if made.needs_approval else ""
            said = f"✏️ {plan.id} is replaced by {made.plan.id}: {len(made.steps)} steps\n{describe(made)}{held}"
            return [self._reply(inbound, said)]
        hint = f"{self.syntax.command('plan', 'TEXT')} or a numbered list starts a new plan"
        return [self._reply(inbound, f"🗺 {plan.id} is {plan.state}; a reply does not change it ({hint}).")]

    def _replied_task(self, inbound: Inbound) -> Task | None:
        """The task a message of ours was about, when the person replied to it."""
        if inbound.replied_to is None:
            return None
        about = self.service.replied_task(inbound.chat.platform, inbound.chat.chat_id, inbound.replied_to)
        if about is not None:
            return about
        # Not recorded as sent yet (the reply raced the delivery): its buttons name the task.
        named = {b.task_id for row in inbound.replied_keyboard for b in row if b.task_id}
        return self.service.find(named.pop()) if len(named) == 1 else None

    def _reply_to_task(self, inbound: Inbound, task: Task, text: str) -> list[Outbound]:
        """A reply acts on the task it answers, never starts an unrelated one: yes/no decide an
        approval or the task's oldest permission request (see ``_reply_to_request``); to a finished task it
        is a follow-up in the same agent session (``/retry ID TEXT``)."""
        word = text.lower().strip(" .!")
        first, _, reason = text.partition(" ")
        if first.lower().strip(" .,:!") not in NO_BECAUSE or not reason.strip():
            reason = ""
        if task.state in (TaskState.AWAITING_APPROVAL, TaskState.NEEDS_REVIEW):
            if word in YES:
                return self._authorize(inbound, "approve", f"reply {text!r} to {task.id}") or self._approve(
                    inbound, task.id
                )
            if word in NO or reason:
                what = f"reply {self.service.quote(text, 150)!r} to {task.id}"
                return self._authorize(inbound, "reject", what) or self._reject(
                    inbound, f"{task.id} {reason.strip()}".strip()
                )
            return [self._answer(inbound, f"{task.id} waits for approval: reply yes or no, or tap a button.")]
        if task.state == TaskState.RUNNING and (waiting := self.service.pending_permissions(task.id)):
            return self._reply_to_request(inbound, waiting[0], text)  # Slack: a reply in the task's thread
        if task.state.finished:
            what = f"follow-up of {task.id}: {self.service.quote(text, 180)}"
            return self._authorize(inbound, "retry", what) or self._retry(inbound, f"{task.id} {text}")
        what = f"say to {task.id}: {self.service.quote(text, 180)}"  # running or queued: the agent is told
        return self._authorize(inbound, "say", what) or self._say_to(inbound, task.id, text)

    def _required_id(self, args: str, command: str, usage: str = "ID") -> str:
        task_id = task_id_in(args)
        if task_id is None:
            raise OrchestraError(
                f"Usage: {self.syntax.command(command, usage)} (e.g. {self.syntax.command(command, 't3')})"
            )
        return task_id


__all__ = ["Commands"]
