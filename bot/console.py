"""The console: a sender that prints the console channel's messages in the terminal, each once.

It is delivered like Telegram and Slack, by an :class:`~bot.outbox.Outbox` (the bot's loop, or
one pass for ``orchestra delegate --wait``): a message is its plain text, then its buttons as the
commands to type (``Approve: orchestra approve t3 · Reject: orchestra reject t3``), then its
file (``Chart: <path>``). The terminal is one place, so rows for every chat are not fanned out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.messages import OutboxItem, typed_commands

if TYPE_CHECKING:
    from bot.outbox import Outbox
    from core.clock import Clock
    from core.store import Store


def render(item: OutboxItem) -> str:
    """What the terminal shows for one message."""
    lines = [item.text] if item.text else []
    if item.code:
        lines.append(item.code)
    lines += [typed_commands(row, None) for row in item.buttons if row]
    file = item.attachment
    if file is not None:
        lines.append(f"{Path(file.filename).stem.capitalize()}: {file.path}" if file.path else file.data or "")
    body = "\n".join(lines)
    return f"\n── notification ({item.kind}) ──\n{body}\n"


class ConsoleSender:
    """Prints each message (``write`` defaults to stdout, flushed); it never fails, has no ids."""

    channel = "console"
    max_chars = 1_000_000  # a terminal takes any length: nothing is split
    max_caption = 1_000_000

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        self.write = write or (lambda text: print(text, flush=True))

    async def deliver(self, item: OutboxItem) -> str | None:
        self.write(render(item))
        return None


def console_outbox(store: Store, clock: Clock, write: Callable[[str], None] | None = None) -> Outbox:
    """The console's delivery: the outbox loop of every channel, printing instead of sending."""
    from bot.outbox import Outbox

    return Outbox(store, clock, ConsoleSender(write), fan_out=False)


async def print_task_messages(store: Store, clock: Clock, task_id: str) -> int:
    """Print the console's messages about one task now (``--wait``); returns how many."""
    return await console_outbox(store, clock).deliver_due(task_id=task_id)


__all__ = ["ConsoleSender", "console_outbox", "print_task_messages", "render"]
