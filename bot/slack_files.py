"""Slack's files: what a message shares (``files``) as :class:`~core.messages.FileRef`, and their
download: ``url_private_download`` with the bot token as ``Authorization: Bearer``, sent only to
Slack's file host or the configured API host (the fake Slack on 127.0.0.1 in tests). Files back to
Slack go through the outbox's upload (``files_upload_v2``: getUploadURLExternal, the POST,
completeUploadExternal) in bot/slack_messages.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.files import stream
from core.inbox import Fetch, FetchFailed
from core.messages import FileRef

SLACK_FILE_HOSTS = ("files.slack.com",)


def files_of(event: dict[str, Any]) -> tuple[FileRef, ...]:
    """The files shared with a message (``files``): an audio clip is a voice note, an image a photo."""
    refs = []
    for item in event.get("files") or []:
        if not isinstance(item, dict) or not isinstance(item.get("url_private_download"), str):
            continue
        mime = str(item.get("mimetype") or "")
        kind = (
            "voice" if item.get("subtype") == "slack_audio"
            else "audio" if mime.startswith("audio/")
            else "photo" if mime.startswith("image/")
            else "document"
        )  # fmt: skip
        size = item.get("size")
        name = str(item.get("name") or item.get("title") or f"file_{item.get('id', '')}")
        refs.append(FileRef(item["url_private_download"], name, mime, size if isinstance(size, int) else 0, kind))
    return tuple(refs)


def slack_fetch(token: str, api_base_url: str, *, timeout_s: float = 60.0) -> Fetch:
    """Slack's download: the private URL with the bot token, only to Slack's file host or the API's own host."""
    allowed = {*SLACK_FILE_HOSTS, urlsplit(api_base_url).hostname or ""}

    async def fetch(ref: FileRef) -> AsyncIterator[bytes]:
        parts = urlsplit(ref.file_id)
        if parts.scheme not in ("https", "http") or parts.hostname not in allowed:
            raise FetchFailed("its download address is not Slack's")
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=True) as client:
            async for chunk in stream(client, ref.file_id, headers):
                yield chunk

    return fetch


__all__ = ["SLACK_FILE_HOSTS", "files_of", "slack_fetch"]
