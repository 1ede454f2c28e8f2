"""The Orchestra service: the one way in for every surface (CLI, console, Telegram, Slack).

Surfaces translate text and buttons into these calls and render what comes back; they hold no
business logic and never reach past it into the store or tmux. Every call that changes
something is audited with who, what and from where. The Service is put together from one class
per noun, each in its own module: ``delegation`` (route, estimate, approval policy, queue),
``actions`` (cancel, retry, approve, reject), ``branches`` (a task's diff, merge, pull
request, discard), ``permissions`` (answer an agent's permission
requests), ``queries`` (show, status, peek, logs, approvals, the messages about a task, the audit
log), ``budgets``, ``agents`` (each agent's CLI, version, needs and cost), ``engine_control`` (kick, the
background engine), ``worktrees`` (housekeeping of task worktrees), ``doctor`` and ``web`` (dashboard links).
"""

from __future__ import annotations

import json
from typing import Any

from core.models import ACTIVE_STATES, Task
from core.service.agents import AgentInfo, AgentsQuery
from core.service.base import LOCAL, Actor
from core.service.budgets import Budgets
from core.service.delegation import Delegation
from core.service.doctor import Doctor
from core.service.hosts import HostActions, HostState
from core.service.permissions import PermissionAnswers
from core.service.plans import PlanActions
from core.service.queries import Approval, SentMessage
from core.service.schedules import ScheduleActions
from core.service.talk import Talk
from core.service.voice import VoiceNotes
from core.service.web import WebLinks
from core.service.worktrees import WorktreeHousekeeping


class Service(
    PlanActions,
    VoiceNotes,
    Talk,
    PermissionAnswers,
    AgentsQuery,
    Budgets,
    Doctor,
    WorktreeHousekeeping,
    WebLinks,
    ScheduleActions,
    HostActions,
):
    """Business operations over the store, the router, tmux and (when it owns it) the engine."""


def task_json(task: Task) -> dict[str, Any]:
    """A task as a plain JSON-ready dict for ``--json`` output."""
    data = {k: getattr(task, k) for k in task.__dataclass_fields__}
    data["state"] = task.state.value
    data["duration_s"] = task.duration_s
    plain: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return plain


__all__ = [
    "ACTIVE_STATES", "LOCAL", "Actor", "AgentInfo", "Approval", "Delegation", "HostState", "SentMessage", "Service",
    "task_json",
]  # fmt: skip
