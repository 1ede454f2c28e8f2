"""The end of a task that ran in its own worktree: its diff, a merge into the base, a pull request,
or discarding it. Each is audited, said in every chat, and works on what the store and git hold,
so a restart between the task's end and the tap changes nothing.

A retry or follow-up continues its parent's worktree and branch, so a branch is the unit here:
every task of the chain is marked with what became of it (``landed``, ``pr_url``), and a task of
the chain still running blocks the merge. A task waiting for review is approved by Merge and
Open PR, and rejected by Discard: the review gate's buttons are these.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core import branches, worktrees
from core.errors import InvalidTransition, WorktreeError
from core.models import Task, TaskState
from core.protocol import task_dir
from core.service.actions import TaskActions
from core.service.base import LOCAL, Actor
from core.text import clip, format_cost, format_duration, local_time

if TYPE_CHECKING:
    from core.config.projects import ProjectConfig
    from core.pulls import PullRequest
    from core.store.plans import Plan


@dataclass(frozen=True)
class TaskBranch:
    """A task's branch and where it lives: the repository, the base it merges into, its worktree."""

    task: Task  # the newest task of the chain (its summary describes the branch as it is)
    repo: Path
    branch: str
    base: str
    worktree: Path
    project: ProjectConfig | None
    plan: Plan | None = None  # the branch is a plan's (every step merged into it), not one task's

    @property
    def name(self) -> str:
        """What a person calls it: the plan (``p3``) or the task (``t42``)."""
        return self.plan.id if self.plan is not None else self.task.id

    @property
    def text(self) -> str:
        return self.plan.text if self.plan is not None else self.task.text

    @property
    def key(self) -> tuple[str, str]:
        return str(self.worktree), self.branch


@dataclass(frozen=True)
class BranchDiff:
    branch: TaskBranch
    diff: branches.Diff
    patch_path: Path


