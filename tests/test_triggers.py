"""Webhook triggers over real HTTP on 127.0.0.1: a GitHub delivery signed as GitHub signs it
(``X-Hub-Signature-256``) starts one task from its rule's template; the same delivery again, an
unsigned or wrongly signed one, an unmapped event and the generic endpoint's refusals start none."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import App
from bot.triggers import TriggerServer, fill
from tests.conftest import free_port, requires_tmux

pytestmark = requires_tmux
SECRET = "it-is-a-secret-0123456789"
RULES = [
    {"event": "issues", "action": "labeled", "label": "orchestra",
     "task": "Fix issue #{issue.number}: {issue.title}\n{issue.body}"},
    {"event": "deploy", "task": "Check the deploy of {ref}"},
]  # fmt: skip
ISSUE: dict[str, Any] = {"action": "labeled", "label": {"name": "orchestra"},
         "issue": {"number": 42, "title": "Login fails", "body": "$(rm -rf ~) is in the body"}}  # fmt: skip


@pytest.fixture
async def hooks(make_app: Any, repo: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[App, str]]:
    monkeypatch.setenv("ORCH_TEST_GH_HOOK", SECRET)
    monkeypatch.setenv("ORCH_TEST_HOOK", SECRET)
    app: App = make_app(workspace=str(repo), triggers={
        "enabled": True, "port": free_port(), "github_secret_env": "ORCH_TEST_GH_HOOK",
        "generic_secret_env": "ORCH_TEST_HOOK", "rules": RULES})  # fmt: skip
    assert app.engine.acquire()
    await app.engine.start()
    server = TriggerServer(app)
    await server.start()
    yield app, server.url
    await server.stop()
    await app.engine.stop()


def github_headers(body: bytes, delivery: str, *, secret: str = SECRET, event: str = "issues") -> dict[str, str]:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature,
            "Content-Type": "application/json"}  # fmt: skip


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


async def test_a_signed_github_delivery_starts_one_task_and_its_replay_none(hooks: tuple[App, str]) -> None:
    app, url = hooks
    body = json.dumps(ISSUE).encode()
    status, text = await post(f"{url}/hooks/github", body, github_headers(body, "d-1"))
    assert status == 201
    task = app.service.get(json.loads(text)["started"])
    assert task.text == "Fix issue #42: Login fails\n$(rm -rf ~) is in the body"  # text for the agent, no shell
    assert task.source == "trigger" and task.requester == "trigger:github"
    assert (await post(f"{url}/hooks/github", body, github_headers(body, "d-1")))[0] == 409  # replayed
    assert len(app.store.list_tasks(limit=10)) == 1
    [row] = [r for r in app.service.audit_log(task.id) if r["action"] == "delegate"]
    assert row["actor"] == "trigger:github" and "github issues d-1" in row["chat"]
    [hooked] = app.service.audit_log(action="trigger")
    assert hooked["task_id"] == task.id and hooked["detail"] == "github issues delivery d-1"


async def test_unsigned_wrongly_signed_and_unmapped_deliveries_start_nothing(hooks: tuple[App, str]) -> None:
    app, url = hooks
    body = json.dumps(ISSUE).encode()
    no_signature = {k: v for k, v in github_headers(body, "d-2").items() if k != "X-Hub-Signature-256"}
    assert await post(f"{url}/hooks/github", body, no_signature) == (401, "")
    assert (await post(f"{url}/hooks/github", body, github_headers(body, "d-3", secret="wrong")))[0] == 401
    tampered = json.dumps({**ISSUE, "issue": {**ISSUE["issue"], "title": "evil"}}).encode()
    assert (await post(f"{url}/hooks/github", tampered, github_headers(body, "d-4")))[0] == 401
    other = json.dumps({**ISSUE, "label": {"name": "bug"}}).encode()
    assert (await post(f"{url}/hooks/github", other, github_headers(other, "d-5")))[0] == 202  # no rule maps it
    assert app.store.list_tasks(limit=10) == []


async def test_the_generic_endpoint_needs_the_secret_and_a_fresh_delivery(hooks: tuple[App, str]) -> None:
    app, url = hooks
    body = json.dumps({"ref": "v1.2"}).encode()
    headers = {"X-Orchestra-Secret": SECRET, "X-Orchestra-Event": "deploy", "X-Orchestra-Delivery": "g-1"}
    assert (await post(f"{url}/hooks/generic", body, {**headers, "X-Orchestra-Secret": "nope"}))[0] == 401
    status, text = await post(f"{url}/hooks/generic", body, headers)
    assert status == 201 and app.service.get(json.loads(text)["started"]).text == "Check the deploy of v1.2"
    assert (await post(f"{url}/hooks/generic", body, headers))[0] == 409
    assert (await post(f"{url}/hooks/generic", body, {**headers, "X-Orchestra-Delivery": ""}))[0] == 400


def test_a_template_takes_only_text_from_the_payload() -> None:
    assert fill("{a.b} {a.c} {missing}", {"a": {"b": 1, "c": {"deep": True}}}) == "1  "
