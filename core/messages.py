"""Neutral chat messages: the only types that cross between core and the chat transports.

Transports (Telegram, Slack, console) turn their platform's updates into :class:`Inbound` and
render :class:`Outbound` in their own markup; nothing here knows a chat SDK. Text is always plain:
escaping for HTML or mrkdwn is the transport's job, so task text with ``<``, ``_`` or ``*`` is
shown literally everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from core.models import TaskState
from core.summary import command_hint

if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass(frozen=True)
class ChatRef:
    """Where a message came from or goes to. ``private`` is a one-to-one chat with the bot."""

    platform: str
    chat_id: str
    private: bool = True


@dataclass(frozen=True)
class Button:
    """An inline button: tapping it comes back as a :class:`Tap` with the same action and task."""

    label: str
    action: str
    task_id: str = ""
    url: str = ""  # a link button (the dashboard: a Mini App in a Telegram private chat); taps on it are not ours


Keyboard = tuple[tuple[Button, ...], ...]
"""Rows of buttons, top to bottom."""


@dataclass(frozen=True)
class Tap:
    """A tap on an inline button; ``message_id`` is the message that carried it, ``keyboard`` its buttons."""

    action: str
    task_id: str
    message_id: str
    keyboard: Keyboard = ()


@dataclass(frozen=True)
class FileRef:
    """A file someone sent (a photo, a document, a voice note, an audio clip), as the platform names it.

    ``file_id`` is what the transport fetches it by (Telegram's file id, Slack's private download
    URL); it never holds a token. ``size`` is the size the platform declares (0: unknown), checked
    before anything is downloaded. ``path`` is where the bot saved it once fetched (see
    :mod:`core.inbox`); empty until then.
    """

    file_id: str
    name: str
    mime: str = ""
    size: int = 0
    kind: str = "document"  # photo | document | voice | audio
    path: str = ""


@dataclass(frozen=True)
class Inbound:
    """One thing a person did in a chat: a text message or a button tap.

    ``event_id`` is the platform's unique id for the update, so a redelivered update is handled
    once. ``sent_at`` is the platform's send time, so a backlog handled after an outage is judged
    by when it was sent, not when it was read. ``raw`` is the platform payload, for logs and
    debugging only: core never reads it.
    """

    chat: ChatRef
    user_id: str
    user_name: str
    text: str = ""
    tap: Tap | None = None
    message_id: str | None = None
    event_id: str = ""
    replied_to: str | None = None  # what this answers: a bot message (Telegram reply) or a thread (Slack)
    replied_keyboard: Keyboard = ()  # that message's buttons, as the platform showed them
    sent_at: float | None = None  # when the person sent it (platform time), if the platform says
    topic: str = ""  # the Telegram forum topic it was sent in, if any
    files: tuple[FileRef, ...] = ()  # what came with it (the text is the caption); see core.inbox
    raw: Any = field(default=None, compare=False, repr=False)


class OutKind(StrEnum):
    """What an outgoing message is for; it decides new message versus edit, and its buttons.

    The first five answer a person (a command or a tap); the rest are the notifications nobody
    asked for, all written by :class:`core.notify.Notifier`.
    """

    REPLY = "reply"  # a new message answering a command
    ACK = "ack"  # a delegation acknowledgement: progress edits it in place
    APPROVAL = "approval"  # an approval request card: a new message, also kept current by progress
    EDIT = "edit"  # change an existing message (text and buttons, or only the buttons when text is "")
    TOAST = "toast"  # the short answer to a button tap; not a message, never stored
    PROGRESS = "progress"  # an edit of a card showing its task's newest state (older unsent ones are dropped)
    COMPLETION = "completion"  # a run finished: a new message, so the phone buzzes
    REVIEW = "review"  # a run finished and waits for a person's review
    BUDGET_ALERT = "budget_alert"  # a budget threshold crossed
    WATCHDOG = "watchdog"  # a running task has been silent for long
    PERMISSION = "permission"  # an agent asks to run a tool call: a new message, edited once answered
    DIGEST = "digest"  # the scheduled digest, with its chart
    FILE = "file"  # a file an agent left in its outbox folder, sent as a document when its run ended


CARD_KINDS = (OutKind.ACK.value, OutKind.APPROVAL.value)
"""Outbox kinds whose message shows a task's live state and is edited as it progresses."""


