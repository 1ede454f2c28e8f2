"""What the chat bot says: answers to the questions (help, status, peek, screen, log, cost, digest, agents,
audit), task cards, and the shapes of every reply (a note, a toast, an edit)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.audit import audit_line
from core.commands.parsing import COMMANDS, Syntax, task_id_in
from core.config import agent_installed
from core.costs import render_cost_report
from core.digest import render_chart_png
from core.errors import OrchestraError
from core.messages import Attachment, Button, Inbound, Keyboard, Outbound, OutKind, waiting_keyboard
from core.models import Task, TaskState
from core.permission_text import waiting_line
from core.progress import render_card
from core.service import Actor, AgentInfo, Service
from core.text import clip, format_cost, format_duration, state_icon, state_label

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.clock import Clock


AGENTS_VERSION_BOUND_S = 2.0  # /agents waits at most this long for CLIs' --version


def agent_line(info: AgentInfo) -> str:
    """One agent in /agents, phone-short: kind and version or how to install it, what is missing,
    how busy it is, what routes to it and what it costs per task so far."""
    if not info.installed:
        state = f"CLI not found: {info.install}" if info.install else "CLI not found"
    else:
        state = info.version or "installed"
    extra = [info.kind, state if info.enabled else "disabled"]
    if info.installed and info.missing:
        extra.append("not set: " + ", ".join(info.missing))
    extra.append(f"{info.running}/{info.max_concurrent} running")
    if info.default:
        extra.append("default")
    if info.categories:
        extra.append("for " + ", ".join(info.categories))
    if info.tasks:
        average = info.per_task_usd
        extra.append(f"{info.tasks} tasks" + (f", {format_cost(average)}/task" if average is not None else ""))
    description = f" — {info.description}" if info.description else ""
    return f"• @{info.name}: {' · '.join(extra)}{description}"


def toast(text: str) -> Outbound:
    """The short notice a tap gets (Telegram's callback answer, Slack's ephemeral line)."""
    return Outbound(text=text[:190], kind=OutKind.TOAST)


class Answers:
    """The questions a chat asks, answered from the Service, and the answers' shapes.

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

    # -- questions ---------------------------------------------------------------------------
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
                "Log / Retry on a finished task (plus Approve / Reject when it needs review, or Merge / Open PR / "
                "Diff / Discard when it ran on its own branch); Allow / Deny / "
                "Allow for this task on what an agent asks to run (or reply: yes allows, any other text denies)."
            ),
            "IDs look like t3; “3” works too.",
        ]
        return "\n".join(lines)

    def _status(self, inbound: Inbound, _args: str) -> list[Outbound]:
        active, recent = self.service.status(recent=5)
        if not active and not recent:
            return [self._note(inbound, "No tasks yet. Send one, e.g. “Create User model”.")]
        now = self.clock.now()
        waits = self.service.permission_waits([t.id for t in active])
        lines = [f"Active ({len(active)}):" if active else "Nothing running."]
        for task in active:
            lines.append(self._task_line(task, now))
            if task.id in waits:
                lines.append("   " + waiting_line(*waits[task.id], now))
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

    def _cost(self, inbound: Inbound, _args: str) -> list[Outbound]:
        report = self.service.cost_report(days=7)
        return [self._note(inbound, "💰 " + render_cost_report(report, sections=("agent",)))]

    def _digest(self, inbound: Inbound, _args: str) -> list[Outbound]:
        """The digest on demand, with Approve / Reject for what waits and the 14-day chart."""
        digest = self.service.digest()
        buttons = waiting_keyboard((t.task_id, t.state) for t in digest.waiting)
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
        # Versions are probed with a short bound (cached per binary after the first answer).
        lines = ["🤖 Agents"] + [agent_line(info) for info in self.service.agents(bound_s=AGENTS_VERSION_BOUND_S)]
        return [self._note(inbound, "\n".join(lines))]

    def _audit_command(self, inbound: Inbound, args: str) -> list[Outbound]:
        rows = self.service.audit_log(args, limit=15)
        if not rows:
            return [
                self._note(
                    inbound, f"Nothing in the audit log matches {args!r}." if args else "The audit log is empty."
                )
            ]
        lines = [clip(audit_line(row, self.service.config.digest.zone()), 200) for row in reversed(rows)]
        return [self._note(inbound, "🧾 Audit" + (f" · {args}" if args else "") + "\n" + "\n".join(lines))]

    # -- answers -----------------------------------------------------------------------------
    def _card(self, inbound: Inbound, task: Task, *, why: str = "") -> Outbound:
        text, buttons = render_card(self.service, task, self.clock.now(), why=why)
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
        head = f"👀 {task.id} · {task.agent} · {state_label(task.state)}"
        return Outbound(head, code=shown or "(empty)", buttons=buttons, task_id=task.id, reply_to=inbound.message_id)

    def _screen_answer(self, inbound: Inbound, task: Task) -> Outbound:
        screen = self.service.screen(task.id)
        if screen is None:
            state = state_label(task.state)
            return self._reply(
                inbound,
                f"🖼 {task.id} is {state}; it has no live window. {self.syntax.command('log', task.id)} has its output.",
            )
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
            return self._reply(inbound, f"📄 {task.id} has no output yet ({state_label(task.state)}).")
        return Outbound(
            f"📄 {task.id} output log · {_size(size)} · {state_label(task.state)}",
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
            f"{state_icon(task.state)} {task.id} {state_label(task.state)}",
            task.where + task.agent,
            when,
            cost,
        ]
        return " · ".join(p for p in parts if p) + f" — {clip(task.text, 50)}"

    # -- shapes ------------------------------------------------------------------------------
    def _actor(self, inbound: Inbound) -> Actor:
        where = f"chat {inbound.chat.chat_id} user {inbound.user_id}"
        return Actor(
            name=inbound.user_name, source=inbound.chat.platform, where=where, ref=inbound.event_id,
            chat=inbound.chat.chat_id, topic=inbound.topic,
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

    def _task_or_latest(self, args: str) -> Task:
        """The task named in ``args``; without one, the newest running task, else the newest task."""
        task_id = task_id_in(args)
        if task_id is not None:
            return self.service.get(task_id)
        active, recent = self.service.status(recent=1)
        running = [t for t in active if t.state == TaskState.RUNNING]
        for candidate in (running[-1:], active[-1:], recent[:1]):
            if candidate:
                return candidate[0]
        raise OrchestraError("No tasks yet.")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


__all__ = ["Answers", "toast"]
