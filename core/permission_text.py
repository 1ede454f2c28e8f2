"""What people read about a permission request: the question, its buttons, its outcome, the wait on a task.

One wording for every surface: the chats' message and its edit (``core.notify``), the replies to
``/allow`` and ``orchestra allow``, ``/pending`` and ``orchestra pending``, the task's card and
``status``, and the completion's "Denied:" line. Text is plain; the transports escape it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from core import question_text
from core.messages import Button, Keyboard
from core.permissions.call import BASH, EDIT, READ, WEB_FETCH, WEB_SEARCH
from core.questions import QUESTION
from core.store.permissions import ALLOWED, CANCELLED, DENIED, TIMED_OUT
from core.text import clip, format_duration, local_time

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import tzinfo

    from core.store.permissions import PermissionRequest

Verdict = Literal["allow", "task", "deny"]
PERM_ALLOW, PERM_TASK, PERM_DENY = "perm_allow", "perm_task", "perm_deny"
VERDICT_OF_TAP: dict[str, Verdict] = {PERM_ALLOW: "allow", PERM_TASK: "task", PERM_DENY: "deny"}
"""The three buttons' actions (the request's ref, ``p12``, rides in the task slot) and what each answers."""

SUBJECT_CHARS = 200  # of a command, path or URL on the message's first line
RULE_CHARS = 40  # of the rule named on "Allow for this task" (Slack cuts a button's label at 75)
_VERBS = {BASH: "run", EDIT: "edit", READ: "read", WEB_FETCH: "fetch", WEB_SEARCH: "search the web for"}
_REF = re.compile(r"p(\d{1,18})\Z")


def parse_ref(word: str) -> int | None:
    """The request id a person means by ``p12`` (or ``P12``); None when ``word`` is not a request ref."""
    match = _REF.match(word.strip().lower())
    return int(match.group(1)) if match else None


def key_of(request_id: int) -> str:
    """The notification key of a request's message (one per request, for every chat)."""
    return f"perm:{request_id}"


def span(seconds: float) -> str:
    """A wait as people say it: ``40s``, ``2m``, ``10 min`` for round minutes, ``1h05m``."""
    whole = round(max(0.0, seconds))  # a deadline read a moment after it was set is still "10 min"
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min" if rest == 0 else f"{minutes}m"
    return format_duration(whole)


def call_shown(request: PermissionRequest, size: int = 60) -> str:
    """``Bash(curl https://…)``: the call as a rule would name it, on one short line."""
    subject = clip(request.subject, size) if request.subject else ""
    return f"{request.tool}({subject})" if subject else request.tool


def asked_line(request: PermissionRequest) -> str:
    """``🔐 t7 · claude wants to run: pytest -q``: the tool call on one line, its subject clipped."""
    if request.tool == QUESTION:
        return question_text.asked_line(request)
    verb = _VERBS.get(request.tool)
    subject = clip(request.subject, SUBJECT_CHARS) if request.subject.strip() else ""
    if verb is None:
        what = f"use {request.tool}" + (f": {subject}" if subject else "")
    else:
        what = f"{verb}: {subject}" if subject else verb
    return f"🔐 {request.task_id} · {request.agent} wants to {what}"


def literal_block(request: PermissionRequest) -> str:
    """What goes in the message's monospace block, exactly as the agent wrote it: a command or path
    the first line had to fold or clip, and an edit's new text or diff (``detail``, clipped by the hook)."""
    if request.tool == QUESTION:
        return ""  # its options are in the message's text, as buttons
    parts = []
    subject = request.subject.strip("\n")
    if "\n" in subject or len(subject) > SUBJECT_CHARS:
        parts.append(clip(subject, 1500, flat=False))
    if request.detail.strip():
        parts.append(request.detail)
    return "\n\n".join(parts)


def request_text(request: PermissionRequest, now: float, tz: tzinfo, on_timeout: str, commands: str = "") -> str:
    """The message asking a person: what, why the policy asked, when it times out, how to answer."""
    if request.tool == QUESTION:
        return question_text.request_text(request, now, tz, commands)
    lines = [asked_line(request)]
    if request.why:
        lines.append(f"Why asked: {clip(request.why, 200)}")
    left = request.deadline - now
    then = "denied" if on_timeout != "allow" else "allowed"
    lines.append(f"⏱ No answer in {span(left)} (by {local_time(request.deadline, tz)}): {then}")
    if commands:
        lines.append(commands)
    return "\n".join(lines)


def request_buttons(request: PermissionRequest) -> Keyboard:
    """Allow / Deny, and below them Allow for this task naming the rule it adds."""
    if request.tool == QUESTION:
        return question_text.request_buttons(request)
    ref = request.ref
    rule = clip(request.rule, RULE_CHARS) if request.rule else "this call"
    return (
        (Button("✅ Allow", PERM_ALLOW, ref), Button("⛔ Deny", PERM_DENY, ref)),
        (Button(f"✅ Allow for this task: {rule}", PERM_TASK, ref),),
    )


def typed_answers(request: PermissionRequest, prefix: str | None) -> str:
    """The answers as typed where there are no buttons: ``orchestra allow p12`` (``prefix`` None) or ``/allow p12``."""
    if request.tool == QUESTION:
        return question_text.typed_answers(request, prefix)
    ref = request.ref
    word = "orchestra " if prefix is None else prefix
    reason = "--reason TEXT" if prefix is None else "REASON"
    return f"Allow: {word}allow {ref} · For this task: {word}allow {ref} --task · Deny: {word}deny {ref} {reason}"


