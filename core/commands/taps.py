"""Buttons: what a tap on Approve, Reject, Cancel, Retry, Peek, Screen, Log or the kill switch does,
what a stale or second tap says, and which buttons the tapped message keeps (a permission request's
buttons are ``core.commands.permissions``')."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.commands.answers import toast
from core.commands.branches import BRANCH_TAPS, PLAN_TAPS, BranchChat
from core.commands.files import VOICE_TAPS, FilesChat
from core.commands.parsing import STATE_CHANGING, TAP_ACTIONS
from core.commands.permissions import PermissionChat
from core.commands.talk import TalkChat
from core.errors import InvalidTransition
from core.messages import Inbound, Outbound, button_still_valid
from core.permission_text import VERDICT_OF_TAP
from core.question_text import ANSWER_TAPS
from core.text import local_time, state_label

if TYPE_CHECKING:
    from core.models import Task


class Taps(PermissionChat, TalkChat, BranchChat, FilesChat):
    """Answers a tap (already authorized by the dispatcher) with a toast and the edits it causes."""

    def _tap(self, inbound: Inbound) -> list[Outbound]:
        tap = inbound.tap
        assert tap is not None
        if tap.action == "open":
            return [toast("")]  # a link button: the client opened the dashboard; nothing to do here
        if tap.action in ("kill", "keep"):
            return self._kill_tap(inbound)
        if tap.action in VERDICT_OF_TAP:
            return self._permission_tap(inbound)
        if tap.action in ANSWER_TAPS:
            return self._question_tap(inbound)
        if tap.action in VOICE_TAPS:
            return self._voice_tap(inbound)
        if tap.action in BRANCH_TAPS or tap.action in PLAN_TAPS:
            return self._branch_tap(inbound)
        if tap.action not in TAP_ACTIONS:
            return [toast("This button no longer works."), self._edit_buttons(tap.message_id, ())]
        task = self.service.find(tap.task_id)
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
        if tap.action in STATE_CHANGING:
            self.changed(task.id)
            answers += self._refresh_tapped(inbound, task, tap.action)
        return answers

    def _retry_tap(self, inbound: Inbound, task: Task) -> list[Outbound]:
        assert inbound.tap is not None
        if not task.state.finished:
            state = state_label(task.state)
            return [toast(f"{task.id} is {state}; wait for it to finish or cancel it first")]
        # One retry per button: a double tap must not start the task twice.
        key = f"{inbound.chat.platform}:{inbound.chat.chat_id}:{inbound.tap.message_id}:retry"
        if not self.service.claim_once(key, inbound.event_id):
            return [toast(f"{task.id} was already retried from this message")]
        delegation = self.service.retry(task.id, actor=self._actor(inbound))
        return [toast(f"🔁 Retrying as {delegation.task.id}"), self._card(inbound, delegation.task)]

    def _kill_tap(self, inbound: Inbound) -> list[Outbound]:
        tap = inbound.tap
        assert tap is not None
        key = f"{inbound.chat.platform}:{inbound.chat.chat_id}:{tap.message_id}:kill"
        if not self.service.claim_once(key, inbound.event_id):
            return [toast("Already answered."), self._edit_buttons(tap.message_id, ())]
        if tap.action == "keep":
            return [
                toast("Nothing cancelled."),
                self._edit(tap.message_id, "Kill switch dismissed; nothing cancelled."),
            ]
        cancelled = self.service.cancel_all(actor=self._actor(inbound))
        for task_id in cancelled:
            self.changed(task_id)
        when = local_time(self.clock.now(), self.service.config.digest.zone())
        what = ", ".join(cancelled) if cancelled else "nothing was active any more"
        text = f"⏹ Kill switch by {inbound.user_name} at {when}: {what}."
        return [toast(f"Cancelled {len(cancelled)} task(s)"), self._edit(tap.message_id, text)]

    def _refresh_tapped(self, inbound: Inbound, task: Task, action: str) -> list[Outbound]:
        """Drop the tapped message's buttons that no longer mean anything for the task (stale ones go)."""
        tap = inbound.tap
        assert tap is not None
        sent = self.service.sent_message(inbound.chat.platform, inbound.chat.chat_id, tap.message_id)
        if sent is not None and sent.is_card:
            return []  # cards are re-rendered whole through ``changed``
        state = self.service.get(task.id).state
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


__all__ = ["Taps"]