@dataclass(frozen=True)
class Attachment:
    """A file to send: read from ``path`` at send time, or built from ``data``.

    ``render="ansi"`` means ``data`` is a terminal screen with colour escapes that the transport
    draws as a PNG image.
    """

    kind: str  # "document" | "photo"
    filename: str
    path: str | None = None
    data: str | None = None
    render: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attachment:
        return cls(
            kind=str(data.get("kind", "document")),
            filename=str(data.get("filename", "file")),
            path=data.get("path"),
            data=data.get("data"),
            render=str(data.get("render", "")),
        )


@dataclass(frozen=True)
class Outbound:
    """One message to send (or edit, or a tap's answer), in plain text.

    ``code`` is shown below ``text`` in a monospace block (pane output, logs). ``edit_message_id``
    names the message an EDIT changes; ``reply_to`` the message a new one answers.
    """

    text: str
    kind: OutKind = OutKind.REPLY
    buttons: Keyboard = ()
    code: str = ""
    task_id: str | None = None
    reply_to: str | None = None
    edit_message_id: str | None = None
    attachment: Attachment | None = None
    personal: bool = False  # only the asker needs it (help, status, an error): a transport may show it to them alone


@dataclass(frozen=True)
class OutboxItem:
    """A row of the outbox as a delivery loop sees it.

    ``chat_id`` None means "every chat this channel notifies": the delivery loop fans such a row
    out into one row per chat before sending. ``edit_message_id`` is already resolved for rows
    that edit an earlier outbox message (``edit_of``); ``target_state`` says whether that earlier
    message was ``sent``, is still ``pending`` or ``failed``.
    """

    id: int
    channel: str
    kind: str
    chat_id: str | None
    text: str
    dedupe_key: str
    task_id: str | None = None
    buttons: Keyboard = ()
    code: str = ""
    reply_to: str | None = None
    edit_of: int | None = None
    edit_message_id: str | None = None
    target_state: str | None = None
    attachment: Attachment | None = None
    attempts: int = 0
    next_attempt_at: float = 0.0
    shown_in: tuple[str, ...] = ()  # chats that already show it (the chat that got the task's card)

    @property
    def is_edit(self) -> bool:
        return self.kind in (OutKind.PROGRESS.value, OutKind.EDIT.value) or self.edit_of is not None


@dataclass(frozen=True)
class OutboxCopy:
    """One chat's copy (or one part of it) of a row queued for every chat (see ``Store.fan_out``)."""

    chat_id: str
    dedupe_key: str
    message: Outbound


def keyboard_to_json(keyboard: Keyboard) -> str:
    rows = [[[b.label, b.action, b.task_id, *([b.url] if b.url else [])] for b in row] for row in keyboard]
    return json.dumps(rows, ensure_ascii=False)


def keyboard_from_json(text: str | None) -> Keyboard:
    if not text:
        return ()
    rows = json.loads(text)
    return tuple(tuple(Button(*(str(part) for part in button[:4])) for button in row) for row in rows)


def button_still_valid(button: Button, state: str) -> bool:
    """Whether a task button still means something for a task in ``state`` (stale ones are removed)."""
    if button.url:
        return True
    if button.action in ("approve", "reject"):
        return state in (TaskState.AWAITING_APPROVAL, TaskState.NEEDS_REVIEW)
    if button.action == "cancel":
        return state in (TaskState.QUEUED, TaskState.AWAITING_APPROVAL, TaskState.RUNNING)
    if button.action in ("retry", "merge", "pr", "discard", "discard_yes"):
        return TaskState(state).finished
    return True


