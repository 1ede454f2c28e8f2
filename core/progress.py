"""Task cards: the acknowledgement that shows a task's live state, and the edits that keep it current.

A card is the message a chat gets when it delegates a task (or the approval request for it). The
same rendering is used for the first message and for every edit, so an edit never loses a line.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from core.messages import Keyboard, card_keyboard
from core.models import Task, TaskState
from core.notify import Notifier
from core.permission_text import waiting_line
from core.protocol import EventKind
from core.text import clip, format_cost, format_duration, local_time, money, state_icon, state_label, token_count

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.clock import Clock
    from core.config import Config
    from core.service import Service

log = logging.getLogger(__name__)


def render_card(service: Service, task: Task, now: float, *, why: str = "") -> tuple[str, Keyboard]:
    """A task's acknowledgement: route, estimate and its live state; the same text every time it is edited.

    Times are shown in the configured zone (``digest.timezone``).
    """
    basis = f"median of {task.estimate_basis}" if task.estimate_basis else "no history yet"
    estimate = f"{money(task.estimate_usd)} ({basis})" if task.estimate_usd is not None else "no estimate"
    lines = [
        f"{state_icon(task.state)} {task.id} · {task.where}{task.agent} · {task.category}",
        clip(task.text, 300),
        f"Route: {task.rule or 'override'} · estimate {estimate}",
    ]
    lines.append(_status_line(service, task, now, why))
    tz = service.config.digest.zone()
    for decision in service.approvals(task.id):
        verb = "Approved" if decision.decision == "approved" else "Rejected"
        reason = f": {clip(decision.reason, 100)}" if decision.reason else ""
        when = local_time(decision.ts, tz)
        lines.append(f"{'✅' if verb == 'Approved' else '✖'} {verb} by {decision.actor} at {when}{reason}")
    return "\n".join(lines), card_keyboard(task.id, task.state, open_url=open_url(service.config, task.id))


def open_url(config: Config, task_id: str) -> str:
    """The dashboard's page of a task, for a 🖥 Open button: only with the dashboard on behind an
    https ``public_url`` (Telegram takes no other link for a button, nor a Mini App)."""
    web, public = config.web, config.web.public_url or ""
    if not web.enabled or not public.startswith("https://"):
        return ""
    return f"{public.rstrip('/')}/task/{task_id}"


def _status_line(service: Service, task: Task, now: float, why: str) -> str:
    if task.state == TaskState.AWAITING_APPROVAL:
        return f"🔐 Needs approval{': ' + why if why else ''}"
    if task.state == TaskState.QUEUED:
        return "⏳ Queued: starts when a slot is free"
    if task.state == TaskState.RUNNING:
        if task.started_at is None:
            return "🏃 Starting…"
        cost = f" · {format_cost(task.live_cost_usd)} so far" if task.live_cost_usd is not None else ""
        if task.input_tokens or task.output_tokens:  # known before any price is (the first usage event)
            cost += f" · {token_count(task.input_tokens)} in / {token_count(task.output_tokens)} out"
        steps = service.steps(task.id)
        last = f"\nLast step ({len(steps)}): {clip(steps[-1], 120)}" if steps else ""
        wait = service.permission_waits([task.id]).get(task.id)
        asking = f"\n{waiting_line(*wait, now)}" if wait else ""
        return f"🏃 Running · {format_duration(now - task.started_at)}{cost}{last}{asking}"
    cost = format_cost(task.cost_usd) if task.state not in (TaskState.CANCELLED, TaskState.REJECTED) else ""
    parts = [state_label(task.state), format_duration(task.duration_s) if task.started_at else "", cost]
    return f"{state_icon(task.state)} " + " · ".join(p for p in parts if p and p != "—")


_PROGRESS_KINDS = (
    EventKind.DISPATCHED, EventKind.STARTED, EventKind.COST, EventKind.USAGE, EventKind.TOOL_USE, EventKind.PERMISSION,
)  # fmt: skip


class Progress:
    """Keeps every card (acknowledgement) of a task current, editing it at a bounded rate.

    An engine listener: events arrive as they happen, and at most one edit per card is queued
    every ``interval_s`` (the newest state wins; older unsent edits are dropped). A running task
    is refreshed every ``refresh_s`` even when quiet, so its elapsed time stays true. The final
    state is always written at once. ``wake`` tells the delivery loop that something is queued.
    """

    def __init__(
        self,
        service: Service,
        clock: Clock,
        *,
        interval_s: float,
        refresh_s: float,
        wake: Callable[[], None],
    ) -> None:
        self.service = service
        self.clock = clock
        self.interval_s = interval_s
        self.refresh_s = refresh_s
        self.wake = wake
        self._last: dict[str, float] = {}
        self._pending: dict[str, asyncio.TimerHandle] = {}  # an edit held back by the interval
        self._refresh: dict[str, asyncio.TimerHandle] = {}  # the next refresh of a quiet running task

    def on_event(self, task_id: str, kind: str, _data: dict[str, object]) -> None:
        if kind == EventKind.FINISHED:
            self.flush(task_id)
        elif kind in _PROGRESS_KINDS:
            self._soon(task_id)

    def touch(self, task_id: str) -> None:
        """A person changed the task (approve, cancel, answered its agent's permission request, ...): show it now."""
        self.flush(task_id)
        self.wake()  # what the change queued goes out now, whether or not the task has a card here

    def _soon(self, task_id: str) -> None:
        if task_id in self._pending:
            return  # an edit is already due at the end of the interval: it will show this too
        wait = self._last.get(task_id, float("-inf")) + self.interval_s - self.clock.now()
        if wait <= 0:
            self.flush(task_id)
        else:
            self._later(self._pending, task_id, wait)

    def _later(self, timers: dict[str, asyncio.TimerHandle], task_id: str, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the next event or the final state updates the card
        timers[task_id] = loop.call_later(delay, self._fire, task_id)

    def _fire(self, task_id: str) -> None:
        try:
            self.flush(task_id)
        except Exception:
            log.exception("progress edit of %s failed", task_id)

    def flush(self, task_id: str) -> None:
        """Queue an edit of every card of the task with its current state, now."""
        for timers in (self._pending, self._refresh):
            timer = timers.pop(task_id, None)
            if timer is not None:
                timer.cancel()
        store = self.service.store  # the cards are outbox rows: the notification path's, not the Service's
        cards = store.outbox_cards(task_id)
        task = self.service.find(task_id)
        if not cards or task is None:
            return
        now = self.clock.now()
        text, buttons = render_card(self.service, task, now)
        final = task.state.value if task.state.finished else ""
        Notifier(self.service.config, store, self.clock).edit(cards, text, buttons, final_state=final)
        self.wake()
        if task.state.finished:
            self._last.pop(task_id, None)
            return
        self._last[task_id] = now
        if task.state == TaskState.RUNNING:
            self._later(self._refresh, task_id, self.refresh_s)

    def catch_up(self) -> int:
        """Bring every card up to date at start; returns the tasks whose cards were edited.

        Finished tasks whose cards never got their final edit (they finished while no bot
        listened) get it now; running tasks get an edit and their refresh timer back.
        """
        stale = self.service.store.tasks_with_stale_cards()  # an outbox question, like ``flush``'s
        running = [t.id for t in self.service.running()]
        for task_id in [*stale, *running]:
            self.flush(task_id)
        return len(stale) + len(running)

    def close(self) -> None:
        for timers in (self._pending, self._refresh):
            for timer in timers.values():
                timer.cancel()
            timers.clear()


__all__ = ["Progress", "render_card"]
