"""Answering agents' permission requests: allow, allow for the rest of the task, deny; audited, the first answer wins.

A request is opened by the engine when a task's hook asks (``core.engine``); here a person answers
it, from a chat or the terminal. The answer, its audit entry and the edit of every chat copy of
the request's message commit together; then the engine is poked (``answered``) so the waiting hook
gets the answer at once. With no engine up the poke finds nobody, harmlessly: the answer is in
the store, where the engine looks when it next asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from core.errors import InvalidInput, InvalidTransition
from core.models import parse_task_id
from core.questions import QUESTION
from core.service.base import Actor
from core.service.queries import Queries

if TYPE_CHECKING:  # the message texts and the notifier load with the first answer (`orchestra status` needs neither)
    from core.store.permissions import PermissionRequest


class PermissionAnswers(Queries):
    """What a person does about a permission request; the roles are the surfaces' to check (chats:
    ``core.commands``; the terminal is its owner's)."""

    def pending_permissions(self, task_id: str | None = None) -> list[PermissionRequest]:
        """Requests waiting for a person, oldest first: every task's, or one task's (``t7`` or ``7``)."""
        return self.store.open_permissions(None if task_id is None else self.get(task_id).id)

    def permission_waits(self, task_ids: list[str]) -> dict[str, tuple[PermissionRequest, float]]:
        """For each of these tasks that waits for a person: its oldest open request, and since when."""
        waits = {}
        for task_id, since in self.store.waiting_since(task_ids).items():
            waiting = self.store.open_permissions(task_id)
            if waiting:
                waits[task_id] = (waiting[0], since)
        return waits

    def find_permission(self, target: str) -> tuple[PermissionRequest, str]:
        """The request ``target`` names (``p12``, or a task: its oldest open request) and a note when
        that task has more than one waiting. One clear error when there is none to answer."""
        from core.permission_text import already_text, parse_ref

        request_id = parse_ref(target)
        if request_id is not None:
            request = self.store.permission(request_id)
            if request is None:
                raise InvalidInput(f"there is no permission request {target.strip()} (pending lists the open ones)")
            return request, ""
        task_id = parse_task_id(target)
        if task_id is None:
            raise InvalidInput(f"{target.strip()!r} names no task or permission request: write t7 or p12")
        task = self.get(task_id)
        waiting = self.store.open_permissions(task.id)
        if not waiting:
            asked = self.store.task_permissions(task.id)
            last = f" ({already_text(asked[-1], self.config.digest.zone())})" if asked else ""
            raise InvalidTransition(f"{task.id} is not waiting for permission{last}")
        more = len(waiting) - 1
        note = f" · {task.id} has {more} more waiting, answered oldest first (pending lists them)" if more else ""
        return waiting[0], note

    def answer_permission(
        self,
        target: str,
        verdict: Literal["allow", "task", "deny"],
        *,
        actor: Actor | str,
        source: str = "",
        chat: str = "",
        reason: str = "",
    ) -> str:
        """Answer the request ``target`` names; returns the line to show who answered.

        ``verdict``: ``allow`` this call, ``task`` (allow, and the request's rule for the rest of the
        task), ``deny`` (``reason`` is what the model is told). ``actor`` is an :class:`Actor`, or a
        name with its ``source`` (``telegram``) and ``chat`` (where, for the audit). The first answer
        wins: a later one raises ``InvalidTransition`` saying who decided and when; so does a task
        with nothing waiting, and a bad or unknown target raises ``InvalidInput`` / ``UnknownTask``.
        """
        from core.notify import Notifier
        from core.permission_text import already_text, answered_text, call_shown
        from core.store.permissions import ALLOWED, DENIED

        if verdict not in ("allow", "task", "deny"):
            raise InvalidInput(f"{verdict!r} is no answer to a permission request: allow, task or deny")
        who = actor if isinstance(actor, Actor) else Actor(name=actor, source=source or "cli", where=chat)
        request, note = self.find_permission(target)
        tz = self.config.digest.zone()
        if not request.pending:
            raise InvalidTransition(already_text(request, tz))
        if request.tool == QUESTION:
            if verdict != "deny":
                raise InvalidInput(f"{request.ref} is a question: answer it with /answer {request.ref} TEXT")
            return self.answer_question(request.ref, None, actor=who, reason=reason) + note
        state = DENIED if verdict == "deny" else ALLOWED
        grant = (request.rule or None) if verdict == "task" else None
        reason = reason.strip()
        with self.store.atomic():
            if not self.store.decide_permission(
                request.id, state, by=who.name, via=who.source, now=self.clock.now(), reason=reason or None,
                grant=grant,
            ):  # fmt: skip
                raced = self.store.permission(request.id)
                raise InvalidTransition(already_text(raced or request, tz))
            decided = self.store.permission(request.id)
            assert decided is not None
            detail = f"{decided.ref} {call_shown(decided, 200)}"
            detail += f" · for the task: {grant}" if grant else ""
            detail += f" · {self.quote(reason, 200)}" if reason else ""
            self.audit(who, "deny" if state == DENIED else "allow", decided.task_id, detail)
            Notifier(self.config, self.store, self.clock).permission_decided(decided)
        self._tell_engine(decided)
        return answered_text(decided) + note

    def answer_question(self, target: str, text: str | None, *, actor: Actor | str, reason: str = "") -> str:
        """Answer an agent's question (``p12``, or a task: its oldest open request) with ``text`` (an
        option's number is its label); None skips it (the agent decides itself, told ``reason``).
        Audited; the first answer wins, as for permission requests."""
        from core.notify import Notifier
        from core.permission_text import already_text, answered_text
        from core.question_text import chosen
        from core.questions import ANSWER_CHARS, SKIPPED
        from core.store.permissions import ALLOWED, DENIED

        who = actor if isinstance(actor, Actor) else Actor(name=actor, source="cli")
        request, _ = self.find_permission(target)
        if request.tool != QUESTION:
            raise InvalidInput(f"{request.ref} asks for permission, not an answer: /allow or /deny it")
        tz = self.config.digest.zone()
        if not request.pending:
            raise InvalidTransition(already_text(request, tz))
        answer = chosen(request, text) if text is not None else None
        if answer is not None and not answer:
            raise InvalidInput(f"an answer to {request.ref} needs some text")
        if answer is not None and len(answer) > ANSWER_CHARS:
            raise InvalidInput(f"that answer is {len(answer)} characters; {ANSWER_CHARS} at most")
        state, told = (ALLOWED, answer) if answer is not None else (DENIED, reason.strip() or SKIPPED)
        with self.store.atomic():
            if not self.store.decide_permission(request.id, state, by=who.name, via=who.source, now=self.clock.now(),
                                                reason=told):  # fmt: skip
                raced = self.store.permission(request.id)
                raise InvalidTransition(already_text(raced or request, tz))
            decided = self.store.permission(request.id)
            assert decided is not None
            detail = f"{decided.ref} {self.quote(decided.subject, 120)} · {self.quote(told or '', 200)}"
            self.audit(who, "answer" if state == ALLOWED else "skip", decided.task_id, detail)
            Notifier(self.config, self.store, self.clock).permission_decided(decided)
        self._tell_engine(decided)
        return answered_text(decided)

    def replied_permission(self, platform: str, chat_id: str, message_id: str) -> PermissionRequest | None:
        """The request whose message (one of its chat copies) this is, or None when it is no request's."""
        from core.permission_text import key_of

        found = self.store.outbox_message(platform, chat_id, message_id)
        if found is None or found[1] != "permission":
            return None
        item = self.store.outbox_item(found[0])
        key = item.dedupe_key.partition(":")[2].partition("|")[0] if item is not None else ""  # telegram:perm:12|111
        request_id = key.removeprefix("perm:")
        if not request_id.isdigit() or key != key_of(int(request_id)):
            return None
        return self.store.permission(int(request_id))

    def _tell_engine(self, request: PermissionRequest) -> None:
        """Poke the engine so the hook waiting on ``request`` gets its answer now (none up: no one to tell)."""
        from core.engine import poke
        from core.protocol import ENGINE_SOCKET, answered_message

        poke(self.home / ENGINE_SOCKET, answered_message(request.key))

    # -- rules set at run time ------------------------------------------------------------------------
    def set_permission_rule(self, kind: str, rule: str, *, actor: Actor | str) -> str:
        """Add ``rule`` to the run-time ``allow``, ``ask`` or ``deny`` list (over bots.yaml's; admins only in
        chats); tasks started from now on are judged by it, and running tasks' questions too."""
        from core.permissions.policy import parse_rule

        if kind not in ("allow", "ask", "deny"):
            raise InvalidInput(f"{kind!r} is not a list: use allow, ask or deny")
        try:
            text = parse_rule(rule).text
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        who = actor if isinstance(actor, Actor) else Actor(actor, "cli")
        with self.store.atomic():
            self.store.set_permission_rule(kind, text, who.name, self.clock.now())
            self.audit(who, "permissions", None, f"{kind} {text}")
        return f"🔐 {text} is now in the run-time {kind} list (set by {who.name})."

    def remove_permission_rule(self, rule: str, *, actor: Actor | str) -> str:
        """Take ``rule`` out of the run-time lists (bots.yaml's lists are bots.yaml's)."""
        who = actor if isinstance(actor, Actor) else Actor(actor, "cli")
        with self.store.atomic():
            if not self.store.remove_permission_rule(rule.strip()):
                raise InvalidInput(f"{rule.strip()!r} is not a run-time rule (bots.yaml's rules are changed there)")
            self.audit(who, "permissions", None, f"remove {rule.strip()}")
        return f"🔐 {rule.strip()} is no longer a run-time rule (removed by {who.name})."

    def permission_rules_report(self) -> str:
        """The run-time lists, for ``/permissions``."""
        lists = self.store.permission_rules()
        lines = [f"  {kind}: {', '.join(rules)}" for kind, rules in lists.items() if rules]
        head = "🔐 Rules set at run time (over bots.yaml's lists; a deny anywhere wins):"
        return "\n".join([head, *lines]) if lines else "🔐 No rules set at run time: bots.yaml's lists decide."


__all__ = ["PermissionAnswers"]
