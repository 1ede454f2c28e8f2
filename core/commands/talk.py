"""Talking to running agents in a chat: ``/say``, ``/stop``, ``/answer``, an agent's question's buttons,
and a reply to a running task's card or to a question (the words go to the agent)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.commands.answers import Answers, toast
from core.commands.parsing import task_id_in
from core.errors import InvalidTransition, OrchestraError
from core.question_text import SKIP_TAP, tapped_answer

if TYPE_CHECKING:
    from core.messages import Inbound, Outbound
    from core.models import Task
    from core.store.permissions import PermissionRequest


class TalkChat(Answers):
    """What a person says to a running agent, and how they answer its questions (roles checked before)."""

    # -- commands ------------------------------------------------------------------------------
    def _say(self, inbound: Inbound, args: str) -> list[Outbound]:
        first, _, rest = args.strip().partition(" ")
        task_id = task_id_in(first)
        if task_id is None:  # "/say use v2" in reply to a task's card: that task
            about = self._replied_task(inbound)
            task_id, rest = (about.id, args.strip()) if about is not None else (None, rest)
        if task_id is None or not rest.strip():
            return [self._note(inbound, f"Usage: {self.syntax.command('say', 'ID TEXT')} (or reply to its card)")]
        return self._say_to(inbound, task_id, rest)

    def _say_to(self, inbound: Inbound, task_id: str, text: str) -> list[Outbound]:
        line = self.service.say(task_id, text, actor=self._actor(inbound))
        self.changed(task_id)
        return [self._about(task_id, inbound, line)]

    def _stop(self, inbound: Inbound, args: str) -> list[Outbound]:
        task_id = task_id_in(args)
        if task_id is None and (about := self._replied_task(inbound)) is not None:
            task_id = about.id
        if task_id is None:
            return [self._note(inbound, f"Usage: {self.syntax.command('stop', 'ID')} (or reply to its card)")]
        line = self.service.stop(task_id, actor=self._actor(inbound))
        self.changed(task_id)
        return [self._about(task_id, inbound, line)]

    def _answer_command(self, inbound: Inbound, args: str) -> list[Outbound]:
        """``/answer p12 TEXT``, ``/answer t7 TEXT`` (its oldest question), or ``/answer TEXT`` in reply."""
        first, _, rest = args.strip().partition(" ")
        target: str | None = first
        if not (first.lower().startswith("p") and first[1:].isdigit()) and task_id_in(first) is None:
            request = self._replied_request(inbound)
            target, rest = (request.ref, args.strip()) if request is not None else (None, rest)
        if target is None or not rest.strip():
            return [self._note(inbound, f"Usage: {self.syntax.command('answer', 'ID TEXT')} (ID: p12 or t7)")]
        return self._give_answer(inbound, target, rest)

    def _give_answer(self, inbound: Inbound, target: str, text: str | None) -> list[Outbound]:
        request, _ = self.service.find_permission(target)
        line = self.service.answer_question(target, text, actor=self._actor(inbound))
        self.changed(request.task_id)
        return [self._about(request.task_id, inbound, f"{line} (by {inbound.user_name})")]

    # -- a question's buttons and replies ------------------------------------------------------------
    def _question_tap(self, inbound: Inbound) -> list[Outbound]:
        tap = inbound.tap
        assert tap is not None
        try:
            request, _ = self.service.find_permission(tap.task_id)
            answer = None if tap.action == SKIP_TAP else tapped_answer(request, tap.action)
            if answer is None and tap.action != SKIP_TAP:
                return [toast("This option is not there any more."), self._edit_buttons(tap.message_id, ())]
            line = self.service.answer_question(request.ref, answer, actor=self._actor(inbound))
        except InvalidTransition as exc:  # answered first elsewhere: say who
            return [toast(str(exc)), self._edit_buttons(tap.message_id, ())]
        except OrchestraError as exc:
            return [toast(str(exc)), self._edit_buttons(tap.message_id, ())]
        self.changed(request.task_id)
        return [toast(line)]

    def _reply_to_question(self, inbound: Inbound, request: PermissionRequest, text: str) -> list[Outbound]:
        """Any text in reply to a question is the answer (an option's number is that option)."""
        what = f"answer {self.service.quote(text, 150)!r} to {request.ref}"
        return self._authorize(inbound, "answer", what) or self._give_answer(inbound, request.ref, text)

    # Defined by :class:`core.commands.Commands` and its other parts.
    def _authorize(self, inbound: Inbound, action: str, what: str) -> list[Outbound] | None:
        raise NotImplementedError

    def _replied_task(self, inbound: Inbound) -> Task | None:
        raise NotImplementedError

    def _replied_request(self, inbound: Inbound) -> PermissionRequest | None:
        raise NotImplementedError


__all__ = ["TalkChat"]
