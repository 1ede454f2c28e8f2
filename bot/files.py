"""The transports' half of receiving files: the step between the gate and the commands that fetches a
message's files (``core.inbox`` decides everything else), and the streamed download both platforms use.

Each platform's download is in its own module (bot/telegram_files.py, bot/slack_files.py). None
puts a URL in an error or a log line: Telegram's file URLs hold the bot token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from core.inbox import Fetch, FetchFailed, Received, receive, release
from core.messages import Inbound, Outbound

if TYPE_CHECKING:
    from core.config import Config

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


class Intake:
    """Fetches a message's files for the commands, once the gate let it through; one per transport.

    ``config`` is read when a message comes (a reloaded bots.yaml applies); files land under ``home``.
    """

    def __init__(
        self, config: Callable[[], Config], home: Path, fetch: Fetch, *, platform_max_bytes: int | None = None
    ) -> None:
        self.config = config
        self.home = home
        self.fetch = fetch
        self.platform_max_bytes = platform_max_bytes

    async def take(self, inbound: Inbound) -> tuple[Inbound, list[Outbound] | None]:
        """The message with its files staged, or the one-line refusal to send instead of handling it."""
        if not inbound.files:
            return inbound, None
        got: Received = await receive(
            inbound, self.fetch, config=self.config(), home=self.home, platform_max_bytes=self.platform_max_bytes
        )
        if got.refusal:
            log.info("%s: files of %s refused: %s", inbound.chat.platform, inbound.event_id, got.refusal)
            return got.inbound, [Outbound(got.refusal, reply_to=inbound.message_id, personal=True)]
        return got.inbound, None

    def done(self, inbound: Inbound) -> None:
        """The commands have handled it: what a task did not take is removed."""
        if inbound.files:
            release(self.home, inbound)


async def stream(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> AsyncIterator[bytes]:
    try:
        async with client.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                raise FetchFailed(f"the file server answered {response.status_code}")
            async for chunk in response.aiter_bytes(_CHUNK):
                yield chunk
    except httpx.TimeoutException:
        raise FetchFailed("the download timed out") from None
    except httpx.HTTPError as exc:
        raise FetchFailed(f"the download failed ({type(exc).__name__})") from None


__all__ = ["Intake", "stream"]
