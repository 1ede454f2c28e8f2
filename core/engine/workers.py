"""The engine's work in worker threads: launches and summaries that must not block its loop.

While a task has such work in flight it is ``busy``: the sweep leaves it alone (its window is
being opened, or its result is being summarised and not yet recorded).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")


class Workers:
    """Runs a task's blocking work in the default executor and its follow-up back on the loop."""

    def __init__(self) -> None:
        self.busy: set[str] = set()
        self._pending: set[asyncio.Future[Any]] = set()

    def submit(self, task_id: str, work: Callable[[], T], done: Callable[[T], object]) -> bool:
        """Run ``work()`` in a worker thread, then ``done(result)`` on the loop; False outside a
        running loop (the caller then does the work itself). ``work`` must not raise."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        future = loop.run_in_executor(None, work)
        self.busy.add(task_id)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

        def finished(future: asyncio.Future[T]) -> None:
            self.busy.discard(task_id)
            done(future.result())

        future.add_done_callback(finished)
        return True

    async def wait(self, timeout: float) -> None:
        """Let the work in flight finish (and record what it must), for at most ``timeout`` s."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout)
