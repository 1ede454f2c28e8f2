"""A fake Slack on 127.0.0.1 for the Slack bridge's tests: the Web API and a Socket Mode WebSocket.

Web API methods the bridge and slack-sdk call: auth.test, users.info, chat.postMessage,
chat.update, chat.postEphemeral, the three steps of files upload v2 (files.getUploadURLExternal,
the POST to the upload URL, files.completeUploadExternal) and apps.connections.open, whose
``ws://`` URL is this server's Socket Mode endpoint. It keeps every channel's messages the way
Slack would (ts, thread_ts, blocks), and can answer the next calls of a method with 429 and a
``Retry-After`` header, or 500.

Socket Mode: a client that connects gets ``hello``; :meth:`FakeSlack.envelope` sends it an
envelope and :meth:`FakeSlack.acked` waits for the ack carrying its ``envelope_id``.

It runs on the test's own event loop (``async with FakeSlack() as fake``). Helpers build the
payloads Slack posts (slash commands, block_actions, events) and sign them like Slack does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-test-app-token"
SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_USER = "UBOT0001"
ALICE = {"id": "UALICE01", "name": "alice"}
MALLORY = {"id": "UMALLORY", "name": "mallory"}
CHANNEL = "CWORK0001"
DM = "DALICE001"

T = TypeVar("T")


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    user: str = BOT_USER
    edits: int = 0

    def buttons(self) -> list[str]:
        """The ``action:task`` values of the message's buttons, in order."""
        return [
            str(e.get("value"))
            for b in self.blocks
            if b.get("type") == "actions"
            for e in b.get("elements", [])
            if e.get("type") == "button"
        ]

    def body(self) -> str:
        """The text of the message's section blocks, as mrkdwn."""
        return "\n".join(str(b["text"]["text"]) for b in self.blocks if b.get("type") == "section")


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    status: int = 200


