"""A worktree per task: real git, real tmux on a private socket, the real engine and runner."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from core import worktrees
from core.errors import WorktreeError
from core.models import TaskState
from tests.conftest import requires_tmux

# Writes its task text into README.md (the same file for every task), then lingers a little.
_WRITE = "import sys, time; open('README.md', 'w').write(sys.argv[1] + '\\n'); print('wrote'); time.sleep(0.4)"
WRITER = {"kind": "command", "command": sys.executable, "args": ["-c", _WRITE, "{task}"], "max_concurrent": 4}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def branch_of(repo: Path) -> str:
    return git(repo, "symbolic-ref", "--short", "HEAD")


async def _running(app: App) -> None:
    assert app.engine.acquire()
    await app.engine.start()


async def _until(check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@requires_tmux
async def test_three_tasks_at_once_get_three_branches_and_the_main_checkout_is_untouched(
    make_app: Any, repo: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = branch_of(repo)
    (repo / "README.md").write_text("my own unsaved edit\n")  # a dirty main checkout must not matter
    app = make_app(agents__writer=WRITER, limits__isolation="worktree")
    await _running(app)
    texts = ["Use tabs everywhere", "Use spaces everywhere", "Use nothing at all"]
    try:
        ids = [app.service.delegate(text, agent="writer", cwd=str(repo)).task.id for text in texts]
        await _until(lambda: "wrote" in app.service.peek(ids[0]))  # peek (and attach) use the window, as before
        tasks = [await app.engine.wait_finished(i, timeout=30) for i in ids]
    finally:
        await app.engine.stop()
    assert [t.state for t in tasks] == [TaskState.SUCCEEDED] * 3
    assert (repo / "README.md").read_text() == "my own unsaved edit\n"
    assert git(repo, "status", "--porcelain") == "M README.md"
    assert branch_of(repo) == main and git(repo, "rev-list", "--count", "HEAD") == "1"
    for task, text in zip(tasks, texts, strict=True):
        assert task.cwd == str(repo.resolve())  # recorded as the repository, run in the worktree
        assert task.branch == f"orchestra/{task.id}-{worktrees.slug(text)}"
        assert task.worktree == str(worktrees.worktrees_dir(home, repo.resolve()) / task.id)
        assert git(repo, "show", f"{task.branch}:README.md") == text  # its change, committed by Orchestra
        assert git(repo, "diff", "--name-only", f"{main}...{task.branch}") == "README.md"
        assert git(repo, "log", "-1", "--format=%s", task.branch) == f"{task.id}: {text}"
        assert task.summary["files"] == [{"path": "README.md", "added": 1, "removed": 2}]
        completion = app.store.outbox_queue("console", task_id=task.id)[0].text
        assert f"Branch: {task.branch} · 1 file vs {main}" in completion
    from bot.cli.tasks import show

    assert show(app, argparse.Namespace(id=tasks[0].id, json=False)) == 0
    assert f"Branch: {tasks[0].branch} · 1 file vs {main}" in capsys.readouterr().out


@requires_tmux
async def test_a_retry_continues_in_the_same_worktree_and_branch(make_app: Any, repo: Path) -> None:
    app = make_app(agents__writer=WRITER, limits__isolation="worktree")
    await _running(app)
    try:
        first = await app.engine.wait_finished(app.service.delegate("Say hi", agent="writer", cwd=str(repo)).task.id)
        retried = app.service.retry(first.id, feedback="louder").task
        second = await app.engine.wait_finished(retried.id, timeout=30)
    finally:
        await app.engine.stop()
    assert second.state == TaskState.SUCCEEDED and second.parent_id == first.id
    assert (second.worktree, second.branch) == (first.worktree, first.branch)
    assert first.branch is not None and git(repo, "rev-list", "--count", f"HEAD..{first.branch}") == "2"
    assert "louder" in git(repo, "show", f"{first.branch}:README.md")
    assert second.summary["files"][0]["path"] == "README.md"  # still counted against the base


@requires_tmux
async def test_a_directory_outside_git_runs_in_place_as_before(make_app: Any, tmp_path: Path, home: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    app = make_app(agents__writer=WRITER, limits__isolation="worktree")
    await _running(app)
    try:
        delegation = app.service.delegate("plain text", agent="writer", cwd=str(plain))
        task = await app.engine.wait_finished(delegation.task.id)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED and task.worktree is None and task.branch is None
    assert (plain / "README.md").read_text() == "plain text\n"
    assert not (home / "worktrees").exists()


@requires_tmux
async def test_isolation_is_off_by_default(make_app: Any, repo: Path, home: Path) -> None:
    app = make_app(agents__writer=WRITER)
    await _running(app)
    try:
        task = await app.engine.wait_finished(app.service.delegate("in place", agent="writer", cwd=str(repo)).task.id)
    finally:
        await app.engine.stop()
    assert task.worktree is None and (repo / "README.md").read_text() == "in place\n"
    assert "Branch:" not in app.store.outbox_queue("console", task_id=task.id)[0].text
    assert not (home / "worktrees").exists()


@requires_tmux
async def test_a_worktree_that_cannot_be_made_fails_the_task_in_one_line(make_app: Any, repo: Path, home: Path) -> None:
    git(repo, "branch", "orchestra")  # a branch named orchestra: no orchestra/... branch can exist beside it
    app = make_app(agents__writer=WRITER, limits__isolation="worktree")
    await _running(app)
    try:
        task = await app.engine.wait_finished(app.service.delegate("doomed", agent="writer", cwd=str(repo)).task.id)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.FAILED and task.worktree is None
    assert task.error.startswith("could not start: git worktree add failed: ") and "\n" not in task.error
    folder = worktrees.worktrees_dir(home, repo.resolve())
    assert [p.name for p in folder.iterdir()] == [".lock"]
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    assert (repo / "README.md").read_text() == "# project\nline two\n"


def test_failures_are_one_line_and_leave_nothing(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "data"
    with pytest.raises(WorktreeError, match=r"^the repository .*gone does not exist$"):
        worktrees.prepare(tmp_path / "gone", "t1", "x", None, home)
    (tmp_path / "plain").mkdir()
    with pytest.raises(WorktreeError, match="is not a git repository"):
        worktrees.prepare(tmp_path / "plain", "t1", "x", None, home)
    with pytest.raises(WorktreeError, match=r"^'nope' names no commit$"):
        worktrees.prepare(repo, "t1", "x", "nope", home)
    git(repo, "branch", "orchestra")
    with pytest.raises(WorktreeError) as failed:
        worktrees.prepare(repo, "t1", "add login", None, home)
    assert "\n" not in str(failed.value)
    assert not (worktrees.worktrees_dir(home, repo.resolve()) / "t1").exists()
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    assert git(repo, "branch", "--list", "orchestra/*") == ""


def test_concurrent_prepares_on_one_repository_do_not_race(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "data"
    made: list[worktrees.Worktree] = []
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            made.append(worktrees.prepare(repo, f"t{n}", f"task number {n}", None, home))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(t.branch for t in made) == sorted(f"orchestra/t{n}-task-number-{n}" for n in range(8))
    assert len(git(repo, "worktree", "list").splitlines()) == 9
    assert all((t.path / "README.md").exists() for t in made)


def test_prepare_reuses_diffs_commits_and_removes(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "data"
    main = branch_of(repo)
    tree = worktrees.prepare(repo, "t42", "Add the login page, please!", None, home)
    assert (tree.branch, tree.base, tree.reused) == ("orchestra/t42-add-the-login-page-please", main, False)
    assert tree.base_commit == git(repo, "rev-parse", "HEAD")
    (tree.path / "README.md").write_text("changed\n")
    git(tree.path, "commit", "-qam", "the agent's own commit")
    (tree.path / "login.py").write_text("a\nb\n")
    (tree.path / ".cache").mkdir()
    (tree.path / ".cache" / "state").write_text("agent state\n")
    assert worktrees.diff_stat(tree) == "3 files vs " + main
    again = worktrees.prepare(repo, "t42", "other words", None, home)
    assert again.reused and (again.path, again.branch, again.base_commit) == (tree.path, tree.branch, tree.base_commit)
    assert worktrees.commit_run(tree.baseline(state_paths=[".cache/"]), "t42", tree_text := "Add login\nwith a form")
    subjects = git(repo, "log", "--format=%s", f"{main}..{tree.branch}").splitlines()
    assert subjects == ["t42: Add login", "the agent's own commit"]
    assert git(tree.path, "status", "--porcelain") == "?? .cache/"
    assert tree_text in git(repo, "log", "-1", "--format=%B", tree.branch)
    assert worktrees.commit_pending(tree, "nothing left", skip=[".cache/"]) is None
    worktrees.remove(tree, delete_branch=True)
    assert not tree.path.exists() and git(repo, "branch", "--list", tree.branch) == ""
    worktrees.remove(tree, delete_branch=True)  # again: nothing to do
    assert worktrees.load(repo, tree.path) is None


def test_a_spare_worktree_is_taken_and_cut_from_the_current_base(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "data"
    spare = worktrees.add_spare(repo, home)
    assert spare is not None and worktrees.spares(repo, home) == [spare]
    assert worktrees.add_spare(repo, home, unless_one=True) is None
    (repo / "new.txt").write_text("after the spare\n")
    git(repo, "add", "new.txt")
    git(repo, "commit", "-qm", "moved on")
    tree = worktrees.prepare(repo, "t7", "fast start", None, home)
    assert worktrees.spares(repo, home) == [] and not spare.exists()
    assert branch_of(tree.path) == tree.branch == "orchestra/t7-fast-start"
    assert (tree.path / "new.txt").read_text() == "after the spare\n"
    assert git(tree.path, "rev-parse", "HEAD") == git(repo, "rev-parse", "HEAD") == tree.base_commit


def test_slug() -> None:
    assert worktrees.slug("Fix the LOGIN bug (#12) — naïve café") == "fix-the-login-bug-12-nave-caf"
    assert worktrees.slug("!!!") == "task"
    assert len(worktrees.slug("word " * 40)) <= 40
