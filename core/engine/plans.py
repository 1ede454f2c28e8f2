"""Moving plans on: a step whose waits are done is queued, a done step's branch is merged into the
plan's, a failed step is retried once with its error (then on its category's fallback agent),
then the plan pauses and asks; the last step done ends the plan with one completion.

:func:`advance` is idempotent: every change is a compare-and-set in one transaction with the
notices it causes, so calling it after every run, every dispatch and every restart moves each
plan exactly once and never runs a step twice. The dispatcher calls it before it picks tasks.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.models import Task, TaskState
from core.plan_text import (
    DONE,
    approval_keyboard,
    card_text,
    completion_keyboard,
    completion_text,
    latest_steps,
    paused_keyboard,
    spent,
)

if TYPE_CHECKING:
    from core.clock import Clock
    from core.config import Config
    from core.store import Store
    from core.store.plans import Plan

log = logging.getLogger(__name__)
_FAILED = (TaskState.FAILED, TaskState.TIMED_OUT, TaskState.OVER_BUDGET, TaskState.REJECTED)
_STOPPED = (TaskState.CANCELLED,)


def advance_all(config: Config, store: Store, clock: Clock, home: Path) -> bool:
    """Advance every running plan; True when a step was queued (the dispatcher then has work)."""
    queued = False
    for plan in store.plans(states=("running", "planning"), limit=10_000):
        try:
            if plan.state == "planning":
                if not from_planner(config, store, clock, plan):
                    continue
                plan = store.get_plan(plan.id)  # running now: its first steps start in this same call
            queued |= advance(config, store, clock, home, plan)
        except Exception:  # one plan's trouble never stops the others, nor the dispatcher
            log.exception("could not advance %s", plan.id)
    return queued


PLANNER_PROMPT = """You are planning work for several coding agents. Do not change any file.
Split the request below into 2 to {most} steps that agents can do one after another or in parallel.
Answer with one JSON object and nothing else, in this schema:
{{"steps": [{{"title": "short title", "text": "what the agent must do", "category": "one of {categories}",
"after": [numbers of the steps (from 1) this step needs done first]}}]}}
Steps that do not depend on each other must not list each other in "after".

