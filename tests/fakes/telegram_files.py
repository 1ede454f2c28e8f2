"""The fake Telegram Bot API with files: a scripted user sends photos, documents and voice notes, and the
bot fetches them as it would from Telegram (getFile, then ``/file/bot<token>/<file_path>``).

getFile refuses a file over 20 MB ("file is too big"), as the Bot API does; each download is
recorded (``downloads``) so a test can tell that a refused file was never fetched.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from tests.fakes.telegram import ALICE, Call, FakeTelegram, _ApiError

BOT_API_DOWNLOAD_LIMIT = 20 * 1024 * 1024


class FakeTelegramFiles(FakeTelegram):
    """:class:`FakeTelegram` plus files sent by the user and served for download."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, bytes)
        self.downloads: list[str] = []  # file paths the bot downloaded, in order

    async def _serve(self) -> None:
        """The base server's routes and the file downloads, on the one port the bot's ``api_base_url`` names."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._new_update = asyncio.Event()

    # -- the scripted user ------------------------------------------------------------------
    def send_file(
        self, kind: str, data: bytes, *, name: str = "", caption: str = "", mime: str = "",
        user: dict[str, Any] = ALICE, chat: dict[str, Any] | None = None, reply_to: int | None = None,
        declared_size: int | None = None, media_group_id: str | None = None,
    ) -> int:  # fmt: skip
        """The user sends a ``photo``, ``document``, ``voice`` or ``audio`` with ``caption``; the update id.

        ``declared_size`` is the size Telegram states in the message (default: the real one).
        """
        with self._lock:
            chat = chat or {"id": user["id"], "type": "private", "first_name": user["first_name"]}
            self._next_message += 1
            n = self._next_message
            file_id = f"file{n}"
            self.stored[file_id] = (f"{kind}s/file_{n}", data)
            size = len(data) if declared_size is None else declared_size
            ref = {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": size}
            message: dict[str, Any] = {"message_id": n, "from": user, "chat": chat, "date": int(time.time())}
            if kind == "photo":
                small = {"file_id": f"{file_id}s", "file_unique_id": f"u{file_id}s", "file_size": 10,
                         "width": 90, "height": 60}  # fmt: skip
                self.stored[f"{file_id}s"] = (f"photos/thumb_{n}", b"thumb")
                message["photo"] = [small, {**ref, "width": 1280, "height": 800}]
            elif kind == "voice":
                message["voice"] = {**ref, "duration": 3, "mime_type": mime or "audio/ogg"}
            elif kind == "audio":
                message["audio"] = {**ref, "duration": 3, "mime_type": mime or "audio/mpeg", "file_name": name}
            else:
                message["document"] = {**ref, "file_name": name or "file.bin", "mime_type": mime or "application/pdf"}
            if caption:
                message["caption"] = caption
            if media_group_id:
                message["media_group_id"] = media_group_id
            if reply_to is not None:
                original = self.messages.get((chat["id"], reply_to))
                if original is not None:
                    message["reply_to_message"] = self._message_json(original)
            return self._add_update({"message": message})

    # -- the API ----------------------------------------------------------------------------
    def _api_getFile(self, call: Call) -> dict[str, Any]:
        file_id = str(call.params.get("file_id", ""))
        if file_id not in self.stored:
            raise _ApiError(400, "Bad Request: invalid file_id")
        path, data = self.stored[file_id]
        if len(data) > BOT_API_DOWNLOAD_LIMIT:
            raise _ApiError(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data), "file_path": path}

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401, text="Unauthorized")
        path = request.match_info["path"]
        with self._lock:
            found = next((data for p, data in self.stored.values() if p == path), None)
            if found is not None:
                self.downloads.append(path)
                self._changed.notify_all()
        if found is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=found, content_type="application/octet-stream")


__all__ = ["BOT_API_DOWNLOAD_LIMIT", "FakeTelegramFiles"]
