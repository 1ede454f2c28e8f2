"""The Service's own contract, the one way in for every surface: what delegate, route, cancel, retry,
approve, reject and status do, the one-sentence errors they raise, and the audit they leave
(secrets redacted before anything is cut, for the Service's callers and the Gate alike).

A real store and a real tmux server; with ``autostart_engine`` off and no engine running, a
delegated task stays queued, so each state is set up by the Service's own calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from core.access import Gate
from core.commands import Commands
from core.errors import AgentUnavailable, InvalidTransition, TaskRejected, UnknownTask
from core.messages import ChatRef, Inbound, Outbound, OutKind
from core.models import TaskState
from core.service import Actor, Approval, SentMessage
from tests.conftest import requires_tmux

pytestmark = requires_tmux

SECRET = "sk-ant-api03-KNOWN-service-secret-0042"
SECRET_ENV = "ORCH_TEST_SERVICE_KEY"
ALICE = Actor(name="@alice", source="telegram", where="chat 111 user 111", chat="111")
STANDIN = "{python} -S {orchestra}/core/agents/standin"


@pytest.fixture
def app(make_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> App:
    """No engine: what is delegated stays queued (or waits for approval), nothing runs."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    made: App = make_app(
        workspace=str(tmp_path), policy__approval_for=["devops"], policy__review_for=["docs"],
        agents__standin__env_from={"ANTHROPIC_API_KEY": SECRET_ENV},
    )  # fmt: skip
    made.service.autostart_engine = False
    return made


def audit(app: App) -> list[tuple[str, str, str | None, str]]:
    """(actor, action, task, detail), oldest first."""
    return [(r["actor"], r["action"], r["task_id"], r["detail"]) for r in reversed(app.store.audit_log())]


def leaked(app: App) -> list[str]:
    """Audit details holding any eight characters in a row of the secret."""
    pieces = {SECRET[i : i + 8] for i in range(len(SECRET) - 7)}
    return [r["detail"] for r in app.store.audit_log() if any(p in (r["detail"] or "") for p in pieces)]


# -- delegate and route -------------------------------------------------------------------------
def test_delegate_routes_queues_and_audits_who_asked(app: App) -> None:
    done = app.service.delegate("Create User model", actor=ALICE)
    assert (done.decision.agent, done.decision.category) == ("standin", "backend")
    assert done.task.state == TaskState.QUEUED and not done.needs_approval
    assert (done.task.requester, done.task.source) == ("@alice", "telegram")
    assert done.estimate_usd == app.config.budgets.default_estimate_usd and done.estimate_basis == 0
    [(actor, action, task_id, detail)] = audit(app)
    assert (actor, action, task_id) == ("@alice", "delegate", "t1") and detail.startswith("standin/backend rule=")
    assert app.store.audit_search(action="delegate")[0]["chat"] == "chat 111 user 111", "and from where"


def test_the_same_chat_update_delegated_twice_makes_one_task(app: App) -> None:
    again = dataclasses.replace(ALICE, ref="telegram:42")
    first = app.service.delegate("Create User model", actor=again)
    second = app.service.delegate("Create User model", actor=again)
    assert second.task.id == first.task.id == "t1" and len(app.store.list_tasks()) == 1


def test_delegate_refuses_bad_text_and_unknown_agents_in_one_sentence(app: App) -> None:
    cases: list[tuple[str, dict[str, Any], type[Exception], str]] = [
        ("   ", {}, TaskRejected, "the task text is empty"),
        ("x" * (app.config.limits.max_task_chars + 1), {}, TaskRejected, "the limit is"),
        ("bad \udcff byte", {}, TaskRejected, "not valid UTF-8 (byte 0xff at character 4)"),
        ("@nobody do it", {}, AgentUnavailable, "unknown agent @nobody; agents: "),
        ("do it", {"agent": "nobody"}, AgentUnavailable, "unknown agent 'nobody' (configured: "),
        ("@echo", {}, TaskRejected, "nothing to do: say what @echo should do after its name"),
    ]
    for text, extra, error, words in cases:
        with pytest.raises(error) as raised:
            app.service.delegate(text, **extra)
        assert words in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(TaskRejected, match="working directory '/no/such/dir' does not exist"):
        app.service.delegate("Create User model", cwd="/no/such/dir")
    assert app.store.list_tasks() == [] and audit(app) == [], "a refused task leaves nothing behind"


