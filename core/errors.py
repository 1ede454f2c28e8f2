"""Errors a user can meet. Each becomes one clear sentence in the chat or the terminal."""

from __future__ import annotations


class OrchestraError(Exception):
    """Base class: ``str(error)`` is the one line shown to the user."""


class ConfigError(OrchestraError):
    """bots.yaml is missing, unreadable or invalid; the message names the key path."""


class UnknownTask(OrchestraError):
    """No task has the given id."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"unknown task {task_id!r} (see `orchestra status`)")
        self.task_id = task_id


class InvalidTransition(OrchestraError):
    """The task is not in a state that allows the action (approve a running task, ...)."""


class AgentUnavailable(OrchestraError):
    """The requested or routed agent's CLI is not installed or not configured."""


class TaskRejected(OrchestraError):
    """Input refused before anything was stored: empty, oversized or malformed task text."""


class InvalidInput(OrchestraError):
    """A command's argument is malformed or out of range (a budget amount, a budget name)."""


class BudgetExceeded(OrchestraError):
    """A day or month budget is spent and ``budgets.when_exceeded`` is ``refuse``: no task is stored."""


class StoreError(OrchestraError):
    """The store cannot be opened or written: busy, corrupt, read-only, or the disk is full."""
