"""Projects: bots.yaml's ``projects:``, how a task picks one (``#api``, ``--project``, ``/project``, a
bound chat, ``default_project``), and ``/projects`` / ``orchestra projects``.

A real service behind the chat commands (real SQLite, real tmux on a private socket, the stand-in
agent), the real CLI in a subprocess, and the real bot process against the fake Bot API.
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import App
from bot.telegram_messages import to_inbound
from core.commands import Commands
from core.config import parse_config
from core.errors import ConfigError
from core.messages import ChatRef, Inbound, Outbound
from tests.conftest import orchestra, requires_tmux
from tests.fakes.telegram import FakeTelegram
from tests.test_telegram_e2e import BotProcess, fake, start_bot  # noqa: F401 (fixtures)

ALICE = "111"
DM = ChatRef("telegram", ALICE, private=True)


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    for cmd in (["init", "-q", "-b", "trunk"], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"]):
        subprocess.run(["git", "-C", str(path), *cmd], check=True)
    (path / "README.md").write_text("# api\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "init"], check=True)
    return path


@pytest.fixture
def api_repo(tmp_path: Path) -> Path:
    return git_repo(tmp_path / "src" / "api")


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "web"
    path.mkdir(parents=True)
    return path


def projects_of(api_repo: Path, web_dir: Path, **api: Any) -> dict[str, Any]:
    return {
        "api": {"path": str(api_repo), "chats": ["slack:C123", "telegram:-1005/42"], **api},
        "web": {"path": str(web_dir), "base": "main", "isolation": "none"},
    }


def say(text: str, *, chat: ChatRef = DM, n: int = 1, topic: str = "") -> Inbound:
    return Inbound(
        chat=chat, user_id=ALICE, user_name="@alice", text=text, message_id=str(n), event_id=f"e{n}", topic=topic
    )


def only(answers: list[Outbound]) -> Outbound:
    assert len(answers) == 1, answers
    return answers[0]


@pytest.fixture
async def projects_app(make_app: Any, repo: Path, api_repo: Path, web_dir: Path) -> AsyncIterator[App]:
    app: App = make_app(workspace=str(repo), projects=projects_of(api_repo, web_dir), policy__approval_for=["devops"])
    assert app.engine.acquire()
    await app.engine.start()
    yield app
    await app.engine.stop()


# -- bots.yaml ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"projects": {"api": {"path": "/x", "colour": "red"}}}, "projects.api.colour: unknown key"),
        ({"projects": {"api": {"base": "main"}}}, "projects.api.path: "),
        ({"projects": {"api": {"path": "/x"}}, "default_project": "nope"}, "default_project: 'nope' is not a project"),
        ({"projects": {"api": {"path": "/x", "agent": "ghost"}}}, "projects.api.agent: 'ghost' is not a configured"),
        ({"projects": {"api": {"path": "/x", "isolation": "copy"}}}, "projects.api.isolation: "),
        ({"projects": {"api": {"path": "/x", "chats": ["irc:#x"]}}}, "projects.api.chats: 'irc:#x' is not telegram:"),
        ({"projects": {"API": {"path": "/x"}}}, "projects.API: project names are lowercase"),
        ({"projects": {"a": {"path": "/x", "pull_requests": {"repo": "nope"}}}}, "pull_requests.repo: "),
        (
            {"projects": {"a": {"path": "/x", "chats": ["slack:C1"]}, "b": {"path": "/y", "chats": ["slack:C1"]}}},
            "projects.b.chats: slack:C1 is already bound to project a",
        ),
    ],
)
def test_bad_projects_are_one_line_naming_the_key(
    config_data: dict[str, Any], edit: dict[str, Any], expected: str
) -> None:
    data = copy.deepcopy(config_data)
    data.update(edit)
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert expected in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_a_full_project_is_kept_and_the_shipped_config_has_none(config_data: dict[str, Any]) -> None:
    shipped = parse_config(copy.deepcopy(config_data))
    assert shipped.projects == {} and shipped.default_project is None
    data = copy.deepcopy(config_data)
    data["projects"] = {
        "api": {
            "path": "~/src/api", "base": "main", "remote": "origin", "agent": "echo", "categories": {"docs": "standin"},
            "isolation": "none", "pull_requests": {"provider": "github", "repo": "acme/api", "token_env": "GH_TOK",
                                                   "api_base_url": "http://127.0.0.1:9"},
        }
    }  # fmt: skip
    data["default_project"] = "api"
    config = parse_config(data)
    api = config.projects["api"]
    assert api.directory() == Path.home() / "src" / "api" and api.isolation == "none"
    assert api.pull_requests is not None and api.pull_requests.repo == "acme/api"
    assert "GH_TOK" in config.secret_sources(), "the token's variable is redacted like every secret"


# -- choosing a project from a chat ---------------------------------------------------------------
@requires_tmux
async def test_hash_project_runs_in_its_folder_with_the_prefix_stripped(projects_app: App, api_repo: Path) -> None:
    commands = Commands(projects_app.service, projects_app.clock)
    ack = only(commands.handle(say("#api Create User model")))
    task = projects_app.store.get_task("t1")
    assert task.project == "api" and task.cwd == str(api_repo.resolve())
    assert task.text == "Create User model"
    assert ack.text.split(" ", 1)[1].startswith("t1 · api · standin · backend\nCreate User model")
    done = await projects_app.engine.wait_finished("t1", timeout=30)
    # A project's tasks run in their own worktree and branch (isolation: worktree, the default).
    assert done.worktree and (Path(done.worktree) / "user_model.py").exists()
    assert done.branch and done.branch.startswith("orchestra/t1-") and not (api_repo / "user_model.py").exists()
    assert done.summary["project"] == "api"
    # A reply to the result (a follow-up) stays in the project.
    follow = projects_app.service.retry("t1", feedback="also add a test")
    assert follow.task.project == "api" and follow.task.cwd == str(api_repo.resolve())


@requires_tmux
async def test_an_unknown_project_is_one_line_and_creates_nothing(projects_app: App) -> None:
    commands = Commands(projects_app.service, projects_app.clock)
    answer = only(commands.handle(say("#nope fix the login bug")))
    assert answer.text == "⚠️ unknown project #nope; projects: #api, #web"
    assert only(commands.handle(say("/project nope", n=2))).text.startswith("⚠️ unknown project 'nope'")
    assert projects_app.store.list_tasks(limit=10) == []
    # Without the hash shape a # stays task text: "#12" and "# Heading" are not projects.
    only(commands.handle(say("#12 is flaky, look at it", n=3)))
    assert projects_app.store.get_task("t1").project is None


@requires_tmux
async def test_a_chat_s_project_then_a_plain_message(projects_app: App, web_dir: Path, repo: Path) -> None:
    commands = Commands(projects_app.service, projects_app.clock)
    assert "no project; tasks run in bots.yaml's workspace" in only(commands.handle(say("/project"))).text
    set_it = only(commands.handle(say("/project web", n=2)))
    assert set_it.text == "📁 Tasks from this chat now go to #web (set by @alice)."
    assert "go to #web (set with /project)" in only(commands.handle(say("/project", n=3))).text
    only(commands.handle(say("Create User model", n=4)))
    assert projects_app.store.get_task("t1").cwd == str(web_dir.resolve())
    only(commands.handle(say("#api write the docs", n=5)))  # a #name still wins over the chat's default
    assert projects_app.store.get_task("t2").project == "api"
    assert "cleared" in only(commands.handle(say("/project none", n=6))).text
    only(commands.handle(say("Create Post model", n=7)))
    assert projects_app.store.get_task("t3").project is None and projects_app.store.get_task("t3").cwd == str(repo)
    rows = projects_app.store.audit_search(action="project", limit=5)
    assert [row["detail"] for row in rows] == ["telegram:111 -> none", "telegram:111 -> web"]


@requires_tmux
async def test_a_bound_slack_channel_and_telegram_topic_pick_the_project(projects_app: App, api_repo: Path) -> None:
    commands = Commands(projects_app.service, projects_app.clock)
    only(commands.handle(say("Create User model", chat=ChatRef("slack", "C123", private=False))))
    assert projects_app.store.get_task("t1").project == "api"
    only(commands.handle(say("Create User model", chat=ChatRef("slack", "C999", private=False), n=2)))
    assert projects_app.store.get_task("t2").project is None, "an unbound channel: as before"
    # A forum topic, as Telegram sends it: the topic's binding applies, not the rest of the group.
    update = {"update_id": 7, "message": {
        "message_id": 70, "date": 1_800_000_000, "chat": {"id": -1005, "type": "supergroup", "is_forum": True},
        "from": {"id": 111, "is_bot": False, "first_name": "Alice"}, "text": "/delegate Create User model",
        "message_thread_id": 42, "is_topic_message": True,
    }}  # fmt: skip
    from telegram import Bot, Update

    inbound = to_inbound(Update.de_json(update, Bot("1:x")), "orch_bot", 999)
    assert inbound is not None and inbound.topic == "42"
    only(commands.handle(inbound))
    assert projects_app.store.get_task("t3").project == "api"
    assert "go to #api (bound in bots.yaml)" in only(commands.handle(say("/project", chat=ChatRef("slack", "C123"))))\
        .text  # fmt: skip


@requires_tmux
async def test_projects_lists_folders_branches_and_what_runs(
    make_app: Any, repo: Path, api_repo: Path, web_dir: Path, tmp_path: Path
) -> None:
    projects = {**projects_of(api_repo, web_dir), "gone": {"path": str(tmp_path / "nowhere")}}
    slow = {"ORCHESTRA_STANDIN_DELAY": "20"}
    app: App = make_app(workspace=str(repo), projects=projects, default_project="web",
                        policy__approval_for=["devops"], agents__standin__env=slow)  # fmt: skip
    assert app.engine.acquire()
    await app.engine.start()
    try:
        commands = Commands(app.service, app.clock)
        only(commands.handle(say("#api Create User model")))
        only(commands.handle(say("#api set up the CI pipeline with GitHub Actions", n=2)))  # waits for approval
        for _ in range(400):
            if app.store.get_task("t1").state.value == "running":
                break
            await asyncio.sleep(0.05)
        listing = only(commands.handle(say("/projects", n=3))).text
        lines = listing.splitlines()
        assert lines[0] == "📁 Projects (3):"
        assert lines[1] == f"#api · {api_repo} · branch trunk · 1 running, 1 queued", lines
        assert lines[2] == f"#gone · {tmp_path / 'nowhere'} · ⚠️ missing · idle"  # in bots.yaml's order
        assert lines[3] == f"#web (default) · {web_dir} · not a git repository · idle"
        refused = only(commands.handle(say("#gone fix it", n=4))).text
        assert refused == f"⚠️ project gone: {tmp_path / 'nowhere'} does not exist (projects.gone.path in bots.yaml)"
        assert not (tmp_path / "nowhere").exists() and len(app.store.list_tasks(limit=10)) == 2
        only(commands.handle(say("Create Post model", n=5)))
        assert app.store.get_task("t3").project == "web", "default_project catches a task naming none"
        app.service.cancel("t1")
        app.service.cancel("t3")
    finally:
        await app.engine.stop()


# -- the CLI ---------------------------------------------------------------------------------------
@pytest.fixture
def cfg(tmp_path: Path, config_data: dict[str, Any], api_repo: Path, web_dir: Path) -> Path:
    data = copy.deepcopy(config_data)
    data["projects"] = projects_of(api_repo, web_dir, agent="echo")
    data["policy"]["approval_for"] = ["devops"]
    path = tmp_path / "bots.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(cfg: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return orchestra(*args, config=cfg, env={"ORCHESTRA_HOME": str(home)})


@requires_tmux
def test_the_cli_takes_hash_and_project_and_lists_projects(
    cfg: Path, home: Path, api_repo: Path, web_dir: Path
) -> None:
    out = run(cfg, home, "delegate", "--task", "#api hello from the api", "--wait")
    assert out.returncode == 0, out.stderr
    assert "t1 → api · echo (backend)" in out.stdout, "the project's agent"
    shown = json.loads(run(cfg, home, "show", "t1", "--json").stdout)
    assert shown["project"] == "api" and shown["cwd"] == str(api_repo.resolve())
    assert shown["text"] == "hello from the api"
    assert "hello from the api" in run(cfg, home, "logs", "t1").stdout, "the agent got the text without #api"
    out = run(cfg, home, "delegate", "--task", "@standin set up the CI pipeline", "--project", "web")
    assert out.returncode == 0, out.stderr
    shown = json.loads(run(cfg, home, "show", "t2", "--json").stdout)
    assert shown["project"] == "web" and shown["agent"] == "standin" and shown["state"] == "awaiting_approval"
    assert "project web, cwd " in run(cfg, home, "show", "t2").stdout
    assert "#web set up the CI pipeline" in run(cfg, home, "status").stdout
    listing = run(cfg, home, "projects").stdout.splitlines()
    assert listing[0].split() == ["#api", str(api_repo), "·", "branch", "trunk", "·", "idle"]
    assert listing[1].split() == ["#web", str(web_dir), "·", "not", "a", "git", "repository", "·", "0", "running,",
                                  "1", "queued"]  # fmt: skip
    rows = json.loads(run(cfg, home, "projects", "--json").stdout)
    assert [(r["name"], r["git"], r["queued"]) for r in rows] == [("api", True, 0), ("web", False, 1)]
    bad = run(cfg, home, "delegate", "--task", "#nope fix it")
    assert bad.returncode != 0 and bad.stderr.strip() == "orchestra: unknown project #nope; projects: #api, #web"
    bad = run(cfg, home, "delegate", "--task", "fix it", "--project", "nope")
    assert bad.returncode != 0 and "unknown project 'nope'" in bad.stderr and len(bad.stderr.splitlines()) == 1
    assert len(json.loads(run(cfg, home, "status", "--json").stdout)["active"]) == 1


# -- the bot process against the fake Bot API ------------------------------------------------------
@requires_tmux
def test_hash_project_from_the_fake_telegram(
    fake: FakeTelegram,  # noqa: F811
    start_bot: Callable[..., BotProcess],  # noqa: F811
    api_repo: Path,
    web_dir: Path,
    repo: Path,
) -> None:
    bot = start_bot(projects=projects_of(api_repo, web_dir))
    fake.say("#api Create User model")
    [done] = fake.wait_for(lambda: fake.find(111, "Tokens:"), what="the completion")
    assert done.text.startswith("✅ t1 succeeded · api · standin · backend"), done.text
    # In its own worktree and branch: neither the project's checkout nor the workspace is touched.
    assert "Branch: orchestra/t1-" in done.text, done.text
    assert not (api_repo / "user_model.py").exists() and not (repo / "user_model.py").exists()
    fake.say("#nope Create User model")
    [refused] = fake.wait_for(lambda: fake.find(111, "unknown project"), what="the refusal")
    assert refused.text == "⚠️ unknown project #nope; projects: #api, #web"
    fake.say("/projects")
    [listing] = fake.wait_for(lambda: fake.find(111, "Projects (2)"), what="the projects")
    assert f"#api · {api_repo} · branch trunk · idle" in listing.text
    assert bot.stop() == 0


async def test_a_project_s_isolation_and_base_decide_its_tasks_worktree(projects_app: App) -> None:
    """``api`` (isolation: worktree, the default) gets a worktree cut from its base; ``web``
    (isolation: none) runs in its folder; a task of no project goes by ``limits.isolation`` (none)."""
    dispatcher = projects_app.engine.dispatcher
    store = projects_app.store
    now = projects_app.clock.now()
    done = {"text": "x", "agent": "standin", "category": "backend", "state": "succeeded", "created_at": now}
    api = store.create_task({**done, "cwd": "/r", "project": "api"})
    web = store.create_task({**done, "cwd": "/w", "project": "web"})
    plain = store.create_task({**done, "cwd": "/p"})
    isolation = dispatcher._isolation(api)
    assert isolation is not None and (isolation.owner, isolation.base) == (api.id, None)
    assert dispatcher._isolation(web) is None
    assert dispatcher._isolation(plain) is None
