"""Plans: where they come from (a written list, a file, a template, a planner's JSON) and how they run:
steps in parallel where they can be, each told what the steps before it did, each in its own
worktree merged into the plan's branch, a failing step retried then paused with buttons, and a
restart in the middle losing nothing. Real git, real tmux, the real engine and runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from core import plans as planning
from core.commands import Commands
from core.messages import ChatRef, Inbound, Tap
from core.models import TaskState
from core.protocol import task_dir
from tests.conftest import requires_tmux

# "write NAME" writes NAME with the whole prompt in it; "fail" in the prompt exits 1.
_AGENT = (
    "import re, sys, time; text = sys.argv[1]; time.sleep(0.2)\n"
    "if 'fail' in text.split('This is step')[0]: print('it broke'); sys.exit(1)\n"
    "name = re.search(r'write (\\S+)', text).group(1); open(name, 'w').write(text)\n"
    "print(f'wrote {name}')"
)
WRITER = {"kind": "command", "command": sys.executable, "args": ["-c", _AGENT, "{task}"], "max_concurrent": 4}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


# -- where a plan comes from ------------------------------------------------------------------------
def test_a_numbered_list_is_a_plan_in_order_and_says_which_steps_run_together() -> None:
    spec = planning.from_text("1. Design the schema\n2. Write the API\n3. (after 1) Write the UI\n4. (after 2, 3) Test")
    assert spec is not None and not spec.confirm
    assert [s.after for s in spec.steps] == [(), (1,), (1,), (2, 3)]
    assert spec.order() == [[1], [2, 3], [4]]
    assert spec.steps[2].text == "Write the UI"


def test_bullets_are_one_task_and_a_list_under_a_sentence_asks_first() -> None:
    assert planning.from_text("Add a login page:\n- a form\n- a submit button") is None
    assert planning.from_text("Fix issue 1. It crashes.") is None
    asked = planning.from_text("Add OAuth2 with Google\n1. the backend\n2. the button")
    assert asked is not None and asked.confirm and asked.lead == "Add OAuth2 with Google"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"steps": []}, "a list of steps"),
        ({"steps": [{"title": "x"}]}, "step 1 has no text"),
        ({"steps": [{"text": "a", "after": [2]}]}, "waits for step 2, which the plan does not have"),
        ({"steps": [{"text": "a", "after": [2]}, {"text": "b", "after": [1]}]}, "in a circle"),
        ({"steps": [{"text": "a", "colour": "red"}]}, "unknown keys: colour"),
    ],
)
def test_a_bad_plan_is_one_line(data: Any, says: str) -> None:
    with pytest.raises(planning.PlanError, match=says):
        planning.from_data(data, "plan.yaml")


def test_a_planners_json_is_read_from_its_reply_and_checked() -> None:
    reply = 'Here it is:\n```json\n{"steps": [{"title": "API", "text": "write the API", "category": "backend"},' \
        ' {"title": "Tests", "text": "test it", "category": "tests", "after": [1]}]}\n```'  # fmt: skip
    spec = planning.from_planner(reply)
    assert [(s.title, s.category, s.after) for s in spec.steps] == [("API", "backend", ()), ("Tests", "tests", (1,))]
    with pytest.raises(planning.PlanError, match="holds no JSON plan"):
        planning.from_planner("I could not make a plan.")


def test_the_critical_path_is_the_longest_chain() -> None:
    spec = planning.from_text("1. a\n2. b\n3. (after 1) c\n4. (after 2, 3) d")
    assert spec is not None
    assert planning.critical_path(spec.steps, [10, 30, 5, 1]) == 41  # 1 → 2 → 4 beats 1 → 3 → 4


# -- running one ------------------------------------------------------------------------------------
@pytest.fixture
async def app(make_app: Any, repo: Path) -> Any:
    made: App = make_app(
        agents__writer=WRITER, routing__default_agent="writer", routing__categories={},
        projects={"api": {"path": str(repo)}}, default_project="api",
    )  # fmt: skip
    assert made.engine.acquire()
    await made.engine.start()
    yield made
    await made.engine.stop()


async def finished(app: App, plan_id: str, timeout: float = 40) -> Any:
    import asyncio

    for _ in range(int(timeout / 0.1)):
        plan = app.service.get_plan(plan_id)
        if plan.state in ("succeeded", "failed", "cancelled", "paused"):
            return plan
        await asyncio.sleep(0.1)
    raise AssertionError(f"{plan_id} still {app.service.get_plan(plan_id).state}")


@requires_tmux
async def test_a_written_plan_runs_in_parallel_hands_off_summaries_and_ends_on_one_branch(app: App, repo: Path) -> None:
    main = git(repo, "symbolic-ref", "--short", "HEAD")
    text = "1. write schema.txt for the users\n2. write api.txt on top of it\n3. (after 1) write ui.txt for it"
    spec = app.service.plan_for(text)
    assert spec is not None
    made = app.service.delegate_plan(spec, text)
    assert [s.state for s in made.steps] == [TaskState.WAITING] * 3 and made.route.count("∥") == 1
    plan = await finished(app, made.plan.id)
    assert plan.state == "succeeded", app.service.plan_card(plan.id)
    steps = app.service.plan_steps(plan.id)
    assert [s.state for s in steps] == [TaskState.SUCCEEDED] * 3 and len(steps) == 3  # none ran twice
    two, three = steps[1], steps[2]
    assert two.started_at is not None and three.started_at is not None
    assert abs(two.started_at - three.started_at) < 1.5  # both waited only for step 1
    told = (task_dir(app.home, two.id) / "task.md").read_text()
    assert "Step 1, write schema.txt for the users (writer" in told and "wrote schema.txt" in told
    assert "Files changed: schema.txt" in told and "[orchestra]" not in told  # the summary, not the log
    assert git(repo, "ls-tree", "--name-only", str(plan.branch)).split() == ["README.md", "api.txt", "schema.txt",
                                                                             "ui.txt"]  # fmt: skip
    assert git(repo, "ls-tree", "--name-only", main).split() == ["README.md"]  # main untouched
    said = [r.text for r in app.store.outbox_queue("console", task_id=plan.id)]
    assert any(s.startswith(f"✅ {plan.id} done: 3 steps") for s in said)
    assert not [r for r in app.store.outbox_queue("console") if r.task_id in {s.id for s in steps}]  # no per-step noise
    app.service.merge_branch(plan.id)
    assert sorted(p.name for p in repo.iterdir() if p.suffix == ".txt") == ["api.txt", "schema.txt", "ui.txt"]


@requires_tmux
async def test_a_failing_step_is_retried_with_its_error_then_the_plan_pauses_with_buttons(app: App) -> None:
    text = "1. write a.txt\n2. write b.txt but fail\n3. write c.txt"
    spec = app.service.plan_for(text)
    assert spec is not None
    made = app.service.delegate_plan(spec, text)
    plan = await finished(app, made.plan.id)
    assert plan.state == "paused" and "step 2" in plan.paused
    steps = app.service.plan_steps(plan.id)
    attempts = [s for s in steps if s.plan_step == 2]
    assert len(attempts) == 2 and all(s.state == TaskState.FAILED for s in attempts)
    assert "The previous attempt of this step" in app.store.task_text(attempts[1].id)
    assert steps[-1].state == TaskState.WAITING  # step 3 never started
    paused = [r for r in app.store.outbox_queue("console", task_id=plan.id) if "Retry the step" in r.text]
    assert paused and [b.action for row in paused[0].buttons for b in row] == ["plan_retry", "plan_skip", "plan_cancel"]

    chat = Commands(app.service, app.clock)
    tap = Inbound(chat=ChatRef("telegram", "111", private=True), user_id="111", user_name="@alice",
                  tap=Tap("plan_skip", f"{plan.id}.2", "9", paused[0].buttons))  # fmt: skip
    answers = chat.handle(tap)
    assert any(f"{plan.id}.2 skipped by @alice" in a.text for a in answers)
    plan = await finished(app, plan.id)
    assert plan.state == "succeeded" and plan.skipped == (2,)
    assert app.service.plan_steps(plan.id)[-1].state == TaskState.SUCCEEDED


@requires_tmux
async def test_a_restart_in_the_middle_of_a_plan_loses_nothing_and_runs_nothing_twice(
    make_app: Any, repo: Path
) -> None:
    slow = {**WRITER, "args": ["-c", "import time; time.sleep(1.5)\n" + _AGENT, "{task}"]}
    overrides: dict[str, Any] = {"agents__writer": slow, "routing__default_agent": "writer",
                                 "routing__categories": {}, "projects": {"api": {"path": str(repo)}},
                                 "default_project": "api"}  # fmt: skip
    first: App = make_app(**overrides)
    assert first.engine.acquire()
    await first.engine.start()
    text = "1. write one.txt\n2. write two.txt"
    spec = first.service.plan_for(text)
    assert spec is not None
    made = first.service.delegate_plan(spec, text)
    await first.engine.wait_finished(made.steps[0].id, timeout=30)
    await first.engine.stop()  # the bot goes down between step 1's end and step 2's
    first.close()
    again: App = make_app(**overrides)
    assert again.engine.acquire()
    await again.engine.start()
    try:
        plan = await finished(again, made.plan.id)
    finally:
        await again.engine.stop()
    assert plan.state == "succeeded"
    steps = again.service.plan_steps(plan.id)
    assert [(s.plan_step, s.state) for s in steps] == [(1, TaskState.SUCCEEDED), (2, TaskState.SUCCEEDED)]


def test_a_template_makes_the_plan_and_a_single_or_an_agent_does_not(make_app: Any, repo: Path) -> None:
    template = {"match": "(?i)^add .* feature", "steps": [
        {"title": "Design", "category": "architecture"}, {"title": "Build", "after": [1]},
        {"title": "Test it: {task}", "text": "Test {task}", "after": [2]}]}  # fmt: skip
    app: App = make_app(agents__writer=WRITER, plans={"templates": {"feature": template}})
    spec = app.service.plan_for("add the export feature")
    assert spec is not None and spec.source == "template feature"
    assert [s.text for s in spec.steps] == ["Design: add the export feature", "Build: add the export feature",
                                            "Test add the export feature"]  # fmt: skip
    assert app.service.plan_for("add the export feature", single=True) is None
    assert app.service.plan_for("@writer 1. a\n2. b") is None


def test_estimates_are_the_sum_of_costs_and_the_critical_path_of_durations(make_app: Any, repo: Path) -> None:
    app: App = make_app(agents__writer=WRITER, routing__default_agent="writer", routing__categories={})
    now = 1_800_000_000.0
    for n, (took, cost) in enumerate([(10, 0.2), (20, 0.4), (30, 0.6)]):  # writer/backend history: medians 20 s, $0.40
        task = app.store.create_task({"text": f"old {n}", "agent": "writer", "category": "backend",
                                      "state": "succeeded", "cwd": str(repo), "created_at": now})  # fmt: skip
        app.store.update_task(task.id, started_at=now, finished_at=now + took, cost_usd=cost)
        app.store.record_cost({"task_id": task.id, "ts": now, "agent": "writer", "category": "backend",
                               "cost_usd": cost, "source": "reported"})  # fmt: skip
    steps = [{"text": "write the api", "category": "backend"}, {"text": "write the db", "category": "backend",
             "after": [1]}, {"text": "write the rest", "category": "backend", "after": [1]}]  # fmt: skip
    made = app.service.delegate_plan(planning.from_data(steps, "plan.yaml"), "x", cwd=str(repo))
    assert made.estimate_usd == pytest.approx(1.2)  # three medians of $0.40
    assert made.estimate_s == pytest.approx(40) and made.serial_s == pytest.approx(60)  # 1 → 2 ∥ 3
    assert made.basis == "median of 9 similar runs (cost), 9 (time)"


_PLANNER = (
    "import json, sys; ask = sys.argv[1]\n"
    "if 'nonsense' in ask: print('I would rather not.'); sys.exit(0)\n"
    "steps = [{'title': 'API', 'text': 'write api.txt', 'category': 'backend'},"
    " {'title': 'UI', 'text': 'write ui.txt', 'category': 'frontend'},"
    " {'title': 'Tests', 'text': 'write tests.txt', 'category': 'tests', 'after': [1, 2]}]\n"
    "print(json.dumps({'orchestra': {'final_text': json.dumps({'steps': steps})}}))"
)


@requires_tmux
async def test_a_planners_plan_runs_and_a_reply_that_is_no_plan_runs_nothing(make_app: Any, repo: Path) -> None:
    planner = {"kind": "command", "command": sys.executable, "args": ["-c", _PLANNER, "{task}"]}
    app: App = make_app(
        agents__writer=WRITER, agents__planner=planner, routing__default_agent="writer", routing__categories={},
        plans={"planner": "planner"}, projects={"api": {"path": str(repo)}}, default_project="api",
    )  # fmt: skip
    assert app.engine.acquire()
    await app.engine.start()
    try:
        plan = app.service.delegate_planned("Add a settings page")
        assert plan.state == "planning"
        plan = await finished(app, plan.id)
        assert plan.state == "succeeded", app.service.plan_card(plan.id)
        steps = app.service.plan_steps(plan.id)
        assert [(s.plan_step, s.step_title, s.category) for s in steps[1:]] == [
            (1, "API", "backend"), (2, "UI", "frontend"), (3, "Tests", "tests")]  # fmt: skip
        assert "Add a settings page" in app.store.task_text(steps[0].id)  # the planner was asked about it
        assert sorted(git(repo, "ls-tree", "--name-only", str(plan.branch)).split()) == [
            "README.md", "api.txt", "tests.txt", "ui.txt"]  # fmt: skip

        bad = app.service.delegate_planned("Some nonsense request")
        bad = await finished(app, bad.id)
        assert bad.state == "failed" and "holds no JSON plan" in bad.paused
        assert [s.plan_step for s in app.service.plan_steps(bad.id)] == [0]  # nothing else ran
        said = [r.text for r in app.store.outbox_queue("console", task_id=bad.id)]
        assert any("has no plan to run: the planner's answer holds no JSON plan. Nothing ran." in s for s in said)
    finally:
        await app.engine.stop()


@requires_tmux
async def test_a_plan_from_chat_waits_for_approval_and_its_card_follows_it(make_app: Any, repo: Path) -> None:
    app: App = make_app(
        agents__writer=WRITER, routing__default_agent="writer", routing__categories={},
        policy__approval_for=["devops"], projects={"api": {"path": str(repo)}}, default_project="api",
    )  # fmt: skip
    assert app.engine.acquire()
    await app.engine.start()
    try:
        chat = Commands(app.service, app.clock)
        say = Inbound(chat=ChatRef("telegram", "111", private=True), user_id="111", user_name="@alice",
                      text="Ship it\n1. write a.txt\n2. write b.txt", message_id="5", event_id="e5")  # fmt: skip
        [answer] = chat.handle(say)
        assert answer.text.startswith("🗺 p1: 2 steps") and "📍 Routed to: writer" in answer.text
        assert "🔐 the text reads as a list of steps or as one request" in answer.text
        plan = app.service.get_plan("p1")
        assert plan.state == "awaiting_approval" and plan.text == "Ship it"
        [card] = app.store.outbox_queue("console", task_id="p1")
        assert [b.action for row in card.buttons for b in row] == ["plan_approve", "plan_edit", "plan_cancel"]
        assert chat.handle(say) == [answer] or app.store.plans(limit=10)[0].id == "p1"  # the same update: no new plan
        tap = Inbound(chat=say.chat, user_id="111", user_name="@alice",
                      tap=Tap("plan_approve", "p1", "7", card.buttons))  # fmt: skip
        assert any("p1 approved by @alice" in a.text for a in chat.handle(tap))
        plan = await finished(app, "p1")
        assert plan.state == "succeeded"
        edits = [r.text for r in app.store.outbox_queue("console") if r.kind == "progress" and r.task_id == "p1"]
        assert edits and edits[-1].startswith("🗺 p1 · 2/2 steps · 100%")
        assert len(app.store.plans(limit=10)) == 1
    finally:
        await app.engine.stop()


def test_the_digest_says_how_far_the_estimates_were_off(make_app: Any, repo: Path) -> None:
    from core.digest import build_digest

    app: App = make_app()
    now = app.clock.now()
    for n, (estimate, cost) in enumerate([(1.0, 0.5), (0.4, 0.5)]):  # estimated $1.40, cost $1.00
        task = app.store.create_task({"text": f"t {n}", "agent": "standin", "category": "backend",
                                      "state": "succeeded", "cwd": str(repo), "created_at": now - 60})  # fmt: skip
        app.store.update_task(task.id, estimate_usd=estimate, cost_usd=cost, started_at=now - 60, finished_at=now - 1)
    assert "Estimates were 40% high this week (2 tasks)" in build_digest(app.store, app.config, app.clock).text


@requires_tmux
async def test_edit_replaces_a_held_plan_with_the_list_sent_in_reply(make_app: Any, repo: Path) -> None:
    from core.messages import Outbound

    app: App = make_app(
        agents__writer=WRITER, routing__default_agent="writer", routing__categories={},
        projects={"api": {"path": str(repo)}}, default_project="api",
    )  # fmt: skip
    assert app.engine.acquire()
    await app.engine.start()
    try:
        chat = Commands(app.service, app.clock)
        where = ChatRef("telegram", "111", private=True)
        first = Inbound(chat=where, user_id="111", user_name="@alice", text="Ship it\n1. write a.txt\n2. write b.txt",
                        message_id="5", event_id="e5")  # fmt: skip
        chat.handle(first)
        [card] = app.store.outbox_queue("console", task_id="p1")
        app.store.enqueue("telegram", Outbound(card.text, buttons=card.buttons, task_id="p1"), chat_id="111",
                          dedupe_key="card-p1", ts=1.0)  # fmt: skip
        row = app.store.outbox_queue("telegram")[-1]
        app.store.mark_delivered(row.id, 2.0, "70")  # the card as Telegram shows it: message 70
        tap = Inbound(chat=where, user_id="111", user_name="@alice", tap=Tap("plan_edit", "p1", "70", card.buttons))
        assert any("Reply to this message with p1 as it should be" in a.text for a in chat.handle(tap))
        edited = Inbound(chat=where, user_id="111", user_name="@alice", text="1. write c.txt\n2. write d.txt",
                         message_id="8", event_id="e8", replied_to="70")  # fmt: skip
        [said] = chat.handle(edited)
        assert said.text.startswith("✏️ p1 is replaced by p2: 2 steps")
        assert app.service.get_plan("p1").state == "cancelled"
        plan = await finished(app, "p2")
        assert plan.state == "succeeded" and plan.text == "Ship it"
        assert sorted(git(repo, "ls-tree", "--name-only", str(plan.branch)).split()) == ["README.md", "c.txt", "d.txt"]
    finally:
        await app.engine.stop()


@requires_tmux
async def test_the_cli_shows_retries_and_cancels_a_plan(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import json

    from bot.cli import tasks

    text = "1. write a.txt but fail\n2. write b.txt"
    spec = app.service.plan_for(text)
    assert spec is not None
    plan = await finished(app, app.service.delegate_plan(spec, text).plan.id)
    assert plan.state == "paused"
    capsys.readouterr()
    assert tasks.show(app, argparse.Namespace(id=plan.id, json=True)) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "paused" and [s["state"] for s in shown["steps"]] == ["failed", "waiting"]
    assert shown["steps"][0]["attempts"] == 2 and shown["steps"][0]["ref"] == f"{plan.id}.1"
    assert tasks.status(app, argparse.Namespace(json=False, recent=5)) == 0
    assert f"{plan.id} paused · 2 steps" in capsys.readouterr().out
    assert tasks.retry(app, argparse.Namespace(id=f"{plan.id}.1", feedback=None, wait=False, json=False)) == 0
    assert f"{plan.id}.1 runs again as" in capsys.readouterr().out
    plan = await finished(app, plan.id)
    assert plan.state == "paused" and len([s for s in app.service.plan_steps(plan.id) if s.plan_step == 1]) == 3
    assert tasks.cancel(app, argparse.Namespace(id=plan.id, json=False)) == 0
    assert app.service.get_plan(plan.id).state == "cancelled"
    assert {s.state for s in app.service.plan_steps(plan.id)} == {TaskState.FAILED, TaskState.CANCELLED}


@requires_tmux
async def test_two_steps_writing_one_file_pause_the_plan_on_the_conflict_naming_it(app: App, repo: Path) -> None:
    steps = [{"text": "write base.txt"}, {"text": "write same.txt one way", "after": [1]},
             {"text": "write same.txt another way", "after": [1]}]  # fmt: skip
    made = app.service.delegate_plan(planning.from_data(steps, "plan.yaml"), "conflicting")
    plan = await finished(app, made.plan.id)
    assert plan.state == "paused" and "same.txt" in plan.paused and "nothing was merged" in plan.paused
    assert git(repo, "status", "--porcelain") == ""  # the main checkout is as it was


@requires_tmux
async def test_a_step_that_failed_twice_runs_on_its_categorys_fallback(make_app: Any, repo: Path) -> None:
    rescue = {"kind": "command", "command": sys.executable, "args": ["-c", "print('rescued')", "{task}"]}
    app: App = make_app(
        agents__writer=WRITER, agents__rescue=rescue, routing__default_agent="writer", routing__categories={},
        plans={"fallback": {"backend": "rescue"}}, projects={"api": {"path": str(repo)}}, default_project="api",
    )  # fmt: skip
    assert app.engine.acquire()
    await app.engine.start()
    try:
        steps = [{"text": "write a.txt but fail", "category": "backend"}]
        plan = await finished(app, app.service.delegate_plan(planning.from_data(steps, "p.yaml"), "x").plan.id)
    finally:
        await app.engine.stop()
    attempts = app.service.plan_steps(plan.id)
    assert [(t.agent, t.state) for t in attempts] == [
        ("writer", TaskState.FAILED), ("writer", TaskState.FAILED), ("rescue", TaskState.SUCCEEDED)]  # fmt: skip
    assert plan.state == "succeeded"
