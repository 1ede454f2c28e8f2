"""Questions from the permission hooks: judged with the task's grants, stored, sent to the phone, answered.

A hook (``core.permissions.hook``) whose policy says "ask" sends an ``ask`` line and waits on its
connection. The engine judges the call again with the task's "allow for this task" grants (a
granted call is answered at once), else keeps the question in the store and queues the message to
every chat in the same transaction, then waits. A person's answer lands in the store (any process:
the bot, the CLI) and an ``answered`` line wakes the wait; the store is also looked at every
second, so an answer whose line was lost is not missed. No answer by the deadline means what
``on_timeout`` says (deny by default). A question asked again under the same key (the hook
reconnected after an engine restart) finds the stored one: it is never asked twice, and an
answer given meanwhile is the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from core.models import TaskState
from core.notify import Notifier
from core.permissions.call import Decision, ToolCall
from core.permissions.hook import answer_message
from core.permissions.policy import RUN_TIME, Policy
from core.protocol import SPEC_FILE, EventKind, encode, task_dir
from core.questions import QUESTION, UNANSWERED
from core.store.permissions import ALLOWED, CANCELLED, DENIED, TIMED_OUT, PermissionRequest
from core.text import format_duration

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from core.clock import Clock
    from core.config import Config
    from core.store import Store

log = logging.getLogger(__name__)
_POLL_S = 1.0


class Asks:
    """The engine's side of permission requests; one per engine."""

    def __init__(
        self, config: Config, store: Store, clock: Clock, home: Path, notify: Callable[[str, str, dict[str, Any]], None]
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.home = home
        self.notify = notify  # the engine's listeners: a card shows "waiting for permission" at once
        self._wakers: dict[str, asyncio.Event] = {}  # request key -> set when it may have been answered

    # -- from the hook --------------------------------------------------------------------------
    async def ask(self, record: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        """Answer one ``ask`` line on ``writer`` (waits while a person is asked)."""
        key = str(record.get("key") or "")
        if not key:
            return
        decision = await self.decide(record)
        writer.write(encode(answer_message(key, decision.allow, decision.reason)))
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    async def decide(self, record: dict[str, Any]) -> Decision:
        key, task_id = str(record.get("key")), str(record.get("task") or "")
        call = ToolCall.from_dict(record.get("call"))
        task = self.store.find_task(task_id)
        if task is None or task.state != TaskState.RUNNING:
            return Decision(False, f"task {task_id or '?'} is not running: nothing may run for it")
        policy = self.policy(task_id, task.agent, task.category, task.cwd)
        if record.get("question") is True:
            return await self._question(key, task_id, task.agent, call, policy)
        current = policy.with_rules(RUN_TIME, self.store.permission_rules())  # as an admin set them since
        judgement = current.with_grants(self.store.task_grants(task_id)).judge(call)
        now = self.clock.now()
        rule, why = str(record.get("rule") or call.tool), str(record.get("why") or judgement.why)
        if judgement.verdict != "ask":  # granted for this task (or refused) since the hook judged it
            allowed = judgement.verdict == "allow"
            reason = None if allowed else f"Orchestra's permission policy refuses this ({judgement.why})."
            self.store.open_permission(
                key=key, task_id=task_id, agent=task.agent, call=call.to_dict(), rule=judgement.rule,
                why=judgement.why, now=now, deadline=now, state=ALLOWED if allowed else DENIED, reason=reason,
                decided_by="grant" if allowed else "policy", via="engine",
            )  # fmt: skip
            return Decision(allowed, reason or "")
        with self.store.atomic():
            request, made = self.store.open_permission(
                key=key, task_id=task_id, agent=task.agent, call=call.to_dict(), rule=rule, why=why, now=now,
                deadline=now + policy.ask_timeout_s,
            )  # fmt: skip
            if made:
                Notifier(self.config, self.store, self.clock).permission_request(request)
        if made:
            log.info("%s asks to run %s (%s)", task_id, request.shown()[:200], request.ref)
            self.notify(task_id, EventKind.PERMISSION, {"ref": request.ref, "state": request.state})
        return await self._wait(request, policy)

    async def _question(self, key: str, task_id: str, agent: str, call: ToolCall, policy: Policy) -> Decision:
        """An agent's question to a person: kept and sent like a permission request, waited for the
        same way; the answer (the row's reason) is what the agent is told. No answer is never "allow"."""
        now = self.clock.now()
        with self.store.atomic():
            request, made = self.store.open_permission(
                key=key, task_id=task_id, agent=agent, call=call.to_dict(), rule="", why="the agent asks you",
                now=now, deadline=now + policy.ask_timeout_s,
            )  # fmt: skip
            if made:
                Notifier(self.config, self.store, self.clock).permission_request(request)
        if made:
            log.info("%s asks a question (%s)", task_id, request.ref)
            self.notify(task_id, EventKind.PERMISSION, {"ref": request.ref, "state": request.state})
        await self._wait(request, policy)
        current = self.store.permission(request.id) or request
        if current.state == ALLOWED:
            return Decision(True, current.reason or "")
        return Decision(False, current.reason or UNANSWERED)

    def denied(self, record: dict[str, Any]) -> None:
        """Record a call the hook's policy refused (it is listed in the task's completion)."""
        key, task_id = str(record.get("key") or ""), str(record.get("task") or "")
        task = self.store.find_task(task_id)
        if not key or task is None:
            return
        call = ToolCall.from_dict(record.get("call"))
        now = self.clock.now()
        self.store.open_permission(
            key=key, task_id=task_id, agent=task.agent, call=call.to_dict(), rule="", why="denied by the policy",
            now=now, deadline=now, state=DENIED, reason=str(record.get("reason") or ""), decided_by="policy",
            via="engine",
        )  # fmt: skip

    # -- from people and the engine ---------------------------------------------------------------
    def answered(self, key: str) -> None:
        """A person answered ``key`` (the answer is in the store): wake its wait."""
        waker = self._wakers.get(key)
        if waker is not None:
            waker.set()

    def close_task(self, task_id: str, reason: str) -> int:
        """End every open request of a task that is cancelled or over: denied, each message edited."""
        closed = 0
        now = self.clock.now()
        for request in self.store.open_permissions(task_id):
            with self.store.atomic():
                if self.store.decide_permission(
                    request.id, CANCELLED, by="engine", via="engine", now=now, reason=reason
                ):
                    closed += 1
                    self._decided(request.id)
            self.answered(request.key)
        return closed

    # -- waiting ------------------------------------------------------------------------------------
    async def _wait(self, request: PermissionRequest, policy: Policy) -> Decision:
        waker = self._wakers.setdefault(request.key, asyncio.Event())
        try:
            while True:
                current = self.store.permission(request.id) or request
                if not current.pending:
                    return _decision(current)
                left = current.deadline - self.clock.now()
                if left <= 0:
                    return self._time_out(current, policy)
                waker.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waker.wait(), min(_POLL_S, left))
        finally:
            self._wakers.pop(request.key, None)

    def _time_out(self, request: PermissionRequest, policy: Policy) -> Decision:
        question = request.tool == QUESTION  # an unanswered question is never answered for the person
        state = ALLOWED if policy.on_timeout == "allow" and not question else TIMED_OUT
        waited = format_duration(policy.ask_timeout_s)
        reason = None if state == ALLOWED else f"No one answered the permission request within {waited}; it is denied."
        reason = UNANSWERED if question else reason
        with self.store.atomic():
            if self.store.decide_permission(
                request.id, state, by="timeout", via="engine", now=self.clock.now(), reason=reason
            ):
                self._decided(request.id)
        return _decision(self.store.permission(request.id) or request)

    def _decided(self, request_id: int) -> None:
        request = self.store.permission(request_id)
        if request is not None:
            Notifier(self.config, self.store, self.clock).permission_decided(request)
            self.notify(request.task_id, EventKind.PERMISSION, {"ref": request.ref, "state": request.state})

    def policy(self, task_id: str, agent: str, category: str, cwd: str) -> Policy:
        """The policy the task's hook judged by (its spec.json), else the one the config gives now."""
        try:
            spec = json.loads((task_dir(self.home, task_id) / SPEC_FILE).read_text(encoding="utf-8"))
            if isinstance(spec.get("permissions"), dict):
                return Policy.from_dict(spec["permissions"])
        except (OSError, ValueError, AttributeError):
            pass
        return self.config.permission_policy(agent, category, cwd, self.store.permission_rules())


def _decision(request: PermissionRequest) -> Decision:
    """What the hook tells the CLI about an answered request (the model reads the reason)."""
    if request.state == ALLOWED:
        return Decision(True)
    if request.reason:
        return Decision(False, request.reason)
    if request.state == TIMED_OUT:
        return Decision(False, "No one answered the permission request in time; it is denied.")
    if request.state == CANCELLED:
        return Decision(False, "The task was cancelled.")
    return Decision(False, f"{request.decided_by or 'The user'} denied this tool call.")
