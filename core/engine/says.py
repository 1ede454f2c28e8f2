"""What was said to a task that its run could not take: a follow-up in the same session once it ends.

``core.service.talk`` keeps every message in the store; a message for an agent that reads input as
it runs is also dropped in the task's ``say/`` folder, and the runner moves it to ``said/`` when it
wrote it to the agent. When the task has ended, each waiting message is settled here, at the start
of every dispatch: passed on (in ``said/``), or still to say, and then all of a task's are sent
together as one follow-up in the same agent session (its worktree and branch too), or dropped when
the task was cancelled or rejected (the person stopped it; their words went with it).
"""

from __future__ import annotations

import contextlib
import logging
from itertools import groupby
from typing import TYPE_CHECKING

from core.messages import OutKind
from core.models import TaskState
from core.notify import Notifier
from core.protocol import SAID_DIR, SAY_DIR, EventKind, task_dir
from core.store.says import DELIVERED, DROPPED, FOLLOWED, LIVE
from core.text import clip

if TYPE_CHECKING:
    from pathlib import Path

    from core.clock import Clock
    from core.config import Config
    from core.store import Store
    from core.store.says import Said

log = logging.getLogger(__name__)
_DROPPED_WITH = (TaskState.CANCELLED, TaskState.REJECTED)


def release(config: Config, store: Store, clock: Clock, home: Path) -> bool:
    """Settle what was said to tasks that have ended; True when a follow-up was queued."""
    queued = False
    for task_id, group in groupby(sorted(store.waiting_says(), key=_by_task), key=lambda said: said.task_id):
        says = list(group)
        task = store.find_task(task_id)
        if task is not None and not task.state.finished:
            continue
        directory = task_dir(home, task_id)
        left = []
        for said in says:
            if said.how == LIVE and _passed_on(store, directory, said):
                store.settle_say(said.id, DELIVERED)
            else:
                left.append(said)
        for said in left:
            with contextlib.suppress(OSError):
                (directory / SAY_DIR / f"{said.id}.json").unlink()
        if not left:
            continue
        if task is None or task.state in _DROPPED_WITH:
            for said in left:
                store.settle_say(said.id, DROPPED)
            continue
        with store.atomic():
            follow = store.follow_up(
                task, _text(store.task_text(task.id), left), requester=left[-1].said_by, source=left[-1].via,
                now=clock.now(),
            )  # fmt: skip
            for said in left:
                store.settle_say(said.id, FOLLOWED, follow.id)
            lines = "\n".join(f"• {said.said_by}: {clip(said.text, 200)}" for said in left)
            text = f"💬 {follow.id} continues {task.id} in the same session with what was said while it ran:\n{lines}"
            Notifier(config, store, clock).post(OutKind.ACK, f"{follow.id}:follow-up", text, task_id=follow.id)
        log.info("%s follows %s up with %d message(s) said while it ran", follow.id, task.id, len(left))
        queued = True
    return queued


def _passed_on(store: Store, directory: Path, said: Said) -> bool:
    """Whether the runner wrote the message to its agent: it moved it to ``said/`` (here), or its notice
    says so (a task on another host: its events come here, its folders stay there)."""
    if (directory / SAID_DIR / f"{said.id}.json").exists():
        return True
    notices = store.events(said.task_id, kinds=[EventKind.NOTICE])
    return any(str(event["data"].get("said")) == str(said.id) for event in notices)


def _text(original: str, says: list[Said]) -> str:
    said = "\n".join(f"- {s.said_by}: {s.text}" for s in says)
    return f"{original}\n\nMessages sent to you while the previous run was going (act on them now):\n{said}"


def _by_task(said: Said) -> tuple[str, int]:
    return said.task_id, said.id