def test_route_adds_the_policy_and_delegate_waits_for_approval(app: App) -> None:
    decision = app.service.route("set up the GitHub Actions CI pipeline")
    assert decision.category == "devops" and decision.require_approval
    assert decision.reason.endswith("; devops tasks need approval (policy).")
    assert app.store.list_tasks() == [], "route only answers"
    waiting = app.service.delegate("set up the GitHub Actions CI pipeline", actor=ALICE)
    assert waiting.needs_approval and waiting.approval_reason == "devops tasks need approval"
    assert waiting.task.state == TaskState.AWAITING_APPROVAL


# -- actions -------------------------------------------------------------------------------------
def test_approve_starts_once_and_a_second_approval_says_who_did_it(app: App) -> None:
    task = app.service.delegate("set up the GitHub Actions CI pipeline").task
    assert app.service.approve(task.id, actor=ALICE).state == TaskState.QUEUED
    with pytest.raises(InvalidTransition) as second:
        app.service.approve(task.id, actor=dataclasses.replace(ALICE, name="@bob"))
    assert re.fullmatch(r"t1 was already approved by @alice at \d\d:\d\d", str(second.value))
    [decision] = app.service.approvals(task.id)
    assert decision == Approval("start", "approved", "@alice", "", decision.ts) and decision.ts > time.time() - 60
    with pytest.raises(InvalidTransition, match="t1 was already approved by @alice"):
        app.service.reject(task.id)
    assert [a[1] for a in audit(app)] == ["delegate", "approve"]


def test_reject_before_start_records_the_reason_and_nothing_runs(app: App) -> None:
    task = app.service.delegate("set up the GitHub Actions CI pipeline").task
    rejected = app.service.reject(task.id, reason="not now", actor=ALICE)
    assert rejected.state == TaskState.REJECTED and rejected.error == "not now"
    decisions = [(a.gate, a.decision, a.reason) for a in app.service.approvals(task.id)]
    assert decisions == [("start", "rejected", "not now")]
    assert audit(app)[-1] == ("@alice", "reject", "t1", "not now")
    queued = app.service.delegate("Create User model").task
    with pytest.raises(InvalidTransition, match="t2 is queued; there is nothing to approve"):
        app.service.approve(queued.id)


def test_cancel_before_start_and_what_cannot_be_cancelled(app: App) -> None:
    task = app.service.delegate("Create User model").task
    cancelled = app.service.cancel(task.id, actor=ALICE)
    assert cancelled.state == TaskState.CANCELLED and cancelled.error == "cancelled before it started"
    assert audit(app)[-1] == ("@alice", "cancel", "t1", "was queued")
    with pytest.raises(InvalidTransition, match="t1 is cancelled; only queued or running tasks can be cancelled"):
        app.service.cancel(task.id)
    with pytest.raises(UnknownTask):
        app.service.cancel("t99")
    app.service.delegate("one")
    app.service.delegate("two")
    assert app.service.cancel_all(actor=ALICE) == ["t2", "t3"]
    assert audit(app)[-1] == ("@alice", "kill", None, "cancelled t2, t3")


def test_retry_runs_a_finished_task_again_with_the_feedback(app: App) -> None:
    task = app.service.delegate("Create User model").task
    with pytest.raises(InvalidTransition, match="t1 is queued; wait for it to finish or cancel it first"):
        app.service.retry(task.id)
    app.service.cancel(task.id)
    again = app.service.retry(task.id, feedback="use dataclasses", actor=ALICE)
    assert again.task.id == "t2" and again.task.parent_id == "t1" and again.task.agent == "standin"
    assert again.task.text == "Create User model\n\nFeedback on the previous attempt: use dataclasses"
    assert ("@alice", "retry", "t1", "use dataclasses") in audit(app)


