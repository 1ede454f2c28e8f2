"""What every part of the Service shares: who asks (``Actor``), its collaborators, lookups and the audit.

The Service is built from one class per noun (delegation, actions, queries, budgets, engine
control, doctor); each inherits this base, and the others it calls, so each module names what
it depends on. :class:`core.service.Service` puts them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import UnknownTask
from core.text import clip

if TYPE_CHECKING:  # the engine (asyncio) is built and imported only for a call that needs it
    from collections.abc import Callable
    from pathlib import Path

    from core.clock import Clock
    from core.config import Config
    from core.engine import Engine
    from core.hosts.registry import Hosts
    from core.models import Task
    from core.routing import Router
    from core.store import Store
    from core.tmux import TmuxManager

AUDIT_DETAIL_CHARS = 500


@dataclass(frozen=True)
class Actor:
    """Who asked, and from where (``cli``, ``console``, ``telegram``, ``slack``)."""

    name: str = "local"
    source: str = "cli"
    where: str = ""  # for the audit: the chat and user it came from (``chat 111 user 111``)
    ref: str = ""  # the chat update that asked: a task it created is found again, never created twice
    chat: str = ""  # the chat it came from, which gets the task's card (notices need not go there again)
    topic: str = ""  # the Telegram forum topic in that chat, if any (a project may be bound to it)


LOCAL = Actor()


class ServiceBase:
    """The Service's collaborators: the store, tmux and (when this process owns it) the engine.

    Surfaces call methods and never reach through to ``store`` or ``tmux``; only the notification
    path (the outbox's rows: delivery, card edits) works on the store itself.
    """

    def __init__(
        self,
        config: Config | Callable[[], Config],
        store: Store,
        tmux: TmuxManager | Callable[[], TmuxManager],
        clock: Clock,
        home: Path,
        *,
        engine: Engine | Callable[[], Engine] | None = None,
        router: Router | None = None,
        autostart_engine: bool = True,
        config_path: Path | None = None,
    ) -> None:
        self._config = config
        self.store = store
        self._tmux = tmux
        self.clock = clock
        self.home = home
        self._engine = engine
        self._router = router
        self.autostart_engine = autostart_engine
        self.config_path = config_path
        self._hosts: Hosts | None = None

    @property
    def config(self) -> Config:
        """The validated bots.yaml; given as a function, it is loaded on first use (a read such as
        ``orchestra status`` never needs it: it would import pydantic and every schema)."""
        if callable(self._config):
            self._config = self._config()
        return self._config

    @property
    def tmux(self) -> TmuxManager:
        """Orchestra's tmux server; given as a function, it is built on first use."""
        if callable(self._tmux):
            self._tmux = self._tmux()
        return self._tmux

    @property
    def hosts(self) -> Hosts:
        """The hosts of bots.yaml (``core.hosts``): the engine's own when this process runs it."""
        engine = self._engine if not callable(self._engine) else None
        if engine is not None:
            return engine.remote.hosts
        if getattr(self, "_hosts", None) is None:
            from core.hosts.registry import Hosts

            self._hosts = Hosts(self.config, self.home)
        assert self._hosts is not None
        return self._hosts

    @property
    def engine(self) -> Engine | None:
        """The engine this process may run, if any; given as a function, it is built on first use."""
        if callable(self._engine):
            self._engine = self._engine()
        return self._engine

    def get(self, task_id: str) -> Task:
        """The task (``t3`` or ``3``); ``UnknownTask`` when there is none."""
        task = self.store.find_task(task_id)
        if task is None:
            raise UnknownTask(task_id)
        return task

    def find(self, task_id: str) -> Task | None:
        """The task, or None when there is none (a stale button, a reply to a pruned message)."""
        return self.store.find_task(task_id)

    def audit(self, actor: Actor, action: str, task_id: str | None, detail: str) -> None:
        """Record who did what, when and from where; secret values never reach the audit table."""
        detail = self.store.redactor.text(detail)  # before the cut, so no part of a secret is kept
        self.store.audit(
            self.clock.now(), actor.name, actor.source, action, task_id, detail[:AUDIT_DETAIL_CHARS], chat=actor.where
        )

    def quote(self, text: str, size: int) -> str:
        """A person's text as an audit line may quote it: secrets redacted first, then flattened and clipped.

        Clipping first could cut a secret in two and keep its start, which no redactor recognises.
        """
        return clip(self.store.redactor.text(text), size)


__all__ = ["LOCAL", "Actor", "ServiceBase"]
