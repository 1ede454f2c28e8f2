"""What a person does to a task once it exists: cancel, retry, approve, reject; each audited, each once."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from core.engine import request_cancel
from core.errors import InvalidTransition
from core.models import Task, TaskState
from core.protocol import CANCEL_FILE, task_dir
from core.service.base import LOCAL, Actor
from core.service.delegation import Delegating, Delegation
from core.service.queries import Queries
from core.text import format_cost, local_time, state_label

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


class TaskActions(Delegating, Queries):
    """State changes a person asks for; a second tap or a stale button gets ``InvalidTransition`` saying why."""

    def cancel(self, task_id: str, *, actor: Actor = LOCAL, wait_s: float = 0.0) -> Task:
        """Cancel a queued or waiting task at once, or ask a running one's runner to stop its agent.

        With ``wait_s``, a running task is waited for (that long at most) until its end is recorded,
        and the task returned is the final one; without, it may still be running (stopping).
        """
        task = self._cancel(task_id, actor)
        if task.state == TaskState.RUNNING and wait_s > 0:
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and not self._ended(task.id):
                time.sleep(0.1)  # with no engine up, the runner's result.json is recorded from here, once
            task = self.get(task.id)
        return task

    def _cancel(self, task_id: str, actor: Actor) -> Task:
        task = self.get(task_id)
        now = self.clock.now()
        if task.state in (TaskState.QUEUED, TaskState.WAITING, TaskState.AWAITING_APPROVAL):
            with self.store.atomic():
                moved = self.store.transition(
                    task.id,
                    [TaskState.QUEUED, TaskState.WAITING, TaskState.AWAITING_APPROVAL],
                    TaskState.CANCELLED,
                    finished_at=now,
                    updated_at=now,
                    error="cancelled before it started",
                )
                if moved:
                    self.audit(actor, "cancel", task.id, f"was {task.state.value}")
            if moved:
                if self.engine is not None:
                    self.engine.mark_finished(task.id)
                return self.get(task.id)
        if task.state == TaskState.RUNNING and self._recorded_from_disk(task.id):
            raise InvalidTransition(self._finished_before_cancel(task.id))
        if task.state != TaskState.RUNNING:
            raise InvalidTransition(f"{task.id} is {task.state.value}; only queued or running tasks can be cancelled")
        self.audit(actor, "cancel", task.id, "was running")
        if task.remote:  # the same cancel, sent over SSH; a host that is down is one line, nothing changed
            from core.hosts import remote

            mark = task_dir(self.home, task.id)  # here too: a runner there not up yet is cancelled once it is
            mark.mkdir(parents=True, exist_ok=True)
            (mark / CANCEL_FILE).touch()
            if not remote.cancel(self.hosts.of(task), task.id, self._runner_pid(task.id)):
                self._cancel_orphan(task)
            return self.get(task.id)
        if not request_cancel(self.store, self.tmux, self.home, task.id):
            self._cancel_orphan(task)
        return self.get(task.id)

    def _runner_pid(self, task_id: str) -> int | None:
        """The pid its runner reported (on its host for a remote task), None before it started."""
        pid = self.store.task_field(task_id, "runner_pid")
        return int(pid) if pid else None

    def _recorded_from_disk(self, task_id: str) -> bool:
        """A result the runner wrote while no engine listened wins over a cancel that comes after it."""
        return self.engine is not None and self.engine.record_result(task_id)

    def _finished_before_cancel(self, task_id: str) -> str:
        task = self.get(task_id)
        cost = f", {format_cost(task.cost_usd)}" if task.cost_usd is not None else ""
        return f"{task.id} had already finished before the cancel: {state_label(task.state)}{cost}"

    def _cancel_orphan(self, task: Task) -> None:
        with contextlib.suppress(Exception):
            self.tmux.kill(task.id)
        if self._recorded_from_disk(task.id):
            raise InvalidTransition(self._finished_before_cancel(task.id))  # its result landed meanwhile
        if self.engine is not None:
            if self.engine.end_without_runner(task.id, TaskState.CANCELLED, "cancelled; its runner was gone"):
                self.engine.dispatch()  # its slot is free, and what was said to it is settled
            return
        now = self.clock.now()
        self.store.transition(
            task.id,
            [TaskState.RUNNING],
            TaskState.CANCELLED,
            finished_at=now,
            updated_at=now,
            error="cancelled; its runner was gone",
        )

    def cancel_all(self, *, actor: Actor = LOCAL) -> list[str]:
        cancelled = []
        for task in self.store.active_tasks():
            with contextlib.suppress(InvalidTransition):
                self.cancel(task.id, actor=actor)
                cancelled.append(task.id)
        self.audit(actor, "kill", None, "cancelled " + (", ".join(cancelled) or "nothing"))
        return cancelled

    def retry(
        self, task_id: str, *, feedback: str | None = None, actor: Actor = LOCAL, files: Sequence[Path] = ()
    ) -> Delegation:
        """Run a finished task again (same agent, same session where the CLI can resume)."""
        if actor.ref and (done := self.store.task_by_source(actor.ref)) is not None:
            return self._delegation_of(done)  # this retry was made already; the update is handled again
        task = self.get(task_id)
        if not task.state.finished:
            raise InvalidTransition(f"{task.id} is {task.state.value}; wait for it to finish or cancel it first")
        original = self.store.task_text(task.id)  # the known secrets it held are stored as names only
        text = original if not feedback else f"{original}\n\nFeedback on the previous attempt: {feedback}"
        self.audit(actor, "retry", task.id, feedback or "")
        return self.delegate(text, agent=task.agent, cwd=task.cwd, actor=actor, parent=task, files=files)

    def approve(self, task_id: str, *, actor: Actor = LOCAL) -> Task:
        task = self.get(task_id)
        now = self.clock.now()
        gate, to = {
            TaskState.AWAITING_APPROVAL: ("start", TaskState.QUEUED),
            TaskState.NEEDS_REVIEW: ("review", TaskState.APPROVED),
        }.get(task.state, ("", task.state))
        with self.store.atomic():  # the decision and who made it, together ("already approved by @x")
            moved = bool(gate) and self.store.transition(task.id, [task.state], to, updated_at=now)
            if moved:
                self.store.record_approval(task.id, gate, "approved", actor.name, "", now)
                self.audit(actor, "approve", task.id, gate)
        if not moved:
            raise InvalidTransition(self._already(task_id, "approve"))
        if gate == "start":
            self.kick()
        return self.get(task.id)

    def reject(self, task_id: str, *, reason: str = "", retry: bool = False, actor: Actor = LOCAL) -> Task:
        """Reject before start or after review; with ``retry`` a review rejection starts a new attempt."""
        task = self.get(task_id)
        now = self.clock.now()
        gate = {TaskState.AWAITING_APPROVAL: "start", TaskState.NEEDS_REVIEW: "review"}.get(task.state)
        with self.store.atomic():
            moved = gate is not None and self.store.transition(
                task.id, [task.state], TaskState.REJECTED, updated_at=now, error=reason or "rejected"
            )
            if moved and gate is not None:
                self.store.record_approval(task.id, gate, "rejected", actor.name, reason, now)
                self.audit(actor, "reject", task.id, reason)
        if not moved:
            raise InvalidTransition(self._already(task_id, "reject"))
        if gate == "start" and self.engine is not None:
            self.engine.mark_finished(task.id)
        if retry and gate == "review":
            self.retry(task.id, feedback=reason or None, actor=actor)
        return self.get(task.id)

    def _already(self, task_id: str, action: str) -> str:
        task = self.get(task_id)
        decisions = self.approvals(task.id)
        if decisions:
            last = decisions[-1]
            when = local_time(last.ts, self.config.digest.zone())
            return f"{task.id} was already {last.decision} by {last.actor} at {when}"
        return f"{task.id} is {task.state.value}; there is nothing to {action}"

    def claim_once(self, key: str, by: str) -> bool:
        """Claim a one-shot answer (one retry per button, one answer to the kill switch) for update ``by``.

        True for the first update that claims ``key``, and again for that same update handled a
        second time after a crash; False for any other.
        """
        return self.store.claim_once(key, by, self.clock.now())


__all__ = ["TaskActions"]
