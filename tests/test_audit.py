"""Roles and the audit log: who may do what, and the log answering "who approved t42"."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import App
from core.audit import parse_since
from core.commands import Commands
from core.config import RolesConfig
from core.errors import OrchestraError
from core.messages import ChatRef, Inbound, OutKind, Tap
from core.models import TaskState
from tests.conftest import orchestra, requires_tmux

pytestmark = requires_tmux

ADMIN, OPERATOR, VIEWER = "111", "222", "333"
NAMES = {ADMIN: "@ada", OPERATOR: "@otto", VIEWER: "@vic"}


def say(text: str, user: str) -> Inbound:
    chat = ChatRef("telegram", user, private=True)
    return Inbound(chat=chat, user_id=user, user_name=NAMES[user], text=text, message_id="1", event_id=text + user)


def tap(action: str, task_id: str, user: str) -> Inbound:
    chat = ChatRef("telegram", user, private=True)
    return Inbound(chat=chat, user_id=user, user_name=NAMES[user], tap=Tap(action, task_id, "900", ()))


@pytest.fixture
async def app(make_app: Any, repo: Path) -> AsyncIterator[App]:
    roles = {"admins": [f"telegram:{ADMIN}"], "operators": [f"telegram:{OPERATOR}"], "viewers": [f"telegram:{VIEWER}"]}
    app: App = make_app(workspace=str(repo), policy__approval_for=["devops"], roles=roles)
    assert app.engine.acquire()
    await app.engine.start()
    yield app
    await app.engine.stop()


def test_roles_default_to_admin_and_unlisted_users_are_viewers() -> None:
    assert RolesConfig().role_of("telegram", "42") == "admin"
    roles = RolesConfig(admins=["slack:UADMIN"])
    assert roles.role_of("slack", "UADMIN") == "admin"
    assert roles.role_of("telegram", "UADMIN") == "viewer"
    with pytest.raises(ValueError, match="telegram:USER_ID"):
        RolesConfig(operators=["42"])


async def test_a_viewer_sees_status_but_cannot_delegate_cancel_or_kill(app: App) -> None:
    commands = Commands(app.service, app.clock)
    assert commands.handle(say("/status", VIEWER))[0].text.startswith("No tasks yet.")
    [refusal] = commands.handle(say("fix the login bug", VIEWER))
    assert refusal.text.startswith("⛔ /delegate needs the operator role; you are a viewer. bots.yaml's roles.operat")
    assert refusal.text.endswith(f"(you are telegram:{VIEWER}).") and app.store.list_tasks() == []
    commands.handle(say("set up the CI pipeline", OPERATOR))  # approval-gated devops task: t1
    [no_approve] = commands.handle(tap("approve", "t1", VIEWER))
    assert no_approve.kind == OutKind.TOAST and "needs the operator role" in no_approve.text
    [no_kill] = commands.handle(say("/kill", OPERATOR))
    assert no_kill.text.startswith("⛔ /kill needs the admin role; you are an operator. bots.yaml's roles.admins")
    assert app.store.get_task("t1").state == TaskState.AWAITING_APPROVAL
    refused = app.store.audit_search(action="refused")
    assert [(r["actor"], r["chat"]) for r in refused] == [
        ("@otto", "chat 222 user 222"),
        ("@vic", "chat 333 user 333"),
        ("@vic", "chat 333 user 333"),
    ]
    commands.handle(tap("approve", "t1", OPERATOR))
    assert app.store.get_task("t1").state != TaskState.AWAITING_APPROVAL


async def test_audit_answers_who_approved_and_what_was_cancelled(app: App, tmp_path: Path, home: Path) -> None:
    commands = Commands(app.service, app.clock)
    commands.handle(say("set up the CI pipeline", OPERATOR))
    commands.handle(say("@standin write the docs", ADMIN))
    commands.handle(tap("approve", "t1", ADMIN))
    commands.handle(say("/cancel t2", OPERATOR))
    [answer] = commands.handle(say("/audit t1", OPERATOR))
    assert answer.text.startswith("🧾 Audit · t1")
    assert any("@ada (telegram chat 111 user 111) approve t1" in line for line in answer.text.splitlines())
    [denied] = commands.handle(say("/audit", VIEWER))
    assert "needs the operator role" in denied.text
    delegated = app.store.audit_search("t2", action="delegate")
    assert "override=@standin" in delegated[0]["detail"]
    cfg = tmp_path / "bots.yaml"
    approved = orchestra("audit", "t1", "--action", "approve", "--json", config=cfg, env={"ORCHESTRA_HOME": str(home)})
    assert approved.returncode == 0, approved.stderr
    assert [(r["actor"], r["source"]) for r in json.loads(approved.stdout)] == [("@ada", "telegram")]
    cancelled = orchestra("audit", "--action", "cancel", "--since", "1d", config=cfg, env={"ORCHESTRA_HOME": str(home)})
    assert "@otto (telegram chat 222 user 222) cancel t2" in cancelled.stdout
    bad = orchestra("audit", "--since", "yesterday", config=cfg, env={"ORCHESTRA_HOME": str(home)})
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "30m, 12h, 1d" in bad.stderr


def test_parse_since() -> None:
    assert parse_since("1d") == 86400 and parse_since("30m") == 1800
    with pytest.raises(OrchestraError):
        parse_since("1 fortnight")


def test_the_shipped_config_has_empty_roles() -> None:
    data = yaml.safe_load((Path(__file__).resolve().parent.parent / "bots.yaml").read_text())
    assert data["roles"] == {"admins": [], "operators": [], "viewers": []}


async def test_admins_change_budgets_from_the_chat_and_others_only_read_them(app: App) -> None:
    """/budget shows every budget to a viewer; only an admin changes one, and it takes effect at once."""
    commands = Commands(app.service, app.clock)
    [shown] = commands.handle(say("/budget", VIEWER))
    assert "• per day: none (bots.yaml)" in shown.text and "Admins change them" in shown.text
    [refused] = commands.handle(say("/budget day 0.01", OPERATOR))
    assert refused.text.startswith("⛔ /budget needs the admin role; you are an operator.")
    assert app.store.budget_overrides() == {}
    [bad] = commands.handle(say("/budget day lots", ADMIN))
    assert bad.text == "⚠️ 'lots' is not an amount: give dollars (25 or 2.50), off or reset"
    [bad_name] = commands.handle(say("/budget week 5", ADMIN))
    assert bad_name.text == "⚠️ unknown budget 'week': use task, day or month"
    assert app.store.budget_overrides() == {}, "a refused or malformed change changes nothing"

    [done] = commands.handle(say("/budget day $0.01", ADMIN))
    assert done.text.startswith("💰 Per-day budget is now $0.01 (set by @ada).")
    assert "• per day: $0.01, set by @ada on " in done.text and "(bots.yaml: none)" in done.text
    app.store.record_cost({"task_id": "t0", "ts": app.clock.now(), "agent": "standin", "category": "backend",
                           "model": "m", "cost_usd": 0.02, "source": "cli"})  # fmt: skip
    [card] = commands.handle(say("write the changelog", OPERATOR))
    assert app.store.get_task("t1").state == TaskState.AWAITING_APPROVAL, "the new day budget holds new tasks"
    assert "daily budget is spent" in card.text

    commands.handle(say("/budget task 2.5", ADMIN))
    commands.handle(say("/budget day reset", ADMIN))
    commands.handle(say("write the release notes", OPERATOR))
    task = app.store.get_task("t2")
    assert task.state != TaskState.AWAITING_APPROVAL and task.cost_cap_usd == 2.5, "the task cap applies"
    changes = [r["detail"] for r in app.store.audit_search(action="budget")]
    assert sorted(changes) == ["day $0.01 → none", "day none → $0.01", "task $5.00 → $2.50"]
    [who] = [r for r in app.store.audit_search(action="budget") if "→ $0.01" in r["detail"]]
    assert (who["actor"], who["source"], who["chat"]) == ("@ada", "telegram", "chat 111 user 111")