@dataclass
class FakeSlack:
    users: dict[str, str] = field(default_factory=lambda: {ALICE["id"]: ALICE["name"], MALLORY["id"]: MALLORY["name"]})
    calls: list[Call] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    ephemerals: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    _faults: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    _uploads: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # -- lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        server = web.Application()
        server.router.add_post("/api/{method}", self._api)
        server.router.add_get("/api/{method}", self._api)
        server.router.add_post("/upload/{file_id}", self._upload)
        server.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    # -- scripting -----------------------------------------------------------------------------
    def fail_next(self, method: str, status: int = 429, *, retry_after: float = 1, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with ``status`` (429 carries ``Retry-After``)."""
        self._faults.setdefault(method, []).extend([(status, retry_after)] * times)

    async def wait_for(self, probe: Callable[[], T], *, timeout: float = 15, what: str = "it") -> T:
        """Wait until ``probe()`` is truthy and return it."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; messages: {[m.text for m in self.messages]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), 0.05)
            except TimeoutError:
                pass

    def find(self, contains: str, *, channel: str | None = None) -> list[Message]:
        return [m for m in self.messages if contains in m.text and (channel is None or m.channel == channel)]

    def calls_of(self, method: str, status: int | None = 200) -> list[Call]:
        return [c for c in self.calls if c.method == method and (status is None or c.status == status)]

    # -- socket mode ---------------------------------------------------------------------------
    async def envelope(self, kind: str, payload: dict[str, Any], envelope_id: str) -> None:
        """Send a Socket Mode envelope (``slash_commands``, ``events_api``, ``interactive``)."""
        ws = await self.wait_for(lambda: self._sockets, what="a socket-mode connection")
        message = {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": False}
        await ws[-1].send_str(json.dumps(message))

    async def drop_sockets(self) -> int:
        """Close every Socket Mode connection, as Slack does on a deploy or a network cut; returns how many."""
        sockets = list(self._sockets)
        for ws in sockets:
            await ws.close()
        return len(sockets)

    async def acked(self, envelope_id: str, timeout: float = 3.0) -> dict[str, Any]:
        found = await self.wait_for(
            lambda: [a for a in self.acks if a.get("envelope_id") == envelope_id], timeout=timeout, what="the ack"
        )
        return found[0]

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self._touch()
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}}))
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.acks.append(json.loads(msg.data))
                self._touch()
        self._sockets.remove(ws)
        return ws

    # -- the Web API ---------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _params(request)
        call = Call(method, params)
        self.calls.append(call)
        self._touch()
        faults = self._faults.get(method)
        if faults:
            status, retry_after = faults.pop(0)
            call.status = status
            headers = {"Retry-After": f"{retry_after:g}"} if status == 429 else {}
            return web.json_response({"ok": False, "error": "ratelimited" if status == 429 else "fatal_error"},
                                     status=status, headers=headers)  # fmt: skip
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if request.headers.get("Authorization") != f"Bearer {expected}":
            call.status = 401
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(params)
        return web.json_response({"ok": True, **result} if "error" not in result else {"ok": False, **result})

    def _auth_test(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {"user_id": BOT_USER, "user": "orchestra", "bot_id": "BBOT0001", "team_id": "T0001", "team": "Work"}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = str(params.get("user"))
        if user not in self.users:
            return {"error": "user_not_found"}
        return {"user": {"id": user, "name": self.users[user]}}

    def _apps_connections_open(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.url.replace("http://", "ws://") + "/socket"}

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        message = Message(
            channel=str(params["channel"]),
            ts=self._new_ts(),
            text=str(params.get("text", "")),
            blocks=list(params.get("blocks") or []),
            thread_ts=params.get("thread_ts") or None,
        )
        self.messages.append(message)
        return {"channel": message.channel, "ts": message.ts, "message": {"ts": message.ts, "text": message.text}}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        for message in self.messages:
            if message.channel == params.get("channel") and message.ts == params.get("ts"):
                message.text = str(params.get("text", message.text))
                message.blocks = list(params.get("blocks") or [])
                message.edits += 1
                return {"channel": message.channel, "ts": message.ts}
        return {"error": "message_not_found"}

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        self.ephemerals.append(params)
        return {"message_ts": self._new_ts()}

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{len(self._uploads) + 1:04d}"
        self._uploads[file_id] = (str(params.get("filename")), b"")
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self._uploads:
            return web.Response(status=404, text="no such upload")
        self._uploads[file_id] = (self._uploads[file_id][0], await request.read())
        return web.Response(text=f"OK - {len(self._uploads[file_id][1])}")

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        done = []
        for entry in params.get("files") or []:
            name, data = self._uploads.get(str(entry["id"]), ("?", b""))
            self.files.append({
                "id": entry["id"], "filename": name, "data": data, "channel": params.get("channel_id"),
                "thread_ts": params.get("thread_ts"), "initial_comment": params.get("initial_comment"),
            })  # fmt: skip
            done.append({"id": entry["id"], "title": entry.get("title") or name})
        return {"files": done}

    def _new_ts(self) -> str:
        return f"{1_800_000_000 + next(self._ts)}.000100"

    def _touch(self) -> None:
        self._changed.set()


async def _params(request: web.Request) -> dict[str, Any]:
    if request.method == "GET":
        params: dict[str, Any] = dict(request.query)
    elif request.content_type == "application/json":
        data = await request.json()
        params = dict(data) if isinstance(data, dict) else {}
    else:
        params = {k: str(v) for k, v in (await request.post()).items()}
    params = {**dict(request.query), **params}  # slack-sdk sends some methods' arguments in the query string
    for key in ("blocks", "files", "attachments"):
        if isinstance(params.get(key), str):
            params[key] = json.loads(params[key])
    return params


# -- what Slack posts to the app -----------------------------------------------------------------
def sign(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack adds to a request: ``X-Slack-Request-Timestamp`` and its v0 signature."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


_TRIGGERS = itertools.count(1)


def slash_command(text: str, *, user: dict[str, str] = ALICE, channel: str = CHANNEL) -> dict[str, str]:
    return {
        "token": "legacy", "team_id": "T0001", "team_domain": "work", "channel_id": channel,
        "channel_name": "directmessage" if channel.startswith("D") else "work", "user_id": user["id"],
        "user_name": user["name"], "command": "/orchestra", "text": text, "api_app_id": "A1",
        "response_url": "https://hooks.slack.invalid/commands/1", "trigger_id": f"trigger-{next(_TRIGGERS)}",
    }  # fmt: skip


def form(fields: dict[str, str]) -> str:
    return urllib.parse.urlencode(fields)


def mention(text: str, *, user: dict[str, str] = ALICE, channel: str = CHANNEL, ts: str = "1799999999.000200",
            event_id: str = "Ev0001") -> dict[str, Any]:  # fmt: skip
    event = {"type": "app_mention", "user": user["id"], "text": f"<@{BOT_USER}> {text}", "ts": ts,
             "channel": channel, "event_ts": ts}  # fmt: skip
    return {"token": "legacy", "team_id": "T0001", "api_app_id": "A1", "type": "event_callback", "event": event,
            "event_id": event_id, "event_time": int(time.time()),
            "authorizations": [{"user_id": BOT_USER}]}  # fmt: skip


def direct_message(text: str, *, user: dict[str, str] = ALICE, ts: str = "1799999999.000300",
                   event_id: str = "Ev0002", bot_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    event: dict[str, Any] = {"type": "message", "channel_type": "im", "user": user["id"], "text": text, "ts": ts,
                             "channel": DM, "event_ts": ts}  # fmt: skip
    if bot_id is not None:
        event["bot_id"] = bot_id
    return {"token": "legacy", "team_id": "T0001", "api_app_id": "A1", "type": "event_callback", "event": event,
            "event_id": event_id, "event_time": int(time.time())}  # fmt: skip


def block_action(message: Message, value: str, *, user: dict[str, str] = ALICE) -> dict[str, Any]:
    """A tap on the button with ``value`` of a message the fake holds."""
    element = next(
        e for b in message.blocks if b.get("type") == "actions" for e in b["elements"] if e.get("value") == value
    )
    return {
        "type": "block_actions", "user": {"id": user["id"], "username": user["name"], "name": user["name"],
                                          "team_id": "T0001"},
        "api_app_id": "A1", "token": "legacy", "trigger_id": f"trigger-{next(_TRIGGERS)}", "team": {"id": "T0001"},
        "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel,
                      "is_ephemeral": False},
        "channel": {"id": message.channel, "name": "work"},
        "message": {"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks,
                    "user": BOT_USER, **({"thread_ts": message.thread_ts} if message.thread_ts else {})},
        "actions": [{**element, "block_id": "b1", "action_ts": str(time.time())}],
    }  # fmt: skip
