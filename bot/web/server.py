"""The dashboard's HTTP and WebSocket server, on the bot's event loop (aiohttp).

Every read and every button goes through a Service of its own (its own store connection, one
worker thread, so nothing slow runs on the loop and no chat waits for it), as an
``Actor(source="web")`` with the role a chat would give the same person, audited as chat is.
Strangers learn nothing: without a valid session every API call and the socket answer a bare
401 (403 for a known browser whose user is no longer allowed), and the pages themselves are
static files with no data in them. State-changing requests need the dashboard's own Origin and,
once signed in, the session's CSRF token in ``X-CSRF-Token``; the socket is authorised by the
session cookie alone (never a token in its URL) and checks the Origin too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import WSMsgType, web

from bot.web import auth, views
from bot.web.hub import Hub, Viewer
from core.commands.parsing import needed_role
from core.config.runtime import ROLE_RANK
from core.errors import OrchestraError, UnknownTask, WebUnavailable
from core.service import Actor, Service
from core.store import Store

if TYPE_CHECKING:
    from bot.app import App
    from core.store.web import WebSession

log = logging.getLogger(__name__)
_T = TypeVar("_T")
COOKIE = "orchestra_session"
STATIC = {"app.js": "text/javascript", "ansi.js": "text/javascript", "app.css": "text/css"}
_TASK_ACTIONS = ("approve", "reject", "cancel", "retry", "merge", "pr")
_VERDICTS = {"allow": "perm_allow", "task": "perm_task", "deny": "perm_deny"}
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'self' https://web.telegram.org",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class WebServer:
    """The dashboard of one bot process: ``await start()`` on its loop, ``await stop()`` at the end."""

    def __init__(self, app: App, *, tail_every_s: float = 0.03, list_every_s: float = 2.0) -> None:
        self.app = app
        self.settings = app.config.web
        self.store = Store(app.store.path, redactor=app.store.redactor)
        self.service = Service(app.config, self.store, app.tmux, app.clock, app.home, autostart_engine=False,
                               config_path=app.config_path)  # fmt: skip
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="web")  # one thread: one store connection
        self.hub = Hub(app.home, self._read_list, self._agent_kind, tail_every_s=tail_every_s,
                       list_every_s=list_every_s)  # fmt: skip
        self._runner: web.AppRunner | None = None
        self._kinds: dict[str, str] = {}
        origin = self.settings.origin()
        self.origins = {origin}
        if self.settings.public_url is None and self.settings.listen in ("127.0.0.1", "localhost"):
            self.origins |= {f"http://localhost:{self.settings.port}", f"http://127.0.0.1:{self.settings.port}"}
        self.secure = origin.startswith("https://")

    @property
    def url(self) -> str:
        return self.settings.base_url()

    def web_app(self) -> web.Application:
        application = web.Application(middlewares=[self._headers], client_max_size=64 * 1024)
        r = application.router
        for page in ("/", "/login", "/grid", "/cost", "/task/{id}"):
            r.add_get(page, self._page)
        r.add_get("/static/{name}", self._static)
        r.add_post("/api/login", self._login)
        r.add_post("/api/miniapp", self._miniapp)
        r.add_post("/api/logout", self._logout)
        r.add_get("/api/me", self._me)
        r.add_get("/api/tasks", self._tasks)
        r.add_get("/api/costs", self._costs)
        r.add_get("/api/task/{id}", self._task)
        r.add_get("/api/task/{id}/diff", self._diff)
        r.add_post("/api/task/{id}/{action}", self._act)
        r.add_post("/api/permission/{ref}/{verdict}", self._answer)
        r.add_get("/ws", self._socket)
        return application

    async def start(self) -> None:
        """Listen; ``WebUnavailable`` (one line) when the address cannot be had."""
        self._runner = web.AppRunner(self.web_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.settings.listen, self.settings.port).start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            where = f"{self.settings.listen}:{self.settings.port}"
            raise WebUnavailable(f"the web dashboard cannot listen on {where}: {exc.strerror or exc}") from None

    async def stop(self) -> None:
        await self.hub.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._pool.shutdown(wait=True)
        self.store.close()

    def on_event(self, _task_id: str, kind: str, _data: dict[str, Any]) -> None:
        """An engine listener: a task changed state, so the list is read again (only if anyone looks)."""
        if kind not in ("raw", "text", "tool_use", "tool_result", "usage"):
            self.hub.changed()

    # -- plumbing -----------------------------------------------------------------------------
    async def _run(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def _read_list(self) -> list[dict[str, Any]]:
        return await self._run(views.task_list, self.service)

    def _agent_kind(self, task_id: str) -> str:
        if task_id not in self._kinds:
            task = self.store.find_task(task_id)
            agent = self.app.config.agents.get(task.agent) if task is not None else None
            self._kinds[task_id] = agent.kind if agent is not None else ""
        return self._kinds[task_id]

    @web.middleware
    async def _headers(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:  # fmt: skip
        response = await handler(request)
        if not response.prepared:
            response.headers.update(_HEADERS)
        return response

    def _same_origin(self, request: web.Request) -> bool:
        return request.headers.get("Origin", "") in self.origins

    async def _session(self, request: web.Request) -> tuple[WebSession, str]:
        """The request's session and its user's role now; 401 without one, 403 for a user no longer allowed."""
        cookie = request.cookies.get(COOKIE, "")
        if not cookie or len(cookie) > 100:
            raise web.HTTPUnauthorized()
        session = await self._run(self.store.web_session, auth.digest(cookie), self.app.clock.now())
        if session is None:
            raise web.HTTPUnauthorized()
        role = auth.role_of(self.app.config, session.user)
        if role is None:
            raise web.HTTPForbidden()
        return session, role

    async def _changing(self, request: web.Request, action: str) -> tuple[WebSession, str, Actor]:
        """A state-changing request: same Origin, a session, its CSRF token, and the role ``action`` needs."""
        if not self._same_origin(request):
            raise web.HTTPForbidden()
        session, role = await self._session(request)
        if request.headers.get("X-CSRF-Token", "") != session.csrf:
            raise web.HTTPForbidden()
        actor = Actor(name=session.name, source="web", where=f"web user {session.user}")
        needed = needed_role(action)
        if ROLE_RANK[role] < ROLE_RANK[needed]:
            await self._run(
                self.service.audit, actor, "refused", request.match_info.get("id"), f"role {role}: {action}"
            )
            raise web.HTTPForbidden(text=f"{action} needs the {needed} role; you are {role}")
        return session, role, actor

    def _signed_in(self, token: str, session: WebSession) -> web.Response:
        response = web.json_response({"ok": True, "csrf": session.csrf})
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=self.secure, path="/",
                            max_age=int(session.expires_at - self.app.clock.now()))  # fmt: skip
        return response

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest() from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest()
        return body

    # -- pages --------------------------------------------------------------------------------
    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(body=_asset("index.html"), content_type="text/html", charset="utf-8")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=_asset(name), content_type=STATIC[name], charset="utf-8")

    # -- signing in ---------------------------------------------------------------------------
    async def _login(self, request: web.Request) -> web.Response:
        """A one-time link's token (the page posts it from the URL's fragment): spent, then a session."""
        if not self._same_origin(request):
            raise web.HTTPForbidden()
        token = str((await self._body(request)).get("token", ""))
        now = self.app.clock.now()
        used = await self._run(self.store.use_web_link, auth.digest(token), now) if 0 < len(token) < 100 else None
        if used is None:
            raise web.HTTPUnauthorized()
        user, name = used
        if auth.role_of(self.app.config, user) is None:
            raise web.HTTPForbidden()
        return await self._open_session(user, name, "link")

    async def _miniapp(self, request: web.Request) -> web.Response:
        """Telegram's ``initData``, signed with the bot's token: the Telegram user, if allowed, gets a session."""
        if not self._same_origin(request) or not self.app.config.telegram.enabled:
            raise web.HTTPForbidden()
        init_data = str((await self._body(request)).get("init_data", ""))
        try:
            token = self.app.config.telegram.token()
            user = auth.check_init_data(init_data, token, self.app.clock.now(), self.settings.init_data_s)
        except (auth.Refused, OrchestraError) as exc:
            log.warning("web: Mini App sign-in refused: %s", exc)
            raise web.HTTPUnauthorized() from None
        key = f"telegram:{user.user_id}"
        if auth.role_of(self.app.config, key) is None:
            await self._run(self.service.audit, Actor(user.name, "web", f"web user {key}"), "refused", None, "Mini App")
            raise web.HTTPForbidden()
        return await self._open_session(key, f"@{user.name}", "miniapp")

    async def _open_session(self, user: str, name: str, via: str) -> web.Response:
        now = self.app.clock.now()
        token, session = await self._run(auth.new_session, self.store, user, name, via, now, self.settings.session_s)
        actor = Actor(name=name, source="web", where=f"web user {user}")
        await self._run(self.service.audit, actor, "web", None, f"signed in ({via})")
        return self._signed_in(token, session)

    async def _logout(self, request: web.Request) -> web.Response:
        if not self._same_origin(request):
            raise web.HTTPForbidden()
        await self._session(request)
        await self._run(self.store.end_web_session, auth.digest(request.cookies.get(COOKIE, "")))
        response = web.json_response({"ok": True})
        response.del_cookie(COOKIE, path="/")
        return response

    # -- reads --------------------------------------------------------------------------------
    async def _me(self, request: web.Request) -> web.Response:
        session, role = await self._session(request)
        return web.json_response({"user": session.user, "name": session.name, "role": role, "csrf": session.csrf})

    async def _tasks(self, request: web.Request) -> web.Response:
        await self._session(request)
        return web.json_response(await self._read_list())

    async def _costs(self, request: web.Request) -> web.Response:
        await self._session(request)
        report = await self._run(lambda: self.service.cost_report().to_dict())
        return web.json_response(report)

    async def _task(self, request: web.Request) -> web.Response:
        await self._session(request)
        return await self._answer_with(views.task_detail, request.match_info["id"])

    async def _diff(self, request: web.Request) -> web.Response:
        await self._session(request)
        return await self._answer_with(views.task_diff, request.match_info["id"])

    async def _answer_with(self, view: Callable[[Service, str], dict[str, Any]], task_id: str) -> web.Response:
        try:
            return web.json_response(await self._run(view, self.service, task_id), dumps=_dumps)
        except UnknownTask:
            raise web.HTTPNotFound() from None
        except OrchestraError as exc:
            return web.json_response({"error": str(exc)}, status=409)

    # -- buttons ------------------------------------------------------------------------------
    async def _act(self, request: web.Request) -> web.Response:
        action, task_id = request.match_info["action"], request.match_info["id"]
        if action not in _TASK_ACTIONS:
            raise web.HTTPNotFound()
        _, _, actor = await self._changing(request, action)
        calls: dict[str, Callable[[], object]] = {
            "approve": lambda: self.service.approve(task_id, actor=actor),
            "reject": lambda: self.service.reject(task_id, reason="rejected on the dashboard", actor=actor),
            "cancel": lambda: self.service.cancel(task_id, actor=actor),
            "retry": lambda: self.service.retry(task_id, actor=actor),
            "merge": lambda: self.service.merge_branch(task_id, actor=actor),
            "pr": lambda: self.service.pull_request(task_id, actor=actor),
        }
        return await self._do(calls[action], action)

    async def _answer(self, request: web.Request) -> web.Response:
        verdict, ref = request.match_info["verdict"], request.match_info["ref"]
        if verdict not in _VERDICTS:
            raise web.HTTPNotFound()
        _, _, actor = await self._changing(request, _VERDICTS[verdict])
        return await self._do(lambda: self.service.answer_permission(ref, verdict, actor=actor), verdict)  # type: ignore[arg-type]

    async def _do(self, call: Callable[[], object], action: str) -> web.Response:
        try:
            await self._run(call)
        except UnknownTask:
            raise web.HTTPNotFound() from None
        except OrchestraError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        self.hub.changed()
        return web.json_response({"ok": True, "action": action})

    # -- the socket ---------------------------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Live updates: the task list, and the terminals the page asks for (``{"watch": [ids]}``)."""
        if not self._same_origin(request):
            raise web.HTTPForbidden()
        session, _role = await self._session(request)
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
        await ws.prepare(request)
        viewer = Viewer(ws, session.user)
        await self.hub.join(viewer)
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    break
                await self._on_message(viewer, message.data)
        finally:
            self.hub.leave(viewer)
        return ws

    async def _on_message(self, viewer: Viewer, data: str) -> None:
        try:
            wanted = json.loads(data).get("watch")
        except (ValueError, AttributeError):
            return
        if not isinstance(wanted, list):
            return
        ids = {str(t) for t in wanted[:32] if isinstance(t, str) and t[:1] == "t" and t[1:].isdigit()}
        for task_id in viewer.watching - ids:
            self.hub.unwatch(viewer, task_id)
        for task_id in sorted(ids - viewer.watching):
            await self.hub.watch(viewer, task_id)


def _asset(name: str) -> bytes:
    return resources.files("bot.web").joinpath("static", name).read_bytes()


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


async def start_web(app: App) -> WebServer | None:
    """Serve the dashboard from the bot; a taken port costs the dashboard, not the bot (one line on stderr)."""
    import sys

    server = WebServer(app)
    try:
        await server.start()
    except WebUnavailable as exc:
        print(f"orchestra: {exc}; the bot runs without it", file=sys.stderr, flush=True)
        await server.stop()
        return None
    app.engine.listeners.append(server.on_event)
    return server


__all__ = ["COOKIE", "WebServer", "start_web"]
