"""Telegram's files: a message's photo, document, voice note or audio as :class:`~core.messages.FileRef`,
and their download (getFile, then ``<api_base_url>/file/bot<token>/<file_path>``: PTB joins the
configured base file URL and the token, so the fake Bot API on 127.0.0.1 serves them in tests).
The Bot API serves files up to 20 MB to bots; larger ones are refused before any download. An
album arrives as one message per file: :class:`Albums` makes it one message again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
from telegram.error import TelegramError

from bot.files import stream
from core.inbox import Fetch, FetchFailed
from core.messages import FileRef, Inbound

TELEGRAM_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile: "bots can download files of up to 20 MB in size"


def files_of(msg: Any) -> tuple[FileRef, ...]:
    """A message's photo (its largest size), document, voice note or audio file, as neutral references."""
    n = msg.message_id
    if msg.photo:
        best = max(msg.photo, key=lambda size: (size.file_size or 0, size.width * size.height))
        return (FileRef(best.file_id, f"photo_{n}.jpg", "image/jpeg", best.file_size or 0, "photo"),)
    if msg.voice is not None:
        voice = msg.voice
        return (
            FileRef(voice.file_id, f"voice_{n}.ogg", voice.mime_type or "audio/ogg", voice.file_size or 0, "voice"),
        )
    if msg.audio is not None:
        audio = msg.audio
        name = audio.file_name or f"audio_{n}.mp3"
        return (FileRef(audio.file_id, name, audio.mime_type or "audio/mpeg", audio.file_size or 0, "audio"),)
    if msg.document is not None:
        doc = msg.document
        name = doc.file_name or f"document_{n}"
        return (FileRef(doc.file_id, name, doc.mime_type or "", doc.file_size or 0, "document"),)
    return ()


def telegram_fetch(bot: Any, *, timeout_s: float = 60.0) -> Fetch:
    """Telegram's download: getFile for the path, then the file URL (PTB joins base_file_url and the token)."""

    async def fetch(ref: FileRef) -> AsyncIterator[bytes]:
        try:
            info = await bot.get_file(ref.file_id)
        except TelegramError as exc:
            reason = "Telegram bots can fetch files up to 20 MB" if "too big" in str(exc).lower() else str(exc)
            raise FetchFailed(reason[:200]) from None
        if not info.file_path:
            raise FetchFailed("Telegram gave no path for it")
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            async for chunk in stream(client, str(info.file_path), {}):
                yield chunk

    return fetch


class Albums:
    """Telegram sends an album as one message per photo or document, the caption on one of them: the
    first to arrive waits ``wait_s`` for the rest and carries them all (with the caption and what it
    replies to); the others are answered by it. Per transport, on the bot's loop."""

    def __init__(self, wait_s: float = 1.0) -> None:
        self.wait_s = wait_s
        self._open: dict[str, list[Inbound]] = {}

    async def gather(self, inbound: Inbound, group: str) -> Inbound | None:
        """The whole album for the first of its messages; None for the others (already carried)."""
        key = f"{inbound.chat.chat_id}:{group}"
        if key in self._open:
            self._open[key].append(inbound)
            return None
        self._open[key] = [inbound]
        try:
            await asyncio.sleep(self.wait_s)
        finally:
            parts = self._open.pop(key)
        lead = next((part for part in parts if part.text), parts[0])
        files = tuple(ref for part in parts for ref in part.files)
        return replace(lead, files=files)


__all__ = ["TELEGRAM_DOWNLOAD_BYTES", "Albums", "files_of", "telegram_fetch"]
