"""Housekeeping of task worktrees: real git repositories, a real store, an injected ``now``.

What goes (old or too many finished tasks' worktrees, spares past ``worktrees.spares``, empty
stale branches), what stays (active and needs_review tasks' worktrees, uncommitted changes,
branches with commits), a repository that vanished, doctor's lines, the CLI and the bot's job.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.cli import main
from bot.scheduler import Scheduler, SchedulerDeps
from core import housekeeping, worktrees
from core.housekeeping import DAY_S
from core.models import Task
from core.protocol import task_dir
from core.text import disk_size

NOW = 2_000_000_000.0


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def base(repo: Path) -> str:
    return git(repo, "symbolic-ref", "--short", "HEAD")


def branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/orchestra/").split()


@pytest.fixture
def app(make_app: Any, repo: Path) -> App:
    made: App = make_app(projects={"api": {"path": str(repo)}}, worktrees={"keep_days": 7, "keep_count": 20})
    return made


def task(app: App, repo: Path, text: str, *, age_days: float = 10, state: str = "succeeded", commit: bool = False,
         owner: Task | None = None, now: float = NOW) -> Task:  # fmt: skip
    """A task of project api whose worktree exists (``owner``'s when given: a retry), finished ``age_days`` ago."""
    at = now - age_days * DAY_S
    finished = state not in ("queued", "running", "awaiting_approval")
    fields = {"text": text, "agent": "standin", "category": "backend", "state": state, "cwd": str(repo),
              "project": "api", "created_at": at - 60, "finished_at": at if finished else None}  # fmt: skip
    made = app.store.create_task(fields)
    if owner is not None:
        app.store.update_task(made.id, worktree=owner.worktree, branch=owner.branch)
        return app.store.get_task(made.id)
    tree = worktrees.prepare(repo, made.id, text, None, app.home)
    if commit:
        (tree.path / f"{made.id}.txt").write_text("work\n")
        git(tree.path, "add", ".")
        git(tree.path, "commit", "-qm", f"{made.id}: work")
    app.store.update_task(made.id, worktree=str(tree.path), branch=tree.branch)
    return app.store.get_task(made.id)


def exists(t: Task) -> bool:
    return t.worktree is not None and Path(t.worktree).is_dir()


def test_an_old_worktree_goes_and_its_branch_stays_only_when_it_has_commits(app: App, repo: Path) -> None:
    trunk = base(repo)
    worked = task(app, repo, "Add login", commit=True)
    idle = task(app, repo, "Nothing to do")
    fresh = task(app, repo, "Still fresh", age_days=2)
    assert worked.branch is not None and idle.branch is not None and fresh.branch is not None
    lines = app.service.prune_worktrees(now=NOW)
    assert lines == [
        f"removed {worked.id}'s worktree (finished 10 days ago); kept its branch {worked.branch}: 1 commit beyond "
        + trunk,
        f"removed {idle.id}'s worktree (finished 10 days ago) and its branch {idle.branch} (nothing beyond {trunk})",
    ]
    assert not exists(worked) and not exists(idle) and exists(fresh)
    assert branches(repo) == sorted([worked.branch, fresh.branch])
    assert len(git(repo, "worktree", "list").splitlines()) == 2  # the main checkout and fresh's
    assert app.service.prune_worktrees(now=NOW) == []  # nothing more to do; the kept branch is work to merge
    assert app.service.prune_worktrees(now=NOW + 6 * DAY_S) == [
        f"removed {fresh.id}'s worktree (finished 8.0 days ago) and its branch {fresh.branch} (nothing beyond {trunk})"
    ]


def test_at_most_keep_count_finished_worktrees_stay_the_newest(make_app: Any, repo: Path) -> None:
    app = make_app(projects={"api": {"path": str(repo)}}, worktrees={"keep_count": 2})
    tasks = [task(app, repo, f"task {n}", age_days=4 - n) for n in range(4)]  # t1 oldest
    running = task(app, repo, "busy", state="running")
    lines = app.service.prune_worktrees(now=NOW)
    assert len(lines) == 2
    assert all(line.startswith(f"removed {t.id}'s worktree (beyond the 2 newest finished) and its branch")
               for t, line in zip(tasks[:2], lines, strict=True))  # fmt: skip
    assert [exists(t) for t in tasks] == [False, False, True, True] and exists(running)


def test_active_and_needs_review_worktrees_stay_whatever_their_age(app: App, repo: Path) -> None:
    review = task(app, repo, "Look at me", state="needs_review", age_days=30)
    running = task(app, repo, "Working", state="running", age_days=30)
    first = task(app, repo, "First attempt", age_days=30)
    retry = task(app, repo, "Again", state="queued", owner=first)  # a retry continues in first's worktree
    lines = app.service.prune_worktrees(now=NOW)
    assert lines == [f"kept {review.id}'s worktree: {review.id} waits for review (needs_review)"]
    assert exists(review) and exists(running) and exists(first) and retry.worktree == first.worktree


def test_uncommitted_changes_keep_a_worktree_and_say_why(app: App, repo: Path) -> None:
    dirty = task(app, repo, "Someone is here")
    Path(dirty.worktree or "", "README.md").write_text("a person's edit\n")
    cached = task(app, repo, "Agent state only")  # the agent CLI's state files do not count
    (task_dir(app.home, cached.id)).mkdir(parents=True)
    (task_dir(app.home, cached.id) / "baseline.json").write_text(json.dumps({"state_paths": [".aider.cache/"]}))
    (Path(cached.worktree or "") / ".aider.cache").mkdir()
    (Path(cached.worktree or "") / ".aider.cache" / "tags").write_text("x\n")
    lines = app.service.prune_worktrees(now=NOW)
    assert lines[0] == (
        f"kept {dirty.id}'s worktree {dirty.worktree} (finished 10 days ago): 1 file uncommitted: README.md; "
        "commit or remove them"
    )
    assert lines[1].startswith(f"removed {cached.id}'s worktree (finished 10 days ago) and its branch")
    assert exists(dirty) and not exists(cached)


def test_spares_are_pruned_to_the_configured_number(make_app: Any, repo: Path) -> None:
    app = make_app(projects={"api": {"path": str(repo)}}, worktrees={"spares": 1})
    made = [worktrees.add_spare(repo, app.home) for _ in range(3)]
    lines = app.service.prune_worktrees(now=NOW)
    assert len(lines) == 2 and all(line.endswith("(worktrees.spares: 1)") for line in lines)
    assert len(worktrees.spares(repo, app.home)) == 1
    assert len(git(repo, "worktree", "list").splitlines()) == 2 and sum(p is not None and p.exists() for p in made) == 1
    assert housekeeping.prune_spares(repo, app.home, keep=0) and worktrees.spares(repo, app.home) == []


def test_a_vanished_worktree_is_forgotten_and_its_stale_branches_are_listed_or_deleted(app: App, repo: Path) -> None:
    worked = task(app, repo, "Kept work", commit=True)
    empty = task(app, repo, "No work")
    shutil.rmtree(worked.worktree or "")
    shutil.rmtree(empty.worktree or "")
    git(repo, "branch", "orchestra/t99-nobody")  # no task at all
    [row] = app.service.worktree_usage(now=NOW)
    assert row.worktrees == [] and row.stale_branches == sorted(
        [str(worked.branch), str(empty.branch), "orchestra/t99-nobody"]
    )
    lines = app.service.prune_worktrees(now=NOW)
    assert lines[0] == f"{repo.resolve()}: forgot 2 worktree(s) whose folder was gone (git worktree prune)"
    assert sorted(lines[1:]) == [
        f"deleted the branch {empty.branch}: no worktree, nothing beyond {base(repo)}",
        f"deleted the branch orchestra/t99-nobody: no worktree, nothing beyond {base(repo)}",
    ]
    assert branches(repo) == [worked.branch]


def test_a_repository_that_is_gone_is_one_line_and_its_folders_go(app: App, repo: Path) -> None:
    old = task(app, repo, "Old one")
    busy = task(app, repo, "Running", state="running")
    worktrees.add_spare(repo, app.home)
    shutil.rmtree(repo)
    checks = {what: detail for what, _ok, detail in app.service.worktree_checks() if what != "worktrees"}
    assert checks == {"project api": f"warning: {repo} does not exist (projects.api.path)"}
    lines = app.service.prune_worktrees(now=NOW)
    assert lines == [
        f"{repo}: the repository does not exist; removed 1 worktree folder(s) as plain files ({old.id}); 1 kept"
    ]
    assert not exists(old) and exists(busy)
    assert app.service.prune_worktrees(now=NOW + 1) == [f"{repo}: the repository does not exist; none gone; 1 kept"]


def test_usage_lists_worktrees_with_their_disk_use(app: App, repo: Path) -> None:
    one = task(app, repo, "Sized", age_days=1)
    (Path(one.worktree or "") / "big.bin").write_bytes(b"x" * 100_000)
    worktrees.add_spare(repo, app.home)
    [row] = app.service.worktree_usage(now=NOW)
    assert row.repo == repo.resolve() and row.present and row.stale_branches == []
    [tree] = row.worktrees
    assert (tree.name, tree.branch) == (one.id, one.branch) and 100_000 <= tree.bytes < 200_000
    assert len(row.spares) == 1 and row.spares[0].branch is None and row.bytes == tree.bytes + row.spares[0].bytes
    assert [disk_size(n) for n in (512, 1536, 3 * 1024**3)] == ["512 B", "1.5 KB", "3.0 GB"]


def test_doctor_reports_worktrees_and_a_dirty_main_checkout(app: App, repo: Path) -> None:
    task(app, repo, "One", age_days=1)
    (repo / "README.md").write_text("unsaved\n")
    checks = {what: (ok, detail) for what, ok, detail in app.service.doctor() if what in ("worktrees", "project api")}
    ok, detail = checks["worktrees"]
    assert (
        ok
        and detail.startswith("1 worktree · ")
        and detail.endswith(" · 0 spares · 0 stale branches (`orchestra worktrees` lists them)")
    )
    notice = f"notice: the main checkout {repo} has 1 uncommitted change: tasks still start (cut from the base commit)"
    assert checks["project api"] == (True, f"{notice}, a merge into it will refuse")


def test_the_cli_lists_and_prunes(app: App, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trunk = base(repo)
    old = task(app, repo, "Old", commit=True, now=time.time())  # the CLI prunes by the real clock
    fresh = task(app, repo, "Fresh", age_days=1, now=time.time())
    config = ["--config", str(tmp_path / "bots.yaml")]
    assert main([*config, "worktrees"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{repo.resolve()} · {worktrees.worktrees_dir(app.home, repo.resolve())}"
    assert out[1].startswith(f"  {old.id}  ") and out[1].endswith(f"  {old.branch}")
    assert out[2].startswith(f"  {fresh.id}  ") and out[-1].startswith("2 worktree(s), 0 spare(s), ")
    assert main([*config, "worktrees", "--prune", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pruned"] == [
        f"removed {old.id}'s worktree (finished 10 days ago); kept its branch {old.branch}: 1 commit beyond {trunk}"
    ]
    [row] = data["repositories"]
    assert [t["name"] for t in row["worktrees"]] == [fresh.id] and row["present"] is True


async def test_the_bot_s_job_prunes_through_the_service(app: App, repo: Path) -> None:
    old = task(app, repo, "Old")
    deps = SchedulerDeps(app.config, app.store, app.clock, app.home, list, housekeeping=app.service)
    lines = await Scheduler(deps).prune_worktrees()  # the real clock: NOW is in the future, so age from today
    assert lines == [] and exists(old)
    app.store.update_task(old.id, finished_at=app.clock.now() - 8 * DAY_S)
    lines = await Scheduler(deps).prune_worktrees()
    assert len(lines) == 1 and lines[0].startswith(f"removed {old.id}'s worktree (finished 8.0 days ago)")