def waiting_keyboard(tasks: Iterable[tuple[str, str]]) -> Keyboard:
    """The digest's buttons, one row per (task id, state), at most eight: Approve / Reject for a
    task waiting for a decision, Peek for the others."""
    rows: list[tuple[Button, ...]] = []
    for tid, state in list(tasks)[:8]:
        if state in (TaskState.AWAITING_APPROVAL, TaskState.NEEDS_REVIEW):
            rows.append((Button(f"✅ Approve {tid}", "approve", tid), Button(f"✖ Reject {tid}", "reject", tid)))
        else:
            rows.append((Button(f"👀 Peek {tid}", "peek", tid),))
    return tuple(rows)


_CLI_VERBS = {"log": "logs"}  # a button's action where the terminal's command has another name


def typed_commands(row: Iterable[Button], prefix: str | None) -> str:
    """Buttons as the commands a reader types instead of tapping, in one line:
    ``Approve: orchestra approve t3 · Reject: orchestra reject t3`` in a terminal (``prefix`` None),
    ``Peek: /peek t4 · Cancel: /cancel t4`` in Telegram (see :func:`core.summary.command_hint`)."""
    typed = []
    for button in row:
        verb = _CLI_VERBS.get(button.action, button.action)
        cli, chat = f"{verb} {button.task_id}".strip(), f"{button.action} {button.task_id}".strip()
        head, _, rest = button.label.partition(" ")
        word = rest if rest and not any(c.isalnum() for c in head) else button.label  # "✅ Approve": "Approve"
        typed.append(f"{word}: {command_hint(prefix, cli, chat)}")
    return " · ".join(typed)


def finished_keyboard(task_id: str, state: str, *, branch: bool = False, pull_request: bool = False) -> Keyboard:
    """Buttons under a finished task's summary: Log / Retry; for a task on its own branch, Diff /
    Merge / Open PR (when the project can open one) / Discard, which also decide a review; else
    Approve / Reject while in review."""
    rows: list[tuple[Button, ...]] = []
    if branch:
        pr = (Button("🔗 Open PR", "pr", task_id),) if pull_request else ()
        rows.append((Button("🔀 Merge", "merge", task_id), *pr, Button("🧾 Diff", "diff", task_id)))
        rows.append(
            (
                Button("🗑 Discard", "discard", task_id),
                Button("📄 Log", "log", task_id),
                Button("🔁 Retry", "retry", task_id),
            )
        )
        return tuple(rows)
    if state == TaskState.NEEDS_REVIEW:
        rows.append((Button("✅ Approve", "approve", task_id), Button("↩ Reject", "reject", task_id)))
    rows.append((Button("📄 Log", "log", task_id), Button("🔁 Retry", "retry", task_id)))
    return tuple(rows)


def discard_keyboard(task_id: str) -> Keyboard:
    """The confirmation a Discard tap asks for: nothing is removed until the second tap."""
    return ((Button(f"🗑 Yes, discard {task_id}", "discard_yes", task_id), Button("Keep it", "discard_no", task_id)),)


def card_keyboard(task_id: str, state: str, *, open_url: str = "") -> Keyboard:
    """Buttons on a task's acknowledgement while it is active; none once it has finished. With
    ``open_url`` (the dashboard's page of the task) a 🖥 Open button joins the Peek row."""
    opened = (Button("🖥 Open", "open", task_id, url=open_url),) if open_url else ()
    if state == TaskState.AWAITING_APPROVAL:
        return (
            (Button("✅ Approve", "approve", task_id), Button("✖ Reject", "reject", task_id)),
            (Button("👀 Peek", "peek", task_id), *opened),
        )
    if state in (TaskState.QUEUED, TaskState.RUNNING):
        return ((Button("⏹ Cancel", "cancel", task_id), Button("👀 Peek", "peek", task_id), *opened),)
    return ()


__all__ = [
    "CARD_KINDS",
    "Attachment",
    "Button",
    "ChatRef",
    "FileRef",
    "Inbound",
    "Keyboard",
    "OutKind",
    "Outbound",
    "OutboxCopy",
    "OutboxItem",
    "Tap",
    "button_still_valid",
    "card_keyboard",
    "discard_keyboard",
    "finished_keyboard",
    "keyboard_from_json",
    "keyboard_to_json",
    "typed_commands",
    "waiting_keyboard",
]
