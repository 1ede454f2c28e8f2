"""The webhook endpoint of the bot process (``triggers:``, off by default): a signed delivery whose
event a rule maps starts one task; anything else starts none.

- ``POST /hooks/github``: ``X-Hub-Signature-256`` must be ``sha256=`` HMAC-SHA256 of the raw body
  with the secret (compared in constant time); ``X-GitHub-Delivery`` names the delivery, and a
  delivery seen before is refused (409), so a replay starts nothing.
- ``POST /hooks/generic``: ``X-Orchestra-Secret`` must equal the shared secret (constant time),
  ``X-Orchestra-Event`` names the event and ``X-Orchestra-Delivery`` the delivery, once.

A refusal says nothing about why beyond its status. The task text is the rule's template filled
from the payload (text only, clipped), delegated like any task: it is never run by a shell.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from core.service import Actor

if TYPE_CHECKING:
    from bot.app import App
    from core.config.triggers import TriggerRule

log = logging.getLogger(__name__)
_FIELD = re.compile(r"\{([A-Za-z0-9_.]+)\}")
_FIELD_CHARS = 4000


def signed(secret: str, body: bytes, signature: str) -> bool:
    """GitHub's X-Hub-Signature-256 check."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def fill(template: str, payload: dict[str, Any]) -> str:
    """The template with ``{a.b}`` replaced by the payload's value there (empty when absent)."""

    def value(match: re.Match[str]) -> str:
        node: Any = payload
        for part in match.group(1).split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return "" if node is None or isinstance(node, dict | list) else str(node)[:_FIELD_CHARS]

    return _FIELD.sub(value, template)


def matching(rules: list[TriggerRule], event: str, payload: dict[str, Any]) -> TriggerRule | None:
    for rule in rules:
        if rule.event != event or (rule.action is not None and payload.get("action") != rule.action):
            continue
        if rule.label is not None and (payload.get("label") or {}).get("name") != rule.label:
            continue
        if rule.conclusion is not None and (payload.get("workflow_run") or {}).get("conclusion") != rule.conclusion:
            continue
        return rule
    return None


class TriggerServer:
    """The endpoint on the bot's loop; ``start()`` / ``stop()``."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.config = app.config.triggers
        self._runner: web.AppRunner | None = None
        self.url = ""

    def web_app(self) -> web.Application:
        site = web.Application(client_max_size=self.config.max_body_bytes)
        site.router.add_post("/hooks/github", self._github)
        site.router.add_post("/hooks/generic", self._generic)
        return site

    async def start(self) -> None:
        self._runner = web.AppRunner(self.web_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.listen, self.config.port).start()
        self.url = f"http://{self.config.listen}:{self.config.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _github(self, request: web.Request) -> web.Response:
        secret = os.environ.get(self.config.github_secret_env or "", "")
        body = await request.read()
        signature = request.headers.get("X-Hub-Signature-256", "")
        if not secret or not signature or not signed(secret, body, signature):
            return web.Response(status=401)
        event, delivery = request.headers.get("X-GitHub-Event", ""), request.headers.get("X-GitHub-Delivery", "")
        return self._start("github", event, delivery, body)

    async def _generic(self, request: web.Request) -> web.Response:
        secret = os.environ.get(self.config.generic_secret_env or "", "")
        given = request.headers.get("X-Orchestra-Secret", "")
        body = await request.read()
        if not secret or not hmac.compare_digest(secret.encode(), given.encode()):
            return web.Response(status=401)
        event, delivery = request.headers.get("X-Orchestra-Event", ""), request.headers.get("X-Orchestra-Delivery", "")
        return self._start("generic", event, delivery, body)

    def _start(self, kind: str, event: str, delivery: str, body: bytes) -> web.Response:
        if not event or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,100}", delivery):
            return web.Response(status=400)
        ref = f"trigger:{kind}:{delivery}"
        store = self.app.store
        if store.task_by_source(ref) is not None or store.plan_by_source(ref) is not None:
            return web.Response(status=409)  # a delivery seen before: a replay starts nothing
        try:
            payload = json.loads(body)
        except ValueError:
            return web.Response(status=400)
        rule = matching(self.app.config.triggers.rules, event, payload if isinstance(payload, dict) else {})
        if rule is None:
            return web.json_response({"started": None}, status=202)
        text = fill(rule.task, payload)
        actor = Actor(name=f"trigger:{kind}", source="trigger", where=f"{kind} {event} {delivery}", ref=ref)
        try:
            task = self.app.service.delegate(text, agent=rule.agent, project=rule.project, actor=actor).task
        except Exception as exc:  # noqa: BLE001  a refused task (budget, bad text) is the sender's 422
            log.warning("trigger %s %s: no task: %s", kind, event, exc)
            return web.json_response({"started": None, "error": str(exc)[:200]}, status=422)
        self.app.service.audit(actor, "trigger", task.id, f"{kind} {event} delivery {delivery}")
        log.info("trigger %s %s (%s) started %s", kind, event, delivery, task.id)
        return web.json_response({"started": task.id}, status=201)


async def start_triggers(app: App) -> TriggerServer | None:
    """The endpoint when ``triggers.enabled``; a taken port costs the endpoint, not the bot (one line)."""
    server = TriggerServer(app)
    try:
        await server.start()
    except OSError as exc:
        log.error("triggers: cannot listen on %s:%s: %s", app.config.triggers.listen, app.config.triggers.port, exc)
        return None
    return server


__all__ = ["TriggerServer", "fill", "matching", "signed", "start_triggers"]
