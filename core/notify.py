"""The one notification path: every message nobody asked for is queued here, for every channel.

Answers to a person (a command's reply, the acknowledgement card of a delegation, a tap's
edit) go back through their transport's outbox (``bot.outbox.Outbox.put``), in the chat and
thread that asked. Everything else (an approval request, a completion or review, a budget alert,
the watchdog's hint, the digest, and the edits that keep a task's cards current) is written by a
:class:`Notifier`, as one row per channel in the store's outbox: a row names no chat, and each
channel's delivery sends a copy to every chat it notifies and to the chats that have the task's
card. The console is a channel like the others: it prints what a chat would show, with the
buttons as the commands to type.

A new kind of message is one more method that calls :meth:`Notifier.post` (a text per channel,
buttons, the commands a channel without buttons prints instead) and, when it is answered,
:meth:`Notifier.edit`: an agent's permission request ("run X? Allow / Deny") is posted to the
task's chats with ``task_id`` set and edited, in each chat, once a person has decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.messages import (
    Attachment,
    Button,
    ChatRef,
    Keyboard,
    Outbound,
    OutKind,
    card_keyboard,
    finished_keyboard,
    typed_commands,
    waiting_keyboard,
)
from core.models import Task, TaskState
from core.permission_text import decided_text, key_of, literal_block, request_buttons, request_text, typed_answers
from core.summary import render_phone

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path

    from core.clock import Clock
    from core.config import Config
    from core.store import Store
    from core.store.permissions import PermissionRequest


@dataclass(frozen=True)
class Channel:
    """A channel as a message is written for it.

    ``prefix`` says how commands are typed there (None: in a terminal, ``orchestra approve t3``;
    see :func:`core.summary.command_hint`). ``taps`` is whether it shows buttons; one that does
    not gets a message's ``commands`` as its buttons, and prints them as the commands to type.
    """

    name: str
    prefix: str | None
    taps: bool = True


def channel(config: Config, name: str) -> Channel:
    """The channel called ``name`` in this config (a transport's name, or the console)."""
    known = {
        "console": Channel("console", None, taps=False),
        "telegram": Channel("telegram", "/"),
        "slack": Channel("slack", f"{config.slack.command} "),
    }
    return known.get(name) or Channel(name, "/")


def chat_channels(config: Config) -> list[str]:
    """The configured channels that are chats with buttons (the console is not one)."""
    return [name for name in config.channels() if channel(config, name).taps]


class Notifier:
    """Queues the notifications of one store, on the caller's connection: inside ``store.atomic()``
    they commit with the change they report, or not at all.

    ``channels`` are the channels' names (default: every channel the config notifies). Each
    message has a ``key``: queued once per channel (as ``<channel>:<key>``), so asking again is
    harmless. The methods return how many rows were new.
    """

    def __init__(self, config: Config, store: Store, clock: Clock, *, channels: Sequence[str] | None = None) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.channels = [channel(config, name) for name in (config.channels() if channels is None else channels)]

    # -- the two primitives ---------------------------------------------------------------------
    def post(
        self,
        kind: OutKind,
        key: str,
        text: str | Callable[[Channel], str],
        *,
        task_id: str | None = None,
        buttons: Keyboard = (),
        commands: Keyboard = (),
        attachment: Attachment | None = None,
        shown_in: ChatRef | None = None,
        code: str = "",
    ) -> int:
        """A new message for every chat of every channel; ``text`` may be written per channel.

        ``commands`` are the buttons a channel without buttons prints as commands (none when the
        text already says how). ``shown_in`` is a chat that already shows it (the task's card).
        ``code`` is shown below the text in a monospace block, as it is.
        """
        now, added = self.clock.now(), 0
        for ch in self.channels:
            message = Outbound(
                text(ch) if callable(text) else text,
                kind=kind,
                buttons=buttons if ch.taps else commands,
                code=code,
                task_id=task_id,
                attachment=attachment,
            )
            shown = (shown_in.chat_id,) if shown_in and shown_in.platform == ch.name and shown_in.chat_id else ()
            added += self.store.enqueue(ch.name, message, dedupe_key=f"{ch.name}:{key}", ts=now, shown_in=shown)
        return added

    def edit(self, cards: Iterable[int], text: str, buttons: Keyboard, *, final_state: str = "") -> int:
        """Edit messages already queued (outbox ids of chat rows), collapsing older unsent edits.

        A ``final_state`` edit is written once per state, however often it is asked for.
        """
        now = self.clock.now()
        final = bool(final_state)
        return sum(
            self.store.enqueue_progress(card, text, buttons=buttons, ts=now, final=final, state=final_state)
            for card in cards
        )

    # -- the messages -----------------------------------------------------------------------------
    def approval_request(self, task: Task, why: str, *, shown_in: ChatRef | None = None) -> int:
        """Ask every chat to approve a task before it starts; the chat showing its card is not asked again."""
        text = (
            f"🔐 {task.id} needs approval · {task.where}{task.agent} · {task.category}\n{task.text[:300]}\nWhy: {why}"
        )
        buttons = card_keyboard(task.id, TaskState.AWAITING_APPROVAL)
        return self.post(
            OutKind.APPROVAL, f"{task.id}:approval:start", text, task_id=task.id, buttons=buttons,
            commands=buttons[:1], shown_in=shown_in,
        )  # fmt: skip

    def finished(
        self, task_id: str, state: TaskState, summary: dict[str, Any], *, pull_request: bool = False, no_pr: str = ""
    ) -> int:
        """A run's summary (a completion, or a review when a person must look first) for every chat.

        A task on its own branch gets Merge / Diff / Discard, and Open PR with ``pull_request``;
        ``no_pr`` says why there is none when its project has pull requests set up (no token, say)."""
        kind = OutKind.REVIEW if state == TaskState.NEEDS_REVIEW else OutKind.COMPLETION
        branch = bool(summary.get("branch"))
        buttons = finished_keyboard(task_id, state, branch=branch, pull_request=branch and pull_request)
        why = f"\nNo Open PR: {no_pr}" if branch and no_pr else ""
        return self.post(
            kind,
            f"{task_id}:{kind}:{state}",
            lambda ch: render_phone(summary, state=state.value, chat_prefix=ch.prefix) + why,
            task_id=task_id,
            buttons=buttons,
            commands=((*buttons[0], buttons[1][0]),) if branch else (),  # Merge … Discard, typed
        )

    def files_out(self, task_id: str, outbox: dict[str, Any] | None) -> int:
        """The files a run left in its ``.orchestra/outbox/`` (``core.files.collect_outbox``): one document
        each for every chat of the task, and one line naming those that were left out.

        Each is queued once (``<task>:file:<n>``); the file is read when it is sent, from the task's folder.
        """
        if not outbox:
            return 0
        from core.files import size_text

        added = 0
        for n, item in enumerate(outbox.get("files") or []):
            name, size = str(item.get("name", "file")), int(item.get("size") or 0)
            added += self.post(
                OutKind.FILE, f"{task_id}:file:{n}", f"📎 {task_id} · {name} · {size_text(size)}", task_id=task_id,
                attachment=Attachment("document", name, path=str(item.get("path", ""))),
            )  # fmt: skip
        skipped = [str(s) for s in outbox.get("skipped") or []]
        if skipped:
            text = f"📎 {task_id} left files in .orchestra/outbox/ that were not sent: {', '.join(skipped)[:800]}"
            added += self.post(OutKind.FILE, f"{task_id}:file:skipped", text, task_id=task_id)
        return added

    def budget_alert(self, key: str, text: str) -> int:
        """A budget threshold crossed (``key`` names the budget, its period and the threshold)."""
        return self.post(OutKind.BUDGET_ALERT, key, text)

    def watchdog(self, task: Task, text: str) -> int:
        """A running task has been silent: ``text`` says so, each chat adds how to peek and cancel."""
        row = (Button("👀 Peek", "peek", task.id), Button("⏹ Cancel", "cancel", task.id))
        return self.post(
            OutKind.WATCHDOG,
            f"watchdog:{task.id}",
            lambda ch: f"{text}\n{typed_commands(row, ch.prefix)}",  # as it is typed where it is read
            task_id=task.id,
            buttons=(row,),
        )

    def permission_request(self, request: PermissionRequest) -> int:
        """Ask every chat about an agent's tool call: a new message (the phone buzzes) in the task's
        thread, with Allow / Deny / Allow for this task; the console prints the commands to type.

        Queued once per request (``perm:<id>``), however often the hook asks again after a restart.
        """
        tz, on_timeout, now = self.config.digest.zone(), self.config.permissions.on_timeout, self.clock.now()
        return self.post(
            OutKind.PERMISSION,
            key_of(request.id),
            lambda ch: request_text(request, now, tz, on_timeout, "" if ch.taps else typed_answers(request, ch.prefix)),
            task_id=request.task_id,
            buttons=request_buttons(request),
            code=literal_block(request),
        )

    def permission_decided(self, request: PermissionRequest) -> int:
        """Show a request's outcome (answered, timed out, closed) on every copy of its message, buttons removed.

        A copy not sent yet is rewritten (the chat gets the outcome, not a question already answered);
        a sent one is edited, once per outcome. Returns how many rows changed or were queued.
        """
        text, changed, key = decided_text(request), 0, key_of(request.id)
        for ch in self.channels:
            for row_id, chat_id, sent in self.store.notification_rows(ch.name, request.task_id, key):
                if not sent and self.store.rewrite_unsent(row_id, text, ()):
                    changed += 1
                    if chat_id is None:
                        continue  # the row for every chat: its copies, still to come, carry the outcome
                if chat_id is not None or not ch.taps:  # a chat's copy, or the console's one row
                    changed += self.edit([row_id], text, (), final_state=request.state)
        return changed

    def digest(self, period: str, text: str, waiting: Iterable[tuple[str, str]], chart: Path | None) -> int:
        """The digest of ``period``, with Approve / Reject for what waits (task id, state) and its chart."""
        photo = Attachment("photo", "chart.png", path=str(chart)) if chart else None
        return self.post(OutKind.DIGEST, f"digest:{period}", text, buttons=waiting_keyboard(waiting), attachment=photo)


__all__ = ["Channel", "Notifier", "channel", "chat_channels"]