The request:
{request}"""


def planner_prompt(config: Config, request: str) -> str:
    from core.plans import MAX_STEPS

    categories = ", ".join(sorted({*config.routing.categories, config.routing.default_category}))
    return PLANNER_PROMPT.format(most=min(MAX_STEPS, 8), categories=categories, request=request)


def from_planner(config: Config, store: Store, clock: Clock, plan: Plan) -> bool:
    """A planning plan whose planner answered: its JSON becomes the steps (then the plan runs, or
    waits for approval as the policy says); an answer that is no valid plan fails it, nothing runs."""
    from core import plans as planning

    planner = next((t for t in store.plan_tasks(plan.id) if t.plan_step == 0), None)
    if planner is None or not planner.state.finished:
        return False
    now = clock.now()
    try:
        if planner.state not in DONE:
            raise planning.PlanError(f"the planner ({planner.id}) {planner.state.value}: {planner.error[:200]}")
        spec = planning.from_planner(planner.final_text)
    except planning.PlanError as exc:
        with store.atomic():
            if store.transition_plan(plan.id, ("planning",), "failed", finished_at=now, paused=str(exc)):
                _say(config, store, clock, plan.id, f"❌ {plan.id} has no plan to run: {exc}. Nothing ran.")
        return False
    with store.atomic():
        steps = create_steps(config, store, plan, spec, now, requester=planner.requester, source=planner.source)
        gate = _gate(config, steps)
        store.update_plan(plan.id, estimate_usd=sum(t.estimate_usd or 0.0 for t in steps))
        store.transition_plan(plan.id, ("planning",), "awaiting_approval" if gate else "running",
                              paused=gate)  # fmt: skip
        if gate:
            from core.messages import OutKind
            from core.notify import Notifier

            buttons = approval_keyboard(plan.id)
            text = card_text(store.get_plan(plan.id), steps, now) + f"\n🔐 Needs approval: {gate}"
            Notifier(config, store, clock).post(OutKind.APPROVAL, f"{plan.id}:approval", text, task_id=plan.id,
                                                buttons=buttons, commands=buttons)  # fmt: skip
        _edit_card(config, store, clock, plan.id)
    return not gate


def create_steps(
    config: Config, store: Store, plan: Plan, spec: Any, now: float, *, requester: str, source: str
) -> list[Task]:
    """The steps of ``spec`` as waiting tasks of ``plan``, each on its agent (named, or its category's)."""
    steps = []
    for i, step in enumerate(spec.steps, start=1):
        category = step.category or config.routing.default_category
        project = config.projects.get(plan.project or "")
        own = (project.categories.get(category) or project.agent) if project is not None else None
        agent = step.agent or own or config.routing.categories.get(category) or config.routing.default_agent
        median, basis = store.median_cost(agent, category)
        steps.append(store.create_task({
            "text": step.text, "agent": agent, "category": category, "rule": "plan",
            "route_reason": f"step {i} of {plan.id} ({spec.source})", "state": TaskState.WAITING,
            "cwd": plan.cwd, "project": plan.project, "requester": requester, "source": source, "created_at": now,
            "timeout_s": config.limits.task_timeout_s,
            "estimate_usd": median if median is not None else config.budgets.default_estimate_usd,
            "estimate_basis": basis, "plan_id": plan.id, "plan_step": i, "step_title": step.title,
            "step_after": json.dumps(list(step.after)),
        }))  # fmt: skip
    return steps


def _gate(config: Config, steps: list[Task]) -> str:
    policy = config.policy
    for step in steps:
        if step.category in policy.approval_for:
            return f"its {step.category} step needs approval"
    total = sum(t.estimate_usd or 0.0 for t in steps)
    if policy.approve_above_usd is not None and total > policy.approve_above_usd:
        return f"estimated ${total:.2f} is above ${policy.approve_above_usd:.2f}"
    return ""


def _say(config: Config, store: Store, clock: Clock, plan_id: str, text: str) -> None:
    import hashlib

    from core.messages import OutKind
    from core.notify import Notifier

    key = f"{plan_id}:said:{hashlib.sha1(text.encode()).hexdigest()[:12]}"
    Notifier(config, store, clock).post(OutKind.COMPLETION, key, text, task_id=plan_id)


def advance(config: Config, store: Store, clock: Clock, home: Path, plan: Plan) -> bool:
    tasks = store.plan_tasks(plan.id)
    steps = latest_steps(tasks)
    attempts = Counter(t.plan_step for t in tasks)
    now = clock.now()
    for task in steps.values():  # git first, outside the transaction: a done step joins the plan's branch
        if task.state in DONE and plan.branch and task.branch and not task.landed:
            if not _merge_step(config, store, home, plan, task, now):
                return False
    skipped = set(plan.skipped)
    done = {n for n, t in steps.items() if t.state in DONE} | skipped
    queued = False
    with store.atomic():
        for number, task in steps.items():
            if task.state == TaskState.WAITING and set(task.step_after) <= done:
                queued |= store.transition(
                    task.id, [TaskState.WAITING], TaskState.QUEUED, queued_at=now, updated_at=now
                )
            elif number not in skipped and task.state in (*_FAILED, *_STOPPED):
                again = _retry(config, store, plan, task, attempts[number], now)
                if again is None:
                    why = f"step {number} ({task.id}) {task.state.value.replace('_', ' ')}"
                    why += f": {task.error[:200]}" if task.error else ""
                    _pause(config, store, clock, plan, number, why)
                    return False
                queued = True
        if done >= set(steps):
            _finish(config, store, clock, plan, now)
            return False
        if queued:
            _edit_card(config, store, clock, plan.id)
    return queued


def _retry(config: Config, store: Store, plan: Plan, task: Task, tries: int, now: float) -> Task | None:
    """The next attempt of a failed step: once more with its error, then on the fallback agent; None: ask."""
    if task.state in _STOPPED or tries >= 3:
        return None
    agent = task.agent
    if tries == 2:
        fallback = config.plans.fallback.get(task.category)
        if not fallback or fallback == task.agent or fallback not in config.agents:
            return None
        agent = fallback
    error = task.error or task.state.value
    extra = (
        f"\n\nThe previous attempt of this step ({task.id}, {task.agent}) failed: {error[:1000]}\nFix that this time."
    )
    why = f"retry of {task.id} in {plan.id}" + (f" on the fallback {agent}" if agent != task.agent else "")
    return store.next_attempt(task, agent=agent, extra=extra, why=why, requester=task.requester,
                              source=task.source, now=now)  # fmt: skip


def _merge_step(config: Config, store: Store, home: Path, plan: Plan, task: Task, now: float) -> bool:
    """Merge a done step's branch into the plan's and drop its worktree; a conflict pauses the plan."""
    from core import branches, worktrees
    from core.clock import SystemClock

    repo = Path(plan.repo or task.cwd)
    assert plan.branch is not None and task.branch is not None
    try:
        if branches.branch_exists(repo, task.branch):
            message = f"Merge {task.id} ({plan.id}.{task.plan_step}): {task.step_title or ''}".strip()
            branches.merge(repo, task.branch, plan.branch, message, home=home)
            tree = worktrees.load(repo, Path(task.worktree)) if task.worktree else None
            if tree is not None:
                worktrees.remove(tree, delete_branch=True)
            else:
                branches.delete_branch(repo, task.branch)
    except branches.MergeConflict as exc:
        with store.atomic():
            _pause(config, store, SystemClock(), plan, task.plan_step or 0, f"step {task.plan_step} ({task.id}): {exc}")
        return False
    except Exception as exc:  # noqa: BLE001  git trouble of any kind: said once, the plan waits for a person
        with store.atomic():
            _pause(config, store, SystemClock(), plan, task.plan_step or 0, f"could not merge {task.id}: {exc}")
        return False
    assert task.worktree is not None
    store.mark_branch(task.worktree, task.branch, landed="merged", landed_by=plan.id, landed_at=now)
    return True


def _pause(config: Config, store: Store, clock: Clock, plan: Plan, step: int, why: str) -> None:
    from core.messages import OutKind
    from core.notify import Notifier

    if not store.transition_plan(plan.id, ("running",), "paused", paused=why):
        return
    paused = store.get_plan(plan.id)
    text = card_text(paused, store.plan_tasks(plan.id), clock.now()) + "\nRetry the step, skip it, or cancel the plan."
    notifier = Notifier(config, store, clock)
    keyboard = paused_keyboard(paused, step)
    key = f"{plan.id}:paused:{step}:{len(store.plan_tasks(plan.id))}"
    notifier.post(OutKind.APPROVAL, key, text, task_id=plan.id, buttons=keyboard, commands=keyboard)
    _edit_card(config, store, clock, plan.id)


def _finish(config: Config, store: Store, clock: Clock, plan: Plan, now: float) -> None:
    from core.messages import OutKind
    from core.notify import Notifier

    tasks = store.plan_tasks(plan.id)
    if not store.transition_plan(
        plan.id, ("running",), "succeeded", finished_at=now, actual_usd=spent(tasks), actual_s=now - plan.created_at
    ):
        return
    done = store.get_plan(plan.id)
    project = config.projects.get(done.project or "")
    pull_request = False
    if project is not None and project.pull_requests is not None:
        import os

        from core import pulls

        pull_request = pulls.unavailable(project, os.environ, project_name=done.project) is None
    keyboard = completion_keyboard(done, pull_request=pull_request)
    Notifier(config, store, clock).post(
        OutKind.COMPLETION, f"{plan.id}:done", completion_text(done, tasks), task_id=plan.id, buttons=keyboard,
        commands=keyboard,
    )  # fmt: skip
    _edit_card(config, store, clock, plan.id)


def _edit_card(config: Config, store: Store, clock: Clock, plan_id: str) -> None:
    """Bring every copy of the plan's card up to date (older unsent edits collapse)."""
    from core.notify import Notifier, channel

    plan = store.get_plan(plan_id)
    text = card_text(plan, store.plan_tasks(plan_id), clock.now())
    notifier = Notifier(config, store, clock)
    for ch in (channel(config, name) for name in config.channels()):
        for row_id, chat_id, _sent in store.notification_rows(ch.name, plan_id, f"{plan_id}:card"):
            if chat_id is not None or not ch.taps:
                notifier.edit([row_id], text, (), final_state=plan.state if plan.finished else "")


__all__ = ["advance", "advance_all"]
