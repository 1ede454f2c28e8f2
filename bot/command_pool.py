"""Chat commands off the bot's event loop: routing, git, tmux and heavy queries never hold it.

A transport awaits :meth:`CommandPool.handle_async` for each message or tap; the command runs in
one of ``workers`` threads, each with its own :class:`core.commands.Commands` on its own store
connection (a SQLite connection is not shared between threads: their transactions would mix).
Delegation there only stores and queues the task and pokes the engine over its socket; the
engine launches it from its own loop, its launch in a thread too (``Engine._start``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from core.commands import Commands
from core.messages import Inbound, Outbound


class CommandPool:
    """Up to ``workers`` commands at once; ``make(changed)`` builds one thread's Commands (in that thread).

    Create it in the running loop: ``changed(task_id)`` (a command changed a task: refresh its
    cards) is called back on that loop, whichever thread the command ran in.
    """

    def __init__(self, make: Callable[[Callable[[str], None]], Commands], *, workers: int = 4) -> None:
        self._make = make
        self._loop = asyncio.get_running_loop()
        self.changed: Callable[[str], None] = lambda _task_id: None
        self._local = threading.local()
        self._made: list[Commands] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="orchestra-commands")

    async def handle_async(self, inbound: Inbound) -> list[Outbound]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._handle, inbound)

    def _handle(self, inbound: Inbound) -> list[Outbound]:
        commands: Commands | None = getattr(self._local, "commands", None)
        if commands is None:
            commands = self._make(self._changed_on_loop)
            self._local.commands = commands
            with self._lock:
                self._made.append(commands)
        return commands.handle(inbound)

    def _changed_on_loop(self, task_id: str) -> None:
        self._loop.call_soon_threadsafe(self.changed, task_id)

    def close(self) -> None:
        """Wait for the commands running, then close the threads' store connections."""
        self._pool.shutdown(wait=True)
        with self._lock:
            for commands in self._made:
                commands.service.store.close()
            self._made.clear()


__all__ = ["CommandPool"]
