"""What the surfaces read: tasks, their panes and logs, their approvals, the messages about them, the audit log.

Reads change nothing, except that with no engine up a run that ended is recorded on read (so no
task shows running for ever). Results are tasks or small frozen records, never store rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.audit import search as audit_search
from core.errors import TmuxError
from core.models import Task, TaskState
from core.service.engine_control import EngineControl

if TYPE_CHECKING:
    from pathlib import Path

    from core.digest import Digest


@dataclass(frozen=True)
class Approval:
    """One decision at a task's gate (``start`` before it runs, ``review`` after), and who made it."""

    gate: str
    decision: str  # approved | rejected
    actor: str
    reason: str
    ts: float


@dataclass(frozen=True)
class SentMessage:
    """A message Orchestra sent to a chat, found again by its platform id (a reply to it, a tap on it)."""

    kind: str
    task_id: str | None

    @property
    def is_card(self) -> bool:
        """A task's card (acknowledgement or approval request): it is re-rendered whole when the task changes."""
        from core.messages import CARD_KINDS

        return self.kind in CARD_KINDS


class Queries(EngineControl):
    """Read-only questions about tasks, for every surface."""

    def show(self, task_id: str) -> Task:
        """The task as it really is: with no engine up, a run that ended is recorded on read."""
        task = self.get(task_id)
        if self._settle_unattended([task]):
            task = self.get(task.id)
        return task

    def status(self, *, recent: int = 10) -> tuple[list[Task], list[Task]]:
        """Active tasks (oldest first) and the most recently created finished ones.

        With no engine up, runs that ended meanwhile are recorded first, so none shows running for ever.
        """
        active = self.store.active_tasks()
        if self._settle_unattended(active):
            active = self.store.active_tasks()
        done = [t for t in self.store.list_tasks(limit=recent + len(active)) if t.state.finished][:recent]
        return active, done

    def running(self) -> list[Task]:
        """The tasks running now, as the store has them (nothing is settled on the way)."""
        return [t for t in self.store.active_tasks() if t.state == TaskState.RUNNING]

    def log_path(self, task_id: str) -> Path:
        return self.home / "tasks" / self.get(task_id).id / "output.log"

    def peek(self, task_id: str, lines: int = 30) -> str:
        """The live pane of a running task, else the end of its log."""
        from core.protocol import EventKind

        task = self.get(task_id)
        if task.state == TaskState.RUNNING and task.remote:
            from core.errors import HostUnavailable
            from core.hosts import remote

            try:  # the pane on its host; when that is out of reach, the events it sent
                return remote.capture(self.hosts.of(task), task.id, lines)
            except HostUnavailable:
                pass
        elif task.state == TaskState.RUNNING and task.id in self.tmux.windows():
            try:
                return self.tmux.capture(task.id, lines)
            except TmuxError:
                pass  # the window closed between the two calls: its output is in the events
        shown = [
            e["text"]
            for e in self.store.events(task.id, limit=100_000)
            if e["kind"] not in (EventKind.RAW, EventKind.COST)
        ]
        if shown:
            return "\n".join(shown[-lines:])
        return f"{task.id} is {task.state.value}; nothing to show yet"

    def screen(self, task_id: str) -> str | None:
        """The visible pane of a running task with its colour escapes; None when it has no live window."""
        task = self.get(task_id)
        if task.state == TaskState.RUNNING and task.remote:
            from core.errors import HostUnavailable
            from core.hosts import remote

            try:
                return remote.capture(self.hosts.of(task), task.id, escapes=True)
            except HostUnavailable:
                return None
        if task.state != TaskState.RUNNING or task.id not in self.tmux.windows():
            return None
        try:
            return self.tmux.screen(task.id)
        except TmuxError:
            return None  # the window closed between the two calls

    def steps(self, task_id: str) -> list[str]:
        """What the agent did so far, one line per tool call, oldest first."""
        from core.protocol import EventKind

        return [e["text"] for e in self.store.events(task_id, kinds=[EventKind.TOOL_USE], limit=100_000) if e["text"]]

    def approvals(self, task_id: str) -> list[Approval]:
        """The decisions made at the task's gates, oldest first."""
        return [
            Approval(row["gate"], row["decision"], row["actor"], row.get("reason") or "", row["ts"])
            for row in self.store.approvals(task_id)
        ]

    def sent_message(self, platform: str, chat_id: str, message_id: str) -> SentMessage | None:
        """The message we sent with this id in that chat, or None when it was not ours (or not recorded yet)."""
        found = self.store.outbox_message(platform, chat_id, message_id)
        return None if found is None else SentMessage(kind=found[1], task_id=found[2])

    def replied_task(self, platform: str, chat_id: str, message_id: str) -> Task | None:
        """The task a message of ours was about: the one it names, or whose card opened its thread."""
        sent = self.sent_message(platform, chat_id, message_id)
        if sent is not None and sent.task_id:
            return self.find(sent.task_id)
        in_thread = self.store.thread_task(platform, chat_id, message_id)
        return self.find(in_thread) if in_thread is not None else None

    def audit_log(
        self, text: str = "", *, action: str | None = None, since: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Audit rows matching ``text`` (a task id, an action or part of who/where/what), newest first.

        ``since`` is a span back from now (``30m``, ``1d``); rows are what ``core.audit.audit_line`` renders.
        """
        return audit_search(self.store, self.clock.now(), text, action=action, since=since, limit=limit)

    def digest(self) -> Digest:
        """The digest as it would be sent now (`/digest`); shows it without recording it as sent."""
        from core.digest import build_digest

        return build_digest(self.store, self.config, self.clock)


__all__ = ["Approval", "Queries", "SentMessage"]
