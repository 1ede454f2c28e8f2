"""A fake Telegram Bot API server on 127.0.0.1 for end-to-end tests, with a scripted user.

It speaks the HTTP API a bot uses (getMe, getUpdates with long polling and offsets, sendMessage,
editMessageText, editMessageReplyMarkup, answerCallbackQuery, sendDocument, sendPhoto,
setMyCommands, deleteWebhook, setWebhook, getWebhookInfo), keeps each chat's messages the way
Telegram would (so an edit with nothing new gets "message is not modified"), and can be told to
misbehave: answer 429 with ``retry_after``, 502, drop connections without answering (nothing is
applied), answer getUpdates with 409 Conflict, or hang.

It runs on its own thread and event loop, so both in-process tests and a bot started as a
subprocess can talk to it. The test side is synchronous: ``say``/``tap`` queue updates and
``wait_for`` waits for what the bot sent.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "123456:TEST-token-for-the-fake-server"
BOT: dict[str, Any] = {"id": 999000, "is_bot": True, "first_name": "Orchestra", "username": "orchestra_test_bot"}
ALICE: dict[str, Any] = {"id": 111, "is_bot": False, "first_name": "Alice", "username": "alice"}
MALLORY: dict[str, Any] = {"id": 666, "is_bot": False, "first_name": "Mallory", "username": "mallory"}

_JSON_FIELDS = {
    "reply_markup", "reply_parameters", "commands", "allowed_updates", "link_preview_options", "chat_id",
    "message_id", "offset", "timeout", "limit", "show_alert", "cache_time", "drop_pending_updates",
    "max_connections", "scope",
}  # fmt: skip
SEND_METHODS = ("sendMessage", "sendDocument", "sendPhoto")


@dataclass
class Call:
    """One request the bot made and what the server did with it."""

    method: str
    params: dict[str, Any]
    at: float
    outcome: str = "ok"  # ok | 429 | 502 | dropped | 400 | 409 | 401
    result: Any = None
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


@dataclass
class Message:
    chat_id: int
    message_id: int
    text: str
    markup: dict[str, Any] | None
    kind: str  # text | document | photo
    date: int
    reply_to: int | None = None
    file: tuple[str, bytes] | None = None
    edits: int = 0


class FakeTelegram:
    """The server and the state of every chat. Start with ``start()``, stop with ``stop()``."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.messages: dict[tuple[int, int], Message] = {}
        self.sent: list[Message] = []  # new messages the bot sent, in order
        self.callback_answers: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] = {}
        self.webhook_trouble: dict[str, Any] = {}  # getWebhookInfo fields: last_error_date, pending_update_count...
        self.update_handed_out: dict[int, float] = {}  # update id -> when a getUpdates answer carried it
        self.history: dict[int, dict[str, Any]] = {}  # every update ever queued, by id
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._next_message = 1000
        self._faults: list[tuple[str, str, float]] = []  # (method or "*send", kind, retry_after)
        self._drop_until: dict[str, float] = {}
        self._slow_until: dict[str, float] = {}
        self._conflict_until = 0.0
        self._hang_updates = False
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new_update: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._poller: asyncio.Future[Any] | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeTelegram:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-telegram", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Telegram server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._new_update = asyncio.Event()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the scripted user ------------------------------------------------------------------
    def say(self, text: str, *, user: dict[str, Any] = ALICE, chat: dict[str, Any] | None = None,
            reply_to: int | None = None) -> int:  # fmt: skip
        """The user sends a text message; returns its update id."""
        with self._lock:
            chat = chat or {"id": user["id"], "type": "private", "first_name": user["first_name"]}
            self._next_message += 1
            message: dict[str, Any] = {
                "message_id": self._next_message, "from": user, "chat": chat, "date": int(time.time()), "text": text,
            }  # fmt: skip
            if text.startswith("/"):
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
            if reply_to is not None:
                original = self.messages.get((chat["id"], reply_to))
                if original is not None:
                    message["reply_to_message"] = self._message_json(original)
            return self._add_update({"message": message})

    def tap(self, message: Message, data: str, *, user: dict[str, Any] = ALICE) -> int:
        """The user taps the inline button with ``data`` on a message the bot sent; returns the update id."""
        with self._lock:
            current = self.messages[(message.chat_id, message.message_id)]
            query = {
                "id": f"cbq{self._next_update}",
                "from": user,
                "chat_instance": "ci1",
                "data": data,
                "message": self._message_json(current),
            }
            return self._add_update({"callback_query": query})

    def confirm(self, update_id: int) -> None:
        """Forget an update as if a bot had confirmed it (asked for a later offset): it is never sent again."""
        with self._lock:
            self._updates = [u for u in self._updates if u["update_id"] > update_id]

    def push_raw(self, payload: dict[str, Any]) -> int:
        with self._lock:
            return self._add_update(payload)

    def _add_update(self, body: dict[str, Any]) -> int:
        update_id = self._next_update
        self._next_update += 1
        self._updates.append({"update_id": update_id, **body})
        self.history[update_id] = {"update_id": update_id, **body}
        if self._loop is not None and self._new_update is not None:
            self._loop.call_soon_threadsafe(self._new_update.set)
        return update_id

    # -- faults -----------------------------------------------------------------------------
    def fail_next(self, method: str, kind: str, *, times: int = 1, retry_after: float = 1) -> None:
        """The next ``times`` calls of ``method`` (``"*send"``: any sending or editing method) fail."""
        with self._lock:
            self._faults += [(method, kind, retry_after)] * times

    def drop_for(self, seconds: float, methods: tuple[str, ...] = ("*send",)) -> None:
        """Close the connection without answering (and without applying the call) for a while."""
        with self._lock:
            for method in methods:
                self._drop_until[method] = time.monotonic() + seconds

    def slow_for(self, seconds: float, methods: tuple[str, ...] = ("*send",)) -> None:
        """Answer these methods only once ``seconds`` have passed (a Bot API that hangs, then recovers)."""
        with self._lock:
            for method in methods:
                self._slow_until[method] = time.monotonic() + seconds

    def conflict_for(self, seconds: float) -> None:
        """Answer every getUpdates with 409 Conflict, as when another process polls with this token."""
        with self._lock:
            self._conflict_until = time.monotonic() + seconds

    def hang_updates(self, hang: bool = True) -> None:
        """getUpdates never answers (a stalled long poll)."""
        with self._lock:
            self._hang_updates = hang

    # -- reading what happened --------------------------------------------------------------
    def wait_for(self, check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
        """Wait until ``check()`` is truthy (re-checked on every call the bot makes); return its value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = check()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what or check}; bot calls: {self.summary()}")
                self._changed.wait(min(left, 0.2))

    def sent_to(self, chat_id: int) -> list[Message]:
        with self._lock:
            return [m for m in self.sent if m.chat_id == chat_id]

    def find(self, chat_id: int, contains: str) -> list[Message]:
        """New messages the bot sent to a chat whose current text contains ``contains``."""
        with self._lock:
            return [m for m in self.sent if m.chat_id == chat_id and contains in m.text]

    def current(self, message: Message) -> Message:
        with self._lock:
            return self.messages[(message.chat_id, message.message_id)]

    def calls_of(self, method: str, outcome: str | None = "ok") -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and (outcome is None or c.outcome == outcome)]

    def summary(self) -> str:
        with self._lock:
            return ", ".join(f"{c.method}:{c.outcome}" for c in self.calls[-40:] if c.method != "getUpdates")

    # -- the API ----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        with self._lock:
            is_send = method in (*SEND_METHODS, "editMessageText", "editMessageReplyMarkup")
            until = max(self._slow_until.get(method, 0.0), self._slow_until.get("*send", 0.0) if is_send else 0.0)
        if until > time.monotonic():
            await asyncio.sleep(until - time.monotonic())
        fault = self._take_fault(method)
        if fault is not None and fault[0] == "drop":
            self._record(Call(method, {}, time.time(), "dropped"))
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        params, files = await _read_params(request)
        call = Call(method, params, time.time(), files=files)
        if fault is not None:
            kind, retry_after = fault
            call.outcome = kind
            self._record(call)
            if kind == "429":
                return _error(429, f"Too Many Requests: retry after {retry_after:g}", {"retry_after": retry_after})
            if kind == "409":
                return _error(409, "Conflict: terminated by other getUpdates request")
            return _error(int(kind), "Bad Gateway")
        if method == "getUpdates":
            return await self._get_updates(call, request)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            call.outcome = "404"
            self._record(call)
            return _error(404, "Not Found: method not found")
        try:
            with self._lock:
                result = handler(call)
        except _ApiError as exc:
            call.outcome = str(exc.code)
            self._record(call)
            return _error(exc.code, exc.description)
        call.result = result
        self._record(call)
        return web.json_response({"ok": True, "result": result})

    def _take_fault(self, method: str) -> tuple[str, float] | None:
        with self._lock:
            is_send = method in (*SEND_METHODS, "editMessageText", "editMessageReplyMarkup")
            now = time.monotonic()
            for key in (method, "*send" if is_send else None):
                if key is not None and self._drop_until.get(key, 0) > now:
                    return ("drop", 0)
            if method == "getUpdates" and self._conflict_until > now:
                return ("409", 0)
            for i, (target, kind, retry_after) in enumerate(self._faults):
                if target == method or (target == "*send" and is_send):
                    del self._faults[i]
                    return (kind, retry_after)
        return None

    def _record(self, call: Call) -> None:
        with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    async def _get_updates(self, call: Call, request: web.Request) -> web.StreamResponse:
        offset = int(call.params.get("offset") or 0)
        timeout = float(call.params.get("timeout") or 0)
        if self._poller is not None and not self._poller.done():
            self._poller.set_result("conflict")  # a second poller ends the first, as Telegram does
        assert self._loop is not None and self._new_update is not None
        mine: asyncio.Future[Any] = self._loop.create_future()
        self._poller = mine
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                hang = self._hang_updates
                if offset:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = [] if hang else list(self._updates)
            if mine.done():
                call.outcome = "409"
                self._record(call)
                return _error(409, "Conflict: terminated by other getUpdates request")
            if ready:
                now = time.time()
                with self._lock:
                    for update in ready:
                        self.update_handed_out.setdefault(update["update_id"], now)
                call.result = ready
                self._record(call)
                return web.json_response({"ok": True, "result": ready})
            left = deadline - time.monotonic()
            if request.transport is None or request.transport.is_closing():
                call.outcome = "abandoned"  # the bot gave up on this poll (its read timeout)
                self._record(call)
                return web.Response()
            if left <= 0 and not hang:
                self._record(call)
                return web.json_response({"ok": True, "result": []})
            self._new_update.clear()
            waits = [asyncio.ensure_future(self._new_update.wait()), mine]
            await asyncio.wait(waits, timeout=max(0.05, left) if not hang else 0.5, return_when="FIRST_COMPLETED")
            waits[0].cancel()

    def _api_getMe(self, call: Call) -> dict[str, Any]:
        return {**BOT, "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}

    def _api_deleteWebhook(self, call: Call) -> bool:
        self.webhook = {}
        return True

    def _api_setWebhook(self, call: Call) -> bool:
        self.webhook = dict(call.params)
        return True

    def _api_getWebhookInfo(self, call: Call) -> dict[str, Any]:
        info = {"url": self.webhook.get("url", ""), "has_custom_certificate": False, "pending_update_count": 0}
        return {**info, **self.webhook_trouble}

    def _api_setMyCommands(self, call: Call) -> bool:
        self.commands = list(call.params.get("commands") or [])
        return True

    def _api_answerCallbackQuery(self, call: Call) -> bool:
        self.callback_answers.append(dict(call.params))
        return True

    def _api_sendMessage(self, call: Call) -> dict[str, Any]:
        return self._new_message(call, "text", str(call.params.get("text", "")))

    def _api_sendDocument(self, call: Call) -> dict[str, Any]:
        return self._new_message(call, "document", str(call.params.get("caption", "")), call.files.get("document"))

    def _api_sendPhoto(self, call: Call) -> dict[str, Any]:
        return self._new_message(call, "photo", str(call.params.get("caption", "")), call.files.get("photo"))

    def _api_editMessageText(self, call: Call) -> dict[str, Any]:
        message = self._target(call)
        text, markup = str(call.params.get("text", "")), call.params.get("reply_markup")
        if text == message.text and markup == message.markup:
            raise _ApiError(400, "Bad Request: message is not modified: specified new message content and reply "
                                 "markup of the message are exactly the same as a current content and reply markup "
                                 "of the message")  # fmt: skip
        message.text, message.markup = text, markup
        message.edits += 1
        return self._message_json(message)

    def _api_editMessageReplyMarkup(self, call: Call) -> dict[str, Any]:
        message = self._target(call)
        markup = call.params.get("reply_markup")
        if markup == message.markup:
            raise _ApiError(400, "Bad Request: message is not modified: specified new message content and reply "
                                 "markup of the message are exactly the same as a current content and reply markup "
                                 "of the message")  # fmt: skip
        message.markup = markup
        message.edits += 1
        return self._message_json(message)

    def _target(self, call: Call) -> Message:
        key = (int(call.params.get("chat_id", 0)), int(call.params.get("message_id", 0)))
        message = self.messages.get(key)
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return message

    def _new_message(self, call: Call, kind: str, text: str, file: tuple[str, bytes] | None = None) -> dict[str, Any]:
        chat_id = int(call.params.get("chat_id", 0))
        if chat_id == 0:
            raise _ApiError(400, "Bad Request: chat not found")
        if len(text) > 4096 or (kind != "text" and len(text) > 1024):
            raise _ApiError(400, "Bad Request: message is too long")
        self._next_message += 1
        reply = call.params.get("reply_parameters") or {}
        message = Message(
            chat_id, self._next_message, text, call.params.get("reply_markup"), kind, int(time.time()),
            reply.get("message_id"), file,
        )  # fmt: skip
        self.messages[(chat_id, message.message_id)] = message
        self.sent.append(message)
        return self._message_json(message)

    def _message_json(self, message: Message) -> dict[str, Any]:
        chat = {"id": message.chat_id, "type": "private" if message.chat_id > 0 else "group", "first_name": "Alice"}
        data: dict[str, Any] = {"message_id": message.message_id, "date": message.date, "chat": chat, "from": BOT}
        if message.kind == "text":
            data["text"] = message.text
        else:
            data["caption"] = message.text
        if message.kind == "document":
            name = message.file[0] if message.file else "file"
            data["document"] = {"file_id": f"doc{message.message_id}", "file_unique_id": f"u{message.message_id}",
                                "file_name": name}  # fmt: skip
        if message.kind == "photo":
            data["photo"] = [{"file_id": f"ph{message.message_id}", "file_unique_id": f"p{message.message_id}",
                              "width": 800, "height": 600}]  # fmt: skip
        if message.markup:
            data["reply_markup"] = message.markup
        return data


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    params: dict[str, Any] = dict(request.query)
    files: dict[str, tuple[str, bytes]] = {}
    if request.content_type == "application/json":
        params.update(await request.json())
        return params, files
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            files[key] = (value.filename, value.file.read())
            continue
        text = str(value)
        if text.startswith("attach://"):
            continue
        if key in _JSON_FIELDS:
            try:
                params[key] = json.loads(text)
                continue
            except ValueError:
                pass
        params[key] = text
    for key, value in list(params.items()):
        if isinstance(value, str) and value.startswith("attach://"):
            name = value.removeprefix("attach://")
            if name in files:
                files[key] = files.pop(name)
    return params, files


def buttons_of(message: Message) -> list[str]:
    """The callback data of every inline button on a message, row by row."""
    markup = message.markup or {}
    return [b.get("callback_data", "") for row in markup.get("inline_keyboard", []) for b in row]


__all__ = ["ALICE", "BOT", "MALLORY", "TOKEN", "Call", "FakeTelegram", "Message", "buttons_of"]
