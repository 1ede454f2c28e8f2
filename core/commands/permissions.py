"""Permission requests in a chat: the Allow / Allow for this task / Deny buttons, ``/allow``, ``/deny``,
``/pending``, and replies to a request's message (``yes`` allows; any other text denies, as the reason)."""

from __future__ import annotations

from collections.abc import Callable

from core.commands.answers import Answers, toast
from core.commands.parsing import NO, NO_BECAUSE, YES, task_id_in
from core.errors import InvalidTransition, OrchestraError
from core.messages import Inbound, Outbound
from core.models import Task
from core.permission_text import VERDICT_OF_TAP, Verdict, decided_text, parse_ref, pending_line
from core.question_text import ANSWER_TAPS
from core.questions import QUESTION
from core.store.permissions import PermissionRequest

_REQUEST_TAPS = frozenset(VERDICT_OF_TAP) | ANSWER_TAPS
_TASK_FLAGS = frozenset({"--task", "-t", "task"})
_ALLOW, _DENY = frozenset({"allow", "allowed"}), frozenset({"deny", "denied"})  # beside the approval words


class PermissionChat(Answers):
    """What a person does about an agent's permission request in a chat (the role is checked before)."""

    # -- commands ------------------------------------------------------------------------------
    def _pending(self, inbound: Inbound, args: str) -> list[Outbound]:
        waiting = self.service.pending_permissions(task_id_in(args))
        if not waiting:
            return [self._note(inbound, "🔐 No agent is waiting for permission.")]
        now, prefix = self.clock.now(), self.syntax.prefix
        lines = [f"🔐 Waiting for permission ({len(waiting)}):"]
        lines += [pending_line(request, now, prefix) for request in waiting[:20]]
        if len(waiting) > 20:
            lines.append(f"… and {len(waiting) - 20} more")
        return [self._note(inbound, "\n".join(lines))]

    def _allow(self, inbound: Inbound, args: str) -> list[Outbound]:
        words = args.split()
        for_task = any(word.lower() in _TASK_FLAGS for word in words)
        named = [word for word in words if word.lower() not in _TASK_FLAGS]
        target = self._target(inbound, named[0] if named else "")
        if target is None:
            return [self._note(inbound, f"Usage: {self.syntax.command('allow', 'ID [--task]')} (ID: t7, or p12)")]
        return self._answer_request(inbound, target, "task" if for_task else "allow")

    def _deny(self, inbound: Inbound, args: str) -> list[Outbound]:
        first, _, rest = args.strip().partition(" ")
        target: str | None = first
        if first and (parse_ref(first) is not None or task_id_in(first) is not None):
            reason = rest
        else:  # "/deny not now" in reply to the request: all of it is the reason
            target, reason = self._target(inbound, ""), args
        if target is None:
            return [self._note(inbound, f"Usage: {self.syntax.command('deny', 'ID [REASON]')} (ID: t7, or p12)")]
        return self._answer_request(inbound, target, "deny", reason)

    def _permissions(self, inbound: Inbound, args: str) -> list[Outbound]:
        """The rules set at run time; with ``allow|ask|deny RULE`` or ``remove RULE`` (admins) change them."""
        kind, _, rule = args.strip().partition(" ")
        if not kind:
            usage = self.syntax.command("permissions", "allow|ask|deny|remove RULE")
            return [self._note(inbound, f"{self.service.permission_rules_report()}\nAdmins change them: {usage}")]
        if not rule.strip():
            return [self._note(inbound, f"Usage: {self.syntax.command('permissions', f'{kind} RULE')}")]
        actor = self._actor(inbound)
        if kind.lower() == "remove":
            return [self._reply(inbound, self.service.remove_permission_rule(rule, actor=actor))]
        return [self._reply(inbound, self.service.set_permission_rule(kind.lower(), rule.strip(), actor=actor))]

    # -- buttons -------------------------------------------------------------------------------
    def _permission_tap(self, inbound: Inbound) -> list[Outbound]:
        tap = inbound.tap
        assert tap is not None
        try:
            request, _ = self.service.find_permission(tap.task_id)
        except OrchestraError as exc:
            return [toast(str(exc)), self._edit_buttons(tap.message_id, ())]
        try:
            text = self.service.answer_permission(request.ref, VERDICT_OF_TAP[tap.action], actor=self._actor(inbound))
        except InvalidTransition as exc:  # answered first elsewhere: say who, and show the outcome here too
            decided, _ = self.service.find_permission(request.ref)
            return [toast(str(exc)), self._edit(tap.message_id, decided_text(decided))]
        self.changed(request.task_id)
        return [toast(text)]

    # -- replies -------------------------------------------------------------------------------
    def _replied_request(self, inbound: Inbound) -> PermissionRequest | None:
        """The request whose message the person replied to (Telegram: that message; Slack: its thread)."""
        if inbound.replied_to is None:
            return None
        chat = inbound.chat
        request = self.service.replied_permission(chat.platform, chat.chat_id, inbound.replied_to)
        if request is not None:
            return request
        # Not recorded as sent yet (the reply raced the delivery): its buttons name the request.
        refs = {b.task_id for row in inbound.replied_keyboard for b in row if b.action in _REQUEST_TAPS}
        if len(refs) != 1:
            return None
        try:
            return self.service.find_permission(refs.pop())[0]
        except OrchestraError:
            return None

    def _reply_to_request(self, inbound: Inbound, request: PermissionRequest, text: str) -> list[Outbound]:
        """``yes`` (or ok, 👍, …) allows; ``no`` denies; any other text denies, with it as the reason the
        model is told (``no, use the mirror`` gives ``use the mirror``)."""
        if request.tool == QUESTION:
            return self._reply_to_question(inbound, request, text)
        word = text.lower().strip(" .!")
        first, _, rest = text.partition(" ")
        verdict: Verdict = "allow" if word in YES | _ALLOW else "deny"
        if verdict == "allow" or word in NO | _DENY:
            reason = ""
        elif first.lower().strip(" .,:!") in NO_BECAUSE | _DENY and rest.strip():
            reason = rest.strip()
        else:
            reason = text.strip()
        what = f"reply {self.service.quote(text, 150)!r} to {request.ref}"
        return self._authorize(inbound, verdict, what) or self._answer_request(inbound, request.ref, verdict, reason)

    # -- shared --------------------------------------------------------------------------------
    def _target(self, inbound: Inbound, word: str) -> str | None:
        """The request or task a command names, else the one its message replies to."""
        if word:
            return word
        request = self._replied_request(inbound)
        if request is not None:
            return request.ref
        task = self._replied_task(inbound)
        return None if task is None else task.id

    def _answer_request(self, inbound: Inbound, target: str, verdict: Verdict, reason: str = "") -> list[Outbound]:
        request, _ = self.service.find_permission(target)
        text = self.service.answer_permission(target, verdict, actor=self._actor(inbound), reason=reason)
        self.changed(request.task_id)
        return [self._about(request.task_id, inbound, f"{text} (by {inbound.user_name})")]

    # What :class:`core.commands.Commands` defines for every command: the audit and the role check, and
    # which task a reply is about.
    def _authorize(self, inbound: Inbound, action: str, what: str) -> list[Outbound] | None:
        raise NotImplementedError

    def _replied_task(self, inbound: Inbound) -> Task | None:
        raise NotImplementedError

    # :class:`core.commands.talk.TalkChat` answers a reply to a question (an annotation, not a stub, so
    # it does not hide that method in the order ``Taps`` lists its parts).
    _reply_to_question: Callable[[Inbound, PermissionRequest, str], list[Outbound]]


__all__ = ["PermissionChat"]