def test_status_lists_the_active_oldest_first_and_the_recent_finished(app: App) -> None:
    for text in ("one", "two", "three"):
        app.service.delegate(text)
    app.service.cancel("t2")
    active, recent = app.service.status(recent=5)
    assert [t.id for t in active] == ["t1", "t3"] and [t.id for t in recent] == ["t2"]
    assert app.service.running() == [], "nothing runs without an engine"
    with pytest.raises(UnknownTask):
        app.service.show("t42")
    assert app.service.find("t42") is None and app.service.get("3").id == "t3"


async def test_cancel_with_a_wait_returns_the_task_as_it_ended(make_app: Any, tmp_path: Path) -> None:
    """What the CLI's ``orchestra cancel`` gets: the final state, recorded by whoever sees it first."""
    engine_app: App = make_app(
        agents__hang={"kind": "claude", "command": STANDIN, "env": {"ORCHESTRA_STANDIN_MODE": "hang"}},
        limits__cancel_grace_s=1,
    )
    assert engine_app.engine.acquire()
    await engine_app.engine.start()
    try:
        task = engine_app.service.delegate("wait forever", agent="hang", cwd=str(tmp_path)).task
        deadline = time.monotonic() + 15
        while engine_app.store.get_task(task.id).started_at is None:
            assert time.monotonic() < deadline, "the task never started"
            await asyncio.sleep(0.05)
        cli: App = make_app()  # a second process's view: its engine is not the one running
        ended = await asyncio.to_thread(cli.service.cancel, task.id, wait_s=15)
    finally:
        await engine_app.engine.stop()
    assert ended.state == TaskState.CANCELLED and "cancelled" in (ended.error or "")


# -- what the surfaces read ----------------------------------------------------------------------
def test_a_message_about_a_task_is_found_again_as_a_typed_record(app: App) -> None:
    task = app.service.delegate("Create User model").task
    app.store.enqueue(
        "telegram", Outbound("card", kind=OutKind.ACK, task_id=task.id), chat_id="111", dedupe_key="k", ts=1.0
    )
    app.store.mark_delivered(app.store.outbox_queue("telegram")[-1].id, 2.0, "500")
    sent = app.service.sent_message("telegram", "111", "500")
    assert sent == SentMessage(kind="ack", task_id="t1") and sent.is_card
    assert app.service.replied_task("telegram", "111", "500") == app.store.get_task("t1")
    assert app.service.sent_message("telegram", "111", "501") is None
    assert app.service.replied_task("telegram", "222", "500") is None, "another chat's message 500 is not ours"


# -- the audit never keeps a secret ----------------------------------------------------------------
def test_the_audit_redacts_before_it_cuts(app: App) -> None:
    app.service.audit(ALICE, "retry", None, "x" * 480 + SECRET)  # the cut at 500 falls inside the secret
    [(_, _, _, detail)] = audit(app)
    assert detail == "x" * 480 + "[redacted]" and leaked(app) == []


def test_a_refused_strangers_message_is_audited_without_any_part_of_a_secret(app: App) -> None:
    gate = Gate(app.service, app.clock, allowed_users=["111"], allowed_chats=[], per_minute=5)
    stranger = Inbound(
        chat=ChatRef("telegram", "666", private=True), user_id="666", user_name="@mallory",
        text="a" * 80 + SECRET + " and more", message_id="1", event_id="e1",
    )  # fmt: skip
    assert gate.check(stranger)
    [(actor, action, _, detail)] = audit(app)
    assert (actor, action) == ("@mallory (666)", "refused")
    assert detail == "chat 666: " + "a" * 80 + "[redacted] and more"
    assert leaked(app) == [], "the line was clipped after redaction, not before"


def test_a_commands_audit_line_keeps_no_part_of_a_secret(app: App) -> None:
    commands = Commands(app.service, app.clock)
    message = Inbound(
        chat=ChatRef("telegram", "111", private=True), user_id="111", user_name="@alice",
        text="b" * 185 + SECRET + " please", message_id="1", event_id="e2",
    )  # fmt: skip
    commands.handle(message)
    assert [a[1] for a in audit(app)] == ["command", "delegate"]
    assert leaked(app) == []
