"""Task states and the neutral records that cross module boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class TaskState(StrEnum):
    QUEUED = "queued"
    WAITING = "waiting"  # a plan's step whose earlier steps are not done yet
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    OVER_BUDGET = "over_budget"
    NEEDS_REVIEW = "needs_review"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def finished(self) -> bool:
        return self not in _ACTIVE


_ACTIVE = {TaskState.QUEUED, TaskState.WAITING, TaskState.AWAITING_APPROVAL, TaskState.RUNNING}
ACTIVE_STATES = tuple(sorted(_ACTIVE))


def parse_task_id(word: str) -> str | None:
    """The canonical id (``t12``) a person means by ``t12``, ``T12``, ``#12`` or ``12``; ``None`` if not an id.

    The one id parser: the CLI, the chats and the store all go through it.
    """
    word = word.strip().lower().lstrip("#").removeprefix("t")
    if not (word.isascii() and word.isdigit()) or len(word) > 18:
        return None
    return f"t{int(word)}"


@dataclass(frozen=True)
class Task:
    """One row of the tasks table, as the service hands it to surfaces."""

    id: str
    text: str
    agent: str
    category: str
    state: TaskState
    cwd: str
    created_at: float
    rule: str = ""
    route_reason: str = ""
    requester: str = ""
    source: str = "cli"
    started_at: float | None = None
    finished_at: float | None = None
    cost_usd: float | None = None
    cost_source: str = "unknown"
    live_cost_usd: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    final_text: str = ""
    error: str = ""
    session_id: str | None = None
    parent_id: str | None = None
    estimate_usd: float | None = None
    estimate_basis: int = 0
    require_review: bool = False
    cost_cap_usd: float | None = None
    timeout_s: float | None = None
    exit_code: int | None = None
    last_event_at: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    worktree: str | None = None  # the git worktree it ran in (limits.isolation: worktree); None: in cwd
    branch: str | None = None
    project: str | None = None  # the bots.yaml project it runs in; None: none (workspace or the CLI's cwd)
    landed: str | None = None  # what became of its branch: merged, discarded (None: still open, or none)
    landed_by: str | None = None
    landed_at: float | None = None
    pr_url: str | None = None  # the pull request opened for its branch
    plan_id: str | None = None  # the plan it is a step of (``p3``), and which step (from 1)
    plan_step: int | None = None
    step_title: str | None = None
    step_after: tuple[int, ...] = ()  # the steps it waits for
    host: str | None = None  # the host of bots.yaml it runs on; None or "local": this machine

    @property
    def remote(self) -> bool:
        """Whether it runs on another machine (``core.hosts``)."""
        return bool(self.host) and self.host != "local"

    @property
    def where(self) -> str:
        """``api · `` for a task in a project, ``api@gpu-box · `` (or ``@gpu-box · ``) for one on another
        host, else empty: it goes before the agent in a task's headline (status, cards, completions)."""
        place = (self.project or "") + (f"@{self.host}" if self.remote else "")
        return f"{place} · " if place else ""

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)