def decider(request: PermissionRequest) -> str:
    """``alice (telegram)``: who answered and from where."""
    who = request.decided_by or "someone"
    return f"{who} ({request.via})" if request.via and request.via != who else who


def outcome_line(request: PermissionRequest) -> str:
    """What the request's message says once it is answered or closed."""
    if request.tool == QUESTION:
        return question_text.outcome_line(request)
    waited = span((request.decided_at or request.deadline) - request.created_at)
    reason = f": {clip(request.reason, 300)}" if request.reason else ""
    if request.state == ALLOWED and request.decided_by == "timeout":
        return f"⏱ No answer in {waited}: allowed (permissions.on_timeout is allow)"
    if request.state == ALLOWED and request.grant_rule:
        return f"✅ Allowed for this task: {clip(request.grant_rule, 200)} — by {decider(request)}"
    if request.state == ALLOWED:
        return f"✅ Allowed by {decider(request)}"
    if request.state == DENIED and request.decided_by == "policy":
        return f"⛔ Denied by the policy{reason}"
    if request.state == DENIED:
        return f"⛔ Denied by {decider(request)}{reason}"
    if request.state == TIMED_OUT:
        return f"⏱ No answer in {waited}: denied"
    if request.state == CANCELLED:
        return f"⏹ {clip(request.reason, 200)}" if request.reason else "⏹ Task cancelled"
    return f"⏳ Waiting for an answer ({request.state})"


def decided_text(request: PermissionRequest) -> str:
    """The edit of the request's message: the question's line, then its outcome (no buttons)."""
    return f"{asked_line(request)}\n{outcome_line(request)}"


def already_text(request: PermissionRequest, tz: tzinfo) -> str:
    """What a late answer is told: who decided first, and when."""
    if request.tool == QUESTION:
        return question_text.already_text(request, tz)
    when = f" at {local_time(request.decided_at, tz)}" if request.decided_at else ""
    if request.state == TIMED_OUT:
        return f"{request.ref} ({call_shown(request)}) timed out unanswered{when}: denied"
    if request.state == CANCELLED:
        return f"{request.ref} ({call_shown(request)}) was closed{when}: {request.reason or 'its task ended'}"
    verb = {ALLOWED: "allowed", DENIED: "denied"}.get(request.state, request.state)
    grant = f" for this task ({request.grant_rule})" if request.grant_rule else ""
    return f"{request.ref} was already {verb}{grant} by {decider(request)}{when}"


def answered_text(request: PermissionRequest) -> str:
    """The reply to the person who answered (``/allow``, ``orchestra deny``, a tap's toast)."""
    if request.tool == QUESTION:
        return question_text.answered_text(request)
    if request.state == ALLOWED and request.grant_rule:
        rest = f"for the rest of {request.task_id}: {request.grant_rule}"
        return f"✅ {request.ref} allowed: {call_shown(request)}; {rest}"
    if request.state == ALLOWED:
        return f"✅ {request.ref} allowed: {call_shown(request)} ({request.task_id})"
    reason = f" — {clip(request.reason, 200)}" if request.reason else ""
    return f"⛔ {request.ref} denied: {call_shown(request)} ({request.task_id}){reason}"


def waiting_line(request: PermissionRequest, since: float, now: float) -> str:
    """The task's card and ``status``: ``🔐 waiting for permission: Bash(curl …) · 2m``."""
    if request.tool == QUESTION:
        return f"❓ waiting for your answer: {clip(request.subject, 60)} · {span(now - since)}"
    return f"🔐 waiting for permission: {call_shown(request, 40)} · {span(now - since)}"


def pending_line(request: PermissionRequest, now: float, prefix: str | None = None) -> str:
    """One open request in ``pending``: ref, task, agent, what, how long it waits and until when."""
    answer = f" · {prefix}allow {request.ref} / {prefix}deny {request.ref}" if prefix is not None else ""
    waited, left = span(now - request.created_at), span(request.deadline - now)
    head = f"{request.ref} {request.task_id} · {request.agent} · {call_shown(request)}"
    return f"{head} · waiting {waited} · times out in {left}{answer}"


def refusals(requests: Iterable[PermissionRequest]) -> list[dict[str, str]]:
    """A task's refused calls for its summary (``core.summary.render_phone`` lists them under "Denied:"):
    ``call`` as a rule names it, ``state`` (denied, timed_out), ``by`` (``denied by bob``, ``by policy``,
    ``no answer in 10 min``) and the ``reason`` the model was given."""
    rows = []
    for request in requests:
        if request.state not in (DENIED, TIMED_OUT) or request.tool == QUESTION:
            continue
        if request.state == TIMED_OUT:
            by = f"no answer in {span(request.deadline - request.created_at)}"
        elif request.decided_by == "policy":
            by = "by policy"
        else:
            by = f"denied by {request.decided_by or 'someone'}"
        rows.append({"call": call_shown(request, 50), "state": request.state, "by": by, "reason": request.reason or ""})
    return rows


__all__ = [
    "PERM_ALLOW", "PERM_DENY", "PERM_TASK", "VERDICT_OF_TAP", "Verdict", "already_text", "answered_text",
    "asked_line", "call_shown", "decided_text", "decider", "key_of", "literal_block", "outcome_line", "parse_ref",
    "pending_line", "refusals", "request_buttons", "request_text", "span", "typed_answers", "waiting_line",
]  # fmt: skip
