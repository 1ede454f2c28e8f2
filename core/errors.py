"""Every error type Orchestra raises; the ones a user can meet become one clear sentence.

Standard library only and cheap to import: the stand-in agent, a process of its own, uses it too.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs start-up time
if TYPE_CHECKING:
    from collections.abc import Sequence


class OrchestraError(Exception):
    """Base class: ``str(error)`` is the one line shown to the user."""


# -- configuration -----------------------------------------------------------------------------


class ConfigError(OrchestraError):
    """bots.yaml is missing, unreadable or invalid; the message names the key path."""


class RulesFileError(ConfigError, ValueError):
    """Raised while loading routing rules: the file is not a list of well-formed rules, or a
    shipped default rule names an unknown category. Also a ``ValueError``, as it always was."""


# -- tasks and the service ---------------------------------------------------------------------


class UnknownTask(OrchestraError):
    """No task has the given id: raised by the store (``get_task``, ``task_text``) and the Service."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"unknown task {task_id!r} (see `orchestra status`)")
        self.task_id = task_id


class InvalidTransition(OrchestraError):
    """The task is not in a state that allows the action (approve a running task, ...)."""


class AgentUnavailable(OrchestraError):
    """No usable agent for a task: raised by the router and the Service before anything is stored.

    The router raises it when an override's CLI is missing, or when every candidate agent, the
    default one included, is unavailable; the Service when ``@name`` or ``--agent`` names no
    configured agent (then ``message`` says so). ``agent`` is the agent asked for last (the
    override, or the default agent); ``tried`` lists every agent that was tried, in order.
    """

    def __init__(self, agent: str, *, tried: Sequence[str] = (), detail: str = "", message: str = "") -> None:
        self.agent = agent
        self.tried: tuple[str, ...] = tuple(tried) or (agent,)
        if not message:
            if len(self.tried) > 1:
                listed = ", ".join(f'"{name}"' for name in self.tried)
                message = f"no agent is available: tried {listed}"
            else:
                message = f'agent "{agent}" is not available'
            if detail:
                message += f" ({detail})"
        super().__init__(message)


class TaskRejected(OrchestraError):
    """Input refused before anything was stored: empty, oversized or malformed task text."""


class InvalidInput(OrchestraError):
    """A command's argument is malformed or out of range (a budget amount, a budget name)."""


class BudgetExceeded(OrchestraError):
    """A day or month budget is spent and ``budgets.when_exceeded`` is ``refuse``: no task is stored."""


# -- infrastructure ----------------------------------------------------------------------------


class StoreError(OrchestraError):
    """The store cannot be opened or written: busy, corrupt, read-only, or the disk is full."""


class TmuxError(OrchestraError):
    """tmux is missing, did not answer within 10 s, or refused a command; also raised before
    calling it for a window name or target that is not a plain name (tmux would expand it)."""


class HostUnavailable(OrchestraError):
    """A host of bots.yaml cannot be used: it is not configured, SSH cannot reach it, or a command there
    failed (``core.hosts``). The message is one line naming the host."""


class HostDown(HostUnavailable):
    """SSH itself could not reach the host (not a command there that failed): worth waiting for."""


class WorktreeError(OrchestraError):
    """A task's git worktree could not be made or used (``core.worktrees``): the repository is
    gone or not git, the base names no commit, or git failed; nothing half-made is left."""


class PullRequestError(OrchestraError):
    """A task's branch could not be pushed or its pull request opened (``core.pulls``): git or the
    forge refused, or could not be reached. One line, naming what to fix; never the token."""


class MetricsUnavailable(OrchestraError):
    """The metrics endpoint could not listen (the port is taken, the address is not this host's)."""


class WebUnavailable(OrchestraError):
    """The web dashboard could not listen (the port is taken, the address is not this host's)."""


# -- delivery to a chat (between a sender and the outbox, never shown as such) ------------------


class RetryLater(Exception):
    """Raised by a sender when the platform asked us to wait (HTTP 429 ``retry_after``): the
    outbox pauses the whole channel for ``after_s`` seconds."""

    def __init__(self, after_s: float) -> None:
        super().__init__(f"rate limited; retry after {after_s:g}s")
        self.after_s = after_s


class DeliveryFailed(Exception):
    """Raised by a sender when sending failed: ``permanent`` when retrying can never help (the
    outbox gives the row up), else the row backs off and is tried again."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


# -- the stand-in agent (a separate program imitating the claude CLI) ---------------------------


class StandinUsageError(Exception):
    """Raised by the stand-in agent on a command line or setting the real ``claude`` CLI would
    reject; it prints the message to stderr and exits 1, as the real CLI does."""
