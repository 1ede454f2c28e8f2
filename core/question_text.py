"""What people read about an agent's question: the message with its options as buttons, its outcome.

A question is a permission row of tool ``Question`` (``core.questions``); ``core.permission_text``
hands its wording here, so every surface that shows requests (the message and its edit, ``pending``,
the card, ``orchestra answer``) says "asks" and "answered" for a question instead of "wants to run".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.messages import Button, Keyboard
from core.questions import options_of
from core.store.permissions import ALLOWED, CANCELLED, DENIED, TIMED_OUT
from core.text import clip, local_time

if TYPE_CHECKING:
    from datetime import tzinfo

    from core.store.permissions import PermissionRequest

ANSWER_TAP = "answer_"  # + the option's number: "answer_0"; the request's ref rides in the task slot
SKIP_TAP = "answer_skip"
ANSWER_TAPS = frozenset({SKIP_TAP, *(f"{ANSWER_TAP}{n}" for n in range(8))})
_BUTTON_CHARS = 60


def asked_line(request: PermissionRequest) -> str:
    """``❓ t7 · claude asks: Which database should I use?``"""
    _, _, header = options_of(request.detail)
    head = f" [{clip(header, 40)}]" if header else ""
    return f"❓ {request.task_id} · {request.agent} asks{head}: {clip(request.subject, 600, flat=False)}"


def request_text(request: PermissionRequest, now: float, tz: tzinfo, commands: str = "") -> str:
    """The question, its numbered options, how to answer, and when the agent stops waiting."""
    from core.permission_text import span

    options, multi, _ = options_of(request.detail)
    lines = [asked_line(request)]
    for number, option in enumerate(options, 1):
        about = f" — {clip(option['description'], 120)}" if option.get("description") else ""
        lines.append(f"  {number}. {option['label']}{about}")
    if options:
        several = " (several: reply with them, separated by commas)" if multi else ""
        lines.append(f"Tap an answer, or reply to this message with your own{several}.")
    else:
        lines.append("Reply to this message with your answer.")
    left = request.deadline - now
    lines.append(f"⏱ No answer in {span(left)} (by {local_time(request.deadline, tz)}): the agent decides itself")
    if commands:
        lines.append(commands)
    return "\n".join(lines)


def request_buttons(request: PermissionRequest) -> Keyboard:
    """One button per option (two to a row), and Skip."""
    options, _, _ = options_of(request.detail)
    buttons = [
        Button(clip(option["label"], _BUTTON_CHARS), f"{ANSWER_TAP}{n}", request.ref)
        for n, option in enumerate(options[:8])
    ]
    rows = tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
    return (*rows, (Button("⏭ Skip: let it decide", SKIP_TAP, request.ref),))


def tapped_answer(request: PermissionRequest, action: str) -> str | None:
    """The option a tap names (its label), or None for Skip or an option that is not there."""
    options, _, _ = options_of(request.detail)
    number = action.removeprefix(ANSWER_TAP)
    if not number.isdigit() or int(number) >= len(options):
        return None
    return str(options[int(number)]["label"])


def typed_answers(request: PermissionRequest, prefix: str | None) -> str:
    """Where there are no buttons: ``orchestra answer p12 TEXT`` (``prefix`` None) or ``/answer p12 TEXT``."""
    word = "orchestra " if prefix is None else prefix
    return f"Answer: {word}answer {request.ref} TEXT (an option's number works too) · Skip: {word}deny {request.ref}"


def outcome_line(request: PermissionRequest) -> str:
    from core.permission_text import decider, span

    waited = span((request.decided_at or request.deadline) - request.created_at)
    if request.state == ALLOWED:
        return f"✅ {decider(request)} answered: {clip(request.reason or '', 300)}"
    if request.state == DENIED:
        return f"⏭ {decider(request)} skipped it: the agent decides itself"
    if request.state == TIMED_OUT:
        return f"⏱ No answer in {waited}: the agent decides itself"
    if request.state == CANCELLED:
        return f"⏹ {clip(request.reason, 200)}" if request.reason else "⏹ Task cancelled"
    return "⏳ Waiting for an answer"


def answered_text(request: PermissionRequest) -> str:
    if request.state == ALLOWED:
        return f"✅ {request.ref} answered ({request.task_id}): {clip(request.reason or '', 200)}"
    return f"⏭ {request.ref} skipped ({request.task_id}): the agent decides itself"


def already_text(request: PermissionRequest, tz: tzinfo) -> str:
    from core.permission_text import decider

    when = f" at {local_time(request.decided_at, tz)}" if request.decided_at else ""
    if request.state == TIMED_OUT:
        return f"{request.ref} (a question of {request.task_id}) timed out unanswered{when}"
    if request.state == CANCELLED:
        return f"{request.ref} (a question of {request.task_id}) was closed{when}: {request.reason or 'its task ended'}"
    verb = "answered" if request.state == ALLOWED else "skipped"
    return f"{request.ref} was already {verb} by {decider(request)}{when}"


def chosen(request: PermissionRequest, text: str) -> str:
    """A typed answer as the agent is told it: an option's number (``2``, ``1,3``) becomes its label."""
    options, _, _ = options_of(request.detail)
    parts = [part.strip() for part in text.split(",")]
    if options and parts and all(p.isdigit() and 1 <= int(p) <= len(options) for p in parts):
        return ", ".join(str(options[int(p) - 1]["label"]) for p in parts)
    return text.strip()