class Branches(TaskActions):
    """Diff, merge, pull request and discard of a task's branch."""

    def task_branch(self, task_id: str, *, action: str = "merge") -> TaskBranch:
        """The branch of ``task_id``; :class:`InvalidTransition` (one line) when it has none, when
        its branch was merged or discarded already, or while a task of it is still active."""
        from core.plans import parse_plan_ref

        if (ref := parse_plan_ref(task_id)) is not None:
            return self._plan_branch_of(ref[0], action)
        task = self.get(task_id)
        if not task.branch or not task.worktree:
            raise InvalidTransition(
                f"{task.id} ran in {task.cwd} without a worktree: there is no branch to {action} (isolation: none)"
            )
        chain = self.store.branch_tasks(task.worktree, task.branch)
        newest = chain[-1] if chain else task
        if newest.landed:
            when = local_time(newest.landed_at or 0, self.config.digest.zone())
            raise InvalidTransition(f"{task.id}'s branch was already {newest.landed} by {newest.landed_by} at {when}")
        ids = {t.id for t in chain} | {task.id}
        active = [t for t in self.store.active_tasks() if t.id in ids or t.parent_id in ids]  # a retry starting
        if active and action != "diff":
            state = active[0].state.value.replace("_", " ")
            raise InvalidTransition(f"{active[0].id} is {state} on {task.branch}; wait for it or cancel it first")
        project = self.config.projects.get(task.project) if task.project else None
        repo = Path(task.cwd)
        top = worktrees.run_git(repo, "rev-parse", "--show-toplevel")
        if not repo.is_dir() or top.returncode != 0:
            raise InvalidTransition(f"{task.id}'s repository {task.cwd} is gone or no longer a git repository")
        repo = Path(top.stdout.strip())
        if not branches.branch_exists(repo, task.branch):
            raise InvalidTransition(f"{task.id}'s branch {task.branch} is gone from {repo}")
        base = (project.base if project is not None else None) or str(chain[0].summary.get("base") or "")
        if not base or not branches.branch_exists(repo, base):
            raise InvalidTransition(f"{task.id}'s base branch {base or '?'} is not a branch of {repo}")
        return TaskBranch(newest, repo, task.branch, base, Path(task.worktree), project)

    def _plan_branch_of(self, plan_id: str, action: str) -> TaskBranch:
        plan = self.store.find_plan(plan_id)
        if plan is None:
            raise InvalidTransition(f"There is no plan {plan_id!r}")
        if not plan.branch or not plan.repo:
            raise InvalidTransition(f"{plan.id}'s steps ran without worktrees: there is no branch to {action}")
        if plan.landed:
            when = local_time(plan.landed_at or 0, self.config.digest.zone())
            raise InvalidTransition(f"{plan.id}'s branch was already {plan.landed} by {plan.landed_by} at {when}")
        if plan.state != "succeeded" and action != "diff":
            raise InvalidTransition(f"{plan.id} is {plan.state}; its branch is merged once every step is done")
        steps = self.store.plan_tasks(plan.id)
        if not steps or not branches.branch_exists(Path(plan.repo), plan.branch):
            raise InvalidTransition(f"{plan.id}'s branch {plan.branch} is gone from {plan.repo}")
        project = self.config.projects.get(plan.project) if plan.project else None
        repo = Path(plan.repo)
        return TaskBranch(steps[-1], repo, plan.branch, plan.base or "", repo / ".git" / "no-worktree", project, plan)

    def branch_diff(self, task_id: str) -> BranchDiff:
        """The branch's change against its base: a stat and the patch, written to the task's folder."""
        tb = self.task_branch(task_id, action="diff")
        self._commit_left(tb)
        diff = branches.diff(tb.repo, tb.branch, tb.base)
        name = tb.plan.id if tb.plan else tb.task.id
        path = task_dir(self.home, tb.task.id) / f"{name}.patch"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(diff.patch)
        return BranchDiff(tb, diff, path)

    def merge_branch(self, task_id: str, *, actor: Actor = LOCAL) -> tuple[TaskBranch, branches.Merged]:
        """Merge the branch into its base (fast-forward, else a merge commit), then remove the
        worktree and the branch. A conflict (:class:`core.branches.MergeConflict`) or a dirty
        checkout raises, changing nothing; the branch and its buttons stay."""
        tb = self.task_branch(task_id)
        self._commit_left(tb)
        first = next((line.strip() for line in tb.text.splitlines() if line.strip()), tb.name)
        message = f"Merge {tb.name}: {clip(first, 60)}\n\nBranch {tb.branch}, by Orchestra."
        merged = branches.merge(tb.repo, tb.branch, tb.base, message, home=self.home)
        self._remove(tb)
        self._landed(tb, "merged", actor, review="approve")
        how = "already in it" if merged.already else "fast-forward" if merged.fast_forward else "merge commit"
        files = f"{merged.files} file{'' if merged.files == 1 else 's'}"
        self.audit(actor, "merge", tb.task.id, f"{tb.branch} into {tb.base} ({how}) {merged.commit[:12]}")
        self._say(tb, "merged", f"🔀 {tb.name} merged into {tb.base} ({how}, {files}) by {actor.name}")
        return tb, merged

    def pull_request(self, task_id: str, *, actor: Actor = LOCAL) -> tuple[TaskBranch, PullRequest]:
        """Push the branch to the project's remote and open a pull request (or find the one open).

        :class:`core.errors.PullRequestError` (one line) when it cannot; nothing is changed then
        but, maybe, the pushed branch, which a later try pushes again."""
        from core import pulls

        tb = self.task_branch(task_id, action="open a pull request for")
        why = (
            pulls.unavailable(tb.project, os.environ, project_name=tb.task.project)
            if tb.project is not None
            else "the task is in no project"
        )
        if why or tb.project is None or tb.project.pull_requests is None or tb.project.remote is None:
            raise InvalidTransition(f"No pull request for {tb.name}: {why}")
        self._commit_left(tb)
        pulls.push(tb.repo, tb.project.remote, tb.branch)
        title = clip(next((ln.strip() for ln in tb.text.splitlines() if ln.strip()), tb.name), 120)
        pr = pulls.open_pull_request(
            str(tb.task.project), tb.project.pull_requests, head=tb.branch, base=tb.base,
            title=title, body=self._pr_body(tb), env=os.environ,
        )  # fmt: skip
        with self.store.atomic():
            if tb.plan is not None:
                self.store.update_plan(tb.plan.id, pr_url=pr.url)
            self.store.mark_branch(*tb.key, pr_url=pr.url)
            self._review(tb, "approve", actor)
            self.audit(actor, "pr", tb.task.id, f"{tb.branch} → {tb.base}: {pr.url}")
        if not pr.existed:  # a second tap is answered to the tapper alone
            said = f"🔗 {tb.name}: pull request #{pr.number} opened by {actor.name}\n{pr.url}"
            self._say(tb, f"pr-{pr.number}", said)
        return tb, pr

    def discard_branch(self, task_id: str, *, actor: Actor = LOCAL) -> TaskBranch:
        """Remove the worktree and delete the branch, unmerged commits too (the caller confirmed)."""
        tb = self.task_branch(task_id, action="discard")
        self._remove(tb)
        self._landed(tb, "discarded", actor, review="reject")
        self.audit(actor, "discard", tb.task.id, tb.branch)
        self._say(tb, "discarded", f"🗑 {tb.name}'s branch {tb.branch} and its worktree were discarded by {actor.name}")
        return tb

    def pull_request_unavailable(self, task: Task) -> str | None:
        """Why a finished task of a project with pull requests set up gets no Open PR button (None: it does,
        or the project has none set up, which needs no saying)."""
        project = self.config.projects.get(task.project) if task.project else None
        if project is None or project.pull_requests is None:
            return None
        from core import pulls

        return pulls.unavailable(project, os.environ, project_name=task.project)

    # -- the parts --------------------------------------------------------------------------------
    def _commit_left(self, tb: TaskBranch) -> None:
        """Commit what someone left uncommitted in the worktree since the run (the run's own was)."""
        if tb.plan is not None or not tb.worktree.is_dir():
            return
        try:
            baseline = json.loads((task_dir(self.home, tb.task.id) / "baseline.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            baseline = {"root": str(tb.worktree), "branch": tb.branch}
        worktrees.commit_run(baseline, tb.task.id, tb.task.text)

    def _remove(self, tb: TaskBranch) -> None:
        tree = None if tb.plan is not None else worktrees.load(tb.repo, tb.worktree)
        if tree is not None:
            worktrees.remove(tree, delete_branch=True)
        else:
            worktrees.run_git(tb.repo, "worktree", "prune")
            branches.delete_branch(tb.repo, tb.branch)
        if branches.branch_exists(tb.repo, tb.branch):
            raise WorktreeError(f"could not delete {tb.branch} in {tb.repo}")

    def _landed(self, tb: TaskBranch, outcome: str, actor: Actor, *, review: str) -> None:
        if tb.plan is not None:
            self.store.update_plan(tb.plan.id, landed=outcome, landed_by=actor.name, landed_at=self.clock.now())
            return
        with self.store.atomic():
            self.store.mark_branch(*tb.key, landed=outcome, landed_by=actor.name, landed_at=self.clock.now())
            self._review(tb, review, actor)

    def _review(self, tb: TaskBranch, verdict: str, actor: Actor) -> None:
        """Decide the review of the chain's tasks that wait for one, as the tap decided the branch."""
        for task in self.store.branch_tasks(*tb.key):
            if task.state != TaskState.NEEDS_REVIEW:
                continue
            try:
                if verdict == "approve":
                    self.approve(task.id, actor=actor)
                else:
                    self.reject(task.id, reason="discarded", actor=actor)
            except InvalidTransition:
                pass  # decided meanwhile by someone else: theirs stands

    def _say(self, tb: TaskBranch, what: str, text: str) -> None:
        from core.messages import OutKind
        from core.notify import Notifier

        Notifier(self.config, self.store, self.clock).post(
            OutKind.COMPLETION, f"{tb.name}:branch:{what}", text, task_id=tb.name
        )

    def _pr_body(self, tb: TaskBranch) -> str:
        """The task as it was asked, what the agent said, the files, the cost: a reviewer's first read."""
        task, summary = tb.task, tb.task.summary
        lines = [f"Delegated to Orchestra as {task.id} ({task.agent} · {task.category}).", "", "## Task", ""]
        lines += [f"> {line}" if line else ">" for line in self.store.task_text(task.id).splitlines()[:60]]
        digest = summary.get("digest") or []
        if digest or task.final_text:
            lines += ["", "## Summary", ""]
            lines += [f"- {line}" for line in digest] if digest else [clip(task.final_text, 3000)]
        files = summary.get("files") or []
        if files:
            lines += ["", "## Files", ""]
            lines += [f"- `{f['path']}` +{f['added']} −{f['removed']}" for f in files[:50]]
        cost, took = format_cost(task.cost_usd), format_duration(task.duration_s)
        lines += ["", f"Cost {cost} · {took} · branch `{tb.branch}`"]
        return "\n".join(lines)


__all__ = ["BranchDiff", "Branches", "TaskBranch"]
