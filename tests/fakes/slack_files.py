"""The fake Slack with shared files: a message can carry files (``subtype: file_share``), which the bot
downloads from their ``url_private_download`` with its token, as it would from files.slack.com.

A download without ``Authorization: Bearer <bot token>`` gets 403 (and is recorded as refused), so
a test can tell the token went with it; each download is recorded in ``downloads``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from tests.fakes.slack import ALICE, BOT_TOKEN, DM, FakeSlack

_FILES = itertools.count(1)


@dataclass
class FakeSlackFiles(FakeSlack):
    stored: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file id -> (name, bytes)
    downloads: list[tuple[str, str]] = field(default_factory=list)  # (file id, "ok" | "refused")

    async def __aenter__(self) -> Self:
        server = web.Application()
        server.router.add_post("/api/{method}", self._api)
        server.router.add_get("/api/{method}", self._api)
        server.router.add_post("/upload/{file_id}", self._upload)
        server.router.add_get("/socket", self._socket)
        server.router.add_get("/files-pri/{file_id}/{name}", self._download)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    def share(
        self, data: bytes, name: str, mime: str, *, subtype: str | None = None, size: int | None = None
    ) -> dict[str, Any]:
        """A file as a message's ``files`` lists it; ``size`` is the size Slack states (default: the real one)."""
        file_id = f"FU{next(_FILES):04d}"
        self.stored[file_id] = (name, data)
        shared: dict[str, Any] = {
            "id": file_id, "name": name, "title": name, "mimetype": mime, "filetype": name.rpartition(".")[2],
            "size": len(data) if size is None else size, "mode": "hosted",
            "url_private": f"{self.url}/files-pri/{file_id}/{name}",
            "url_private_download": f"{self.url}/files-pri/{file_id}/{name}",
        }  # fmt: skip
        if subtype:
            shared["subtype"] = subtype
        return shared

    async def _download(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        if request.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            self.downloads.append((file_id, "refused"))
            return web.Response(status=403, text="not allowed")
        if file_id not in self.stored:
            return web.Response(status=404, text="file_not_found")
        self.downloads.append((file_id, "ok"))
        return web.Response(body=self.stored[file_id][1], content_type="application/octet-stream")


def file_message(text: str, files: list[dict[str, Any]], *, user: dict[str, str] = ALICE, ts: str = "1799999999.000400",
                 event_id: str = "EvFile1", thread_ts: str | None = None) -> dict[str, Any]:  # fmt: skip
    """A direct message sharing ``files`` with ``text`` (``subtype: file_share``), as the Events API sends it."""
    event: dict[str, Any] = {"type": "message", "subtype": "file_share", "channel_type": "im", "user": user["id"],
                             "text": text, "ts": ts, "channel": DM, "event_ts": ts, "files": files,
                             "upload": False, "display_as_bot": False}  # fmt: skip
    if thread_ts:
        event["thread_ts"] = thread_ts
    return {"token": "legacy", "team_id": "T0001", "api_app_id": "A1", "type": "event_callback", "event": event,
            "event_id": event_id, "event_time": int(time.time())}  # fmt: skip


__all__ = ["FakeSlackFiles", "file_message"]
