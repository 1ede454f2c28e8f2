"""bots.yaml ``worktrees``: how long finished tasks' worktrees stay, and how many spare checkouts wait."""

from __future__ import annotations

from pydantic import Field

from core.config.fields import StrictModel


class WorktreesConfig(StrictModel):
    """Housekeeping of task worktrees (``core.worktrees.prune``): hourly in the bot, or ``orchestra worktrees --prune``.

    A removed worktree keeps its branch while the branch has commits beyond its base (the work can
    still be merged or reviewed); a task that is active or waits for review keeps its worktree, and so
    does a worktree with uncommitted changes (someone works there).
    """

    keep_days: float = Field(
        default=7, ge=0, description="A finished task's worktree is removed this many days after it finished."
    )
    keep_count: int = Field(
        default=20, ge=0, description="At most this many finished tasks' worktrees per repository; the newest stay."
    )
    spares: int = Field(
        default=1,
        ge=0,
        description="Spare checkouts kept per repository (a task then starts in milliseconds); 0: none are made.",
    )


__all__ = ["WorktreesConfig"]
