"""The end of a task on its own branch: Diff, Merge, Discard (and their buttons), on real git, real
tmux, the real engine and runner, and the chat layer a tap goes through."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from core.branches import MergeConflict
from core.commands import Commands
from core.errors import InvalidTransition, WorktreeError
from core.messages import ChatRef, Inbound, Outbound, OutKind, Tap, finished_keyboard
from core.models import TaskState
from tests.conftest import requires_tmux

pytestmark = requires_tmux

# "line N: TEXT" in the task puts TEXT on line N of app.py (the same file for every task).
_EDIT = (
    "import re, sys; n, text = re.match(r'line (\\d+): (.*)', sys.argv[1]).groups(); "
    "lines = open('app.py').read().splitlines(); lines[int(n) - 1] = text; "
    "open('app.py', 'w').write('\\n'.join(lines) + '\\n'); print('edited line', n)"
)
EDITOR = {"kind": "command", "command": sys.executable, "args": ["-c", _EDIT, "{task}"], "max_concurrent": 4}
ALICE = "111"
CHAT = ChatRef("telegram", ALICE, private=True)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def code_repo(repo: Path) -> Path:
    """The scratch repository with a 20-line app.py: tasks edit its lines."""
    (repo / "app.py").write_text("".join(f"value_{i} = {i}\n" for i in range(1, 21)))
    git(repo, "add", "app.py")
    git(repo, "commit", "-qm", "app.py")
    return repo


@pytest.fixture
async def app(make_app: Any, code_repo: Path) -> Any:
    made: App = make_app(agents__editor=EDITOR, projects={"api": {"path": str(code_repo)}}, default_project="api")
    assert made.engine.acquire()
    await made.engine.start()
    yield made
    await made.engine.stop()


async def run_tasks(app: App, *texts: str) -> list[Any]:
    ids = [app.service.delegate(text, agent="editor").task.id for text in texts]
    return [await app.engine.wait_finished(i, timeout=30) for i in ids]


def tap(action: str, task_id: str, message_id: str = "50", keyboard: Any = ()) -> Inbound:
    return Inbound(chat=CHAT, user_id=ALICE, user_name="@alice", tap=Tap(action, task_id, message_id, keyboard))


def toasts(answers: list[Outbound]) -> list[str]:
    return [a.text for a in answers if a.kind == OutKind.TOAST]


async def test_three_tasks_on_one_file_two_merge_the_third_conflicts_and_the_repository_stays_clean(
    app: App, code_repo: Path
) -> None:
    main = git(code_repo, "symbolic-ref", "--short", "HEAD")
    start = git(code_repo, "rev-parse", "HEAD")
    first, second, third = await run_tasks(app, "line 2: alpha = 2", "line 15: beta = 15", "line 2: gamma = 2")
    assert {t.state for t in (first, second, third)} == {TaskState.SUCCEEDED}
    for task, line in ((first, "alpha = 2"), (second, "beta = 15"), (third, "gamma = 2")):
        assert git(code_repo, "diff", "--name-only", f"{main}...{task.branch}") == "app.py"  # only its own change
        assert line in git(code_repo, "show", f"{task.branch}:app.py")
    assert git(code_repo, "rev-parse", "HEAD") == start and git(code_repo, "status", "--porcelain") == ""

    completion = app.store.outbox_queue("console", task_id=first.id)[0]
    assert [b.action for row in completion.buttons for b in row][:3] == ["merge", "diff", "discard"]

    _, merged = app.service.merge_branch(first.id)
    assert merged.fast_forward and merged.files == 1
    _, merged = app.service.merge_branch(second.id)
    assert not merged.fast_forward  # main moved: a merge commit
    with pytest.raises(MergeConflict) as conflict:
        app.service.merge_branch(third.id)
    assert conflict.value.files == ["app.py"] and "app.py" in str(conflict.value)

    text = (code_repo / "app.py").read_text()
    assert "alpha = 2" in text and "beta = 15" in text and "gamma" not in text
    assert git(code_repo, "status", "--porcelain") == ""  # clean: no half-made merge, no MERGE_HEAD
    assert not (code_repo / ".git" / "MERGE_HEAD").exists()
    assert git(code_repo, "rev-list", "--count", "HEAD") == "5"  # init, app.py, alpha, beta, the merge
    branches = git(code_repo, "branch", "--format=%(refname:short)").splitlines()
    assert first.branch not in branches and second.branch not in branches and third.branch in branches
    assert not Path(str(first.worktree)).exists() and Path(str(third.worktree)).is_dir()
    assert app.service.get(first.id).landed == "merged" and app.service.get(third.id).landed is None
    with pytest.raises(InvalidTransition, match="already merged by local"):
        app.service.merge_branch(first.id)
    said = [row.text for row in app.store.outbox_queue("console", task_id=first.id)]
    assert any(f"{first.id} merged into {main} (fast-forward, 1 file)" in s for s in said)
    assert [r["action"] for r in app.service.audit_log(first.id)].count("merge") == 1


async def test_a_merge_into_a_dirty_main_checkout_is_refused_and_changes_nothing(app: App, code_repo: Path) -> None:
    (task,) = await run_tasks(app, "line 3: mine = 3")
    (code_repo / "app.py").write_text("my unsaved edit\n")
    before = git(code_repo, "rev-parse", "HEAD")
    with pytest.raises(WorktreeError, match=r"uncommitted changes \(app\.py…\); commit or stash them"):
        app.service.merge_branch(task.id)
    assert git(code_repo, "rev-parse", "HEAD") == before
    assert (code_repo / "app.py").read_text() == "my unsaved edit\n"
    assert app.service.get(task.id).landed is None  # still there to merge once the edit is put away
    git(code_repo, "checkout", "--", "app.py")
    app.service.merge_branch(task.id)
    assert "mine = 3" in (code_repo / "app.py").read_text()


async def test_a_base_not_checked_out_moves_without_touching_any_checkout(app: App, code_repo: Path) -> None:
    (task,) = await run_tasks(app, "line 4: four = 4")
    main = git(code_repo, "symbolic-ref", "--short", "HEAD")
    git(code_repo, "switch", "-q", "-c", "elsewhere")
    app.service.merge_branch(task.id)
    assert "four = 4" in git(code_repo, "show", f"{main}:app.py")
    assert "four = 4" not in (code_repo / "app.py").read_text()  # the checkout on `elsewhere` is as it was
    assert git(code_repo, "status", "--porcelain") == ""


async def test_diff_gives_the_stat_and_the_patch_against_the_base(app: App, code_repo: Path) -> None:
    (task,) = await run_tasks(app, "line 5: five = 'five'")
    got = app.service.branch_diff(task.id)
    assert got.diff.files == 1 and "app.py" in got.diff.stat and "1 file changed" in got.diff.stat
    patch = got.patch_path.read_text()
    assert "-value_5 = 5" in patch and "+five = 'five'" in patch
    answers = Commands(app.service, app.clock).handle(tap("diff", task.id))
    document = next(a for a in answers if a.attachment is not None)
    assert document.attachment is not None and document.attachment.filename == f"{task.id}.patch"
    assert "1 file" in document.text and "app.py" in document.code


async def test_taps_merge_and_discard_after_a_restart_of_the_bot(app: App, make_app: Any, code_repo: Path) -> None:
    kept, dropped = await run_tasks(app, "line 6: six = 6", "line 7: seven = 7")
    await app.engine.stop()
    app.close()
    # A new process: nothing but the store and git tell it about the two branches.
    again: App = make_app(agents__editor=EDITOR, projects={"api": {"path": str(code_repo)}}, default_project="api")
    commands = Commands(again.service, again.clock)
    keyboard = finished_keyboard(kept.id, TaskState.SUCCEEDED, branch=True)  # as a chat shows it
    answers = commands.handle(tap("merge", kept.id, keyboard=keyboard))
    assert toasts(answers)[0].startswith(f"🔀 {kept.id} merged into")
    edit = next(a for a in answers if a.kind == OutKind.EDIT)
    assert [b.action for row in edit.buttons for b in row] == ["log", "retry"]  # merge, diff, discard gone
    assert "six = 6" in (code_repo / "app.py").read_text()

    question = commands.handle(tap("discard", dropped.id))
    ask = next(a for a in question if a.buttons)
    assert "deletes its worktree and the branch" in ask.text
    assert [b.action for row in ask.buttons for b in row] == ["discard_yes", "discard_no"]
    assert git(code_repo, "branch", "--list", str(dropped.branch))  # nothing removed before the second tap
    done = commands.handle(tap("discard_yes", dropped.id, message_id="51"))
    assert toasts(done) == [f"🗑 {dropped.id} discarded"]
    assert not git(code_repo, "branch", "--list", str(dropped.branch))
    assert not Path(str(dropped.worktree)).exists()
    twice = commands.handle(tap("discard_yes", dropped.id, message_id="51"))
    assert "already discarded by @alice" in toasts(twice)[0]


async def test_a_review_gate_is_decided_by_merge_and_discard(make_app: Any, code_repo: Path) -> None:
    app: App = make_app(
        agents__editor=EDITOR, projects={"api": {"path": str(code_repo)}}, default_project="api",
        policy__review_for=["backend"],
    )  # fmt: skip
    assert app.engine.acquire()
    await app.engine.start()
    try:
        merged, discarded = await run_tasks(app, "line 8: eight = 8", "line 9: nine = 9")
    finally:
        await app.engine.stop()
    assert merged.state == discarded.state == TaskState.NEEDS_REVIEW
    review = app.store.outbox_queue("console", task_id=merged.id)[0]
    assert [b.action for row in review.buttons for b in row][:2] == ["merge", "diff"]
    assert f"Review: orchestra merge {merged.id} | orchestra discard {merged.id}" in review.text
    app.service.merge_branch(merged.id)
    app.service.discard_branch(discarded.id)
    assert app.service.get(merged.id).state == TaskState.APPROVED
    assert app.service.get(discarded.id).state == TaskState.REJECTED


async def test_a_task_without_a_worktree_says_there_is_no_branch(make_app: Any, code_repo: Path) -> None:
    app: App = make_app(agents__editor=EDITOR, projects={"api": {"path": str(code_repo), "isolation": "none"}})
    assert app.engine.acquire()
    await app.engine.start()
    try:
        task = app.service.delegate("#api line 1: one = 1", agent="editor").task
        await app.engine.wait_finished(task.id, timeout=30)
    finally:
        await app.engine.stop()
    with pytest.raises(InvalidTransition, match="without a worktree: there is no branch to merge"):
        app.service.merge_branch(task.id)
    completion = app.store.outbox_queue("console", task_id=task.id)[0]
    assert "merge" not in [b.action for row in completion.buttons for b in row]


async def test_cli_diff_merge_and_discard(app: App, code_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import branches

    one, two = await run_tasks(app, "line 10: ten = 10", "line 11: eleven = 11")
    assert branches.diff(app, argparse.Namespace(id=one.id, json=False, patch=False)) == 0
    assert "app.py" in capsys.readouterr().out
    assert branches.merge(app, argparse.Namespace(id=one.id, json=False)) == 0
    assert "fast-forward" in capsys.readouterr().out
    with pytest.raises(Exception, match="pass --yes to confirm"):
        branches.discard(app, argparse.Namespace(id=two.id, yes=False))
    assert branches.discard(app, argparse.Namespace(id=two.id, yes=True)) == 0
    assert not git(code_repo, "branch", "--list", str(two.branch))


async def test_a_merge_waits_while_a_retry_runs_on_the_branch(app: App, code_repo: Path) -> None:
    (task,) = await run_tasks(app, "line 12: twelve = 12")
    slow = {**EDITOR, "args": ["-c", "import time; time.sleep(3)", "{task}"]}
    app.config.agents["slow"] = type(app.config.agents["editor"]).model_validate(slow)
    retry = app.service.delegate("more", agent="slow", parent=task).task
    for _ in range(200):  # bounded: 10 s at most
        if app.service.get(retry.id).state == TaskState.RUNNING:
            break
        await asyncio.sleep(0.05)
    with pytest.raises(InvalidTransition, match=f"{retry.id} is running on {task.branch}"):
        app.service.merge_branch(task.id)
    await app.engine.wait_finished(retry.id, timeout=30)
